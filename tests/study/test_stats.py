"""Bootstrap intervals, paired comparisons, Holm, and the run-level tables."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import accuracy_score, f1_score

from mtkd.data.metrics import score
from mtkd.study.stats import (_metric_from_indices, bootstrap_ci, choose_best, compare, holm, paired_comparison,
                        summarise)


@pytest.mark.parametrize("metric, num_classes", [("accuracy", 6), ("f1", 2), ("macro_f1", 6), ("mcc", 6),
                                                 ("mcc", 2), ("macro_f1", 2)])
def test_metric_from_indices_equals_score(metric, num_classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, num_classes, 60)
    preds = np.where(rng.random(60) < 0.6, labels, rng.integers(0, num_classes, 60))
    idx = rng.integers(0, 60, size=(40, 60))
    idx[0] = np.flatnonzero(labels == labels[0])[0]            # a degenerate resample: one example, repeated
    got = _metric_from_indices(metric, labels, preds, idx)
    np.testing.assert_allclose(got, [score(metric, preds[i], labels[i]) for i in idx], atol=1e-9)


def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.5, 0.2]), [1.0, 1.0, 0.6])
    np.testing.assert_allclose(holm([0.3]), [0.3])
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        holm([0.1, 1.2])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        holm([np.nan])


def _classifier(rng, labels, accuracy, seeds):
    """seed -> (labels, preds) of a binary classifier right with probability ``accuracy`` on each example."""
    return {s: (labels, np.where(rng.random(len(labels)) < accuracy, labels, 1 - labels)) for s in seeds}


def test_bootstrap_ci_mean_is_the_mean_over_seeds():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    a = _classifier(rng, labels, 0.8, [3, 1, 2])
    mean, low, high = bootstrap_ci(a, "f1", n_boot=500, rng=0)
    assert mean == pytest.approx(np.mean([100 * f1_score(y, p) for y, p in a.values()]))
    assert low < mean < high
    assert bootstrap_ci(a, "f1", n_boot=500, rng=0) == (mean, low, high)        # reproducible
    one = {1: a[1]}
    m1, l1, h1 = bootstrap_ci(one, "f1", n_boot=500, rng=0)                     # one seed: examples only
    assert m1 == pytest.approx(100 * f1_score(*a[1])) and l1 < m1 < h1


def test_identical_methods_differ_by_zero_with_p_one():
    rng = np.random.default_rng(2)
    a = _classifier(rng, rng.integers(0, 2, 200), 0.7, [0, 1, 2])
    res = paired_comparison(a, a, "mcc", n_boot=300, rng=0)
    assert res == {"diff_pp": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


def test_clearly_better_method_is_significant():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    a, b = _classifier(rng, labels, 0.9, [0, 1, 2]), _classifier(rng, labels, 0.7, [0, 1, 2])
    res = paired_comparison(a, b, "accuracy", n_boot=1000, rng=0)
    expected = np.mean([100 * (accuracy_score(*a[s]) - accuracy_score(*b[s])) for s in a])
    assert res["diff_pp"] == pytest.approx(expected)
    assert res["p_value"] < 0.01 and 10 < res["ci_low"] < res["diff_pp"] < res["ci_high"] < 30
    flipped = paired_comparison(b, a, "accuracy", n_boot=1000, rng=0)
    assert flipped["diff_pp"] == pytest.approx(-expected) and flipped["p_value"] < 0.01


def _students(rng, z, labels, accuracy, seeds, rho, seed_sd):
    """Binary students whose errors concentrate on hard examples (difficulty z shared by all students)
    and whose seeds shift the accuracy a little (probit scale); true accuracy = ``accuracy`` exactly."""
    threshold = norm.ppf(accuracy) * np.sqrt(1 + seed_sd ** 2)
    out = {}
    for s in seeds:
        noise = rho * z + np.sqrt(1 - rho ** 2) * rng.standard_normal(len(z))
        right = noise < threshold + seed_sd * rng.standard_normal()
        out[s] = (labels, np.where(right, labels, 1 - labels))
    return out


def _coverage(rho: float, seed_sd: float, draws: int = 160) -> float:
    rng = np.random.default_rng(4)
    covered = 0
    for _ in range(draws):
        z, labels = rng.standard_normal(400), rng.integers(0, 2, 400)
        a = _students(rng, z, labels, 0.80, [0, 1, 2], rho, seed_sd)
        b = _students(rng, z, labels, 0.75, [0, 1, 2], rho, seed_sd)
        res = paired_comparison(a, b, "accuracy", n_boot=200, rng=rng)
        covered += res["ci_low"] <= 5.0 <= res["ci_high"]
    return covered / draws


@pytest.mark.parametrize("rho, seed_sd", [
    (0.8, 0.05),      # realistic students: shared hard examples, small seed effects
    (0.0, 0.0),       # independent errors: all seed-by-example noise
    (0.5, 0.3),       # large seed shifts (~7 pp per seed): a bootstrap over 3 seeds covered ~81 % here
])
def test_interval_covers_the_true_difference_at_about_the_nominal_rate(rho, seed_sd):
    assert 0.90 <= _coverage(rho, seed_sd) <= 0.99


@pytest.mark.parametrize("a, b, match", [
    ({0: ([0, 1], [0, 1])}, {1: ([0, 1], [0, 1])}, "same seeds"),
    ({0: ([0, 1], [0, 1])}, {0: ([1, 1], [0, 1])}, "same examples"),
    ({0: ([0, 1], [0, 1]), 1: ([1, 1], [0, 1])}, {0: ([0, 1], [0, 1]), 1: ([1, 1], [0, 1])}, "other labels"),
    ({0: ([0, 1], [0])}, {0: ([0, 1], [0])}, "equal length"),
    ({}, {}, "no seeds"),
    ({0: ([0.0, 1.0], [0, 1])}, {0: ([0.0, 1.0], [0, 1])}, "integer"),
])
def test_paired_comparison_errors(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b, "accuracy", n_boot=10)


@pytest.mark.parametrize("kw, match", [({"n_boot": 0}, "n_boot"), ({"confidence": 1.5}, "confidence")])
def test_settings_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci({0: ([0, 1], [0, 1])}, "accuracy", **kw)


# --- a hand-made predictions frame ----------------------------------------------------------------

LABELS = [0, 1, 1, 0]
IDX = [10, 11, 12, 13]
TEST = {   # method -> seed -> preds on the test split; accuracies in the comments
    "baseline": {1: [0, 0, 1, 0], 2: [1, 0, 1, 0]},               # 75, 50
    "single:x": {1: [0, 1, 1, 0], 2: [0, 1, 0, 0]},               # 100, 75
    "single:y": {1: [0, 1, 0, 1], 2: [0, 1, 0, 0]},               # 50, 75
    "multi:average": {1: [0, 1, 1, 0], 2: [0, 1, 1, 0]},          # 100, 100
    "multi:gating": {1: [1, 1, 1, 0], 2: [0, 1, 1, 1]},           # 75, 75
    "teacher:x": {1: [0, 1, 1, 1]},                               # 75
}
SELECTION = {   # on selection single:y beats single:x, and the two multis tie
    "baseline": {1: [0, 0, 0, 0], 2: [0, 0, 0, 0]},
    "single:x": {1: [0, 0, 0, 0], 2: [0, 0, 0, 0]},
    "single:y": {1: [0, 1, 1, 0], 2: [0, 1, 0, 0]},
    "multi:average": {1: [0, 1, 0, 0], 2: [0, 1, 0, 0]},
    "multi:gating": {1: [0, 1, 0, 0], 2: [0, 1, 0, 0]},
}


def _frame() -> pd.DataFrame:
    rows = []
    for split, table in (("test", TEST), ("selection", SELECTION)):
        for method, by_seed in table.items():
            for seed, preds in by_seed.items():
                for i, y, p in zip(IDX, LABELS, preds):
                    rows.append({"task": "t", "method": method, "kind": method.split(":")[0], "seed": seed,
                                 "split": split, "idx": i, "label": y, "pred": p})
    rng = np.random.default_rng(5)                               # a second task scored with F1 (30 examples x 3 seeds)
    labels = rng.integers(0, 2, 30)
    for method, kind in (("baseline", "baseline"), ("single:x", "single"), ("multi:average", "multi")):
        for seed in (1, 2, 3):
            preds = np.where(rng.random(30) < 0.7, labels, 1 - labels)
            rows += [{"task": "u", "method": method, "kind": kind, "seed": seed, "split": "test",
                      "idx": 100 + i, "label": int(labels[i]), "pred": int(preds[i])} for i in range(30)]
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)        # order must not matter


METRICS = {"t": "accuracy", "u": "f1"}


def test_summarise_means_match_independent_scores():
    frame = _frame()
    table = summarise(frame, METRICS, n_boot=200)
    assert list(table.columns) == ["task", "method", "kind", "metric", "mean", "std", "ci_low", "ci_high", "n_seeds"]
    assert len(table) == 6 + 3
    t = table[table["task"] == "t"].set_index("method")
    assert t.loc["baseline", "mean"] == pytest.approx(62.5)
    assert t.loc["single:x", "mean"] == pytest.approx(87.5)
    assert t.loc["multi:average", "mean"] == pytest.approx(100.0)
    assert t.loc["multi:average", "std"] == 0.0
    assert t.loc["single:x", "std"] == pytest.approx(np.std([100, 75], ddof=1))
    assert t.loc["teacher:x", "n_seeds"] == 1 and np.isnan(t.loc["teacher:x", "std"])
    assert t.loc["teacher:x", "kind"] == "teacher" and t.loc["teacher:x", "metric"] == "accuracy"
    u = frame[(frame["task"] == "u") & (frame["split"] == "test")]
    for method, row in table[table["task"] == "u"].set_index("method").iterrows():
        per_seed = [100 * f1_score(g.sort_values("idx")["label"], g.sort_values("idx")["pred"])
                    for _, g in u[u["method"] == method].groupby("seed")]
        assert row["mean"] == pytest.approx(np.mean(per_seed))
        assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["n_seeds"] == 3
    assert summarise(frame, METRICS, n_boot=200).equals(table)               # reproducible


def test_choose_best_uses_the_given_split_and_breaks_ties_alphabetically():
    frame = _frame()
    assert choose_best(frame, METRICS, "single") == {"t": "single:y"}
    assert choose_best(frame, METRICS, "multi") == {"t": "multi:average"}   # tie with multi:gating
    assert choose_best(frame, METRICS, "single", split="test") == {"t": "single:x", "u": "single:x"}
    assert choose_best(frame, METRICS, "teacher") == {}
    with pytest.raises(ValueError, match="kind must be one of"):
        choose_best(frame, METRICS, "student")


def test_compare_rows_and_holm_within_each_family():
    frame = _frame()
    choice = {"t": {"best_single": "single:x", "best_multi": "multi:average"},
              "u": {"best_single": "single:x", "best_multi": "multi:average"}}
    table = compare(frame, METRICS, choice, n_boot=300, significance=0.05)
    assert list(table.columns)[:17] == ["task", "comparison", "a", "b", "metric", "family", "seeds", "diff_pp",
                                        "ci_low", "ci_high", "p_value", "p_adjusted", "significant", "verdict",
                                        "margin_pp", "mde_pp", "note"]
    t = table[table["task"] == "t"]
    assert list(zip(t["comparison"], t["a"], t["b"])) == [
        ("best multi vs best single", "multi:average", "single:x"),
        ("multi vs best single", "multi:gating", "single:x"),
        ("best single vs baseline", "single:x", "baseline"),
    ]
    np.testing.assert_allclose(t["diff_pp"], [12.5, -12.5, 25.0])
    u = table[table["task"] == "u"]
    assert list(u["comparison"]) == ["best multi vs best single", "best single vs baseline"]
    sub = frame[(frame["task"] == "u") & (frame["split"] == "test")].sort_values("idx")
    f1 = {m: {s: 100 * f1_score(g["label"], g["pred"]) for s, g in sub[sub["method"] == m].groupby("seed")}
          for m in ("multi:average", "single:x")}
    assert u["diff_pp"].iloc[0] == pytest.approx(np.mean([f1["multi:average"][s] - f1["single:x"][s]
                                                          for s in (1, 2, 3)]))
    assert list(table["family"]) == ["primary", "secondary", "primary", "primary", "primary"]
    assert list(table["seeds"]) == ["1 2"] * 3 + ["1 2 3"] * 2             # the seeds each row used
    for _, family in table.groupby("family"):                     # Holm within each family alone
        p = family["p_value"].to_numpy()
        m = len(p)
        order = np.argsort(p, kind="stable")
        expected = np.maximum.accumulate(np.minimum(1, (m - np.arange(m)) * p[order]))
        np.testing.assert_allclose(family["p_adjusted"].to_numpy()[order], expected)
    assert (table["significant"] == ((table["p_adjusted"] <= 0.05) & (table["note"] == ""))).all()
    assert (table["ci_low"] <= table["diff_pp"]).all() and (table["diff_pp"] <= table["ci_high"]).all()


def test_table_errors():
    frame = _frame()
    choice = {"t": {"best_single": "single:x", "best_multi": "multi:average"},
              "u": {"best_single": "single:x", "best_multi": "multi:average"}}
    with pytest.raises(ValueError, match="lacks the columns"):
        summarise(frame.drop(columns="pred"), METRICS)
    with pytest.raises(ValueError, match="no metric given for the tasks"):
        summarise(frame, {"t": "accuracy"})
    with pytest.raises(ValueError, match="unknown metric"):
        summarise(frame, {"t": "accuracy", "u": "auc"})
    with pytest.raises(ValueError, match="no rows for split 'dev'"):
        summarise(frame, METRICS, split="dev")
    with pytest.raises(ValueError, match="several rows"):
        summarise(pd.concat([frame, frame.iloc[:1]]), METRICS)
    moved = frame.copy()
    moved.loc[(moved["method"] == "baseline") & (moved["seed"] == 2) & (moved["idx"] == 13), "idx"] = 14
    with pytest.raises(ValueError, match="seed 2 was evaluated on other examples"):
        summarise(moved, METRICS)
    with pytest.raises(ValueError, match="no entry for the tasks"):
        compare(frame, METRICS, {"t": choice["t"]})
    with pytest.raises(ValueError, match="is not a single method"):
        compare(frame, METRICS, {**choice, "t": {"best_single": "multi:gating", "best_multi": "multi:average"}})
    with pytest.raises(ValueError, match="names no best_multi"):
        compare(frame, METRICS, {**choice, "t": {"best_single": "single:x"}})
    with pytest.raises(ValueError, match="significance"):
        compare(frame, METRICS, choice, significance=0.0)
    shifted = frame.copy()
    shifted.loc[shifted["method"] == "baseline", "idx"] += 1
    with pytest.raises(ValueError, match="not evaluated on the same examples"):
        compare(shifted, METRICS, choice)
