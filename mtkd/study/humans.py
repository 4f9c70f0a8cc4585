"""Do teachers, fused targets and students hesitate where people do? (issue 19)

A task with ``label_counts_fields`` carries, per example, how many annotators chose each class
(SNLI: five for nearly every test pair). Their share ``h = n / sum(n)`` is the human label
distribution; every model's distribution ``q`` is compared with it on the examples that have counts:

* ``KL(h || q) = sum_c h_c (ln h_c - ln q_c)`` in nats (``0 ln 0 = 0``): the loss of coding the
  people's votes with the model; infinite-ish where the model puts ~0 on a class people chose,
  so ``q`` is floored at ``EPS``.
* the Jensen-Shannon **distance** (ChaosNLI's "JSD"): ``sqrt(JSD(h, q))`` with
  ``JSD = (KL(h || m) + KL(q || m)) / 2``, ``m = (h + q) / 2``, base-2 logarithms, so it lies in [0, 1].
* the Pearson correlation, over examples, of the model's entropy ``H(q) = -sum q ln q`` with
  the human entropy ``H(h)``: does the model hesitate on the items people disagree on.
* accuracy (against the gold label) by human agreement level ``max_c n_c / sum_c n_c``, written
  ``k/n`` (``5/5``, ``4/5``, ``3/5`` for SNLI's five annotators).

Smoothing alone moves KL a lot (an over-confident model gains most from it), so each model is also
compared at its own temperature ``T*``: the one minimising the mean ``KL(h || softmax(ln q / T))``
on the selection split (fitted there, reported on test). Intervals are percentile bootstraps over
examples, and over seeds as well for students (seeds and examples resampled together).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtkd.study.methods import Method

EPS = 1e-12
LEVELS = ("5/5", "4/5", "3/5")          # the agreement levels the issue names (five annotators)
T_BOUNDS = (0.05, 20.0)                  # the fitted temperature's search range
MIN_FIT_ROWS = 5                         # fewer selection rows with counts: no fitted temperature


def has_counts(counts) -> np.ndarray:
    """Rows that carry human counts (a row of zeros carries none)."""
    return np.asarray(counts).sum(axis=1) > 0


def human_distribution(counts) -> np.ndarray:
    """Counts (N, C) -> shares (N, C); rows without counts are NaN."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.full(counts.shape, np.nan), where=total > 0)


def agreement_level(counts) -> np.ndarray:
    """Per row ``"k/n"``: the largest class count k of n annotator labels ("" without counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    top, total = counts.max(axis=1), counts.sum(axis=1)
    return np.array([f"{k}/{n}" if n > 0 else "" for k, n in zip(top, total)], dtype=object)


def entropy(p) -> np.ndarray:
    """Row entropies in nats, ``-sum p ln p`` with ``0 ln 0 = 0``."""
    p = np.asarray(p, dtype=float)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def kl_divergence(p, q) -> np.ndarray:
    """Row-wise ``KL(p || q)`` in nats; ``q`` floored at EPS so a missed class costs ~ln(1/EPS), not inf."""
    p, q = np.asarray(p, dtype=float), np.maximum(np.asarray(q, dtype=float), EPS)
    return np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0), axis=-1)


def js_distance(p, q) -> np.ndarray:
    """Row-wise Jensen-Shannon distance, base 2: ``sqrt((KL(p||m) + KL(q||m)) / 2)``, m the midpoint, in [0, 1]."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    m = (p + q) / 2
    jsd = (kl_divergence(p, m) + kl_divergence(q, m)) / (2 * np.log(2))
    return np.sqrt(np.maximum(jsd, 0.0))


