"""Fidelity beside accuracy (issue 17): agreement, KL(target || student), the target's own score, by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mtkd.study.fidelity import agreement_pct, fidelity_rows, gated_target, kl_target_student, softmax


def test_agreement_counts_the_students_predictions_matching_the_targets_argmax():
    target = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert agreement_pct(target, np.array([0, 1, 1, 0])) == 50.0
    assert agreement_pct(target, np.array([0, 1, 0, 1])) == 100.0


def test_kl_target_student_by_hand():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.25, 0.75], [0.9, 0.1]])
    first = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_target_student(p, q) == pytest.approx((first + 0.0) / 2)
    assert kl_target_student(q, q) == pytest.approx(0.0)
    # a target probability of 0 adds nothing; a student probability of 0 is taken at the floor, not -inf
    assert np.isfinite(kl_target_student(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])))
    assert kl_target_student(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])) == pytest.approx(math.log(2))


def test_the_gated_target_is_the_per_example_weighted_sum_of_logits():
    z = np.array([[[2.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [3.0, -1.0]]])      # (N=2, K=2, C=2)
    w = np.array([[0.75, 0.25], [0.5, 0.5]])
    fused = np.array([[1.5, 1.0], [2.0, 0.0]])
    np.testing.assert_allclose(gated_target(z, w), softmax(fused))
    e = np.exp([1.5, 1.0])
    np.testing.assert_allclose(gated_target(z, w)[0], e / e.sum())


def test_fidelity_rows_on_a_hand_made_task():
    # two teachers, four test examples, two classes; the student of single:a copies a's argmax on seed 1
    # and gets one example wrong on seed 2
    idx = np.arange(4)
    labels = np.array([0, 1, 1, 0])
    za = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [3.0, 0.0]])           # a: 3 of 4 right
    zb = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])           # b: 3 of 4 right (wrong on 0)
    rows = []
    for seed, pred in ((1, [0, 1, 0, 0]), (2, [0, 1, 1, 0])):
        probs = np.where(np.eye(2)[pred] == 1, 0.8, 0.2)
        rows.append(pd.DataFrame({"method": "single:a", "seed": seed, "idx": idx, "pred": pred,
                                  "probs": list(probs), "label": labels}))
    students = pd.concat(rows, ignore_index=True)
    summary = pd.DataFrame({"method": ["teacher:a", "teacher:b", "baseline", "single:a"],
                            "kind": ["teacher", "teacher", "baseline", "single"],
                            "mean": [75.0, 75.0, 50.0, 87.5], "ci_low": 0.0, "ci_high": 100.0,
                            "n_seeds": [1, 1, 2, 2]})
    out = fidelity_rows("toy", "accuracy", students, idx, {"a": za, "b": zb}, {"teachers": ["a", "b"]},
                        pd.DataFrame(columns=["method", "seed", "idx", "weights"]), summary,
                        {"best_single": "single:a", "best_multi": None}).set_index("method")
    r = out.loc["single:a"]
    assert r["role"] == "best single"
    assert r["agreement_pct"] == pytest.approx((100.0 + 75.0) / 2)        # seed 2 differs from a on example 2
    assert r["target_score"] == pytest.approx(75.0)
    assert r["gap_closed"] == pytest.approx((87.5 - 50.0) / (75.0 - 50.0))
    pa = softmax(za)
    q1 = np.where(np.eye(2)[[0, 1, 0, 0]] == 1, 0.8, 0.2)
    q2 = np.where(np.eye(2)[[0, 1, 1, 0]] == 1, 0.8, 0.2)
    kl = [np.mean(np.sum(pa * (np.log(pa) - np.log(q)), 1)) for q in (q1, q2)]
    assert r["kl_target_student"] == pytest.approx(np.mean(kl))
    assert np.isnan(out.loc["baseline", "agreement_pct"]) and out.loc["teacher:a", "role"] == "teacher"


def test_gap_closed_is_not_defined_when_no_teacher_beats_the_baseline():
    idx = np.arange(2)
    students = pd.DataFrame({"method": "single:a", "seed": 1, "idx": idx, "pred": [0, 1],
                             "probs": [np.array([0.9, 0.1]), np.array([0.1, 0.9])], "label": [0, 1]})
    summary = pd.DataFrame({"method": ["teacher:a", "baseline", "single:a"], "kind": ["teacher", "baseline", "single"],
                            "mean": [50.0, 60.0, 100.0], "ci_low": 0.0, "ci_high": 100.0, "n_seeds": 1})
    out = fidelity_rows("toy", "accuracy", students, idx, {"a": np.array([[1.0, 0.0], [1.0, 0.0]])},
                        {"teachers": ["a"]}, pd.DataFrame(), summary, {"best_single": "single:a"}).set_index("method")
    assert np.isnan(out.loc["single:a", "gap_closed"])
    assert "not defined" in out.loc["single:a", "gap_closed_undefined"]
