"""The study's metrics: `evaluate` modules shipped in this folder, one per metric.

The hub is not reachable offline, so each metric lives here as
``<name>/<name>.py`` and loads with ``evaluate.load(<folder>)``. Each module's
``_compute`` (and its batched ``from_confusion``, used by mtkd.study.stats) is the one
implementation of its metric; ``score`` calls it directly because
``Metric.compute`` round-trips every call through an Arrow cache file.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

METRICS = ("accuracy", "f1", "macro_f1", "mcc")
_HERE = Path(__file__).parent


def metric_path(name: str) -> Path:
    """The folder of the metric module ``name`` (what ``evaluate.load`` takes)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return _HERE / name


@functools.cache
def load(name: str):
    """The loaded `evaluate` module of ``name``, once per process (loading copies and imports a script)."""
    import evaluate                  # heavy (pulls in datasets): only when a metric is needed

    return evaluate.load(str(metric_path(name)))


def score(name: str, predictions, labels) -> float:
    """The metric ``name`` of predictions against gold labels, in percent (MCC: -100 to 100)."""
    preds, gold = np.asarray(predictions), np.asarray(labels)
    if preds.ndim != 1 or gold.ndim != 1:
        raise ValueError(f"predictions and labels must be 1-D, got shapes {preds.shape} and {gold.shape}")
    if len(preds) != len(gold):
        raise ValueError(f"predictions ({len(preds)}) and labels ({len(gold)}) differ in length")
    if len(preds) == 0:
        raise ValueError("no predictions to score (empty input)")
    module = load(name)
    return 100.0 * module._compute(predictions=preds, references=gold)[name]
