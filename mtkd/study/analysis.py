"""Pure analysis functions over teacher logits, probabilities, predictions and summary frames.

Everything here takes numpy arrays or pandas frames and returns numbers or frames;
nothing reads files (that is :mod:`mtkd.study.results`) and nothing draws (that is
:mod:`mtkd.report.figures`). Conventions used throughout:

* probabilities are arrays ``(N, C)`` (one teacher) or ``(N, K, C)`` (K teachers);
  teacher predictions are integer arrays ``(N, K)``;
* entropies and divergences use the natural log (nats);
* ``share``, ``accuracy``, ``pct_*`` and scores are percentages (0-100);
  ``*_rate``, ``gap_closed`` and ECE are fractions (0-1);
* student predictions may be ``(N,)`` (one seed) or ``(S, N)`` (S seeds); per-seed
  numbers are averaged over seeds.
"""
from __future__ import annotations

import itertools
import math
from typing import Mapping

import numpy as np
import pandas as pd

REGIONS = ("all_agree", "partial", "full_disagree")
FAILURE_CATEGORIES = ("all_teachers_wrong", "teacher_right", "teachers_disagreed")
FAILURE_LABELS = {
    "all_teachers_wrong": "all teachers also wrong",
    "teacher_right": "teachers right, transfer failed",
    "teachers_disagreed": "teachers disagreed",
}
REGION_LABELS = {"all_agree": "all agree", "partial": "partial disagreement", "full_disagree": "full disagreement"}
STUDENT_KINDS = ("baseline", "single", "multi")
KIND_ORDER = ("teacher", "baseline", "single", "multi")
LN2 = math.log(2.0)


# --------------------------------------------------------------------------- basics

def softmax(logits, T: float = 1.0) -> np.ndarray:
    """Numerically stable softmax of ``logits / T`` over the last axis (float64).

    ``-inf`` logits (e.g. log-probabilities of impossible classes) give probability 0.
    """
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    z = np.asarray(logits, dtype=np.float64) / T
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy(probs) -> np.ndarray:
    """Shannon entropy in nats over the last axis, with ``0 * log 0 = 0``."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def sharpen(probs, T: float = 1.0) -> np.ndarray:
    """Re-temper probabilities: ``softmax(log p / T)``, i.e. what ``softmax(z / T)`` gives for ``p = softmax(z)``."""
    p = np.asarray(probs, dtype=np.float64)
    if T == 1.0:
        return p / p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return softmax(np.log(p), T)


def js_divergence(p, q) -> np.ndarray:
    """Jensen-Shannon divergence (nats, in ``[0, ln 2]``) between distributions over the last axis."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)
    js = entropy(m) - 0.5 * (entropy(p) + entropy(q))
    return np.clip(js, 0.0, LN2)


