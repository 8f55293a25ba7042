"""The GeoLink objective (Eq. 15): L_total = L_cc + L_rd + L_ga + λ·L_sc, every term switchable.

- L_cc = L(dro,sat) + L(dro,pc) + L(sat,pc)      (cross-view InfoNCE, Eq. 6)
- L_sc = L(dro,dro) + L(sat,sat) + L(pc,pc)      (intra-view InfoNCE, Eq. 7)
- L_ga = CLUB(pc'→dro) + CLUB(pc'→sat)           (vCLUB, Eq. 9-10)
- L_rd = R(sat; pc') + R(dro; pc')               (relational distillation, Eq. 11-14)
Without point embeddings (the 2D baseline) only L(dro,sat) (+ the 2D intra-view terms if
enabled) remain.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from geolink.losses.club import CLUB
from geolink.losses.infonce import info_nce
from geolink.losses.relation import relation_distillation


@dataclass
class LossConfig:
    label_smoothing: float = 0.1
    infonce_form: str = "symmetric"  # symmetric (paper) | legacy (released code)
    use_pc_cc: bool = True  # L(dro,pc) + L(sat,pc) in L_cc
    use_sc: bool = True  # L_sc
    lambda_sc: float = 4.0
    use_rd: bool = True  # L_rd
    # mean (released code) | sum (Eq. 11-13; ~1e-6 gradients, see docs/fidelity.md)
    rd_normalization: str = "mean"
    rd_weight: float = 1.0
    rd_detach_teacher: bool = False
    use_ga: bool = True  # L_ga
    ga_weight: float = 1.0
    club_hidden: int = 4096
    club_shared: bool = False  # one estimator for both views (released code) or one per view
    club_train: bool = True  # train q_θ with its own optimiser (CLUB paper); false = released code
    club_steps: int = 1  # estimator steps per model step
    club_lr: float = 1e-4


class GeoLinkLoss(nn.Module):
    """Computes every loss term; holds the CLUB estimators (trained by their own optimiser)."""

    def __init__(self, cfg: LossConfig, dim: int, with_points: bool):
        super().__init__()
        self.cfg = cfg
        self.with_points = with_points
        self.club_drone: CLUB | None = None
        self.club_satellite: CLUB | None = None
        if with_points and cfg.use_ga:
            self.club_drone = CLUB(dim, dim, cfg.club_hidden)
            self.club_satellite = (
                self.club_drone if cfg.club_shared else CLUB(dim, dim, cfg.club_hidden)
            )

    def club_parameters(self) -> list[nn.Parameter]:
        mods = {id(m): m for m in (self.club_drone, self.club_satellite) if m is not None}
        return [p for m in mods.values() for p in m.parameters()]

    def club_learning_loss(self, drone: Tensor, satellite: Tensor, points: Tensor) -> Tensor:
        """Negative log-likelihood of q_θ on detached features (the estimator's own objective)."""
        if self.club_drone is None or self.club_satellite is None:
            raise RuntimeError("CLUB is disabled (loss.use_ga=false or no 3D branch)")
        x = points.detach()
        return self.club_drone.learning_loss(x, drone.detach()) + self.club_satellite.learning_loss(
            x, satellite.detach()
        )

    def forward(
        self, drone: Tensor, satellite: Tensor, points: Tensor | None, logit_scale: Tensor
    ) -> dict[str, Tensor]:
        """drone, satellite: (B, D) image embeddings; points: (B, D) 3D embeddings or None.

        Returns a dict of scalar terms; ``loss`` is the weighted total.
        """
        c = self.cfg

        def nce(a: Tensor, b: Tensor) -> Tensor:
            return info_nce(a, b, logit_scale, c.label_smoothing, c.infonce_form)

        t: dict[str, Tensor] = {"nce_dro_sat": nce(drone, satellite)}
        use_pc = self.with_points and points is not None
        if use_pc and c.use_pc_cc:
            t["nce_dro_pc"] = nce(drone, points)
            t["nce_sat_pc"] = nce(satellite, points)
        t["L_cc"] = sum(v for k, v in t.items() if k.startswith("nce_"))
        total = t["L_cc"]
        if c.use_sc:
            t["L_sc"] = nce(drone, drone) + nce(satellite, satellite)
            if use_pc:
                t["L_sc"] = t["L_sc"] + nce(points, points)
            total = total + c.lambda_sc * t["L_sc"]
        if use_pc and c.use_rd:
            t["L_rd"] = relation_distillation(
                satellite, points, c.rd_normalization, c.rd_detach_teacher
            ) + relation_distillation(drone, points, c.rd_normalization, c.rd_detach_teacher)
            total = total + c.rd_weight * t["L_rd"]
        if use_pc and self.club_drone is not None and self.club_satellite is not None:
            t["L_ga"] = self.club_drone(points, drone) + self.club_satellite(points, satellite)
            total = total + c.ga_weight * t["L_ga"]
        t["loss"] = total
        return t
