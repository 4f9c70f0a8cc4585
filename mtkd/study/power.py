"""Equivalence, verdicts, power and study planning for paired comparisons of seed-averaged scores.

A paired comparison of methods ``a`` and ``b`` ends in one of four verdicts:

* ``better`` / ``worse``: the difference is significant after Holm's correction
  over the whole table of comparisons (``stats.compare``), positive or negative;
* ``equivalent``: two one-sided tests (TOST) reject both "diff <= -margin" and
  "diff >= +margin". Every p-value here (difference and TOST) comes from the
  bootstrap's normal approximation: the observed difference over the standard
  deviation of the two-level bootstrap differences (`difference_p_value`,
  `tost_p_value`). A Monte Carlo p-value (the share of resampled differences on
  the wrong side) cannot go below 1/(B + 1), which Holm's first threshold over a
  large family (significance / m) undercuts: a grid of 132 comparisons could
  then never decide anything. The TOST p-values of the table are Holm-adjusted
  like the difference tests, so a claim of equivalence has the same family-wise
  error rate as a claim of difference. The intervals shown stay the bootstrap's
  percentile intervals;
* ``inconclusive``: neither. A significant difference smaller than the margin
  stays ``better``/``worse``: it is real, only small.

Minimum detectable effect (analytic, normal approximation). With ``se`` the
standard deviation of the two-level bootstrap differences (the noise the test
itself sees), a two-sided test at level ``alpha'`` has power ``1 - beta`` for a
true difference

    MDE = (z_{1 - alpha'/2} + z_{1 - beta}) * se,     alpha' = significance / m,

where m is the number of comparisons in the Holm family: Holm tests the smallest
p-value at alpha/m, so alpha/m is the level a comparison must clear whatever the
others do (the MDE is an upper bound; it is smaller when other comparisons are
rejected first). tests/test_power.py checks by simulation that the bootstrap test
rejects in about 80 % of studies whose true difference is the MDE.

Variance components. The difference of seed means is modelled as
``d_si = mu + u_s + v_i + w_si`` (seed s, test example i), so for S seeds and n
examples ``Var(D) = su2/S + sv2/n + sw2/(S n)``. From the bootstrap over examples
(the same draws for every seed) and the spread across seeds:

    A = mean_s Var_boot(D_s)      = (sv2 + sw2) / n
    B = Var_boot(mean_s D_s)      = sv2/n + sw2/(S n)
    C = Var_s(D_s)  (ddof=1)      = su2 + sw2/n

so ``sw2/n = S (A - B)/(S - 1)``, ``sv2/n = A - sw2/n``, ``su2 = C - sw2/n``
(each clipped at 0). The three parts of Var(D) at the run's design are
``seeds = su2/S``, ``examples = sv2/n`` and ``interaction = sw2/(S n)``: the
seeds part shrinks only with more seeds, the examples part only with a larger
test split, the interaction with either. This works for non-decomposable
metrics (macro-F1, MCC) too, since every term is a variance of recomputed
scores. With one seed the seeds part cannot be told apart and is nan.

Planning: for S' seeds and n' examples the test's variance is the bootstrap's
``se**2`` scaled by ``Var(D; S', n') / Var(D; S, n)``, so the plan reproduces the
run's own MDE at the run's own design.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.stats import norm

VERDICTS = ("better", "worse", "equivalent", "inconclusive")


def difference_p_value(diff_pp: float, se_pp: float) -> float:
    """Two-sided p-value of "no difference" from the bootstrap's normal approximation: 2 P(Z >= |diff| / se).

    Why not the share of resampled differences beyond 0: that Monte Carlo p-value cannot go below
    2 / (B + 1) (0.001 at 2,000 resamples), while Holm's first threshold over m comparisons is
    significance / m (0.0004 for the 132 rows of the conditions grid): no row of a large family could ever
    be decided. The normal approximation has no floor, and it is the one the MDE already assumes."""
    if math.isnan(se_pp):                          # one resample: no spread to judge by
        return 1.0
    if not se_pp > 0:                              # no spread: every resample gave the same difference
        return 1.0 if diff_pp == 0 else 0.0
    return float(min(1.0, 2 * norm.sf(abs(diff_pp) / se_pp)))


def tost_p_value(diff_pp: float, se_pp: float, margin: float) -> float:
    """TOST p-value of ``|diff| < margin`` (normal approximation, as `difference_p_value`): the larger of the
    one-sided p-values of "diff <= -margin" and "diff >= +margin"."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0 pp, got {margin}")
    if math.isnan(se_pp):
        return 1.0
    if not se_pp > 0:
        return 0.0 if abs(diff_pp) < margin else 1.0
    p_low = norm.sf((diff_pp + margin) / se_pp)         # H0: diff <= -margin
    p_high = norm.cdf((diff_pp - margin) / se_pp)       # H0: diff >= +margin
    return float(min(1.0, max(p_low, p_high)))


