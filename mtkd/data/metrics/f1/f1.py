"""Binary F1 of the positive class 1 (as GLUE reports it for MRPC and QQP).

Class ids other than 0 and 1 are an error, as in scikit-learn's average="binary".

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

_DESCRIPTION = "Binary F1 of the positive class 1: 2 TP / (2 TP + FP + FN), in [0, 1]. Ids must be 0 or 1."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (non-negative integers).
    references: gold class ids, same length.
Returns:
    f1: float in [0, 1]; 0.0 when neither gold nor predictions contain the class 1.
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


class F1(evaluate.Metric):
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
        """F1 of class 1 for each 2x2 count matrix in a batch (..., 2, 2).

        With no positive in gold nor predictions F1 is 0/0; it is 0.0 here, as
        scikit-learn 1.9 returns with its default zero_division="warn".
        """
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape[-2:] != (2, 2):
            raise ValueError(f"binary F1 needs class ids 0 and 1 only, got {counts.shape[-1]} classes")
        tp2 = 2 * counts[..., 1, 1]
        denominator = tp2 + counts[..., 0, 1] + counts[..., 1, 0]
        return np.divide(tp2, denominator, out=np.zeros_like(tp2), where=denominator > 0)

    def _compute(self, predictions, references) -> dict[str, float]:
        return {"f1": float(self.from_confusion(confusion(predictions, references)))}
