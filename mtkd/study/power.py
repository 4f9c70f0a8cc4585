"""Equivalence, verdicts, power and study planning for paired comparisons of seed-averaged scores.

A paired comparison of methods ``a`` and ``b`` ends in one of four verdicts:

* ``better`` / ``worse``: the difference is significant after Holm's correction
  over the whole table of comparisons (``stats.compare``), positive or negative;
* ``equivalent``: two one-sided tests (TOST) reject both "diff <= -margin" and
  "diff >= +margin". The TOST p-values of the table are Holm-adjusted like the
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

give ``interaction = sw2/(S n) = (A - B)/(S - 1)``, ``examples = sv2/n = B -
interaction``, ``seeds = su2/S = C/S - interaction`` (each clipped at 0, the seeds
part pooled as below), and
``se**2 = seeds + examples + interaction``: the method-of-moments (two-way ANOVA)
estimate of Var(D), unbiased before clipping. The seeds part shrinks only with
more seeds, the examples part only with a larger test split, the interaction
with either. With one seed the seeds part cannot be told apart: it is nan, and
``se`` holds the examples' noise only.

Why not a bootstrap over both seeds and examples: resampling both levels counts
the interaction twice and shrinks the seeds' part by (S - 1)/S, so its intervals
are too wide where seed-by-example noise dominates and too narrow where seeds
do (tests/study/test_stats.py simulates both).

Degrees of freedom. ``se**2`` is a sum of mean squares, ``C/S`` (S - 1 degrees
of freedom), ``B`` (n - 1) and, subtracted, the interaction ((S - 1)(n - 1));
Satterthwaite's approximation gives its degrees of freedom

    df = se**4 / ((C/S)**2/(S - 1) + B**2/(n - 1) + interaction**2/((S - 1)(n - 1)))

The seeds part is kept only where the data show one: when ``C/S`` exceeds the
interaction by more than the F test at level ``POOLING_LEVEL`` (0.25) allows
(F with S - 1 and (S - 1)(n - 1) degrees of freedom); otherwise it is pooled
into the interaction (Bancroft's "sometimes pool" rule), the seeds part is 0,
``se**2 = B`` and df = n - 1. Without the rule a seeds part estimated from noise
would often put 2 degrees of freedom on a design whose noise is all per example
(simulated coverage 97.5-99.5 % there), with it the 95 % interval covers 93-98 %
of the time from no seed effect to ~7 pp seed shifts (tests/study/test_stats.py;
a bootstrap over both seeds and examples covered 81-99.8 % on the same
simulations). With few seeds and a large seeds part df is
close to S - 1, and every interval, p-value and MDE uses Student's t at df: 3
seeds can only say so much about a seed-to-seed spread. The interval is
``diff +- t * se``; p-values are ``2 P(T_df >= |diff| / se)`` (no Monte Carlo
floor of 1/(B + 1), which Holm's first threshold over a large family,
significance / m, would undercut).

Minimum detectable effect (analytic, t approximation). A two-sided test at level
``alpha'`` has power ``1 - beta`` for a true difference

    MDE = (t_{df, 1 - alpha'/2} + t_{df, 1 - beta}) * se,     alpha' = significance / m,

where m is the number of comparisons in the Holm family: Holm tests the smallest
p-value at alpha/m, so alpha/m is the level a comparison must clear whatever the
others do (the MDE is an upper bound; it is smaller when other comparisons are
rejected first). tests/study/test_power.py checks by simulation that the test
rejects in about 80 % of studies whose true difference is the MDE.

Planning: for S' seeds and n' examples each part is scaled by its own size,
``seeds * S/S'``, ``examples * n/n'``, ``interaction * S n/(S' n')``, and df
follows from the same formula, so the plan reproduces the run's own MDE at the
run's own design.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.stats import f as f_dist, norm, t as student_t

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
POOLING_LEVEL = 0.25


def _t_sf(x: float, df: float) -> float:
    return float(norm.sf(x) if math.isinf(df) else student_t.sf(x, df))


def _t_ppf(q: float, df: float) -> float:
    return float(norm.ppf(q) if math.isinf(df) else student_t.ppf(q, df))


def difference_p_value(diff_pp: float, se_pp: float, df: float = math.inf) -> float:
    """Two-sided p-value of "no difference": 2 P(T_df >= |diff| / se) (the normal one when df is inf).

    Why not the share of resampled differences beyond 0: that Monte Carlo p-value cannot go below
    2 / (B + 1) (0.001 at 2,000 resamples), while Holm's first threshold over m comparisons is
    significance / m (0.0004 for the 132 rows of the conditions grid): no row of a large family could ever
    be decided."""
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


def mde(se_pp: float, significance: float, power: float = 0.8, family_size: int = 1, df: float = math.inf) -> float:
    """Smallest true difference (pp) the two-sided test at ``significance / family_size`` detects with ``power``."""
    if not 0 < significance < 1 or not 0 < power < 1:
        raise ValueError(f"significance and power must lie in (0, 1), got {significance} and {power}")
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    level = significance / family_size
    return float((_t_ppf(1 - level / 2, df) + _t_ppf(power, df)) * se_pp)


def _combine(seeds_term: float, examples_term: float, interaction: float, n_seeds: int,
             n_examples: int) -> dict[str, float]:
    """The three parts (clipped at 0), their sum ``var`` and its Satterthwaite ``df`` from the mean-square
    terms ``C/S``, ``B`` and the interaction (see the module's docstring)."""
    interaction = max(0.0, interaction)
    pooled = seeds_term <= interaction * f_dist.ppf(1 - POOLING_LEVEL, n_seeds - 1, (n_seeds - 1) * (n_examples - 1))
    seeds = 0.0 if pooled else seeds_term - interaction
    examples = max(0.0, examples_term - interaction)
    var = seeds + examples + interaction
    if seeds > 0:
        df = var ** 2 / (seeds_term ** 2 / (n_seeds - 1) + examples_term ** 2 / (n_examples - 1)
                         + interaction ** 2 / ((n_seeds - 1) * (n_examples - 1)))
    else:
        df = float(max(1, n_examples - 1))
    return {"var_seeds": seeds, "var_examples": examples, "var_interaction": interaction, "var": var, "df": df}


def variance_components(seed_diffs: np.ndarray, resampled: np.ndarray, n_examples: int) -> dict[str, float]:
    """Parts of Var(mean-over-seeds difference) in pp^2 at the run's design (seeds, examples, interaction),
    their sum ``var`` (the test's se**2) and its degrees of freedom ``df``.

    ``seed_diffs``: (S,) per-seed differences on the test split; ``resampled``: (S, B) per-seed
    differences on B bootstrap resamples of the ``n_examples`` test examples (the same resample for every seed).
    """
    d = np.asarray(seed_diffs, dtype=np.float64)
    r = np.asarray(resampled, dtype=np.float64)
    if d.ndim != 1 or r.ndim != 2 or r.shape[0] != d.size or r.shape[1] < 2:
        raise ValueError(f"seed_diffs must be (S,) and resampled (S, B>=2), got {d.shape} and {r.shape}")
    s, n = d.size, max(2, int(n_examples))
    a = float(r.var(axis=1, ddof=1).mean())
    if s == 1:
        return {"var_seeds": float("nan"), "var_examples": a, "var_interaction": float("nan"), "var": a,
                "df": float(n - 1)}
    b = float(r.mean(axis=0).var(ddof=1))
    return _combine(float(d.var(ddof=1)) / s, b, (a - b) / (s - 1), s, n)


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
    cell = w / (seeds * examples)
    return _combine(u / seeds + cell, v / examples + cell, cell, seeds, examples)


def planned_mde(components: Mapping[str, float], n_seeds: int, n_examples: int, seeds: int, examples: int,
                significance: float, power: float = 0.8, family_size: int = 1) -> float:
    """The MDE (pp) of a design with ``seeds`` seeds and ``examples`` test examples."""
    p = planned(components, n_seeds, n_examples, seeds, examples)
    return mde(math.sqrt(p["var"]), significance, power, family_size, p["df"])


def examples_needed(components: Mapping[str, float], n_seeds: int, n_examples: int, seeds: int,
                    target_mde_pp: float, significance: float, power: float = 0.8,
                    family_size: int = 1, most: int = 10_000_000) -> float:
    """Fewest test examples that bring the MDE to ``target_mde_pp`` with ``seeds`` seeds (inf if no test split
    up to ``most`` examples can: the seeds' part of the variance alone is too large)."""
    def reaches(n: int) -> bool:
        return planned_mde(components, n_seeds, n_examples, seeds, n, significance, power,
                           family_size) <= target_mde_pp
    if not reaches(most):
        return math.inf
    low, high = 2, most                            # the MDE falls as n grows (var down, df up)
    if reaches(low):
        return float(low)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reaches(mid) else (mid, high)
    return float(high)


def in_words(verdict_name: str, diff_pp: float, ci_low: float, ci_high: float, margin_pp: float,
             mde_pp: float, versus: str, power: float = 0.8) -> str:
    """A verdict as a sentence, e.g. "inconclusive: [-4.97, 1.67] is wider than +-1 pp"."""
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
