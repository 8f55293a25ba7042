"""GeoLink losses: InfoNCE, vCLUB, relational distillation, and the total objective."""

from geolink.losses.club import CLUB
from geolink.losses.infonce import info_nce
from geolink.losses.relation import relation_distillation
from geolink.losses.total import GeoLinkLoss, LossConfig

__all__ = ["CLUB", "GeoLinkLoss", "LossConfig", "info_nce", "relation_distillation"]
