"""Public face (../shared/SPEC.md): ``from mtkd.fusion import FUSERS, fuse, GatingFusion``; the code is in
mtkd.kd.fusion."""
from mtkd.kd.fusion import FUSERS, GatingFusion, fuse

__all__ = ["FUSERS", "GatingFusion", "fuse"]
