"""Plotly figures over the outputs of :mod:`mtkd.study.analysis` (one function per analysis).

Every function takes a frame (as returned by the matching analysis function or read from
the run folder) and returns a ``plotly.graph_objects.Figure``; hovering shows the numbers
behind each mark. Colours are consistent across figures: each *kind* of method has a hue
(teacher grey, baseline amber, single-teacher blue, multi-teacher red) and methods of one
kind get shades of it (:func:`method_colors`). Frames with a ``task`` column are drawn
per task (grouped on the x axis or one panel per task).

Offline rendering (no CDN) is set up by the notebook renderer, not here.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mtkd.study.analysis import FAILURE_CATEGORIES, FAILURE_LABELS, KIND_ORDER, REGION_LABELS, REGIONS, diversity_vs_advantage
from mtkd.study.methods import Method

KIND_COLORS = {"teacher": "#6b6b6b", "baseline": "#d08c00", "single": "#1f77b4", "multi": "#d62728"}
KIND_SCALES = {"teacher": "Greys", "baseline": "YlOrBr", "single": "Blues", "multi": "Reds"}
CATEGORY_COLORS = {"all_teachers_wrong": "#7f7f7f", "teacher_right": "#d62728", "teachers_disagreed": "#ff9f1c"}
REGION_COLORS = {"all_agree": "#2ca02c", "partial": "#ff9f1c", "full_disagree": "#9467bd"}
SIGNIFICANT_COLORS = {True: "#d62728", False: "#9aa5b1"}
VERDICT_STYLE = {"better": ("#2ca02c", "triangle-up"), "equivalent": ("#1f77b4", "diamond"),   # colour, marker
                 "worse": ("#d62728", "triangle-down"), "inconclusive": ("#9aa5b1", "circle")}
LAYOUT = dict(template="plotly_white", hoverlabel=dict(namelength=-1), margin=dict(t=70, l=60, r=20, b=60))


# --------------------------------------------------------------------------- colours and helpers

def kind_of(method: str) -> str:
    """The colour family of a method: its kind; fused targets (``target:<f>``) and labels that are no
    method name (a curve's own label) are drawn as multi."""
    try:
        kind = Method.parse(method).kind
    except ValueError:
        return "multi"
    return "multi" if kind == "target" else kind


def method_colors(methods) -> dict[str, str]:
    """A colour per method: the hue of its kind, one shade per method within the kind."""
    methods = list(dict.fromkeys(methods))
    out = {}
    for kind in KIND_ORDER:
        ms = [m for m in methods if kind_of(m) == kind]
        if not ms:
            continue
        if len(ms) == 1:
            out[ms[0]] = KIND_COLORS[kind]
            continue
        lo, hi = (0.35, 0.8) if kind == "teacher" else (0.45, 0.95)
        shades = sample_colorscale(KIND_SCALES[kind], list(np.linspace(lo, hi, len(ms))))
        out.update(zip(ms, shades))
    return out


def _teacher_colors(names) -> dict[str, str]:
    cols = method_colors([f"teacher:{n}" for n in names])
    return {n: cols[f"teacher:{n}"] for n in names}


def _tasks(df: pd.DataFrame) -> list:
    return list(dict.fromkeys(df["task"])) if "task" in df.columns else [None]


def _sub(df: pd.DataFrame, task) -> pd.DataFrame:
    return df if task is None else df[df["task"] == task]


def _finish(fig: go.Figure, title: str, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), **{**LAYOUT, **kw})
    return fig


def _rows(*cols) -> list:
    """customdata as a list of rows keeping each column's type (strings stay strings, numbers numbers)."""
    def py(v):
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return float(v)
        if isinstance(v, (np.bool_,)):
            return bool(v)
        return v
    return [[py(v) for v in row] for row in zip(*[list(c) for c in cols])]


def _method_order(df: pd.DataFrame, col: str = "method") -> list:
    ms = list(dict.fromkeys(df[col]))
    return sorted(ms, key=lambda m: (KIND_ORDER.index(kind_of(m)), ms.index(m)))


