"""Equivalence, verdicts, exact power and study planning for paired comparisons of seed-averaged scores.

A paired comparison of methods ``a`` and ``b`` ends in one of four verdicts:

* ``better`` / ``worse``: the difference is significant after Holm's correction
  over its family of comparisons (``stats.compare``), positive or negative;
* ``equivalent``: two one-sided tests (TOST) reject both "diff <= -margin" and
  "diff >= +margin". The TOST p-values of a family are Holm-adjusted like the
  difference tests, so a claim of equivalence has the same family-wise error
  rate as a claim of difference;
* ``inconclusive``: neither. A significant difference smaller than the margin
  stays ``better``/``worse``: it is real, only small.

The variance of a difference. The difference of seed means is modelled as
crossed random effects, ``d_si = mu + u_s + v_i + w_si`` (seed s, test example
i), so for S seeds and n examples

    Var(D) = su2/S + sv2/n + sw2/(S n).

Three measured quantities identify it, each a variance of recomputed scores (so
non-decomposable metrics such as macro-F1 and MCC are handled too): with the
bootstrap over examples (the same draws for every seed) and the spread across
seeds,

    A = mean_s Var_boot(D_s)      = (sv2 + sw2) / n
    B = Var_boot(mean_s D_s)      = sv2/n + sw2/(S n)
    C = Var_s(D_s)  (ddof=1)      = su2 + sw2/n

The test's variance is ``se**2 = C/S + examples`` with ``examples = sv2/n = B -
(A - B)/(S - 1)`` (clipped at 0): ``C/S`` is the plain variance of a mean of S
independent per-seed differences, and the examples' part, shared by every seed,
is what the spread across seeds cannot see. ``C/S`` is reported split into the
seeds' part ``su2/S`` and the interaction ``sw2/(S n)`` (estimated from ``A - B``,
at most ``C/S``), so ``se**2 = seeds + examples + interaction``.

Degrees of freedom: ``df = S - 1``, what the seeds can support. No pretest
pools the seeds' part away when an F test cannot see it (Bancroft's "sometimes
pool", used before): with 3 seeds it made the test anti-conservative exactly in
the tail where Holm decides (type-I error 4-13x the nominal 0.05/18,
tests/study/test_power.py). With the examples' part estimated from thousands of
examples, Student's t at S - 1 degrees of freedom is exact when the seeds'
spread dominates and conservative otherwise; the simulations in the tests hold
the type-I error at or below nominal at alpha and alpha/6 for seeds' parts from
0 to 6x the interaction. With one seed there is no spread across seeds: the
seeds' part is nan, ``se`` holds the examples' noise only and df is n - 1.

Power is exact, not a normal approximation: the difference test's power at a
true difference delta is ``P(|T| > t_{df, 1 - level/2})`` with T noncentral t
(df, delta / se); the MDE is the delta at which it reaches ``power`` (so 80 %
means 80 % when simulated at the reported MDE). TOST's power at a true
difference delta integrates over the chi-square law of the estimated se:
``E[Phi((m - c s - delta)/sigma) - Phi((-m + c s - delta)/sigma)]+`` with ``c =
t_{df, 1 - level}`` and ``s = sigma sqrt(X / df)``, ``X ~ chi2(df)``. ``level``
is ``significance / family_size``: Holm tests the smallest p-value at alpha/m,
so that is the level a comparison must clear whatever the others do (the power
is a lower bound).

Planning: for S' seeds and n' examples each part is scaled by its own size,
``seeds * S/S'``, ``examples * n/n'``, ``interaction * S n/(S' n')``, and df =
S' - 1; the plan reproduces the run's own se at the run's own design, and the
MDE falls (the TOST power rises) as either size grows, so the fewest seeds and
examples that reach a target are found by bisection (tests check it against a
brute-force search). A design *reaches* a target when its MDE is at most
``target_mde_pp`` and its TOST has ``power`` to find ``equivalent`` at a true
difference of 0.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2, nct, norm, t as student_t

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
PRIMARY = ("best multi vs best single", "best single vs baseline")   # what stats.primary may name (its default)
IDENTICAL = "identical predictions"                        # notes that replace a verdict's numbers
UNDETECTABLE = "no difference of any size is detectable"
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(200)    # TOST power's integral over the se's law


def _t_sf(x: float, df: float) -> float:
    return float(norm.sf(x) if math.isinf(df) else student_t.sf(x, df))


def _t_ppf(q: float, df: float) -> float:
    return float(norm.ppf(q) if math.isinf(df) else student_t.ppf(q, df))


def difference_p_value(diff_pp: float, se_pp: float, df: float = math.inf) -> float:
    """Two-sided p-value of "no difference": 2 P(T_df >= |diff| / se) (the normal one when df is inf).

    Why not the share of resampled differences beyond 0: that Monte Carlo p-value cannot go below
    2 / (B + 1) (0.001 at 2,000 resamples), while Holm's first threshold over m comparisons is
    significance / m: no row of a large family could ever be decided."""
    if math.isnan(se_pp):                          # one resample: no spread to judge by
        return 1.0
    if not se_pp > 0:                              # no spread: every resample gave the same difference
        return 1.0 if diff_pp == 0 else 0.0
    return float(min(1.0, 2 * _t_sf(abs(diff_pp) / se_pp, df)))


def tost_p_value(diff_pp: float, se_pp: float, margin: float, df: float = math.inf) -> float:
    """TOST p-value of ``|diff| < margin`` (t at df, as `difference_p_value`): the larger of the
    one-sided p-values of "diff <= -margin" and "diff >= +margin"."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0 pp, got {margin}")
    if math.isnan(se_pp):
        return 1.0
    if not se_pp > 0:
        return 0.0 if abs(diff_pp) < margin else 1.0
    p_low = _t_sf((diff_pp + margin) / se_pp, df)          # H0: diff <= -margin
    p_high = _t_sf((margin - diff_pp) / se_pp, df)         # H0: diff >= +margin
    return float(min(1.0, max(p_low, p_high)))