def tempered(probs, T: float) -> np.ndarray:
    """``softmax(ln q / T)``: q sharpened (T < 1) or smoothed (T > 1); for logits z, ``softmax(z / T)``."""
    logq = np.log(np.maximum(np.asarray(probs, dtype=float), EPS)) / float(T)
    logq -= logq.max(axis=-1, keepdims=True)
    e = np.exp(logq)
    return e / e.sum(axis=-1, keepdims=True)


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(probs, human, bounds=T_BOUNDS, iters: int = 80) -> float:
    """The T in ``bounds`` minimising mean ``KL(human || softmax(ln q / T))``: golden-section search on ln T.

    The mean KL is smooth in ln T and, for one family ``q^(1/T)``, unimodal in practice; 80 golden
    steps shrink the bracket by 0.618^80, far below any printed digit."""
    probs, human = np.asarray(probs, dtype=float), np.asarray(human, dtype=float)

    def loss(log_t: float) -> float:
        return float(kl_divergence(human, tempered(probs, np.exp(log_t))).mean())

    a, b = np.log(bounds[0]), np.log(bounds[1])
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = loss(d)
    return float(np.exp((a + b) / 2))


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of x, y (R, N); NaN where either row is constant."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
    return np.divide((x * y).sum(-1), den, out=np.full(den.shape, np.nan), where=den > 0)


def resamples(n_seeds: int, n: int, B: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap indices: seeds (B, S) and examples (B, N), drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_seeds, size=(B, n_seeds)), rng.integers(0, n, size=(B, n))


