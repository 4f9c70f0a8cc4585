"""Intervals and paired tests for scores averaged over training seeds.

A method's score is the mean over seeds of its metric on the same test
examples, so it varies with both the examples drawn and the seeds drawn. Its
variance is estimated from two measured spreads: a bootstrap over the test
examples (each resample draws n examples with replacement, the same draw for
every seed and for both methods of a paired comparison, and scores every seed
on it) and the spread of the per-seed scores across seeds. Combined as crossed
random effects (seeds x examples, `mtkd.study.power`), they give the standard
error, its degrees of freedom (seeds - 1) and the t interval ``mean +- t *
se``. Metrics are recomputed on every resample, so non-decomposable ones (F1,
MCC) are handled exactly. Simulating 3 seeds x 400 examples
(tests/study/test_stats.py), the 95 % interval of a difference covers the truth
in at least 95 % of studies whether the noise is mostly per example, per seed, or
independent errors.

The confusion counts of all resamples are built at once and scored with each
metric module's batched ``from_confusion`` (the same formula as its
``_compute``), which keeps 2000 resamples x 5 seeds x 1500 examples well under
a second.

Verdicts (better / worse / equivalent / inconclusive), the TOST equivalence
test, the minimum detectable effect (exact, at the Bonferroni level
significance / rows of the Holm family) and the variance components are defined
in ``mtkd.study.power``; ``compare`` fills them into every row.

Choices (best single, best multi) are made on the selection split with
``choose_best``; ``summarise`` and ``compare`` only report on the split they
are given. ``compare`` keeps two families apart: the *primary* comparisons
(declared in ``stats.primary`` before the run: best multi vs best single, best
single vs baseline), measured on the confirming seeds when they are given (seeds
that made no choice), and the *secondary* ones (every other fuser vs best
single), measured on the choosing seeds and labelled exploratory; Holm runs
within each family.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mtkd.data import metrics as _metrics
from mtkd.study import power

PredBySeed = Mapping[int, tuple[np.ndarray, np.ndarray]]   # seed -> (labels, preds), same examples for every seed

COLUMNS = ("task", "method", "kind", "seed", "split", "idx", "label", "pred")
KINDS = ("teacher", "baseline", "single", "multi")
_CHUNK = 4_000_000        # resampled example slots per batch of confusion counts: bounds memory

RESULTS_VERSION = 4       # bump when a change alters the result files computed from the same units
                          # (2: normal p-values; 3: seeds x examples variance with Satterthwaite t;
                          # 4: df = seeds - 1 without a pretest, exact power, primary and secondary families)


def _metric_from_indices(metric: str, labels: np.ndarray, preds: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric in percent on each resample ``idx[b]`` (B, n) of the examples."""
    c = max(2, int(max(labels.max(), preds.max())) + 1)
    codes = labels.astype(np.int64) * c + preds                # one id per (gold, predicted) cell
    b = idx.shape[0]
    cells = codes[idx] + (np.arange(b, dtype=np.int64) * c * c)[:, None]
    counts = np.bincount(cells.ravel(), minlength=b * c * c).reshape(b, c, c)
    return 100.0 * _metrics.load(metric).from_confusion(counts)


