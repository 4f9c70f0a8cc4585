"""Public face (../shared/SPEC.md): ``from mtkd.explorer import explore``; the code is in mtkd.report.explorer."""
from mtkd.report.explorer import explore

__all__ = ["explore"]
