"""Per-class F1 beside macro-F1 (TREC's rare ABBR class), checked against scikit-learn."""
import numpy as np
from sklearn.metrics import f1_score

from mtkd.study.analysis import per_class_f1


def test_per_class_f1_matches_sklearn_and_averages_to_macro():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 6, 500))
    got = per_class_f1(y, p, 6)
    np.testing.assert_allclose(got, 100 * f1_score(y, p, average=None, labels=range(6)))
    assert np.isclose(np.nanmean(got), 100 * f1_score(y, p, average="macro"))


def test_a_class_never_seen_is_nan_and_a_missed_one_is_zero():
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 0, 1])           # class 2 never predicted: F1 0; class 3 absent everywhere: nan
    got = per_class_f1(y, p, 4)
    np.testing.assert_allclose(got[:3], [100 * 2 * 2 / (4 + 1), 100 * 2 / (2 + 1 + 1), 0.0])
    assert np.isnan(got[3])
