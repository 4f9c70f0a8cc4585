"""Matthews correlation coefficient, multi-class (Gorodkin 2004; GLUE CoLA's metric).

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

_DESCRIPTION = "Matthews correlation coefficient between gold and predictions, in [-1, 1] (the GLUE CoLA metric)."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (non-negative integers).
    references: gold class ids, same length.
Returns:
    mcc: float in [-1, 1]; 0.0 when gold or predictions hold a single class.
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


class MatthewsCorrelation(evaluate.Metric):
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
        """MCC of each count matrix in a batch (..., C, C), the R_K statistic of Gorodkin (2004).

        When gold or predictions hold a single class the denominator is 0;
        MCC is 0.0 then, as in scikit-learn.
        """
        counts = np.asarray(counts, dtype=np.float64)
        n = counts.sum(axis=(-2, -1))
        correct = np.trace(counts, axis1=-2, axis2=-1)
        gold, pred = counts.sum(axis=-1), counts.sum(axis=-2)
        cov_gp = correct * n - (gold * pred).sum(axis=-1)
        var_product = (n ** 2 - (pred * pred).sum(axis=-1)) * (n ** 2 - (gold * gold).sum(axis=-1))
        return np.divide(cov_gp, np.sqrt(var_product), out=np.zeros_like(cov_gp), where=var_product > 0)

    def _compute(self, predictions, references) -> dict[str, float]:
        return {"mcc": float(self.from_confusion(confusion(predictions, references)))}