def _check_preds(name: str, pred_by_seed: PredBySeed) -> tuple[list, np.ndarray, np.ndarray]:
    """Seeds (sorted), the shared labels (n,) and the predictions (S, n)."""
    if not pred_by_seed:
        raise ValueError(f"{name}: no seeds given")
    seeds = sorted(pred_by_seed)
    labels = np.asarray(pred_by_seed[seeds[0]][0])
    preds = []
    for s in seeds:
        y, p = (np.asarray(v) for v in pred_by_seed[s])
        if y.ndim != 1 or y.shape != p.shape or y.size == 0:
            raise ValueError(f"{name}, seed {s}: labels and predictions must be non-empty 1-D arrays of equal "
                             f"length, got shapes {y.shape} and {p.shape}")
        if not (np.issubdtype(y.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
            raise ValueError(f"{name}, seed {s}: labels and predictions must be integer class ids")
        if min(y.min(), p.min()) < 0:
            raise ValueError(f"{name}, seed {s}: class ids must be >= 0")
        if y.shape != labels.shape or not np.array_equal(y, labels):
            raise ValueError(f"{name}: seed {s} has other labels than seed {seeds[0]}; "
                             "every seed must be scored on the same examples in the same order")
        preds.append(p)
    return seeds, labels, np.stack(preds)


def _check_settings(n_boot: int, confidence: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _seed_scores(metric: str, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    return np.array([_metrics.score(metric, p, labels) for p in preds])


def _example_resamples(metric: str, labels: np.ndarray, preds: list[np.ndarray], n_boot: int,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """For each (S, n) prediction array, every seed's score on the same ``n_boot`` resamples of the examples
    (S, n_boot)."""
    n, n_seeds = len(labels), preds[0].shape[0]
    per_seed = [np.empty((n_seeds, n_boot)) for _ in preds]
    step = max(1, _CHUNK // n)
    for start in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
        for m, p in zip(per_seed, preds):
            for s in range(n_seeds):
                m[s, start:start + len(idx)] = _metric_from_indices(metric, labels, p[s], idx)
    return per_seed


def _spread(seed_values: np.ndarray, resampled: np.ndarray, n_examples: int) -> dict[str, float]:
    """The variance parts, se and df of a mean over seeds (nan se with one resample: no spread to judge by)."""
    if resampled.shape[1] < 2:
        return {"var_seeds": float("nan"), "var_examples": float("nan"), "var_interaction": float("nan"),
                "var": float("nan"), "df": float("nan")}
    return power.variance_components(seed_values, resampled, n_examples)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def bootstrap_ci(pred_by_seed: PredBySeed, metric: str, n_boot: int = 2000, confidence: float = 0.95,
                 rng: np.random.Generator | int | None = None) -> tuple[float, float, float]:
    """Mean over seeds of the metric (percent) and its t interval (seeds x examples, see the module)."""
    _check_settings(n_boot, confidence)
    _, labels, preds = _check_preds("pred_by_seed", pred_by_seed)
    scores = _seed_scores(metric, labels, preds)
    mean = float(scores.mean())
    (resampled,) = _example_resamples(metric, labels, [preds], n_boot, _rng(rng))
    spread = _spread(scores, resampled, len(labels))
    return (mean, *power.interval(mean, math.sqrt(spread["var"]), spread["df"], confidence))


def paired_comparison(a: PredBySeed, b: PredBySeed, metric: str, n_boot: int = 2000, confidence: float = 0.95,
                      rng: np.random.Generator | int | None = None, margin: float | None = None) -> dict[str, float]:
    """Mean over seeds of (metric_a - metric_b) in percentage points, its interval and a two-sided p-value.

    Seed s of ``a`` is paired with seed s of ``b``, and both are resampled on
    the same examples. The interval is ``diff +- t_df * se`` and the p-value
    2 P(T_df >= |diff| / se), with se and df from the seeds x examples
    variance (`mtkd.study.power`).

    With an equivalence ``margin`` (pp) it also gives the TOST p-value of
    ``|diff| < margin``, ``se_pp``, ``df``, the variance components (seeds,
    examples, interaction; their sum is ``se_pp ** 2``), the seeds used and
    ``identical`` (both arms predict the same class on every example in every seed).
    """
    _check_settings(n_boot, confidence)
    seeds_a, labels, preds_a = _check_preds("a", a)
    seeds_b, labels_b, preds_b = _check_preds("b", b)
    if seeds_a != seeds_b:
        raise ValueError(f"a and b must have the same seeds to be paired, got {seeds_a} and {seeds_b}")
    if labels.shape != labels_b.shape or not np.array_equal(labels, labels_b):
        raise ValueError("a and b must be scored on the same examples in the same order (their labels differ)")
    seed_diffs = _seed_scores(metric, labels, preds_a) - _seed_scores(metric, labels, preds_b)
    diff = float(seed_diffs.mean())
    per_a, per_b = _example_resamples(metric, labels, [preds_a, preds_b], n_boot, _rng(rng))
    spread = _spread(seed_diffs, per_a - per_b, len(labels))
    se, df = math.sqrt(spread["var"]), spread["df"]
    low, high = power.interval(diff, se, df, confidence)
    out = {"diff_pp": diff, "ci_low": low, "ci_high": high, "p_value": power.difference_p_value(diff, se, df)}
    if margin is None:
        return out
    return {**out, "equivalence_p": power.tost_p_value(diff, se, margin, df), "se_pp": se, "df": df,
            **{k: spread[k] for k in ("var_seeds", "var_examples", "var_interaction")},
            "n_seeds": len(seeds_a), "n_examples": len(labels), "identical": bool(np.array_equal(preds_a, preds_b)),
            "seeds": " ".join(str(s) for s in seeds_a)}


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_values must be a 1-D sequence of numbers in [0, 1], got {p_values!r}")
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


# --- run-level tables over a predictions frame --------------------------------------------------------


def split_rows(predictions: pd.DataFrame, metrics: Mapping[str, str], split: str) -> pd.DataFrame:
    """The rows of ``split``, after checking columns, metrics and duplicates."""
    missing = [c for c in COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lacks the columns {missing} (needs {', '.join(COLUMNS)})")
    rows = predictions[predictions["split"] == split]
    if rows.empty:
        raise ValueError(f"predictions has no rows for split {split!r} "
                         f"(splits present: {sorted(predictions['split'].unique())})")
    no_metric = sorted(set(rows["task"]) - set(metrics))
    if no_metric:
        raise ValueError(f"no metric given for the tasks {no_metric}")
    for task in rows["task"].unique():
        _metrics.metric_path(metrics[task])                      # unknown metric names fail here
    dup = rows.duplicated(["task", "method", "seed", "idx"])
    if dup.any():
        r = rows[dup].iloc[0]
        raise ValueError(f"predictions has several rows for task {r.task!r}, method {r.method!r}, "
                         f"seed {r.seed}, split {split!r}, idx {r.idx}")
    return rows


def seed_predictions(rows: pd.DataFrame, where: str) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The example ids (in idx order) and seed -> (labels, preds) of one method on one split."""
    out, ids = {}, None
    for seed, g in rows.sort_values("idx").groupby("seed", sort=True):
        idx = g["idx"].to_numpy()
        if ids is None:
            ids = idx
        elif not np.array_equal(idx, ids):
            raise ValueError(f"{where}: seed {seed} was evaluated on other examples than seed {rows['seed'].min()}")
        out[int(seed)] = (g["label"].to_numpy(np.int64), g["pred"].to_numpy(np.int64))
    return ids, out


def task_rng(seed: int, task: str) -> np.random.Generator:
    """One stream per task: every method of a task gets the same resamples, whatever else the frame holds."""
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def _method_kind(g: pd.DataFrame, where: str) -> str:
    kinds = g["kind"].unique()
    if len(kinds) != 1:
        raise ValueError(f"{where}: rows disagree on kind: {sorted(kinds)}")
    return str(kinds[0])


def summarise(predictions: pd.DataFrame, metrics: Mapping[str, str], split: str = "test", n_boot: int = 2000,
              confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (task, method): mean over seeds (percent), std across seeds (ddof=1), bootstrap interval."""
    _check_settings(n_boot, confidence)
    rows = split_rows(predictions, metrics, split)
    records = []
    for (task, method), g in rows.groupby(["task", "method"], sort=True):
        where = f"task {task!r}, method {method!r}, split {split!r}"
        _, by_seed = seed_predictions(g, where)
        metric = metrics[task]
        scores = np.array([_metrics.score(metric, p, y) for y, p in by_seed.values()])
        mean, low, high = bootstrap_ci(by_seed, metric, n_boot, confidence, task_rng(seed, task))
        records.append({"task": task, "method": method, "kind": _method_kind(g, where), "metric": metric,
                        "mean": mean, "std": float(scores.std(ddof=1)) if len(scores) > 1 else float("nan"),
                        "ci_low": low, "ci_high": high, "n_seeds": len(scores)})
    return pd.DataFrame.from_records(records, columns=["task", "method", "kind", "metric", "mean", "std",
                                                       "ci_low", "ci_high", "n_seeds"])


def choose_best(predictions: pd.DataFrame, metrics: Mapping[str, str], kind: str,
                split: str = "selection") -> dict[str, str]:
    """Per task, the method of ``kind`` with the highest mean score over seeds on ``split`` (ties: alphabetical).

    Tasks without a method of that kind are left out.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    rows = split_rows(predictions, metrics, split)
    rows = rows[rows["kind"] == kind]
    means: dict[str, list[tuple[float, str]]] = {}
    for (task, method), g in rows.groupby(["task", "method"], sort=True):
        _, by_seed = seed_predictions(g, f"task {task!r}, method {method!r}, split {split!r}")
        mean = np.mean([_metrics.score(metrics[task], p, y) for y, p in by_seed.values()])
        means.setdefault(task, []).append((-mean, method))
    return {task: min(candidates)[1] for task, candidates in means.items()}


COMPARE_COLUMNS = ["task", "comparison", "a", "b", "metric", "family", "seeds", "diff_pp", "ci_low", "ci_high",
                   "p_value", "p_adjusted", "significant", "verdict", "margin_pp", "mde_pp", "note",
                   "equivalence_p", "equivalence_p_adjusted", "se_pp", "df", "var_seeds", "var_examples",
                   "var_interaction", "n_seeds", "n_examples"]
MEASURED = ["seeds", "diff_pp", "ci_low", "ci_high", "p_value", "equivalence_p", "se_pp", "df", "var_seeds",
            "var_examples", "var_interaction", "n_seeds", "n_examples", "identical"]
FAMILIES = ("primary", "secondary")


def _pairs(task: str, methods: Mapping[str, str], choice: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(comparison, a, b) rows of one task: best multi vs best single first, then every multi, then baseline."""
    def chosen(key: str, kind: str) -> str | None:
        method = choice.get(key)
        if method is not None and methods.get(method) != kind:
            raise ValueError(f"task {task!r}: {key} = {method!r} is not a {kind} method of this split "
                             f"(methods: {sorted(methods)})")
        return method

    single, multi = chosen("best_single", "single"), chosen("best_multi", "multi")
    multis = sorted(m for m, k in methods.items() if k == "multi")
    if single is None:
        raise ValueError(f"task {task!r}: the selection choice names no best_single")
    if multis and multi is None:
        raise ValueError(f"task {task!r}: has multi methods {multis} but the selection choice names no best_multi")
    pairs = [("best multi vs best single", multi, single)] if multi else []
    pairs += [("multi vs best single", m, single) for m in multis if m != multi]
    if "baseline" in methods:
        pairs.append(("best single vs baseline", single, "baseline"))
    return pairs


def _task_groups(rows: pd.DataFrame, task: str) -> tuple[dict, dict]:
    groups = dict(tuple(rows[rows["task"] == task].groupby("method", sort=True)))
    return groups, {m: _method_kind(g, f"task {task!r}, method {m!r}") for m, g in groups.items()}


def _measure(task: str, a: str, b: str, groups: dict, metric: str, n_boot: int, confidence: float,
             rng: np.random.Generator, margin: float, where: str) -> dict:
    missing = [m for m in (a, b) if m not in groups]
    if missing:
        raise ValueError(f"task {task!r}: {where} has no predictions of {missing} (has {sorted(groups)})")
    ids_a, pa = seed_predictions(groups[a], f"task {task!r}, method {a!r}")
    ids_b, pb = seed_predictions(groups[b], f"task {task!r}, method {b!r}")
    if not np.array_equal(ids_a, ids_b):
        raise ValueError(f"task {task!r}: {a!r} and {b!r} were not evaluated on the same examples")
    return paired_comparison(pa, pb, metric, n_boot, confidence, rng, margin)


def compare(predictions: pd.DataFrame, metrics: Mapping[str, str], selection_choice: Mapping[str, Mapping[str, str]],
            split: str = "test", n_boot: int = 2000, confidence: float = 0.95, significance: float = 0.05,
            seed: int = 0, margin: float = 1.0, power_level: float = 0.8, primary=power.PRIMARY,
            confirming: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paired comparisons on ``split``, Holm's correction within each family, and their verdicts.

    Per task: best multi vs best single (always), every other multi method vs
    the best single, and the best single vs the baseline. ``a - b`` is reported,
    so a positive diff means ``a`` scores higher. The best methods come from
    ``selection_choice`` (see ``choose_best`` on the selection split).
    Comparisons named in ``primary`` form the primary family: measured on
    ``confirming`` (the confirming stage's predictions, fresh seeds) when given,
    else on ``predictions``; the rest are the secondary family, on ``predictions``.
    ``verdict``, the TOST at ``margin`` pp and ``mde_pp`` (at ``power_level``,
    Bonferroni level ``significance / rows of the family``) are defined in ``mtkd.power``.
    """
    _check_settings(n_boot, confidence)
    if not 0.0 < significance < 1.0:
        raise ValueError(f"significance must lie in (0, 1), got {significance}")
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0 pp (stats.equivalence_margin), got {margin}")
    unknown = sorted(set(primary) - set(power.PRIMARY))
    if unknown:
        raise ValueError(f"stats.primary names {unknown}: not a comparison (choose from {list(power.PRIMARY)})")
    rows = split_rows(predictions, metrics, split)
    later = split_rows(confirming, metrics, split) if confirming is not None else None
    tasks = sorted(rows["task"].unique())
    unchosen = [t for t in tasks if t not in selection_choice]
    if unchosen:
        raise ValueError(f"selection_choice has no entry for the tasks {unchosen}")
    records = []
    for task in tasks:
        groups, methods = _task_groups(rows, task)
        confirm_groups = _task_groups(later, task)[0] if later is not None else groups
        for comparison, a, b in _pairs(task, methods, selection_choice[task]):
            family = "primary" if comparison in primary else "secondary"
            source, where = ((confirm_groups, "the confirming stage") if family == "primary"
                             else (groups, "the choosing stage"))
            res = _measure(task, a, b, source, metrics[task], n_boot, confidence, task_rng(seed, task), margin, where)
            records.append({"task": task, "comparison": comparison, "a": a, "b": b, "metric": metrics[task],
                            "family": family, **res})
    table = pd.DataFrame.from_records(records, columns=["task", "comparison", "a", "b", "metric", "family",
                                                       *MEASURED])
    return adjust_families(table, significance, margin, power_level)[COMPARE_COLUMNS]


def adjust_families(table: pd.DataFrame, significance: float, margin: float, power_level: float) -> pd.DataFrame:
    """``adjust_family`` within each value of ``family``, rows kept in their order."""
    parts = [adjust_family(g, significance, margin, power_level) for _, g in table.groupby("family", sort=False)]
    return pd.concat(parts).loc[table.index] if parts else adjust_family(table, significance, margin, power_level)


def adjust_family(table: pd.DataFrame, significance: float, margin: float, power_level: float) -> pd.DataFrame:
    """Holm over every row of ``table`` (one family), then each row's verdict, ``mde_pp`` and ``note``.

    A row whose arms predict identically everywhere, or whose MDE exceeds what the metric can move, gets
    ``inconclusive`` and a ``note`` saying so (`power.note`) instead of a verdict read from its numbers.
    ``compare`` gives one family per kind of comparison; the conditions put the rows of every condition value
    into one family, so scanning many conditions for a winner pays for the looking."""
    table = table.copy()
    table["p_adjusted"] = holm(table["p_value"].to_numpy())
    table["significant"] = table["p_adjusted"] <= significance
    table["equivalence_p_adjusted"] = holm(table["equivalence_p"].to_numpy())
    table["margin_pp"] = float(margin)
    table["mde_pp"] = [power.mde(r.se_pp, significance, power_level, len(table), r.df) for r in table.itertuples()]
    identical = (table["identical"] if "identical" in table        # a table already adjusted keeps its note
                 else table["note"] == power.IDENTICAL if "note" in table else pd.Series(False, index=table.index))
    table["note"] = [power.note(bool(i), m) for i, m in zip(identical, table["mde_pp"])]
    table.loc[table["note"] == power.IDENTICAL, "mde_pp"] = float("nan")      # no spread: no power to speak of
    table["verdict"] = [power.verdict(r.diff_pp, r.p_adjusted, r.equivalence_p_adjusted, significance)
                        if not r.note else "inconclusive" for r in table.itertuples()]
    table.loc[table["note"] != "", "significant"] = False
    return table