def verdict(diff_pp: float, p_adjusted: float, equivalence_p_adjusted: float, significance: float) -> str:
    """One of VERDICTS: significant difference first, then equivalence, else inconclusive."""
    if p_adjusted <= significance:
        return "better" if diff_pp > 0 else "worse"
    if equivalence_p_adjusted <= significance:
        return "equivalent"
    return "inconclusive"


def mde(se_pp: float, significance: float, power: float = 0.8, family_size: int = 1) -> float:
    """Smallest true difference (pp) the two-sided test at ``significance / family_size`` detects with ``power``."""
    if not 0 < significance < 1 or not 0 < power < 1:
        raise ValueError(f"significance and power must lie in (0, 1), got {significance} and {power}")
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    level = significance / family_size
    return float((norm.ppf(1 - level / 2) + norm.ppf(power)) * se_pp)


def variance_components(seed_diffs: np.ndarray, resampled: np.ndarray) -> dict[str, float]:
    """Parts of Var(mean-over-seeds difference) in pp^2 at the run's design: seeds, examples, interaction.

    ``seed_diffs``: (S,) per-seed differences on the test split; ``resampled``: (S, B) per-seed
    differences on B bootstrap resamples of the examples (the same resample for every seed).
    """
    d = np.asarray(seed_diffs, dtype=np.float64)
    r = np.asarray(resampled, dtype=np.float64)
    if d.ndim != 1 or r.ndim != 2 or r.shape[0] != d.size or r.shape[1] < 2:
        raise ValueError(f"seed_diffs must be (S,) and resampled (S, B>=2), got {d.shape} and {r.shape}")
    s = d.size
    a = float(r.var(axis=1, ddof=1).mean())
    if s == 1:
        return {"var_seeds": float("nan"), "var_examples": a, "var_interaction": float("nan")}
    b = float(r.mean(axis=0).var(ddof=1))
    w_over_n = max(0.0, s * (a - b) / (s - 1))
    v_over_n = max(0.0, a - w_over_n)
    u = max(0.0, float(d.var(ddof=1)) - w_over_n)
    return {"var_seeds": u / s, "var_examples": v_over_n, "var_interaction": w_over_n / s}


def planned_se(components: Mapping[str, float], se_pp: float, n_seeds: int, n_examples: int,
               seeds: int, examples: int) -> float:
    """The test's standard deviation (pp) with ``seeds`` seeds and ``examples`` test examples.

    ``components`` (from ``variance_components``) and ``se_pp`` were measured with ``n_seeds`` x ``n_examples``.
    """
    if seeds < 1 or examples < 1:
        raise ValueError(f"seeds and examples must be >= 1, got {seeds} and {examples}")
    u = components["var_seeds"] * n_seeds
    v = components["var_examples"] * n_examples
    w = components["var_interaction"] * n_seeds * n_examples
    if any(math.isnan(x) for x in (u, v, w)):
        raise ValueError("the variance components need at least two seeds (the run has one)")
    now = u / n_seeds + v / n_examples + w / (n_seeds * n_examples)
    new = u / seeds + v / examples + w / (seeds * examples)
    return float(se_pp * math.sqrt(new / now)) if now > 0 else 0.0


def examples_needed(components: Mapping[str, float], se_pp: float, n_seeds: int, n_examples: int, seeds: int,
                    target_mde_pp: float, significance: float, power: float = 0.8,
                    family_size: int = 1) -> float:
    """Fewest test examples that bring the MDE to ``target_mde_pp`` with ``seeds`` seeds (inf if seeds alone
    cannot: their share of the variance already exceeds the target's)."""
    k = mde(1.0, significance, power, family_size)                # MDE per unit of se
    target_var = (target_mde_pp / k) ** 2
    u = components["var_seeds"] * n_seeds
    v = components["var_examples"] * n_examples
    w = components["var_interaction"] * n_seeds * n_examples
    now = u / n_seeds + v / n_examples + w / (n_seeds * n_examples)
    if now <= 0:
        return 1.0
    scale = se_pp ** 2 / now                                      # the bootstrap's variance per model unit
    room = target_var / scale - u / seeds
    if room <= 0:
        return math.inf
    return float(math.ceil((v + w / seeds) / room))


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
