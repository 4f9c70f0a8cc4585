"""Equivalence, verdicts, power and study planning for paired comparisons of seed-averaged scores.

A paired comparison of methods ``a`` and ``b`` ends in one of four verdicts:

* ``better`` / ``worse``: the difference is significant after Holm's correction
  over the whole table of comparisons (``stats.compare``), positive or negative;
* ``equivalent``: two one-sided tests (TOST) reject both "diff <= -margin" and
  "diff >= +margin". Each one-sided bootstrap p-value is the share of resampled
  differences on the wrong side of the bound (+1 Monte Carlo correction), the
  TOST p-value is the larger of the two, and the TOST p-values of the table are
  Holm-adjusted like the difference tests. For one comparison this is exactly
  "the (1 - 2 x significance) percentile interval lies inside +-margin"; with m
  comparisons the interval is widened by Holm's step-down, so a claim of
  equivalence has the same family-wise error rate as a claim of difference;
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


def tost_p_value(boot_diffs: np.ndarray, margin: float) -> float:
    """TOST p-value of ``|diff| < margin`` from bootstrap differences: max of the two one-sided p-values."""
    boot = np.asarray(boot_diffs, dtype=np.float64)
    if boot.ndim != 1 or boot.size == 0:
        raise ValueError(f"boot_diffs must be a non-empty 1-D array, got shape {boot.shape}")
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0 pp, got {margin}")
    n = boot.size
    p_low = (1 + np.sum(boot <= -margin)) / (n + 1)      # H0: diff <= -margin
    p_high = (1 + np.sum(boot >= margin)) / (n + 1)      # H0: diff >= +margin
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
