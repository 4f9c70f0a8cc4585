"""Public face (../shared/SPEC.md): ``from mtkd.losses import kd_loss``; the code is in mtkd.kd.losses."""
from mtkd.kd.losses import kd_loss

__all__ = ["kd_loss"]