# --------------------------------------------------------------------------- teacher confidence

def confidence_bars(conf: pd.DataFrame, title: str = "Teacher confidence: how close the soft labels are to one-hot") -> go.Figure:
    """Three panels (mean max prob, mean entropy, % max prob > 0.95) per task and teacher.

    ``conf``: :func:`mtkd.study.analysis.teacher_confidence` rows, optionally with a ``task`` column.
    """
    tasks = _tasks(conf)
    x = [t if t is not None else "all" for t in tasks]
    teachers = list(dict.fromkeys(conf["teacher"]))
    colors = _teacher_colors(teachers)
    panels = [("mean_max_prob", "mean max probability", ".4f"), ("mean_entropy", "mean entropy (nats)", ".4f"),
              ("pct_high_conf", "% examples with max prob > 0.95", ".1f")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.08)
    for ti, teacher in enumerate(teachers):
        d = conf[conf["teacher"] == teacher]
        rows = [_sub(d, t) for t in tasks]
        cd = [[float(r["mean_max_prob"].iloc[0]), float(r["mean_entropy"].iloc[0]), float(r["pct_high_conf"].iloc[0]),
               int(r["n"].iloc[0])] if len(r) else [np.nan] * 4 for r in rows]
        for ci, (col, _, _) in enumerate(panels):
            fig.add_trace(go.Bar(
                x=x, y=[c[ci] for c in cd], name=teacher, legendgroup=teacher, showlegend=ci == 0,
                marker_color=colors[teacher], customdata=cd,
                hovertemplate=(f"teacher {teacher}<br>task %{{x}}<br>mean max prob %{{customdata[0]:.4f}}"
                               "<br>mean entropy %{customdata[1]:.4f} nats<br>max prob > 0.95: %{customdata[2]:.1f}%"
                               "<br>n = %{customdata[3]}<extra></extra>")), row=1, col=ci + 1)
    fig.update_xaxes(title_text="task")
    fig.update_yaxes(title_text="probability", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=1, col=2)
    fig.update_yaxes(title_text="% of examples", row=1, col=3)
    return _finish(fig, title, barmode="group", legend_title_text="teacher")