def interval(point: float, boot: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(point, lo, hi): the percentile interval of the bootstrap replicates (NaN replicates ignored)."""
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return float(point), float("nan"), float("nan")
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(point), float(lo), float(hi)


def mean_ci(values, B: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean over seeds and examples of per-example values (S, N) with its bootstrap interval."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    si, ei = resamples(v.shape[0], v.shape[1], B, seed)
    # per resample: the mean over the drawn seeds of the mean over the drawn examples
    per_seed = np.stack([v[s][ei].mean(axis=1) for s in range(v.shape[0])], axis=1)   # (B, S)
    boot = np.take_along_axis(per_seed, si, axis=1).mean(axis=1)
    return interval(v.mean(), boot)


def correlation_ci(x, y, B: int, seed: int = 0) -> tuple[float, float, float]:
    """Pearson r of x (S, N) with y (N,) averaged over seeds, with its bootstrap interval."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    r = pearson_rows(x, np.broadcast_to(y, x.shape))
    point = float(r[np.isfinite(r)].mean()) if np.isfinite(r).any() else float("nan")
    si, ei = resamples(x.shape[0], x.shape[1], B, seed)
    per_seed = np.stack([pearson_rows(x[s][ei], y[ei]) for s in range(x.shape[0])], axis=1)
    boot = np.take_along_axis(per_seed, si, axis=1).mean(axis=1)
    return interval(point, boot)


def model_metrics(probs, human, labels, levels, B: int, seed: int = 0) -> dict:
    """Every metric of one model, probs (S, N, C) over S seeds (1 for teachers and targets).

    Returns metric -> (value, lo, hi): ``kl``, ``js_distance``, ``entropy_corr``, ``accuracy``,
    and ``accuracy <level>`` for each level in LEVELS present."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim == 2:
        probs = probs[None]
    correct = (probs.argmax(-1) == np.asarray(labels)[None]).astype(float)
    out = {"kl": mean_ci(kl_divergence(human[None], probs), B, seed),
           "js_distance": mean_ci(js_distance(human[None], probs), B, seed),
           "entropy_corr": correlation_ci(entropy(probs), entropy(human), B, seed),
           "accuracy": mean_ci(100 * correct, B, seed)}
    for level in LEVELS:
        at = np.asarray(levels) == level
        if at.any():
            out[f"accuracy {level}"] = mean_ci(100 * correct[:, at], B, seed)
    return out


def paired_difference(a, b, B: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired examples (a, b per-example values (S, N) or (N,)), bootstrap interval.

    Each model's values are first averaged over its seeds, then the same resampled examples are
    used for both (the pairing); seeds resampled per model."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    rng = np.random.default_rng(seed)
    ei = rng.integers(0, a.shape[1], size=(B, a.shape[1]))
    sa = rng.integers(0, a.shape[0], size=(B, a.shape[0]))
    sb = rng.integers(0, b.shape[0], size=(B, b.shape[0]))
    ma = np.take_along_axis(np.stack([r[ei].mean(1) for r in a], 1), sa, 1).mean(1)
    mb = np.take_along_axis(np.stack([r[ei].mean(1) for r in b], 1), sb, 1).mean(1)
    return interval(a.mean() - b.mean(), ma - mb)


# ---------------------------------------------------------------- a finished run

SCALINGS = ("T = 1", "fitted T")


@dataclass
class ModelDist:
    """One model's probabilities on the rows with human counts: split -> (S, N, C), S seeds (1 unless a student)."""
    name: str                                   # teacher:<t>, target:<fuser>, or the student's method
    kind: str                                   # teacher | target | student
    probs: dict[str, np.ndarray]
    T: float = float("nan")                     # fitted on selection (NaN: too few rows with counts there)

    def at(self, split: str, scaling: str) -> np.ndarray:
        if scaling == "T = 1":
            return self.probs[split]
        return tempered(self.probs[split], self.T) if np.isfinite(self.T) else np.full_like(self.probs[split], np.nan)


@dataclass
class HumanData:
    """A task's models against its human label distributions (see :func:`human_data`)."""
    task: str
    label_names: list[str]
    human: dict[str, np.ndarray]                 # split -> (N, C) shares, rows with counts only
    labels: dict[str, np.ndarray]
    levels: dict[str, np.ndarray]                # split -> "k/n" per row
    idx: dict[str, np.ndarray]
    models: list[ModelDist] = field(default_factory=list)
    best_teacher: str = ""
    notes: list[str] = field(default_factory=list)

    def model(self, name: str) -> ModelDist:
        return next(m for m in self.models if m.name == name)


def tasks_with_counts(run) -> list[str]:
    """The run's tasks (its params', not every folder a past invocation left in data/) whose prepared
    examples carry human label counts."""
    res = run.results
    return [t for t in run.tasks if t in res.tasks and res.task_info(t).get("label_counts_fields")
            and has_counts(res.examples(t)[res.task_info(t)["label_counts_fields"]].to_numpy()).any()]


def human_data(run, task: str) -> HumanData:
    """Every teacher, fused target (gating excluded: its target depends on the student) and student
    (every seed) of a finished run, on the selection and test rows that carry human counts, each
    with its temperature fitted on selection."""
    from mtkd.study import io
    from mtkd.study.pipeline import best_teacher, plan
    res = run.results
    fields = list(res.task_info(task).get("label_counts_fields") or [])
    if not fields:
        raise ValueError(f"task {task!r} carries no human label counts (no label_counts_fields in its task.json)")
    data = HumanData(task, res.label_names(task), {}, {}, {}, {}, best_teacher=best_teacher(run, task))
    rows_of, models = {}, {}
    for split in ("selection", "test"):
        idx, z = res.teacher_logits(task, split)
        ex = res.examples(task, split).set_index("idx").loc[idx]
        counts = ex[fields].to_numpy()
        keep = has_counts(counts)
        rows_of[split] = keep
        data.idx[split], data.labels[split] = idx[keep], ex["label"].to_numpy()[keep]
        data.human[split], data.levels[split] = human_distribution(counts[keep]), agreement_level(counts[keep])
        for k, t in enumerate(res.teachers(task)):
            models.setdefault(("teacher", f"teacher:{t}"), {})[split] = softmax(z[keep, k])[None]
        for fuser, q in res.fused_targets(task, split).items():
            models.setdefault(("target", f"target:{fuser}"), {})[split] = q[keep][None]
    by_method: dict[str, dict[str, list]] = {}
    for unit in plan(run, "students"):
        if unit.task != task:
            continue
        folder = run.unit_dir(unit)
        if not io.is_done(folder):
            raise FileNotFoundError(f"{unit.label}: not trained yet ({folder}); finish the run first")
        with np.load(folder / "predictions.npz") as arr:
            for split in ("selection", "test"):
                if not np.array_equal(arr[f"idx_{split}"], res.teacher_logits(task, split)[0]):
                    raise ValueError(f"{folder}: its {split} rows are not the teachers' rows; the cache is stale")
                by_method.setdefault(unit.name, {}).setdefault(split, []).append(
                    softmax(arr[f"logits_{split}"][rows_of[split]]))
    for method, splits in by_method.items():
        models[("student", method)] = {s: np.stack(v) for s, v in splits.items()}
    n_fit = int(rows_of["selection"].sum())
    if n_fit < MIN_FIT_ROWS:
        data.notes.append(f"{task}: only {n_fit} selection rows carry human counts (< {MIN_FIT_ROWS}); "
                          "no temperature is fitted")
    for (kind, name), probs in models.items():
        m = ModelDist(name, kind, probs)
        if n_fit >= MIN_FIT_ROWS:
            sel = probs["selection"]
            flat = sel.reshape(-1, sel.shape[-1])
            m.T = fit_temperature(flat, np.tile(data.human["selection"], (sel.shape[0], 1)))
        data.models.append(m)
    return data


def metrics_table(data: HumanData, B: int, seed: int = 0) -> pd.DataFrame:
    """Long table: task, model, kind, scaling, T, n, metric, value, lo, hi (test rows with counts)."""
    rows = []
    for m in data.models:
        for scaling in SCALINGS:
            probs = m.at("test", scaling)
            if not np.isfinite(probs).all():
                continue
            for metric, (v, lo, hi) in model_metrics(probs, data.human["test"], data.labels["test"],
                                                      data.levels["test"], B, seed).items():
                level = metric.split(" ", 1)[1] if " " in metric else ""
                n = int((data.levels["test"] == level).sum()) if level else len(data.labels["test"])
                rows.append({"task": data.task, "model": m.name, "kind": m.kind, "scaling": scaling,
                             "T": 1.0 if scaling == "T = 1" else m.T, "seeds": probs.shape[0], "n": n,
                             "metric": metric, "value": v, "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def per_example(m: ModelDist, data: HumanData, scaling: str, metric: str) -> np.ndarray:
    """(S, N) per-example values of a model on test: ``kl``, ``js_distance`` or ``correct`` (0/100)."""
    probs = m.at("test", scaling)
    if metric == "correct":
        return 100.0 * (probs.argmax(-1) == data.labels["test"][None])
    return {"kl": kl_divergence, "js_distance": js_distance}[metric](data.human["test"][None], probs)


PAIRED_COLUMNS = ["task", "model", "reference", "scaling", "metric", "level", "n", "difference", "lo", "hi"]


def paired_table(data: HumanData, pairs: list[tuple[str, str]], B: int, seed: int = 0,
                 metrics=("kl", "correct")) -> pd.DataFrame:
    """For each (model, reference): mean difference model - reference per metric and scaling, over all
    test rows with counts and per agreement level, with paired bootstrap intervals. For KL and the JS
    distance a negative difference means the model is closer to the humans than the reference."""
    rows = []
    for name, ref in pairs:
        a_m, b_m = data.model(name), data.model(ref)
        for scaling in SCALINGS:
            if scaling == "fitted T" and not (np.isfinite(a_m.T) and np.isfinite(b_m.T)):
                continue
            for metric in metrics:
                a, b = per_example(a_m, data, scaling, metric), per_example(b_m, data, scaling, metric)
                for level in ("all", *LEVELS):
                    at = np.ones(a.shape[1], bool) if level == "all" else data.levels["test"] == level
                    if not at.any():
                        continue
                    v, lo, hi = paired_difference(a[:, at], b[:, at], B, seed)
                    rows.append({"task": data.task, "model": name, "reference": ref, "scaling": scaling,
                                 "metric": metric, "level": level, "n": int(at.sum()), "difference": v,
                                 "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)          # no pair (no students yet): empty, same columns


def fusion_pairs(data: HumanData) -> list[tuple[str, str]]:
    """Question 1: every fused target against the best single teacher (the study's single_best)."""
    return [(m.name, f"teacher:{data.best_teacher}") for m in data.models if m.kind == "target"]


def student_pairs(data: HumanData) -> list[tuple[str, str]]:
    """Questions 2 and 3: every student of a fused target against the student of the best single teacher."""
    ref = f"single:{data.best_teacher}"
    names = {m.name for m in data.models}
    if ref not in names:
        return []
    return [(m.name, ref) for m in data.models if m.kind == "student" and Method.parse(m.name).kind == "multi"]


__all__ = ["LEVELS", "has_counts", "human_distribution", "agreement_level", "entropy", "kl_divergence",
           "js_distance", "tempered", "softmax", "fit_temperature", "pearson_rows", "mean_ci", "correlation_ci",
           "model_metrics", "paired_difference", "interval", "SCALINGS", "ModelDist", "HumanData",
           "tasks_with_counts", "human_data", "metrics_table", "per_example", "paired_table", "fusion_pairs",
           "student_pairs"]
