"""A fuser's arguments from the fusion info (``fusion/<task>.json``, chosen on the selection split): pure
functions of that dict, shared by the students' targets (`mtkd.study.pipeline`) and the read side
(`mtkd.study.results`, the saved fusion weights)."""
from __future__ import annotations


def fuser_kwargs(info: dict, fuser: str) -> dict:
    """The per-teacher arguments ``FUSER_KWARGS`` names for a fuser, in teacher order, from the fusion
    info chosen on the selection split (``fusion/<task>.json`` keeps them under the argument's name).

    A per-teacher table of regions (``region_weights``) becomes W (3, K): one row per region in
    ``REGION_ORDER``, one column per teacher. ``labels`` and ``progress`` come from the examples and
    from training, not from the fusion info: see :func:`fuser_arguments`."""
    from mtkd.kd.fusion import DATA_KWARGS, FUSER_KWARGS, REGION_ORDER
    kwargs = {}
    for arg in FUSER_KWARGS.get(fuser, ()):
        if arg in DATA_KWARGS:
            continue
        table = info.get(arg) or {}
        missing = [t for t in info["teachers"] if t not in table]
        if missing:
            raise ValueError(f"the fusion info has no {arg!r} for teacher {missing[0]!r} (fuser {fuser!r}); "
                             "recompute it with --force logits")
        values = [table[t] for t in info["teachers"]]
        if all(isinstance(v, dict) for v in values):
            values = [[v[r] for v in values] for r in REGION_ORDER]
        kwargs[arg] = values
    return kwargs


# Label-aware fusers use gold labels only on the split students learn from; on the held-out splits
# (selection, test: a target built from their labels would be an oracle) and on unlabeled examples
# they take their label-free fallback.
FUSION_LABEL_SPLITS = ("train",)


def fuser_arguments(info: dict, fuser: str, labels=None, progress: float = 1.0) -> tuple[str, dict]:
    """The fuser to apply and all its arguments, outside training (analyses, the explorer, saved weights).

    A label-aware fuser gets ``labels``; where there are none (None: unlabeled or held-out examples)
    it becomes its documented label-free fallback (``LABEL_FREE_FALLBACK``: ebkd weights).
    ``curriculum`` is taken at ``progress`` (default 1, the end of training: the CA-MKD weights).
    """
    from mtkd.kd.fusion import FUSER_KWARGS, LABEL_FREE_FALLBACK
    needs = FUSER_KWARGS.get(fuser, ())
    if "labels" in needs and labels is None:
        fuser = LABEL_FREE_FALLBACK[fuser]
        needs = FUSER_KWARGS.get(fuser, ())
    kwargs = fuser_kwargs(info, fuser)
    if "labels" in needs:
        kwargs["labels"] = labels
    if "progress" in needs:
        kwargs["progress"] = progress
    return fuser, kwargs
