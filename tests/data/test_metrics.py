"""The shipped metric modules against scikit-learn, loaded offline through `evaluate`."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"          # before evaluate is imported: the hub must not be needed

import warnings

import evaluate
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from mtkd.data.metrics import METRICS, load, metric_path, score

SKLEARN = {
    "accuracy": accuracy_score,
    "f1": lambda y, p: f1_score(y, p, pos_label=1),
    "macro_f1": lambda y, p: f1_score(y, p, average="macro"),
    "mcc": matthews_corrcoef,
}


def _cases(num_classes: int):
    """Random and degenerate (labels, predictions) pairs over ``num_classes`` classes."""
    for seed in range(8):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 300))
        labels = rng.integers(0, num_classes, n)
        noisy = np.where(rng.random(n) < 0.7, labels, rng.integers(0, num_classes, n))
        yield labels, noisy
        yield labels, rng.integers(0, num_classes, n)
        yield labels, np.zeros(n, dtype=int)                        # one predicted class
        yield labels, np.full(n, num_classes - 1)
        yield np.full(n, num_classes - 1), noisy                    # one gold class
    yield np.zeros(5, dtype=int), np.zeros(5, dtype=int)            # nothing positive anywhere
    yield np.ones(5, dtype=int), np.ones(5, dtype=int)
    yield np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0])            # all wrong
    yield np.array([1]), np.array([0])


def _sklearn(name: str, labels, preds) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                             # ill-defined F1 / single-label warnings
        return 100.0 * SKLEARN[name](labels, preds)


@pytest.mark.parametrize("name, num_classes", [(m, c) for m in METRICS for c in (2, 6)
                                                if not (m == "f1" and c == 6)])   # binary F1: two classes
def test_matches_scikit_learn(name, num_classes):
    for labels, preds in _cases(num_classes):
        assert score(name, preds, labels) == pytest.approx(_sklearn(name, labels, preds), abs=1e-9)


@pytest.mark.parametrize("name", METRICS)
def test_evaluate_load_and_compute_work_offline(name):
    module = evaluate.load(str(metric_path(name)))
    rng = np.random.default_rng(1)
    labels, preds = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    out = module.compute(predictions=preds.tolist(), references=labels.tolist())
    assert set(out) == {name}
    assert 100 * out[name] == pytest.approx(_sklearn(name, labels, preds), abs=1e-9)
    assert load(name) is load(name)                                 # cached per process


def test_f1_edge_cases_follow_scikit_learn():
    assert score("f1", [0, 0, 0], [0, 0, 0]) == 0.0                 # no positive anywhere: 0, as sklearn
    assert score("f1", [1, 1], [0, 0]) == 0.0
    assert score("mcc", [1, 1], [0, 1]) == 0.0                      # one predicted class: 0, as sklearn


def test_mcc_can_be_negative():
    assert score("mcc", [1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-100.0)


@pytest.mark.parametrize("name", METRICS)
def test_batched_confusion_formula_matches_compute(name):
    module = load(name)
    rng = np.random.default_rng(2)
    c = 2 if name == "f1" else 4
    pairs = [(rng.integers(0, c, 40), rng.integers(0, c, 40)) for _ in range(5)]
    counts = np.stack([np.bincount(y * c + p, minlength=c * c).reshape(c, c) for y, p in pairs])
    batched = module.from_confusion(counts)
    assert batched.shape == (5,)
    np.testing.assert_allclose(100 * batched, [score(name, p, y) for y, p in pairs])


@pytest.mark.parametrize("call, match", [
    (lambda: score("nope", [0], [0]), "unknown metric 'nope'; known metrics: accuracy, f1, macro_f1, mcc"),
    (lambda: load("nope"), "unknown metric"),
    (lambda: score("accuracy", [0, 1], [0]), r"differ in length"),
    (lambda: score("accuracy", [], []), "empty"),
    (lambda: score("accuracy", [[0, 1]], [[0, 1]]), "1-D"),
    (lambda: score("accuracy", [0.5, 1.0], [0, 1]), "integers"),
    (lambda: score("accuracy", [-1, 1], [0, 1]), ">= 0"),
    (lambda: score("f1", [0, 2], [0, 1]), "binary F1 needs class ids 0 and 1"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
