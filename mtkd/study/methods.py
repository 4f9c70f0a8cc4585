"""The one value type for a method name of the study, parsed in one place.

``teacher:<name>`` (a teacher itself), ``baseline`` (a student without distillation),
``single:<teacher>`` (a student of one teacher), ``multi:<fuser>`` (a student of the fused
teachers) and ``target:<fuser>`` (a fused target itself, scored like a teacher).
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("teacher", "baseline", "single", "multi")    # the kinds of master_results.csv (SPEC)
NAMED_KINDS = ("teacher", "single", "multi", "target")


@dataclass(frozen=True, order=True)
class Method:
    kind: str
    name: str = ""            # the teacher or fuser; empty for the baseline

    def __post_init__(self):
        if self.kind == "baseline" and self.name:
            raise ValueError(f"the baseline takes no name, got {self.name!r}")
        if self.kind != "baseline" and (self.kind not in NAMED_KINDS or not self.name):
            raise ValueError(f"not a method: kind {self.kind!r}, name {self.name!r} "
                             "(teacher:<name>, baseline, single:<teacher>, multi:<fuser>, target:<fuser>)")

    @classmethod
    def parse(cls, text: "str | Method") -> "Method":
        """``Method.parse("multi:gating")`` -> Method(kind="multi", name="gating"); a bad name is a ValueError."""
        if isinstance(text, Method):
            return text
        if text == "baseline":
            return cls("baseline")
        kind, sep, name = str(text).partition(":")
        if not sep:
            raise ValueError(f"{text!r} is not a method name (teacher:<name>, baseline, single:<teacher>, "
                             "multi:<fuser>, target:<fuser>)")
        return cls(kind, name)

    def __str__(self) -> str:
        return self.kind if self.kind == "baseline" else f"{self.kind}:{self.name}"

    @property
    def is_student(self) -> bool:
        return self.kind in ("baseline", "single", "multi")


BASELINE = Method("baseline")
