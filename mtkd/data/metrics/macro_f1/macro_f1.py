"""Macro F1: the unweighted mean of the per-class F1 scores.

An `evaluate` metric module shipped with mtkd: the hub is not reachable offline.
Every value is computed from confusion counts in ``from_confusion``, which takes
a whole batch of count matrices, so mtkd.study.stats scores thousands of bootstrap
resamples at once with the very same formula as ``_compute``. One import per
line: `evaluate` reads the imports line by line to find the dependencies.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = ("Macro F1: the unweighted mean of per-class F1 over the classes present in gold or "
                "predictions, in [0, 1].")
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (non-negative integers).
    references: gold class ids, same length.
Returns:
    macro_f1: float in [0, 1].
"""


def confusion(predictions, references) -> np.ndarray:
    """Counts (C, C), rows gold and columns predicted, with C >= 2 covering every id seen."""
    preds, refs = np.asarray(predictions), np.asarray(references)
    if preds.ndim != 1 or preds.shape != refs.shape or preds.size == 0:
        raise ValueError(f"predictions and references must be non-empty 1-D and of equal length, "
                         f"got shapes {preds.shape} and {refs.shape}")
    if not (np.issubdtype(preds.dtype, np.integer) and np.issubdtype(refs.dtype, np.integer)):
        raise ValueError(f"class ids must be integers, got {preds.dtype} and {refs.dtype}")
    if min(preds.min(), refs.min()) < 0:
        raise ValueError("class ids must be >= 0")
    c = max(2, int(max(preds.max(), refs.max())) + 1)
    return np.bincount(refs.astype(np.int64) * c + preds, minlength=c * c).reshape(c, c)


class MacroF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    @staticmethod
    def from_confusion(counts: np.ndarray) -> np.ndarray:
        """Macro F1 of each count matrix in a batch (..., C, C).

        Classes absent from both gold and predictions are left out of the mean,
        as in scikit-learn, so padding C with unseen ids changes nothing.
        """
        counts = np.asarray(counts, dtype=np.float64)
        tp2 = 2 * np.diagonal(counts, axis1=-2, axis2=-1)
        denominator = counts.sum(axis=-1) + counts.sum(axis=-2)      # 2 TP + FN + FP per class
        present = denominator > 0
        f1 = np.divide(tp2, denominator, out=np.zeros_like(tp2), where=present)
        return f1.sum(axis=-1) / present.sum(axis=-1)

    def _compute(self, predictions, references) -> dict[str, float]:
        return {"macro_f1": float(self.from_confusion(confusion(predictions, references)))}