def max_prob_histogram(hist: pd.DataFrame, title: str = "Distribution of each teacher's max probability") -> go.Figure:
    """Histogram of max probabilities per teacher (one panel per task when ``task`` is a column).

    ``hist``: :func:`mtkd.study.analysis.confidence_histogram` rows (teacher, bin_low, bin_high, count, share).
    """
    tasks = _tasks(hist)
    teachers = list(dict.fromkeys(hist["teacher"]))
    colors = _teacher_colors(teachers)
    fig = make_subplots(rows=len(tasks), cols=1, subplot_titles=[t or "" for t in tasks], vertical_spacing=0.12)
    for r, task in enumerate(tasks, 1):
        for teacher in teachers:
            d = _sub(hist, task)
            d = d[d["teacher"] == teacher]
            fig.add_trace(go.Bar(
                x=(d["bin_low"] + d["bin_high"]) / 2, y=d["share"], width=d["bin_high"] - d["bin_low"],
                name=teacher, legendgroup=teacher, showlegend=r == 1, marker_color=colors[teacher], opacity=0.6,
                customdata=np.c_[d["bin_low"], d["bin_high"], d["count"]],
                hovertemplate=(f"teacher {teacher}<br>max prob in (%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                               "<br>%{y:.1f}% of examples (n = %{customdata[2]})<extra></extra>")), row=r, col=1)
        fig.update_yaxes(title_text="% of examples", row=r, col=1)
    fig.update_xaxes(title_text="max probability of the teacher's softmax (T = 1)", row=len(tasks), col=1)
    return _finish(fig, title, barmode="overlay", height=max(350, 260 * len(tasks)), legend_title_text="teacher")


# --------------------------------------------------------------------------- agreement regions

def agreement_bars(regions: pd.DataFrame,
                   title: str = "Teacher agreement regions: share of examples and each student's accuracy") -> go.Figure:
    """Left: share of examples per agreement region; right: accuracy per region, grouped by method.

    ``regions``: :func:`mtkd.study.analysis.accuracy_by_region` rows, optionally with ``task``
    (one row of panels per task).
    """
    tasks = _tasks(regions)
    methods = _method_order(regions)
    colors = method_colors(methods)
    titles = []
    for t in tasks:
        titles += [f"{t + ': ' if t else ''}share of examples", f"{t + ': ' if t else ''}student accuracy by region"]
    fig = make_subplots(rows=len(tasks), cols=2, column_widths=[0.3, 0.7], subplot_titles=titles,
                        horizontal_spacing=0.08, vertical_spacing=0.15)
    for r, task in enumerate(tasks, 1):
        d = _sub(regions, task)
        share = d.drop_duplicates("region").set_index("region").reindex(list(REGIONS))
        labels = [REGION_LABELS[g] for g in REGIONS]
        fig.add_trace(go.Bar(
            x=labels, y=share["share"], marker_color=[REGION_COLORS[g] for g in REGIONS], showlegend=False,
            name="share", customdata=share[["n"]].fillna(0).astype(int).to_numpy(),
            hovertemplate="%{x}<br>%{y:.1f}% of examples (n = %{customdata[0]})<extra></extra>"), row=r, col=1)
        for m in methods:
            dm = d[d["method"] == m].set_index("region").reindex(list(REGIONS))
            err = dm["accuracy_sd"] if "accuracy_sd" in dm else None
            fig.add_trace(go.Bar(
                x=labels, y=dm["accuracy"], name=m, legendgroup=m, showlegend=r == 1, marker_color=colors[m],
                error_y=dict(type="data", array=err, visible=bool(err is not None and err.notna().any())),
                customdata=np.c_[dm["n"].fillna(0), dm.get("n_seeds", pd.Series(1, index=dm.index)).fillna(0)],
                hovertemplate=(f"{m}<br>%{{x}}<br>accuracy %{{y:.1f}}% (mean over %{{customdata[1]}} seeds)"
                               "<br>n = %{customdata[0]} examples<extra></extra>")), row=r, col=2)
        fig.update_yaxes(title_text="% of examples", row=r, col=1)
        fig.update_yaxes(title_text="accuracy (%)", row=r, col=2)
    fig.update_xaxes(title_text="agreement region", row=len(tasks))
    return _finish(fig, title, barmode="group", height=max(420, 330 * len(tasks)), legend_title_text="method")


# --------------------------------------------------------------------------- failure categories

def failure_bars(failures: pd.DataFrame, value: str = "share",
                 title: str = "Why students err: each error's cause") -> go.Figure:
    """Stacked bars of error causes per method (x grouped by task when ``task`` is a column).

    ``failures``: rows of :func:`mtkd.study.analysis.failure_categories` with a ``method`` column
    (and optionally ``task``); ``value`` is ``"share"`` (% of the method's errors) or ``"n"``.
    """
    tasks = _tasks(failures)
    methods = _method_order(failures)
    xs_task, xs_method = [], []
    for t in tasks:
        present = set(_sub(failures, t)["method"])
        for m in methods:
            if m in present:
                xs_task.append(t)
                xs_method.append(m)
    x = [xs_task, xs_method] if tasks != [None] else xs_method
    fig = go.Figure()
    for cat in FAILURE_CATEGORIES:
        ys, cd = [], []
        for t, m in zip(xs_task, xs_method):
            d = _sub(failures, t)
            row = d[(d["method"] == m) & (d["category"] == cat)]
            if len(row):
                rr = row.iloc[0]
                ys.append(float(rr[value]))
                cd.append([float(rr["share"]), float(rr["n"]), float(rr.get("n_errors", np.nan)), m])
            else:
                ys.append(np.nan)
                cd.append([np.nan, np.nan, np.nan, m])
        fig.add_trace(go.Bar(
            x=x, y=ys, name=FAILURE_LABELS[cat], marker_color=CATEGORY_COLORS[cat], customdata=cd,
            hovertemplate=(f"%{{customdata[3]}}<br>{FAILURE_LABELS[cat]}<br>%{{customdata[0]:.1f}}% of errors"
                           "<br>%{customdata[1]:.0f} of %{customdata[2]:.0f} errors (all seeds)<extra></extra>")))
    fig.update_xaxes(title_text="student method" + (" (by task)" if tasks != [None] else ""))
    fig.update_yaxes(title_text="% of the student's errors" if value == "share" else "errors (summed over seeds)")
    return _finish(fig, title, barmode="stack", legend_title_text="cause of the error")


# --------------------------------------------------------------------------- gap closed, ranking, advantage

def gap_closed_bars(gap: pd.DataFrame, reference: str = "best",
                    title: str | None = None) -> go.Figure:
    """Share of the teacher-student gap each distilled student closes, per task (in %).

    ``gap``: :func:`mtkd.study.analysis.gap_closed_table`; ``reference`` is ``"best"`` or ``"mean"`` teacher.
    A task whose teacher is not above the no-KD baseline gets no bar but a "not defined" note with the reason.
    """
    col = f"gap_closed_{reference}"
    tcol = "best_teacher_score" if reference == "best" else "mean_teacher_score"
    title = title or f"Gap closed: (student - no KD) / ({reference} teacher - no KD)"
    methods = _method_order(gap)
    colors = method_colors(methods)
    fig = go.Figure()
    for m in methods:
        d = gap[gap["method"] == m]
        fig.add_trace(go.Bar(
            x=d["task"], y=100 * d[col], name=m, marker_color=colors[m],
            customdata=np.c_[d["mean"], d["no_kd"], d[tcol]],
            hovertemplate=(f"{m}<br>task %{{x}}<br>gap closed %{{y:.1f}}%<br>student %{{customdata[0]:.2f}}"
                           f"<br>no KD %{{customdata[1]:.2f}}<br>{reference} teacher %{{customdata[2]:.2f}}"
                           "<extra></extra>")))
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.add_hline(y=100, line_dash="dot", line_color="#888", annotation_text="matches the teacher")
    notes = gap.loc[gap[col].isna(), ["task", "gap_closed_note"]] if "gap_closed_note" in gap else gap.iloc[:0]
    for task, note in notes.drop_duplicates("task").itertuples(index=False):   # no bar: say why, never a number
        fig.add_annotation(x=task, y=0, yshift=14, showarrow=False, font_size=11,
                           text="not defined" if not note else note.split(":", 1)[0],
                           hovertext=note or f"gap closed against the {reference} teacher is not defined: "
                           f"the {reference} teacher is not above the no-KD baseline")
    fig.update_xaxes(title_text="task")
    fig.update_yaxes(title_text="% of the gap closed")
    return _finish(fig, title, barmode="group", legend_title_text="method")


def ranking_heatmap(ranking: pd.DataFrame, title: str = "Method ranking per task (1 = best)") -> go.Figure:
    """Heatmap of ranks, methods x tasks plus the mean rank, each cell annotated.

    ``ranking``: :func:`mtkd.study.analysis.method_ranking` (wide: method, kind, <tasks...>, mean_rank).
    """
    cols = [c for c in ranking.columns if c not in ("method", "kind")]
    z = ranking[cols].to_numpy(dtype=float)
    text = [["" if np.isnan(v) else (f"{v:.2f}" if c == "mean_rank" else f"{v:.0f}") for v, c in zip(row, cols)]
            for row in z]
    xlabels = ["mean rank" if c == "mean_rank" else c for c in cols]
    fig = go.Figure(go.Heatmap(
        z=z, x=xlabels, y=list(ranking["method"]), text=text, texttemplate="%{text}", colorscale="Viridis",
        reversescale=True, colorbar=dict(title="rank"),
        hovertemplate="%{y}<br>%{x}: rank %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="method (sorted by mean rank)")
    fig.update_xaxes(title_text="task", side="bottom")
    return _finish(fig, title, height=max(350, 32 * len(ranking) + 150))


PRIMARY_TITLE = "The primary comparisons on the confirming stage's fresh seeds (pp, with 95 % CI)"


def advantage_bars(comparisons: pd.DataFrame,
                   title: str = "Multi-teacher advantage per task: best multi - best single (pp, with CI)") -> go.Figure:
    """Paired differences with confidence intervals, coloured by verdict, with the +-margin band.

    ``comparisons``: columns ``task, a, b, diff_pp, ci_low, ci_high`` and ``verdict`` / ``margin_pp``
    (``comparisons.csv``; without ``verdict`` the bars are coloured by ``significant`` after Holm). The
    dashed band is the equivalence margin: a bar whose interval lies in it may be ``equivalent`` (the
    Holm-adjusted TOST decides), one whose interval reaches past it and past 0 is ``inconclusive``. With
    several rows per task the bars are
    labelled ``task: a - b``.
    """
    df = comparisons.reset_index(drop=True)
    many = df["task"].duplicated().any()
    x = [f"{t}: {a} - {b}" if many else t for t, a, b in zip(df["task"], df["a"], df["b"])]
    if "verdict" in df:
        group = df["verdict"].astype(str)
        groups = [(v, VERDICT_STYLE[v][0]) for v in VERDICT_STYLE if (group == v).any()]
        legend = "verdict (Holm)"
    else:
        sig = df["significant"].astype(str).str.lower().isin(["true", "1", "yes"]) if "significant" in df else \
            pd.Series(False, index=df.index)
        group = sig.map({True: "significant", False: "not significant"})
        groups = [(name, SIGNIFICANT_COLORS[s]) for s, name in ((True, "significant"), (False, "not significant"))]
        legend = "Holm-adjusted"
    p = df["p_adjusted"] if "p_adjusted" in df else pd.Series(np.nan, index=df.index)
    fig = go.Figure()
    margins = df["margin_pp"].dropna().unique() if "margin_pp" in df else []
    for m in margins:
        fig.add_hrect(y0=-m, y1=m, fillcolor=VERDICT_STYLE["equivalent"][0], opacity=0.08, layer="below",
                      line=dict(color=VERDICT_STYLE["equivalent"][0], width=1, dash="dash"))
    for name, color in groups:
        keep = group == name
        d = df[keep]
        fig.add_trace(go.Bar(
            x=[xx for xx, k in zip(x, keep) if k], y=d["diff_pp"], name=name, marker_color=color,
            error_y=dict(type="data", symmetric=False, array=d["ci_high"] - d["diff_pp"],
                         arrayminus=d["diff_pp"] - d["ci_low"]),
            customdata=_rows(d["a"], d["b"], d["ci_low"], d["ci_high"], p[keep]),
            hovertemplate=("%{customdata[0]} - %{customdata[1]}<br>difference %{y:+.2f} pp"
                           "<br>CI [%{customdata[2]:.2f}, %{customdata[3]:.2f}]<br>adjusted p %{customdata[4]:.3g}"
                           "<extra></extra>")))
    if "verdict" in df:                            # the verdict (and the power, or why none) above each bar
        mde = df["mde_pp"] if "mde_pp" in df else pd.Series(np.nan, index=df.index)
        notes = df["note"].fillna("") if "note" in df else pd.Series("", index=df.index)
        seeds = df["seeds"].astype(str).str.split() if "seeds" in df else pd.Series([[]] * len(df), index=df.index)
        for xx, top, v, m, n, s in zip(x, df[["ci_high", "diff_pp"]].max(axis=1), group, mde, notes, seeds):
            text = v + (f"<br>{n}" if n else "" if pd.isna(m) else f"<br>MDE {m:.2f} pp")
            text += f"<br>seeds {s[0]}-{s[-1]}" if len(s) > 1 else ""
            fig.add_annotation(x=xx, y=top, text=text, showarrow=False, yanchor="bottom", yshift=4,
                               font=dict(size=11))
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.update_xaxes(title_text="task", categoryorder="array", categoryarray=x)
    fig.update_yaxes(title_text="difference (percentage points)")
    if len(margins):
        title += f"<br><sup>dashed band: +-{', '.join(f'{m:g}' for m in sorted(margins))} pp equivalence margin</sup>"
    return _finish(fig, title, legend_title_text=legend, showlegend=True)


def score_bars(summary: pd.DataFrame, title: str = "Scores per task and method (mean over seeds, with CI)") -> go.Figure:
    """Grouped bars of ``mean`` with ``ci_low``/``ci_high`` error bars, x = task, one trace per method.

    ``summary``: columns ``task, method, kind, mean`` and optionally ``ci_low, ci_high, n_seeds, metric``.
    """
    methods = _method_order(summary)
    colors = method_colors(methods)
    fig = go.Figure()
    for m in methods:
        d = summary[summary["method"] == m]
        lo = d["ci_low"] if "ci_low" in d else d["mean"]
        hi = d["ci_high"] if "ci_high" in d else d["mean"]
        metric = d["metric"] if "metric" in d else pd.Series("score", index=d.index)
        nse = d["n_seeds"] if "n_seeds" in d else pd.Series(np.nan, index=d.index)
        fig.add_trace(go.Bar(
            x=d["task"], y=d["mean"], name=m, marker_color=colors[m],
            error_y=dict(type="data", symmetric=False, array=hi - d["mean"], arrayminus=d["mean"] - lo),
            customdata=_rows(lo, hi, nse, metric),
            hovertemplate=(f"{m}<br>task %{{x}}<br>%{{customdata[3]}} %{{y:.2f}}"
                           "<br>CI [%{customdata[0]:.2f}, %{customdata[1]:.2f}]<br>seeds %{customdata[2]}"
                           "<extra></extra>")))
    fig.update_xaxes(title_text="task")
    fig.update_yaxes(title_text="score (%, the task's headline metric)")
    lo_all = np.nanmin(summary["ci_low"] if "ci_low" in summary else summary["mean"])
    if np.isfinite(lo_all):
        fig.update_yaxes(range=[max(0.0, float(lo_all) - 5), 100])
    return _finish(fig, title, barmode="group", legend_title_text="method")


# --------------------------------------------------------------------------- calibration, sweep, diversity

def reliability_diagram(curves, ece: Mapping[str, float] | None = None,
                        title: str = "Reliability diagram: accuracy vs confidence") -> go.Figure:
    """Accuracy against mean confidence per bin, one line per model, with the diagonal.

    ``curves``: dict name -> :func:`mtkd.study.analysis.reliability_curve` frame, or one frame with a
    ``name`` column. ``ece``: optional name -> ECE (fraction), shown in the legend.
    """
    if isinstance(curves, pd.DataFrame):
        curves = {n: g for n, g in curves.groupby("name", sort=False)} if "name" in curves else {"model": curves}
    colors = method_colors(list(curves))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="#999"),
                             name="perfect calibration", hoverinfo="skip"))
    for name, c in curves.items():
        c = c[c["count"] > 0]
        label = f"{name} (ECE {100 * ece[name]:.1f}%)" if ece and name in ece else name
        fig.add_trace(go.Scatter(
            x=c["confidence"], y=c["accuracy"], mode="lines+markers", name=label,
            line=dict(color=colors.get(name)), customdata=np.c_[c["bin_low"], c["bin_high"], c["count"]],
            hovertemplate=(f"{name}<br>bin (%{{customdata[0]:.2f}}, %{{customdata[1]:.2f}}]"
                           "<br>mean confidence %{x:.3f}<br>accuracy %{y:.3f}<br>n = %{customdata[2]}<extra></extra>")))
    fig.update_xaxes(title_text="mean confidence (max probability) in the bin", range=[0, 1])
    fig.update_yaxes(title_text="accuracy in the bin", range=[0, 1])
    return _finish(fig, title)


def sweep_heatmap(sweep: pd.DataFrame, value: str = "score",
                  title: str = "Temperature x alpha sweep (mean over seeds)") -> go.Figure:
    """One annotated T x alpha heatmap per method (columns) and task (rows); the best cell is starred.

    ``sweep``: columns ``temperature, alpha, score`` and optionally ``method``, ``task``, ``seed``
    (several rows per cell are averaged).
    """
    df = sweep.copy()
    if "method" not in df:
        df["method"] = "score"
    tasks = _tasks(df)
    methods = _method_order(df)
    temps = sorted(df["temperature"].unique())
    alphas = sorted(df["alpha"].unique())
    titles = [f"{t + ': ' if t else ''}{m}" for t in tasks for m in methods]
    fig = make_subplots(rows=len(tasks), cols=len(methods), subplot_titles=titles, horizontal_spacing=0.1,
                        vertical_spacing=0.15)
    zmin, zmax = float(df[value].min()), float(df[value].max())
    for r, task in enumerate(tasks, 1):
        for c, m in enumerate(methods, 1):
            d = _sub(df, task)
            d = d[d["method"] == m]
            g = d.groupby(["temperature", "alpha"])[value].agg(["mean", "count"])
            z = np.array([[g["mean"].get((t, a), np.nan) for a in alphas] for t in temps])
            n = np.array([[g["count"].get((t, a), 0) for a in alphas] for t in temps])
            best = np.nanmax(z) if np.isfinite(z).any() else np.nan
            text = [[("" if np.isnan(v) else f"{v:.2f}" + (" ★" if v == best else "")) for v in row] for row in z]
            fig.add_trace(go.Heatmap(
                z=z, x=[f"α={a:g}" for a in alphas], y=[f"T={t:g}" for t in temps], text=text,
                texttemplate="%{text}", customdata=n, zmin=zmin, zmax=zmax, colorscale="Blues",
                showscale=(r == 1 and c == len(methods)), colorbar=dict(title=value),
                hovertemplate=f"{m}<br>%{{y}}, %{{x}}<br>{value} %{{z:.2f}} (mean of %{{customdata}} runs)<extra></extra>"),
                row=r, col=c)
            fig.update_xaxes(title_text="alpha (weight of the KD term)", row=r, col=c)
            fig.update_yaxes(title_text="temperature T", row=r, col=c)
    return _finish(fig, title, height=max(380, 320 * len(tasks)))


def diversity_scatter(per_task: pd.DataFrame, x: str = "diversity", y: str = "advantage",
                      x_label: str = "soft-label diversity (mean pairwise JS divergence, nats)",
                      y_label: str = "multi-teacher advantage (pp)", title: str | None = None) -> go.Figure:
    """Per-task scatter of diversity vs multi-teacher advantage, with the rank correlation in the title."""
    cor = diversity_vs_advantage(per_task, x, y)
    if np.isnan(cor["spearman_rho"]):
        stat = f"correlation not computable ({cor['note']})"
    else:
        stat = (f"Spearman ρ = {cor['spearman_rho']:.2f} (p = {cor['spearman_p']:.2g}), "
                f"Pearson r = {cor['pearson_r']:.2f}, n = {cor['n']}")
    title = title or f"Does teacher diversity explain the multi-teacher gain?<br><sup>{stat}</sup>"
    fig = go.Figure(go.Scatter(
        x=per_task[x], y=per_task[y], mode="markers+text", text=per_task["task"], textposition="top center",
        marker=dict(size=11, color=KIND_COLORS["multi"]), name="task",
        hovertemplate=f"%{{text}}<br>{x_label}: %{{x:.4f}}<br>{y_label}: %{{y:+.2f}}<extra></extra>"))
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.update_xaxes(title_text=x_label)
    fig.update_yaxes(title_text=y_label)
    return _finish(fig, title, margin=dict(t=90, l=60, r=20, b=60))
