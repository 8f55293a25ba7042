import math

import pytest
import torch
import torch.nn.functional as F

from geolink.losses import CLUB, info_nce, relation_distillation


def _ce_smoothed(logits, eps):
    # direct: per row, -(1-eps)·log p_ii - eps/B · Σ_j log p_ij
    logp = logits.log_softmax(-1)
    b = logits.shape[0]
    return (-(1 - eps) * logp.diagonal() - eps / b * logp.sum(-1)).mean()


def test_info_nce_matches_direct_computation_with_label_smoothing():
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    scale = torch.tensor(math.log(1 / 0.07))
    an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    s = 1 / 0.07
    expected = 0.5 * (_ce_smoothed(s * an @ bn.T, 0.1) + _ce_smoothed(s * bn @ an.T, 0.1))
    torch.testing.assert_close(info_nce(a, b, scale, 0.1), expected)


def test_info_nce_hand_computed_two_by_two():
    # orthogonal unit vectors, s = 1, no smoothing: logits = I, loss = -log(e/(e+1)) both ways
    a = torch.eye(2)
    loss = info_nce(a, a.clone(), 0.0, label_smoothing=0.0)
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-6)


def test_info_nce_prefers_aligned_pairs_and_legacy_form_differs():
    torch.manual_seed(1)
    a = torch.randn(6, 16)
    aligned = info_nce(a, a + 0.01 * torch.randn_like(a), 2.0)
    shuffled = info_nce(a, a[torch.randperm(6)], 2.0)
    assert aligned < shuffled
    b = torch.randn(6, 16)
    assert not torch.isclose(info_nce(a, b, 2.0, form="legacy"), info_nce(a, b, 2.0))
    with pytest.raises(ValueError):
        info_nce(a, b, 2.0, form="nope")


@pytest.mark.parametrize("norm", ["sum", "mean"])
def test_relation_distillation_zero_for_scaled_teacher_positive_otherwise(norm):
    torch.manual_seed(2)
    t = torch.randn(6, 10)
    assert relation_distillation(3.5 * t, t, norm).item() == pytest.approx(0.0, abs=1e-10)
    other = torch.randn(6, 10)
    assert relation_distillation(other, t, norm).item() > 1e-6


def test_relation_distillation_sum_form_hand_computed():
    # 3 points on a line at 0, 1, 3 (teacher) and 0, 1, 2 (student)
    t = torch.tensor([[0.0], [1.0], [3.0]])
    s = torch.tensor([[0.0], [1.0], [2.0]])
    # off-diagonal distances: teacher (1,3,2) each twice, sum 12; student (1,2,1) twice, sum 8
    at = torch.tensor([1, 3, 2]) / 12
    as_ = torch.tensor([1, 2, 1]) / 8
    expected = 2 * ((as_ - at) ** 2).sum() / (3 * 2)
    assert relation_distillation(s, t, "sum").item() == pytest.approx(expected.item(), rel=1e-5)


def test_relation_distillation_gradients_reach_student():
    s = torch.randn(4, 5, requires_grad=True)
    relation_distillation(s, torch.randn(4, 7)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_club_estimate_forward_equals_pairwise_definition():
    torch.manual_seed(3)
    club = CLUB(4, 3, hidden=8)
    x, y = torch.randn(5, 4), torch.randn(5, 3)
    mu, logvar = club.p_mu(x), club.p_logvar(x)
    pos = (-((mu - y) ** 2) / 2 / logvar.exp()).sum(-1)
    neg = (-((y.unsqueeze(0) - mu.unsqueeze(1)) ** 2).mean(1) / 2 / logvar.exp()).sum(-1)
    torch.testing.assert_close(club(x, y), (pos - neg).mean(), rtol=1e-5, atol=1e-5)


def test_club_estimate_larger_for_dependent_pairs_after_training():
    torch.manual_seed(4)
    n, d = 256, 4
    x = torch.randn(n, d)
    y_dep = x + 0.1 * torch.randn(n, d)
    y_ind = torch.randn(n, d)
    estimates = {}
    for name, y in (("dep", y_dep), ("ind", y_ind)):
        club = CLUB(d, d, hidden=32)
        opt = torch.optim.Adam(club.parameters(), lr=1e-2)
        for _ in range(150):
            opt.zero_grad()
            club.learning_loss(x, y).backward()
            opt.step()
        with torch.no_grad():
            estimates[name] = club(x, y).item()
    # true MI: 4·½·log(1 + 1/0.01) ≈ 9.2 nats for the dependent pair, 0 for the independent one
    assert estimates["dep"] > estimates["ind"] + 5.0


def test_club_estimate_under_bf16_autocast_is_exact_given_the_estimators_outputs():
    """#14.2: the O(N·D) negative term cancels; in bf16 it was off by ~1e-3 on an MI of ~1e-3.
    Given the same (bf16) μ and log-variance, the estimate must equal the pairwise definition."""
    torch.manual_seed(0)
    n, d = 32, 1024
    x = F.normalize(torch.randn(n, d) + 1.0, dim=-1).bfloat16()
    y = F.normalize(torch.randn(n, d) + 1.0, dim=-1).bfloat16()  # independent: MI ≈ 0
    club = CLUB(d, d, hidden=256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = club(x, y)
        mu, logvar = club._params(x)
    mu, logvar, yd = mu.double(), logvar.double(), y.double()
    pos = (-((mu - yd) ** 2) / 2 / logvar.exp()).sum(-1)
    neg = (-((yd.unsqueeze(0) - mu.unsqueeze(1)) ** 2).mean(1) / 2 / logvar.exp()).sum(-1)
    want = float((pos - neg).mean())
    assert got.dtype == torch.float32
    assert abs(float(got) - want) < 2e-5, (float(got), want)


@pytest.mark.parametrize("over", [{"model.point.head": "linear"}, {"model.point.experts": 2}])
def test_club_estimator_step_after_a_bf16_autocast_forward(over):
    """#14.2: with a linear head or E != 3 the point embedding stays bf16 under autocast and the
    fp32 estimator's own step (outside autocast) failed with a dtype mismatch."""
    from tests.test_models import tiny_model

    model, cfg = tiny_model(**over)
    size = cfg.model.image.img_size
    drone, sat = torch.randn(4, 3, size, size), torch.randn(4, 3, size, size)
    pf = torch.randn(4, model.point_encoder.out_dim)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(drone, sat, point_features=pf)
    assert out["point_emb"].dtype == torch.bfloat16  # the case that crashed
    nll = model.criterion.club_learning_loss(
        out["drone_emb"], out["satellite_emb"], out["point_emb"]
    )
    nll.backward()
    assert torch.isfinite(nll) and model.criterion.club_drone.p_mu[0].weight.grad is not None


@pytest.mark.parametrize("b", [2, 3, 8])
def test_relation_distillation_mean_form_is_the_paper_form_times_b3_b_minus_1(b):
    """#14.6: D/mean(D) = B²·A and the MSE runs over B² entries, so `mean` = B³(B−1) × Eq. 13
    (3,584 at B = 8): its weight depends on the batch size."""
    torch.manual_seed(b)
    s, t = torch.randn(b, 16, dtype=torch.float64), torch.randn(b, 16, dtype=torch.float64)
    paper = relation_distillation(s, t, "sum")
    code = relation_distillation(s, t, "mean")
    torch.testing.assert_close(code, paper * b**3 * (b - 1), rtol=1e-5, atol=0)