def interval(diff_pp: float, se_pp: float, df: float, confidence: float) -> tuple[float, float]:
    """The ``confidence`` interval ``diff +- t_df * se`` (nan when se is unknown)."""
    half = _t_ppf(1 - (1 - confidence) / 2, df) * se_pp
    return float(diff_pp - half), float(diff_pp + half)


def verdict(diff_pp: float, p_adjusted: float, equivalence_p_adjusted: float, significance: float) -> str:
    """One of VERDICTS: significant difference first, then equivalence, else inconclusive."""
    if p_adjusted <= significance:
        return "better" if diff_pp > 0 else "worse"
    if equivalence_p_adjusted <= significance:
        return "equivalent"
    return "inconclusive"


def _check_levels(significance: float, power: float, family_size: int) -> float:
    if not 0 < significance < 1 or not 0 < power < 1:
        raise ValueError(f"significance and power must lie in (0, 1), got {significance} and {power}")
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    return significance / family_size


def difference_power(delta_pp: float, se_pp: float, df: float, level: float) -> float:
    """Exact power of the two-sided t test at ``level`` when the true difference is ``delta_pp``:
    P(|T| > t_{df, 1 - level/2}) with T noncentral t (df, delta / se)."""
    if not se_pp > 0:
        return float("nan") if math.isnan(se_pp) else float(delta_pp != 0)
    c, shift = _t_ppf(1 - level / 2, df), delta_pp / se_pp
    if math.isinf(df):
        return float(norm.sf(c - shift) + norm.cdf(-c - shift))
    exact = float(nct.sf(c, df, shift) + nct.cdf(-c, df, shift))
    if not math.isnan(exact):
        return exact
    # far in the tail scipy's noncentral t gives nan: the same probability as an integral over the se's law
    s = np.sqrt(chi2.ppf((_NODES + 1) / 2, df) / df)
    return float(np.sum(_WEIGHTS * (norm.cdf(shift - c * s) + norm.cdf(-shift - c * s))) / 2)


def mde(se_pp: float, significance: float, power: float = 0.8, family_size: int = 1, df: float = math.inf) -> float:
    """Smallest true difference (pp) the two-sided test at ``significance / family_size`` detects with
    ``power`` (exact: noncentral t at ``df``)."""
    level = _check_levels(significance, power, family_size)
    if not se_pp > 0:
        return float(se_pp) if math.isnan(se_pp) else 0.0
    high = (_t_ppf(1 - level / 2, df) + _t_ppf(power, df)) * se_pp     # the t approximation, a starting point
    while difference_power(high, se_pp, df, level) < power:
        high *= 2
    return float(brentq(lambda d: difference_power(d, se_pp, df, level) - power, 0.0, high, xtol=1e-10))


