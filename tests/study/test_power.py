"""Verdicts, TOST equivalence, minimum detectable effect, variance components and planning (mtkd.study.power)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import nct, norm, t as student_t

from mtkd.study import power
from mtkd.study.stats import compare, paired_comparison


def _binary(rng, labels, accuracy, seeds):
    """seed -> (labels, preds): right on each example independently with probability ``accuracy``."""
    return {s: (labels, np.where(rng.random(len(labels)) < accuracy, labels, 1 - labels)) for s in seeds}


# --------------------------------------------------------------------------- verdicts by hand

@pytest.mark.parametrize("diff, p_adj, eq_adj, expected", [
    (2.0, 0.01, 0.9, "better"),
    (-2.0, 0.01, 0.9, "worse"),
    (0.3, 0.01, 0.01, "better"),          # significant and inside the margin: real, only small
    (0.1, 0.60, 0.02, "equivalent"),
    (0.1, 0.60, 0.05, "equivalent"),      # at the level: rejected (<=), like the difference test
    (0.1, 0.60, 0.06, "inconclusive"),
    (3.0, 0.06, 1.0, "inconclusive"),
])
def test_verdict_on_hand_made_results(diff, p_adj, eq_adj, expected):
    assert power.verdict(diff, p_adj, eq_adj, 0.05) == expected


def test_p_values_by_hand():
    # diff 0.5, se 0.25: z = 2, two-sided p = 2 (1 - Phi(2)) = 0.0455003
    assert power.difference_p_value(0.5, 0.25) == pytest.approx(0.0455003, rel=1e-5)
    assert power.difference_p_value(-0.5, 0.25) == pytest.approx(0.0455003, rel=1e-5)
    assert power.difference_p_value(0.0, 0.0) == 1.0 and power.difference_p_value(0.3, 0.0) == 0.0
    # TOST, margin 1: diff 0.2, se 0.4 -> P(Z >= (0.2 + 1) / 0.4 = 3) = 0.0013499,
    # P(Z <= (0.2 - 1) / 0.4 = -2) = 0.0227501; TOST = the larger
    assert power.tost_p_value(0.2, 0.4, 1.0) == pytest.approx(0.0227501, rel=1e-5)
    assert power.tost_p_value(0.2, 0.0, 1.0) == 0.0 and power.tost_p_value(1.5, 0.0, 1.0) == 1.0
    # Student's t at 4 degrees of freedom: 2 P(T_4 >= 2) = 0.1161165; TOST: P(T_4 >= 2) = 0.0580583
    assert power.difference_p_value(0.5, 0.25, 4) == pytest.approx(0.1161165, rel=1e-5)
    assert power.tost_p_value(0.2, 0.4, 1.0, 4) == pytest.approx(0.0580583, rel=1e-5)
    # the interval: 0.5 +- t_{4, 0.975} (2.776445) * 0.25
    assert power.interval(0.5, 0.25, 4, 0.95) == pytest.approx((0.5 - 0.694111, 0.5 + 0.694111), rel=1e-5)
    # one resample (se unknown): nothing can be claimed either way
    assert power.difference_p_value(0.3, math.nan) == 1.0 and power.tost_p_value(0.2, math.nan, 1.0) == 1.0
    # no Monte Carlo floor (1 / 2001 at 2,000 resamples): Holm over a large family can still decide
    assert power.difference_p_value(10.0, 1.5) < 1e-9
    with pytest.raises(ValueError, match="margin must be > 0"):
        power.tost_p_value(0.2, 0.4, 0.0)


def test_a_large_family_can_still_decide_a_clear_difference():
    """132 comparisons (the conditions grid): Holm's first threshold 0.05 / 132 lies below the 2 / 2001 floor
    a Monte Carlo p-value has at 2,000 resamples; a 20-pp difference over 5 seeds must still come out better."""
    rng = np.random.default_rng(3)
    n = 1000
    labels = rng.integers(0, 2, n)
    a = _binary(rng, labels, 0.90, range(5))
    b = _binary(rng, labels, 0.70, range(5))
    r = paired_comparison(a, b, "accuracy", n_boot=2000, rng=rng, margin=1.0)
    assert r["df"] == 4 and r["p_value"] * 132 < 0.05


def test_words_quote_the_interval_and_margin():
    assert power.in_words("inconclusive", -1.65, -4.97, 1.67, 1.0, 5.1, "single:mpnet").startswith(
        "inconclusive: [-4.97, 1.67] is wider than +-1 pp")
    assert power.in_words("equivalent", 0.1, -0.4, 0.6, 1.0, 0.9, "single:mpnet").startswith(
        "equivalent: within +-1 pp of single:mpnet")
    assert "neither excludes 0" in power.in_words("inconclusive", 0.9, -0.1, 1.2, 1.0, 1.0, "b")
    with pytest.raises(ValueError, match="verdict must be one of"):
        power.in_words("same", 0, 0, 0, 1, 1, "b")


# --------------------------------------------------------------------------- TOST by simulation

def _equivalent_share(true_diff: float, margin: float, draws: int = 150, n: int = 2500):
    """Share of simulated studies (1 seed, independent errors) called equivalent at the 5 % level, and the
    share the normal approximation predicts from the draws' own spread (the interval is the 90 % one)."""
    rng = np.random.default_rng(7)
    hits, diffs, ses = 0, [], []
    for _ in range(draws):
        labels = rng.integers(0, 2, n)
        a = _binary(rng, labels, 0.80 + true_diff / 100, [0])
        b = _binary(rng, labels, 0.80, [0])
        r = paired_comparison(a, b, "accuracy", n_boot=300, rng=rng, margin=margin)
        hits += power.verdict(r["diff_pp"], 1.0, r["equivalence_p"], 0.05) == "equivalent"
        diffs.append(r["diff_pp"])
        ses.append(r["se_pp"])
    se_true, se_boot, z = np.std(diffs, ddof=1), np.mean(ses), norm.ppf(0.95)
    expected = (norm.cdf((margin - z * se_boot - true_diff) / se_true)
                - norm.cdf((-margin + z * se_boot - true_diff) / se_true))
    return hits / draws, max(0.0, expected)