def mean_pairwise_js(probs) -> np.ndarray:
    """Per example, the mean JS divergence over all teacher pairs: ``probs (N, K, C) -> (N,)``.

    With one teacher there are no pairs and the result is 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"probs must be (N, K, C), got shape {p.shape}")
    pairs = list(itertools.combinations(range(p.shape[1]), 2))
    if not pairs:
        return np.zeros(p.shape[0])
    return np.mean([js_divergence(p[:, i], p[:, j]) for i, j in pairs], axis=0)


def _per_seed(preds) -> np.ndarray:
    a = np.asarray(preds)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"predictions must be (N,) or (seeds, N), got shape {a.shape}")
    return a


# --------------------------------------------------------------------------- teacher confidence

def teacher_confidence(probs_by_teacher: Mapping[str, np.ndarray], threshold: float = 0.95) -> pd.DataFrame:
    """Confidence of each teacher's soft labels (the original study's "dark knowledge" diagnostic).

    ``probs_by_teacher`` maps teacher name -> probabilities ``(N, C)`` (at T=1).
    Returns one row per teacher: ``teacher, mean_max_prob, mean_entropy`` (nats),
    ``pct_high_conf`` (% of examples with max prob > ``threshold``) and ``n``.
    """
    rows = []
    for name, probs in probs_by_teacher.items():
        p = np.asarray(probs, dtype=np.float64)
        mx = p.max(axis=-1)
        rows.append({"teacher": name, "mean_max_prob": float(mx.mean()) if len(mx) else np.nan,
                     "mean_entropy": float(entropy(p).mean()) if len(mx) else np.nan,
                     "pct_high_conf": float(100.0 * (mx > threshold).mean()) if len(mx) else np.nan,
                     "n": int(len(mx))})
    return pd.DataFrame(rows, columns=["teacher", "mean_max_prob", "mean_entropy", "pct_high_conf", "n"])


def confidence_histogram(probs_by_teacher: Mapping[str, np.ndarray], n_bins: int = 20,
                         low: float | None = None) -> pd.DataFrame:
    """Histogram of each teacher's max probability, for :func:`mtkd.report.figures.max_prob_histogram`.

    Equal-width bins from ``low`` (default ``1/C``, the smallest possible max prob) to 1;
    the last bin includes 1. Returns ``teacher, bin_low, bin_high, count, share`` (share in %).
    """
    rows = []
    for name, probs in probs_by_teacher.items():
        p = np.asarray(probs, dtype=np.float64)
        lo = (1.0 / p.shape[-1]) if low is None else low
        edges = np.linspace(lo, 1.0, n_bins + 1)
        counts, _ = np.histogram(np.clip(p.max(axis=-1), lo, 1.0), bins=edges)
        total = max(int(counts.sum()), 1)
        for b in range(n_bins):
            rows.append({"teacher": name, "bin_low": edges[b], "bin_high": edges[b + 1],
                         "count": int(counts[b]), "share": 100.0 * counts[b] / total})
    return pd.DataFrame(rows, columns=["teacher", "bin_low", "bin_high", "count", "share"])


# --------------------------------------------------------------------------- agreement regions

def agreement_regions(teacher_preds) -> np.ndarray:
    """Label each example by how its K teachers' predicted classes agree.

    * ``"all_agree"``: all K predictions are equal (always the case for K = 1);
    * ``"full_disagree"``: K >= 3 and all K predictions are different (no two teachers
      agree; needs C >= K), the original study's "all teachers predict different classes";
    * ``"partial"``: everything else, i.e. at least two teachers agree but not all
      (two-vs-one for K = 3). With K = 2 any disagreement is ``"partial"``: one-vs-one is
      not called "full" because it is the only way two teachers can disagree.

    ``teacher_preds``: integer array ``(N, K)``. Returns a string array ``(N,)``.
    """
    t = np.asarray(teacher_preds)
    if t.ndim != 2:
        raise ValueError(f"teacher_preds must be (N, K), got shape {t.shape}")
    n, k = t.shape
    out = np.full(n, "partial", dtype=object)
    if n == 0:
        return out.astype(str)
    all_agree = (t == t[:, :1]).all(axis=1)
    out[all_agree] = "all_agree"
    if k >= 3:
        s = np.sort(t, axis=1)
        distinct = (np.diff(s, axis=1) != 0).all(axis=1)
        out[distinct] = "full_disagree"
    return out.astype(str)


def accuracy_by_region(regions, labels, preds_by_method: Mapping[str, np.ndarray],
                       drop_empty: bool = False) -> pd.DataFrame:
    """Each method's accuracy inside each agreement region.

    ``regions``: from :func:`agreement_regions`; ``labels``: ``(N,)``; ``preds_by_method``:
    method -> predictions ``(N,)`` or ``(S, N)`` over seeds. Returns rows
    ``region, share`` (% of all examples in the region), ``n, method, accuracy`` (%, mean over
    seeds), ``accuracy_sd`` (over seeds, nan for one seed), ``n_seeds``. All three regions
    appear in the fixed order of :data:`REGIONS` (empty ones with accuracy nan) unless
    ``drop_empty``.
    """
    regions = np.asarray(regions).astype(str)
    labels = np.asarray(labels)
    n_total = len(labels)
    rows = []
    for region in REGIONS:
        mask = regions == region
        n = int(mask.sum())
        if n == 0 and drop_empty:
            continue
        for method, preds in preds_by_method.items():
            p = _per_seed(preds)
            if p.shape[1] != n_total:
                raise ValueError(f"{method}: {p.shape[1]} predictions for {n_total} labels")
            accs = (100.0 * (p[:, mask] == labels[mask]).mean(axis=1)) if n else np.full(len(p), np.nan)
            rows.append({"region": region, "share": 100.0 * n / n_total if n_total else np.nan, "n": n,
                         "method": method, "accuracy": float(np.mean(accs)),
                         "accuracy_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 and n else np.nan,
                         "n_seeds": len(p)})
    return pd.DataFrame(rows, columns=["region", "share", "n", "method", "accuracy", "accuracy_sd", "n_seeds"])


# --------------------------------------------------------------------------- failure categories

def error_categories(student_pred, labels, teacher_preds) -> np.ndarray:
    """Per example, why the student erred: ``"correct"`` or one of :data:`FAILURE_CATEGORIES`.

    Precedence (so the categories are exclusive and exhaustive over errors):

    1. ``"teachers_disagreed"``: the teachers do not all predict the same class (the student
       had to pick a side and picked a wrong one; this includes disagreements where every
       teacher was wrong);
    2. ``"all_teachers_wrong"``: the teachers agree and all are wrong (distillation could not
       have fixed it);
    3. ``"teacher_right"``: the teachers agree and are right, yet the student erred (the
       knowledge transfer failed). This is the original study's "at least one teacher was
       right" once disagreements are taken out first.

    With one teacher (K = 1) there is never a disagreement. ``student_pred``: ``(N,)``.
    """
    s = np.asarray(student_pred)
    y = np.asarray(labels)
    t = np.asarray(teacher_preds)
    if t.ndim == 1:
        t = t[:, None]
    if s.ndim != 1 or s.shape != y.shape or t.shape[0] != y.shape[0]:
        raise ValueError(f"shapes do not match: student {s.shape}, labels {y.shape}, teachers {t.shape}")
    agree = (t == t[:, :1]).all(axis=1)
    all_wrong = (t != y[:, None]).all(axis=1)
    out = np.full(len(y), "correct", dtype=object)
    err = s != y
    out[err & ~agree] = "teachers_disagreed"
    out[err & agree & all_wrong] = "all_teachers_wrong"
    out[err & agree & ~all_wrong] = "teacher_right"
    return out.astype(str)


def failure_categories(student_pred, labels, teacher_preds) -> pd.DataFrame:
    """Counts of the student's errors by cause (see :func:`error_categories` for the precedence).

    ``student_pred`` is ``(N,)`` or ``(S, N)`` over seeds (counts are summed over seeds;
    ``n_per_seed`` is their mean). Returns the three categories in the order of
    :data:`FAILURE_CATEGORIES`: ``category, label, n, n_per_seed, share`` (% of the errors),
    ``pct_of_examples`` (% of all evaluated examples), ``n_errors, n_seeds``.
    """
    p = _per_seed(student_pred)
    counts = dict.fromkeys(FAILURE_CATEGORIES, 0)
    for row in p:
        cats = error_categories(row, labels, teacher_preds)
        for c in FAILURE_CATEGORIES:
            counts[c] += int((cats == c).sum())
    n_err = sum(counts.values())
    n_all = p.size
    rows = [{"category": c, "label": FAILURE_LABELS[c], "n": counts[c], "n_per_seed": counts[c] / len(p),
             "share": 100.0 * counts[c] / n_err if n_err else np.nan,
             "pct_of_examples": 100.0 * counts[c] / n_all if n_all else np.nan,
             "n_errors": n_err, "n_seeds": len(p)} for c in FAILURE_CATEGORIES]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- summary-frame helpers

def summarize_scores(master: pd.DataFrame, split: str = "test", metric: str | None = None) -> pd.DataFrame:
    """Mean and spread over seeds per (task, method) from ``master_results``-like rows.

    A plain mean (no bootstrap; :mod:`mtkd.study.stats` builds the intervals of ``summary.csv``).
    ``metric=None`` keeps each task's first metric (the headline one). Returns
    ``task, method, kind, metric, split, mean, sd, n_seeds``.
    """
    df = master[master["split"] == split] if "split" in master.columns else master
    df = _headline(df, metric)
    g = df.groupby(["task", "method", "kind", "metric"], sort=False)["score"]
    out = g.agg(mean="mean", sd="std", n_seeds="count").reset_index()
    out.insert(4, "split", split)
    return out


def _headline(df: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    """Keep one metric per task: ``metric`` when given, else the first metric seen per task."""
    if "metric" not in df.columns:
        return df
    if metric is not None:
        out = df[df["metric"] == metric]
        if out.empty:
            raise ValueError(f"no rows with metric {metric!r}; metrics present: {sorted(df['metric'].unique())}")
        return out
    first = df.drop_duplicates("task")[["task", "metric"]]
    return df.merge(first, on=["task", "metric"], how="inner")


def _prep_summary(summary: pd.DataFrame, metric: str | None, split: str | None = "test") -> pd.DataFrame:
    need = {"task", "method", "kind", "mean"}
    missing = need - set(summary.columns)
    if missing:
        raise ValueError(f"summary frame lacks columns {sorted(missing)} (needs task, method, kind, mean)")
    df = summary
    if split is not None and "split" in df.columns and (df["split"] == split).any():
        df = df[df["split"] == split]
    return _headline(df, metric)


def _tasks_in_order(df: pd.DataFrame) -> list:
    return list(dict.fromkeys(df["task"]))


# --------------------------------------------------------------------------- gap closed

def gap_closed(student, no_kd, teacher):
    """Share of the teacher-student gap that distillation closes: ``(student - no_kd) / (teacher - no_kd)``.

    1 = the student matches the teacher, 0 = no better than training without distillation,
    negative = worse than no distillation. nan when ``teacher <= no_kd``: there is no gap to close,
    and a ratio over a negative gap would read backwards (see ``gap_closed_undefined``).
    Works on scalars and arrays.
    """
    s, b, t = (np.asarray(v, dtype=np.float64) for v in (student, no_kd, teacher))
    denom = t - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom <= 0, np.nan, (s - b) / np.where(denom <= 0, 1.0, denom))
    return float(out) if out.ndim == 0 else out


def gap_closed_undefined(no_kd: float, teacher: float) -> str | None:
    """Why gap closed has no value for this task (None when it has one): the teacher must beat no KD."""
    if not (np.isfinite(no_kd) and np.isfinite(teacher)):
        return "not defined: the run has no no-KD baseline or no teacher score"
    if teacher <= no_kd:
        return (f"not defined: the best teacher ({teacher:.2f}) is not above the no-KD baseline ({no_kd:.2f}), "
                "so there is no teacher-student gap to close")
    return None


def gap_closed_table(summary: pd.DataFrame, metric: str | None = None, split: str | None = "test") -> pd.DataFrame:
    """Gap closed by every distilled student, per task, against the best and the mean teacher.

    ``summary``: columns ``task, method, kind, mean`` (e.g. ``summary.csv``), with teacher rows
    (kind ``teacher``) and a ``baseline`` row per task. Returns one row per single/multi
    student: ``task, method, kind, mean, no_kd, best_teacher, best_teacher_score,
    mean_teacher_score, gap_closed_best, gap_closed_mean`` (fractions; nan where not defined) and
    ``gap_closed_note`` (why it is not defined against the best teacher, else empty).
    """
    df = _prep_summary(summary, metric, split)
    rows = []
    for task in _tasks_in_order(df):
        d = df[df["task"] == task]
        teachers = d[d["kind"] == "teacher"]
        base = d[d["kind"] == "baseline"]
        if teachers.empty or base.empty:
            raise ValueError(f"task {task!r}: gap closed needs teacher rows and a baseline row in the summary")
        best = teachers.loc[teachers["mean"].idxmax()]
        b = float(base["mean"].iloc[0])
        t_best, t_mean = float(best["mean"]), float(teachers["mean"].mean())
        for _, r in d[d["kind"].isin(["single", "multi"])].iterrows():
            rows.append({"task": task, "method": r["method"], "kind": r["kind"], "mean": float(r["mean"]),
                         "no_kd": b, "best_teacher": best["method"], "best_teacher_score": t_best,
                         "mean_teacher_score": t_mean,
                         "gap_closed_best": gap_closed(r["mean"], b, t_best),
                         "gap_closed_mean": gap_closed(r["mean"], b, t_mean),
                         "gap_closed_note": gap_closed_undefined(b, t_best) or ""})
    return pd.DataFrame(rows, columns=["task", "method", "kind", "mean", "no_kd", "best_teacher",
                                       "best_teacher_score", "mean_teacher_score", "gap_closed_best",
                                       "gap_closed_mean", "gap_closed_note"])


# --------------------------------------------------------------------------- ranking, multi vs single

def method_ranking(summary: pd.DataFrame, kinds=STUDENT_KINDS, metric: str | None = None,
                   split: str | None = "test") -> pd.DataFrame:
    """Rank of every method within each task (1 = best score) and its mean rank over tasks.

    Ties share the best rank of the tie ("competition" ranking: scores 90, 90, 80 rank
    1, 1, 3). Only methods of ``kinds`` are ranked (students by default). Returns a wide
    frame ``method, kind, <one column per task>, mean_rank``, sorted by mean rank; a method
    missing on a task has rank nan there and its mean rank is over the tasks it has.
    """
    df = _prep_summary(summary, metric, split)
    df = df[df["kind"].isin(kinds)] if kinds is not None else df
    tasks = _tasks_in_order(df)
    methods = list(dict.fromkeys(df["method"]))
    kind_of = dict(zip(df["method"], df["kind"]))
    out = pd.DataFrame({"method": methods, "kind": [kind_of[m] for m in methods]})
    for task in tasks:
        d = df[df["task"] == task].drop_duplicates("method").set_index("method")["mean"]
        ranks = d.rank(ascending=False, method="min")
        out[task] = [float(ranks[m]) if m in ranks.index and not np.isnan(ranks[m]) else np.nan for m in methods]
    out["mean_rank"] = out[tasks].mean(axis=1, skipna=True) if tasks else np.nan
    return out.sort_values(["mean_rank", "method"], kind="stable").reset_index(drop=True)


def _best_of(df: pd.DataFrame, task: str, kind: str) -> str | None:
    d = df[(df["task"] == task) & (df["kind"] == kind)].dropna(subset=["mean"])
    if d.empty:
        return None
    return d.loc[d["mean"].idxmax(), "method"]


def multi_vs_single(summary: pd.DataFrame, choice=None, metric: str | None = None,
                    split: str | None = "test") -> pd.DataFrame:
    """Per task, the best multi-teacher student minus the best single-teacher student (pp).

    Which methods count as "best" is decided by ``choice``, so the reported difference is not
    biased by picking on the reporting split:

    * a frame with ``task, method, kind, mean`` (e.g. the *selection* split summary from
      :func:`summarize_scores`): the best single and best multi per task are picked there;
    * a dict ``task -> {"single": method, "multi": method}`` (the run's ``choices.json`` keys
      ``best_single`` / ``best_multi`` work too, see :attr:`mtkd.study.results.RunResults.choices`);
    * ``None``: picked on ``summary`` itself (optimistic; ``chosen_on`` says so).

    Returns ``task, best_single, single_score, best_multi, multi_score, advantage_pp, chosen_on``.
    """
    df = _prep_summary(summary, metric, split)
    if isinstance(choice, pd.DataFrame):
        chooser = _prep_summary(choice, metric, split=None)
        source = "selection frame"
    else:
        chooser = df
        source = "given" if isinstance(choice, Mapping) else "same split (optimistic)"
    rows = []
    for task in _tasks_in_order(df):
        if isinstance(choice, Mapping):
            if task not in choice:
                raise ValueError(f"choice has no entry for task {task!r}")
            c = choice[task]
            s_m, m_m = c.get("single", c.get("best_single")), c.get("multi", c.get("best_multi"))
        else:
            s_m, m_m = _best_of(chooser, task, "single"), _best_of(chooser, task, "multi")
        d = df[df["task"] == task].drop_duplicates("method").set_index("method")["mean"]
        s = float(d[s_m]) if s_m in d.index else np.nan
        m = float(d[m_m]) if m_m in d.index else np.nan
        rows.append({"task": task, "best_single": s_m, "single_score": s, "best_multi": m_m,
                     "multi_score": m, "advantage_pp": m - s, "chosen_on": source})
    return pd.DataFrame(rows, columns=["task", "best_single", "single_score", "best_multi", "multi_score",
                                       "advantage_pp", "chosen_on"])


# --------------------------------------------------------------------------- soft-label diversity

def soft_label_diversity(teacher_logits, fused: Mapping[str, np.ndarray] | None = None,
                         teacher_names=None, temperature: float = 1.0) -> dict:
    """How different the soft labels are: the quantities behind "low soft-label diversity".

    ``teacher_logits``: ``(N, K, C)``; ``fused``: fuser -> fused probabilities ``(N, C)`` at
    T=1 (e.g. :meth:`mtkd.study.results.RunResults.fused_targets`). All distributions are taken at
    ``temperature`` (fused probabilities are re-tempered as ``softmax(log p / T)``).

    Returns a dict:

    * ``mean_js``: mean over examples and teacher pairs of the JS divergence (nats, in
      ``[0, ln 2]``; 0 = identical soft labels); ``mean_js_norm`` = ``mean_js / ln 2``;
    * ``pairwise_js``: frame ``teacher_a, teacher_b, js`` (mean over examples);
    * ``disagreement_rate``: fraction of examples whose teacher argmaxes are not all equal;
    * ``targets``: frame ``target, kind`` (teacher / fuser), ``mean_max_prob,
      mean_one_minus_max, mean_entropy`` (nats), ``mean_entropy_norm`` (entropy / ln C):
      how far each soft target is from a one-hot label on average;
    * ``n``, ``k``, ``c``, ``temperature``.
    """
    z = np.asarray(teacher_logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"teacher_logits must be (N, K, C), got shape {z.shape}")
    n, k, c = z.shape
    names = list(teacher_names) if teacher_names is not None else [f"teacher{i}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} teacher names for {k} teachers")
    p = softmax(z, temperature)
    pairs = []
    for i, j in itertools.combinations(range(k), 2):
        pairs.append({"teacher_a": names[i], "teacher_b": names[j], "js": float(js_divergence(p[:, i], p[:, j]).mean())})
    pairwise = pd.DataFrame(pairs, columns=["teacher_a", "teacher_b", "js"])
    preds = z.argmax(axis=-1)
    disagree = ~(preds == preds[:, :1]).all(axis=1)
    targets = []

    def _row(name, kind, q):
        mx = q.max(axis=-1)
        h = entropy(q)
        targets.append({"target": name, "kind": kind, "mean_max_prob": float(mx.mean()),
                        "mean_one_minus_max": float((1 - mx).mean()), "mean_entropy": float(h.mean()),
                        "mean_entropy_norm": float(h.mean() / math.log(c))})

    for i, name in enumerate(names):
        _row(name, "teacher", p[:, i])
    for name, q in (fused or {}).items():
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (n, c):
            raise ValueError(f"fused target {name!r} has shape {q.shape}, expected {(n, c)}")
        _row(name, "fuser", sharpen(q, temperature))
    mean_js = float(pairwise["js"].mean()) if len(pairwise) else 0.0
    return {"mean_js": mean_js, "mean_js_norm": mean_js / LN2, "pairwise_js": pairwise,
            "disagreement_rate": float(disagree.mean()) if n else np.nan,
            "targets": pd.DataFrame(targets), "n": n, "k": k, "c": c, "temperature": temperature}


# --------------------------------------------------------------------------- calibration

def reliability_curve(probs, labels, n_bins: int = 15) -> pd.DataFrame:
    """Calibration per confidence bin: ``bin, bin_low, bin_high, confidence, accuracy, count``.

    Equal-width bins over the max probability in ``[0, 1]``; a bin holds ``low < conf <= high``
    (the first bin also holds 0). ``confidence`` and ``accuracy`` are fractions, nan in
    empty bins.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = p.max(axis=-1)
    correct = (p.argmax(axis=-1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for i in range(n_bins):
        m = b == i
        cnt = int(m.sum())
        rows.append({"bin": i, "bin_low": edges[i], "bin_high": edges[i + 1],
                     "confidence": float(conf[m].mean()) if cnt else np.nan,
                     "accuracy": float(correct[m].mean()) if cnt else np.nan, "count": cnt})
    return pd.DataFrame(rows)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error (fraction): ``sum_b (n_b / N) * |accuracy_b - confidence_b|``.

    Equal-width bins on the max probability, as in :func:`reliability_curve`.
    """
    curve = reliability_curve(probs, labels, n_bins)
    n = curve["count"].sum()
    if n == 0:
        return float("nan")
    c = curve[curve["count"] > 0]
    return float((c["count"] / n * (c["accuracy"] - c["confidence"]).abs()).sum())


# --------------------------------------------------------------------------- diversity vs advantage

def diversity_vs_advantage(per_task: pd.DataFrame, x: str = "diversity", y: str = "advantage") -> dict:
    """Correlation across tasks between soft-label diversity and the multi-teacher advantage.

    ``per_task``: one row per task with columns ``task, diversity, advantage`` (e.g. mean JS
    and ``advantage_pp``). Returns ``n, spearman_rho, spearman_p, pearson_r, pearson_p, note``.
    With fewer than 3 tasks (or a constant column) the correlations are nan and ``note``
    says why: the hypothesis "diversity explains multi-teacher gains" cannot be tested then.
    """
    from scipy import stats as st

    d = per_task[[x, y]].astype(float).dropna()
    n = len(d)
    out = {"n": n, "spearman_rho": np.nan, "spearman_p": np.nan, "pearson_r": np.nan, "pearson_p": np.nan,
           "note": ""}
    if n < 3:
        out["note"] = f"only {n} task(s) with both values: a correlation needs at least 3"
        return out
    if d[x].nunique() < 2 or d[y].nunique() < 2:
        out["note"] = "a column is constant across tasks: the correlation is undefined"
        return out
    rho, sp = st.spearmanr(d[x], d[y])
    r, pp = st.pearsonr(d[x], d[y])
    out.update(spearman_rho=float(rho), spearman_p=float(sp), pearson_r=float(r), pearson_p=float(pp))
    out["note"] = f"{n} tasks" + ("; few tasks, so the p-values are rough" if n < 8 else "")
    return out


# --------------------------------------------------------------------------- per-class F1

def per_class_f1(labels, preds, num_classes: int) -> np.ndarray:
    """F1 of each class in percent, ``2 TP / (2 TP + FP + FN)``: macro-F1 is their mean, so a rare class
    (TREC's ABBR) moves it as much as a common one; nan for a class absent from both labels and preds."""
    y, p = np.asarray(labels), np.asarray(preds)
    tp = np.bincount(y[y == p], minlength=num_classes).astype(float)
    fp = np.bincount(p, minlength=num_classes) - tp
    fn = np.bincount(y, minlength=num_classes) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 100 * 2 * tp / np.where(denom > 0, denom, 1), np.nan)
