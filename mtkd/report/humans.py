"""Notebook 10's tables, figure and answers: teachers, fused targets and students against human labels.

Everything is computed from the finished run's files by `mtkd.study.humans` (logits, fused targets,
student logits, the prepared examples' count columns); the answers to the issue's three questions
are sentences built from those numbers, never written by hand.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mtkd.study import humans as H
from mtkd.study.methods import Method

METRIC_WORDS = {"kl": "KL(human || model) (nats)", "js_distance": "JS distance (base 2)",
                "entropy_corr": "entropy correlation (Pearson r)", "accuracy": "accuracy (%)",
                **{f"accuracy {lv}": f"accuracy on {lv} (%)" for lv in H.LEVELS}}
DIFF_WORDS = {"kl": "KL", "js_distance": "JS distance", "correct": "accuracy (pp)"}


def _cell(v: float, lo: float, hi: float, digits: int) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) else f"{v:.{digits}f}"


def _digits(metric: str) -> int:
    return 1 if metric.startswith("accuracy") or metric == "correct" else 3


def overview(run) -> pd.DataFrame:
    """Per task with human counts and split: examples, those with counts, and how many at each agreement level."""
    rows = []
    res = run.results
    for task in H.tasks_with_counts(run):
        fields = res.task_info(task)["label_counts_fields"]
        for split in ("train", "selection", "test"):
            counts = res.examples(task, split)[fields].to_numpy()
            levels = H.agreement_level(counts)
            row = {"task": task, "split": split, "examples": len(counts), "with counts": int(H.has_counts(counts).sum())}
            row.update({lv: int((levels == lv).sum()) for lv in H.LEVELS})
            row["other levels"] = int(row["with counts"] - sum(row[lv] for lv in H.LEVELS))
            rows.append(row)
    return pd.DataFrame(rows)


def compute(run, tasks=None) -> dict:
    """task -> {"data", "metrics", "fusion", "students"}: one pass over the run (bootstrap: stats.bootstrap)."""
    B = int(run.params.stats.bootstrap)
    out = {}
    for task in tasks if tasks is not None else H.tasks_with_counts(run):
        data = H.human_data(run, task)
        out[task] = {"data": data, "metrics": H.metrics_table(data, B),
                     "fusion": H.paired_table(data, H.fusion_pairs(data), B),
                     "students": H.paired_table(data, H.student_pairs(data), B)}
    return out


def model_table(metrics: pd.DataFrame, scaling: str = "fitted T") -> pd.DataFrame:
    """One row per model: its T and every metric as ``value [lo, hi]`` (95 % bootstrap interval)."""
    m = metrics[metrics["scaling"] == scaling]
    rows = []
    for (task, model, kind), g in m.groupby(["task", "model", "kind"], sort=False):
        row = {"task": task, "model": model, "kind": kind, "T": round(float(g["T"].iloc[0]), 2),
               "seeds": int(g["seeds"].iloc[0])}
        for r in g.itertuples():
            row[METRIC_WORDS.get(r.metric, r.metric)] = _cell(r.value, r.lo, r.hi, _digits(r.metric))
        rows.append(row)
    return pd.DataFrame(rows)


def difference_table(paired: pd.DataFrame, metric: str = "kl", scaling: str = "fitted T") -> pd.DataFrame:
    """Model - reference, paired over test examples, overall and per agreement level, ``diff [lo, hi]``."""
    p = paired[(paired["metric"] == metric) & (paired["scaling"] == scaling)]
    rows = []
    for (model, ref), g in p.groupby(["model", "reference"], sort=False):
        row = {"model": model, "reference": ref}
        for r in g.itertuples():
            row[f"{r.level} (n = {r.n})"] = _cell(r.difference, r.lo, r.hi, _digits(metric))
        rows.append(row)
    return pd.DataFrame(rows)


def kl_figure(metrics: pd.DataFrame, task: str) -> go.Figure:
    """KL(human || model) per model at T = 1 and at its fitted T, with 95 % intervals."""
    fig = go.Figure()
    m = metrics[(metrics["task"] == task) & (metrics["metric"] == "kl")]
    for scaling, color in zip(H.SCALINGS, ("#9aa5b1", "#1f77b4")):
        s = m[m["scaling"] == scaling]
        fig.add_bar(name=scaling, x=s["model"], y=s["value"], marker_color=color,
                    error_y={"type": "data", "symmetric": False, "array": s["hi"] - s["value"],
                             "arrayminus": s["value"] - s["lo"]})
    fig.update_layout(barmode="group", title=f"{task}: KL(human || model) on the test items with human labels "
                      "(lower = closer to people)", yaxis_title="KL (nats)", xaxis_tickangle=-40,
                      template="plotly_white", height=460, margin={"b": 140})
    return fig


def _tally(p: pd.DataFrame) -> tuple[int, int, int]:
    """(closer, further, undecided) among rows whose difference interval excludes 0 below / above."""
    closer, further = int((p["hi"] < 0).sum()), int((p["lo"] > 0).sum())
    return closer, further, len(p) - closer - further


def answers(result: dict, scaling: str = "fitted T") -> list[str]:
    """The issue's three questions, answered in sentences from one task's numbers (``compute(run)[task]``)."""
    data, metrics = result["data"], result["metrics"]
    task, best = data.task, f"teacher:{data.best_teacher}"
    out = []
    fus = result["fusion"]
    f = fus[(fus["metric"] == "kl") & (fus["scaling"] == scaling) & (fus["level"] == "all")]
    if len(f):
        closer, further, undecided = _tally(f)
        top = f.sort_values("difference").iloc[0]
        out.append(f"**Does fusing move the target toward human uncertainty?** On {task} at {scaling}, "
                   f"{closer} of {len(f)} fused targets have a lower KL to the humans than the best single "
                   f"teacher ({best}) with a 95 % interval below 0, {further} a higher one, {undecided} undecided; "
                   f"the most favourable is {top['model']} ({top['difference']:+.3f} nats "
                   f"[{top['lo']:+.3f}, {top['hi']:+.3f}], paired over {int(top['n'])} test items).")
    st = result["students"]
    s = st[(st["metric"] == "kl") & (st["scaling"] == scaling) & (st["level"] == "all")]
    if len(s):
        closer, further, undecided = _tally(s)
        corr = metrics[(metrics["metric"] == "entropy_corr") & (metrics["scaling"] == scaling)
                       & (metrics["kind"] == "student")]
        multi = corr[[Method.parse(m).kind == "multi" for m in corr["model"]]]["value"]
        single = corr[corr["model"] == f"single:{data.best_teacher}"]["value"]
        out.append(f"**Do students of fused targets hesitate where people do?** {closer} of {len(s)} multi-teacher "
                   f"students are closer to the humans (KL) than the student of {data.best_teacher} with an interval "
                   f"below 0, {further} further, {undecided} undecided; their entropy correlates with the human "
                   f"entropy at r = {multi.mean():.3f} on average against r = {float(single.mean()):.3f} for the "
                   f"single-teacher student.")
        by_level = st[(st["metric"] == "kl") & (st["scaling"] == scaling) & (st["level"] != "all")]
        if len(by_level):
            mean = by_level.groupby("level", sort=False)["difference"].mean()
            n = by_level.groupby("level", sort=False)["n"].first()
            acc = st[(st["metric"] == "correct") & (st["scaling"] == scaling) & (st["level"] != "all")]
            acc_mean = acc.groupby("level", sort=False)["difference"].mean()
            largest = mean.abs().idxmax()
            parts = ", ".join(f"{lv}: {mean[lv]:+.3f} nats, {acc_mean.get(lv, np.nan):+.1f} pp (n = {n[lv]})"
                              for lv in mean.index)
            decided = by_level[(by_level["hi"] < 0) | (by_level["lo"] > 0)]
            out.append(f"**Is the multi-vs-single difference concentrated in the low-agreement items?** Mean KL and "
                       f"accuracy difference (multi - single) by agreement level: {parts}. It is largest in size at "
                       f"{largest}; {len(decided)} of {len(by_level)} per-level differences have an interval that "
                       f"excludes 0.")
    return out


__all__ = ["overview", "compute", "model_table", "difference_table", "kl_figure", "answers", "METRIC_WORDS"]