def test_tost_calls_a_difference_inside_the_margin_equivalent_at_the_predicted_rate():
    # se of one study ~ sqrt(0.32 / 2500) = 1.13 pp; true difference 0.5 pp inside a 3 pp margin
    share, expected = _equivalent_share(0.5, 3.0)
    assert 0.5 < expected < 0.9                                   # a test that can tell
    assert abs(share - expected) < 0.12


def test_tost_rarely_calls_a_difference_at_or_outside_the_margin_equivalent():
    share, _ = _equivalent_share(3.0, 3.0)                        # on the bound: at most the 5 % level
    assert share <= 0.10
    share, _ = _equivalent_share(5.0, 3.0)
    assert share <= 0.02


# --------------------------------------------------------------------------- MDE

def test_mde_is_exact_noncentral_t_power():
    # df inf: power(delta) = Phi(delta/se - z) + Phi(-delta/se - z); at (z_0.975 + z_0.8) se the far tail adds ~1e-6
    assert power.mde(0.5, 0.05, 0.8) == pytest.approx((1.959964 + 0.841621) * 0.5, rel=1e-4)
    # at 3 degrees of freedom the power at the MDE is 0.8 by the noncentral t law, computed here by scipy
    m = power.mde(1.0, 0.05, 0.8, df=3)
    c = student_t.ppf(0.975, 3)
    assert nct.sf(c, 3, m) + nct.cdf(-c, 3, m) == pytest.approx(0.8, abs=1e-9)
    # the t approximation (t_{1-a/2} + t_{power}) se used before was optimistic at small df: at df 3.1, level
    # 0.05 / 18, its "80 %" MDE has ~70 % power (the review's number); the exact MDE is larger
    level = 0.05 / 18
    approx = student_t.ppf(1 - level / 2, 3.1) + student_t.ppf(0.8, 3.1)
    assert 0.65 < power.difference_power(approx, 1.0, 3.1, level) < 0.75
    assert power.mde(1.0, 0.05, 0.8, family_size=18, df=3.1) > approx
    with pytest.raises(ValueError, match="family_size"):
        power.mde(1.0, 0.05, 0.8, family_size=0)