def tost_power(se_pp: float, df: float, margin: float, level: float, delta_pp: float = 0.0) -> float:
    """Exact power of TOST (each one-sided test at ``level``) to find ``|diff| < margin`` when the true
    difference is ``delta_pp`` and the se is estimated on ``df`` degrees of freedom."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0 pp, got {margin}")
    if not se_pp > 0:
        return float("nan") if math.isnan(se_pp) else float(abs(delta_pp) < margin)
    c = _t_ppf(1 - level, df)

    def accepted(s):                               # P(|D| inside +-(margin - c s)) given the estimated se s
        h = np.maximum(margin - c * s, 0.0)
        return np.where(h > 0, norm.cdf((h - delta_pp) / se_pp) - norm.cdf((-h - delta_pp) / se_pp), 0.0)

    if math.isinf(df):
        return float(accepted(np.array(se_pp)))
    top = float(chi2.cdf(df * (margin / (c * se_pp)) ** 2, df))    # beyond it margin - c s <= 0
    u = (_NODES + 1) / 2 * top                                      # Gauss-Legendre over the chi2's quantiles
    s = se_pp * np.sqrt(chi2.ppf(u, df) / df)
    return float(top / 2 * np.sum(_WEIGHTS * accepted(s)))


def note(identical: bool, mde_pp: float, scale_pp: float = 100.0) -> str:
    """Why a row carries no verdict with a number: the arms predict identically on every example, or the
    MDE exceeds what the metric can move (``scale_pp``: 100 pp for a percentage); "" otherwise."""
    if identical:
        return IDENTICAL
    if math.isnan(mde_pp) or mde_pp > scale_pp:
        return UNDETECTABLE
    return ""


def variance_components(seed_diffs: np.ndarray, resampled: np.ndarray, n_examples: int) -> dict[str, float]:
    """Parts of Var(mean-over-seeds difference) in pp^2 at the run's design (seeds, examples, interaction),
    their sum ``var`` (the test's se**2) and its degrees of freedom ``df`` (S - 1).

    ``seed_diffs``: (S,) per-seed differences on the test split; ``resampled``: (S, B) per-seed
    differences on B bootstrap resamples of the ``n_examples`` test examples (the same resample for every seed).
    """
    d = np.asarray(seed_diffs, dtype=np.float64)
    r = np.asarray(resampled, dtype=np.float64)
    if d.ndim != 1 or r.ndim != 2 or r.shape[0] != d.size or r.shape[1] < 2:
        raise ValueError(f"seed_diffs must be (S,) and resampled (S, B>=2), got {d.shape} and {r.shape}")
    a = float(r.var(axis=1, ddof=1).mean())
    b = float(r.mean(axis=0).var(ddof=1)) if d.size > 1 else a
    return components_from_moments(d, a, b, n_examples)


def components_from_moments(seed_diffs: np.ndarray, a: float, b: float, n_examples: int) -> dict[str, float]:
    """The parts, ``var`` and ``df`` from the per-seed differences and the bootstrap moments A and B (see the
    module); the simulations in the tests give A and B their exact values."""
    d = np.asarray(seed_diffs, dtype=np.float64)
    s, n = d.size, max(2, int(n_examples))
    if s == 1:
        return {"var_seeds": float("nan"), "var_examples": a, "var_interaction": float("nan"), "var": a,
                "df": float(n - 1)}
    per_seed = float(d.var(ddof=1)) / s                            # C / S
    interaction = max(0.0, (a - b) / (s - 1))
    examples = max(0.0, b - interaction)
    shown = min(interaction, per_seed)
    return {"var_seeds": per_seed - shown, "var_examples": examples, "var_interaction": shown,
            "var": per_seed + examples, "df": float(s - 1)}


def _per_unit(components: Mapping[str, float], n_seeds: int, n_examples: int) -> tuple[float, float, float]:
    """su2, sv2, sw2 (the variances of one seed, one example, one cell) from the parts at S x n."""
    u = components["var_seeds"] * n_seeds
    v = components["var_examples"] * n_examples
    w = components["var_interaction"] * n_seeds * n_examples
    if any(math.isnan(x) for x in (u, v, w)):
        raise ValueError("the variance components need at least two seeds (the run has one)")
    return u, v, w


def planned(components: Mapping[str, float], n_seeds: int, n_examples: int, seeds: int,
            examples: int) -> dict[str, float]:
    """The test's parts, ``var`` and ``df`` with ``seeds`` seeds and ``examples`` test examples.

    ``components`` (from ``variance_components``) were measured with ``n_seeds`` x ``n_examples``.
    """
    if seeds < 2 or examples < 2:
        raise ValueError(f"a plan needs at least 2 seeds and 2 examples, got {seeds} and {examples}")
    u, v, w = _per_unit(components, n_seeds, n_examples)
    parts = {"var_seeds": u / seeds, "var_examples": v / examples, "var_interaction": w / (seeds * examples)}
    return {**parts, "var": sum(parts.values()), "df": float(seeds - 1)}


def design(components: Mapping[str, float], n_seeds: int, n_examples: int, seeds: int, examples: int, *,
           target_mde_pp: float, margin: float, significance: float, power: float = 0.8,
           family_size: int = 1) -> dict[str, float]:
    """What a design of ``seeds`` x ``examples`` buys: se, df, the exact MDE, the difference test's power at
    ``target_mde_pp``, TOST's power to find ``equivalent`` at a true difference of 0, and ``reaches``."""
    level = _check_levels(significance, power, family_size)
    p = planned(components, n_seeds, n_examples, seeds, examples)
    se = math.sqrt(p["var"])
    out = {"seeds": seeds, "examples": examples, "se_pp": se, "df": p["df"],
           "mde_pp": mde(se, significance, power, family_size, p["df"]),
           "power_at_target": difference_power(target_mde_pp, se, p["df"], level),
           "tost_power": tost_power(se, p["df"], margin, level)}
    out["reaches"] = bool(out["mde_pp"] <= target_mde_pp and out["tost_power"] >= power)
    return out


def _fewest(reaches, low: int, high: int) -> float:
    """The smallest k in [low, high] with reaches(k) (monotone in k), inf when even ``high`` does not."""
    if not reaches(high):
        return math.inf
    if reaches(low):
        return float(low)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reaches(mid) else (mid, high)
    return float(high)


def seeds_needed(components: Mapping[str, float], n_seeds: int, n_examples: int, examples: int, *,
                 least: int = 2, most: int = 1000, **target) -> float:
    """Fewest seeds in [least, most] whose design with ``examples`` test examples reaches the target
    (``design``'s keywords), inf when none does."""
    return _fewest(lambda k: design(components, n_seeds, n_examples, k, examples, **target)["reaches"],
                   max(2, least), most)


def examples_needed(components: Mapping[str, float], n_seeds: int, n_examples: int, seeds: int, *,
                    most: int = 10_000_000, **target) -> float:
    """Fewest test examples that reach the target with ``seeds`` seeds (inf if no test split up to ``most``
    examples can: the seeds' part of the variance alone is too large)."""
    return _fewest(lambda n: design(components, n_seeds, n_examples, seeds, n, **target)["reaches"], 2, most)


def in_words(verdict_name: str, diff_pp: float, ci_low: float, ci_high: float, margin_pp: float,
             mde_pp: float, versus: str, power: float = 0.8, note_text: str = "") -> str:
    """A verdict as a sentence, e.g. "inconclusive: [-4.97, 1.67] is wider than +-1 pp"; a row with a
    ``note`` (see ``note``) says only that."""
    if note_text == IDENTICAL:
        return f"no verdict: identical predictions to {versus} on every test example in every seed"
    if note_text == UNDETECTABLE:
        return f"no verdict: {UNDETECTABLE} with this design (too few seeds or examples)"
    interval = f"[{ci_low:.2f}, {ci_high:.2f}]"
    if verdict_name == "equivalent":
        return f"equivalent: within +-{margin_pp:g} pp of {versus} ({diff_pp:+.2f} pp, 95% CI {interval})"
    if verdict_name in ("better", "worse"):
        return f"{verdict_name}: {diff_pp:+.2f} pp vs {versus}, 95% CI {interval}, significant after Holm"
    if verdict_name != "inconclusive":
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict_name!r}")
    if ci_high - ci_low > 2 * margin_pp:
        return (f"inconclusive: {interval} is wider than +-{margin_pp:g} pp "
                f"(this design detects {mde_pp:.2f} pp with {power:.0%} power)")
    return (f"inconclusive: {interval} neither excludes 0 nor lies inside +-{margin_pp:g} pp "
            f"after Holm's correction (detectable with {power:.0%} power: {mde_pp:.2f} pp)")