def test_tost_power_by_hand_and_by_simulation():
    # df inf: P(|D| < m - z se) = Phi((1 - 1.644854 * 0.2) / 0.2) - Phi(-(...)) at a true difference of 0
    expected = norm.cdf((1 - 1.644854 * 0.2) / 0.2) - norm.cdf(-(1 - 1.644854 * 0.2) / 0.2)
    assert power.tost_power(0.2, math.inf, 1.0, 0.05) == pytest.approx(expected, rel=1e-5)
    assert power.tost_power(0.0, 7, 1.0, 0.05) == 1.0 and power.tost_power(0.0, 7, 1.0, 0.05, 1.5) == 0.0
    rng = np.random.default_rng(0)
    for se, df, delta in ((0.25, 4, 0.3), (0.2, 9, 0.0)):
        d = rng.normal(delta, se, 200_000)
        s = se * np.sqrt(rng.chisquare(df, d.size) / df)
        c = student_t.ppf(1 - 0.05 / 6, df)
        simulated = np.mean((d - c * s > -1) & (d + c * s < 1))
        assert power.tost_power(se, df, 1.0, 0.05 / 6, delta) == pytest.approx(simulated, abs=0.004)


def test_simulated_power_at_the_mde_is_about_80_percent():
    # known variance: one seed, independent errors, accuracies ~0.8 -> Var(diff) = (2 * 0.8 * 0.2) / n
    rng = np.random.default_rng(11)
    n, draws = 2000, 200
    se_known = 100 * math.sqrt(2 * 0.8 * 0.2 / n)
    mde = power.mde(se_known, 0.05, 0.8)
    rejected, ses = 0, []
    for _ in range(draws):
        labels = rng.integers(0, 2, n)
        a = _binary(rng, labels, 0.80 + mde / 200, [0])
        b = _binary(rng, labels, 0.80 - mde / 200, [0])
        r = paired_comparison(a, b, "accuracy", n_boot=300, rng=rng, margin=1.0)
        rejected += r["p_value"] <= 0.05
        ses.append(r["se_pp"])
    assert np.mean(ses) == pytest.approx(se_known, rel=0.08)      # the bootstrap sees the known variance
    assert 0.72 <= rejected / draws <= 0.88


# --------------------------------------------------------------------------- variance components

def test_variance_components_match_a_two_way_anova():
    """Accuracy differences d_si (seeds x examples) with known seed effects: the bootstrap split into seeds,
    examples and interaction equals the expected-mean-squares estimate computed by hand."""
    rng = np.random.default_rng(3)
    n, seeds = 3000, [0, 1, 2, 3]
    labels = rng.integers(0, 2, n)
    hard = rng.random(n) < 0.25                                    # the example effect: hard or not
    a, b = {}, {}
    for k, s in enumerate(seeds):
        shift = (-0.03, 0.0, 0.02, 0.05)[k]                       # a seed effect on a only
        pa = np.where(hard, 0.70, 0.92 + shift)                  # a is better on the hard examples,
        a[s] = (labels, np.where(rng.random(n) < pa, labels, 1 - labels))
        b[s] = (labels, np.where(rng.random(n) < np.where(hard, 0.20, 0.95), labels, 1 - labels))   # b on the rest
    r = paired_comparison(a, b, "accuracy", n_boot=4000, rng=0, margin=1.0)
    d = 100 * np.stack([(a[s][1] == labels).astype(float) - (b[s][1] == labels) for s in seeds])   # (S, n)
    S = len(seeds)
    ms_seed = n * d.mean(axis=1).var(ddof=1)
    ms_ex = S * d.mean(axis=0).var(ddof=1)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    ms_res = (resid ** 2).sum() / ((S - 1) * (n - 1))
    seeds_part = (ms_seed - ms_res) / n / S
    examples_part = (ms_ex - ms_res) / S / n
    interaction_part = ms_res / (S * n)
    assert r["var_seeds"] == pytest.approx(seeds_part, rel=0.15)
    assert r["var_examples"] == pytest.approx(examples_part, rel=0.15)
    assert r["var_interaction"] == pytest.approx(interaction_part, rel=0.15)
    assert r["n_seeds"] == S and r["n_examples"] == n
    # the test's variance is the sum of the parts (the two-way ANOVA estimate of Var(mean)) ...
    assert r["se_pp"] ** 2 == pytest.approx(r["var_seeds"] + r["var_examples"] + r["var_interaction"])
    assert r["se_pp"] ** 2 == pytest.approx((ms_seed + ms_ex - ms_res) / (S * n), rel=0.1)
    # ... on the seeds' degrees of freedom
    assert r["df"] == S - 1


def test_one_seed_cannot_split_seeds_from_examples():
    c = power.variance_components(np.array([1.0]), np.array([[0.0, 1.0, 2.0]]), 100)
    assert math.isnan(c["var_seeds"]) and c["var_examples"] == pytest.approx(1.0)
    assert c["var"] == pytest.approx(1.0) and c["df"] == 99
    with pytest.raises(ValueError, match="at least two seeds"):
        power.planned(c, 1, 100, 5, 100)


def test_seeds_spreading_less_than_the_interaction_keep_the_seeds_degrees_of_freedom():
    # C = 0 (both seeds agree), A = 4, B = 0: the interaction estimate (4) is more than C/S allows; no pretest
    # pools it away: the parts show C/S = 0 split as seeds 0 + interaction 0, and df stays S - 1
    r = np.array([[0.0, 2.0, 4.0], [4.0, 2.0, 0.0]])
    c = power.variance_components(np.array([1.0, 1.0]), r, 50)
    assert (c["var_seeds"], c["var_interaction"], c["var_examples"], c["var"], c["df"]) == (0, 0, 0, 0, 1)
    # C/S = 2 (seeds 1 and 3), A = 1, B = 0.5: interaction 0.5, examples 0, seeds 1.5; var = C/S
    c = power.components_from_moments(np.array([1.0, 3.0]), 1.0, 0.5, 100)
    assert (c["var_seeds"], c["var_interaction"], c["var_examples"]) == pytest.approx((0.5, 0.5, 0.0))
    assert c["var"] == pytest.approx(1.0) and c["df"] == 1


# --------------------------------------------------------------------------- planning

COMPONENTS = {"var_seeds": 0.2, "var_examples": 0.3, "var_interaction": 0.1}   # pp^2 at 4 seeds x 1000


def test_planned_variance_scales_each_component_with_its_own_size():
    assert power.planned(COMPONENTS, 4, 1000, 4, 1000)["var"] == pytest.approx(0.6)
    # u = 0.8, v = 300, w = 400: 8 seeds x 4000 -> 0.1 + 0.075 + 0.0125
    p = power.planned(COMPONENTS, 4, 1000, 8, 4000)
    assert p["var"] == pytest.approx(0.1875)
    assert (p["var_seeds"], p["var_examples"], p["var_interaction"]) == pytest.approx((0.1, 0.075, 0.0125))
    assert p["df"] == 7                                              # seeds - 1


def test_the_plan_reproduces_the_runs_own_design():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 600)
    a, b = _binary(rng, labels, 0.8, [0, 1, 2]), _binary(rng, labels, 0.75, [0, 1, 2])
    r = paired_comparison(a, b, "accuracy", n_boot=500, rng=0, margin=1.0)
    p = power.planned(r, 3, 600, 3, 600)
    assert math.sqrt(p["var"]) == pytest.approx(r["se_pp"]) and p["df"] == pytest.approx(r["df"])


NO_SEEDS = {"var_seeds": 0.0, "var_examples": 0.3, "var_interaction": 0.1}


def test_examples_needed_by_hand():
    # no seeds part, 8 seeds: var = (300 + 400/8) / n = 350 / n, df 7. A margin of 100 pp leaves TOST's power
    # at 1, so the MDE decides: exact MDE at se 1 and df 7 is k; target k/2 needs se 0.5 -> n = 350/0.25 = 1400
    k = power.mde(1.0, 0.05, 0.8, df=7)
    target = {"target_mde_pp": k / 2, "margin": 100.0, "significance": 0.05}
    assert power.examples_needed(NO_SEEDS, 4, 1000, 8, **target) == 1400
    assert power.design(NO_SEEDS, 4, 1000, 8, 1400, **target)["reaches"]
    assert not power.design(NO_SEEDS, 4, 1000, 8, 1399, **target)["reaches"]
    # with 2 seeds the seeds alone give 0.4 > 0.25: no test split is large enough
    assert power.examples_needed(COMPONENTS, 4, 1000, 2, **target) == math.inf


# the review's cases: parts (seeds 0.25, examples 0.1, interaction 0.4) pp^2 at 3 seeds x 2,000 examples
REVIEW = {"var_seeds": 0.25, "var_examples": 0.1, "var_interaction": 0.4}


@pytest.mark.parametrize("components, target_mde", [(REVIEW, 4.0), (REVIEW, 3.0), (COMPONENTS, 2.5),
                                                   (NO_SEEDS, 1.5)])
def test_the_planner_is_monotone_and_agrees_with_a_brute_force_search(components, target_mde):
    target = {"target_mde_pp": target_mde, "margin": target_mde / 1.5, "significance": 0.05, "family_size": 6}
    n0, s0 = (2000, 3) if components is REVIEW else (1000, 4)
    for seeds in (4, 8, 12):
        by_design = [power.design(components, s0, n0, seeds, n, **target) for n in range(50, 6001, 50)]
        mdes = [d["mde_pp"] for d in by_design]
        assert all(x >= y for x, y in zip(mdes, mdes[1:]))                      # more examples never hurt
        brute = next((d["examples"] for d in by_design if d["reaches"]), math.inf)
        need = power.examples_needed(components, s0, n0, seeds, most=6000, **target)
        assert need == brute or (brute - 50 < need <= brute)                  # the grid's step is 50
    for examples in (500, 2000, 8000):
        by_seeds = [power.design(components, s0, n0, k, examples, **target) for k in range(2, 61)]
        assert all(x["mde_pp"] >= y["mde_pp"] and x["reaches"] <= y["reaches"] for x, y in zip(by_seeds, by_seeds[1:]))
        # TOST's power rises with the seeds wherever it could matter (it may fall while it is tiny: a small
        # df leaves more room for a lucky small se)
        assert all(x["tost_power"] <= y["tost_power"] + 1e-9 for x, y in zip(by_seeds, by_seeds[1:])
                   if y["tost_power"] > 0.3)
        brute = next((d["seeds"] for d in by_seeds if d["reaches"]), math.inf)
        assert power.seeds_needed(components, s0, n0, examples, most=60, **target) == brute


# --------------------------------------------------------------------------- compare fills the columns

def test_compare_verdicts_agree_with_their_p_values():
    rng = np.random.default_rng(5)
    n = 800
    labels = rng.integers(0, 2, n)
    good = _binary(rng, labels, 0.9, range(5))
    rows = []
    for method, kind, preds in (("single:x", "single", good),
                                ("multi:average", "multi", good),               # identical: no verdict
                                ("baseline", "baseline", _binary(rng, labels, 0.6, range(5)))):   # much worse
        for s, (y, p) in preds.items():
            rows.append(pd.DataFrame({"task": "t", "method": method, "kind": kind, "seed": s, "split": "test",
                                      "idx": np.arange(n), "label": y, "pred": p}))
    frame = pd.concat(rows, ignore_index=True)
    choice = {"t": {"best_single": "single:x", "best_multi": "multi:average"}}
    table = compare(frame, {"t": "accuracy"}, choice, n_boot=400, margin=1.0).set_index("comparison")
    same = table.loc["best multi vs best single"]
    assert same["verdict"] == "inconclusive" and same["note"] == "identical predictions"
    assert power.in_words(same["verdict"], 0, 0, 0, 1, 0, "single:x", note_text=same["note"]).startswith(
        "no verdict: identical predictions")
    assert table.loc["best single vs baseline", "verdict"] == "better"
    assert (table["margin_pp"] == 1.0).all() and (table["family"] == "primary").all()
    assert math.isnan(same["mde_pp"])                                 # no spread: no MDE to speak of
    other = table.loc["best single vs baseline"]
    assert other["mde_pp"] == pytest.approx(power.mde(other["se_pp"], 0.05, 0.8, 2, other["df"]))
    with pytest.raises(ValueError, match="equivalence_margin"):
        compare(frame, {"t": "accuracy"}, choice, n_boot=100, margin=0.0)
