"""Notebook 09's figures, sentences and tables: along each condition axis (issue 17), where multi-teacher
distillation beats the best single teacher and where it does not; and notebook 08's fidelity table.

Everything is read from a finished run: ``conditions.csv`` (the main table's paired comparisons at every
value of every axis), ``conditions_summary.csv`` (every method's score and fidelity there) and
``fidelity.csv`` (the same for the main study), see `mtkd.study.results`. Nothing here computes a study
number; every sentence is built from those rows.

Fidelity (Stanton et al., NeurIPS 2021: matching the teacher and generalising differ): a student's top-1
agreement with its KD target and KL(target || student) at T = 1 on test; the target's own test score
(the argmax of the fused logits, scored like a teacher) bounds what following it can give; gap closed is
``(student - baseline) / (best teacher - baseline)``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mtkd.report.figures import KIND_COLORS, LAYOUT, VERDICT_STYLE
from mtkd.report.paper import paper

HEADLINE = "best multi vs best single"
DISTILLATION = "best single vs baseline"
COMPARISON_ORDER = (HEADLINE, "multi vs best single", DISTILLATION)
DIFFERENCE_PANELS = ((HEADLINE, "multi-teacher advantage: best multi - best single", "difference (pp)"),
                     (DISTILLATION, "distillation effect: best single - no KD", "difference (pp)"))
# (column, title, scale): scale 100 turns gap closed (a fraction) into percent, as every chart shows it
FIDELITY_PANELS = (("gap_closed", "gap closed (%)", 100.0),
                   ("agreement_pct", "top-1 agreement with target (%)", 1.0),
                   ("kl_target_student", "KL(target || student) (nats)", 1.0),
                   ("target_score", "target's own test score (%)", 1.0))
STUDENT_ROLES = {"best single": KIND_COLORS["single"], "best multi": KIND_COLORS["multi"]}
BEST_TEACHER = "best teacher"


# --------------------------------------------------------------------------- reading the rows

def value_label(value) -> str:
    """A condition value as its label: CSV readers turn "2400" into 2400 or 2400.0; the label stays "2400"."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _is_true(value) -> bool:
    """A boolean cell as a CSV reader may hand it over (True, "True", "true", 1)."""
    return str(value).lower() in ("true", "1", "yes")


def _truthy(series: pd.Series) -> pd.Series:
    return series.map(_is_true).astype(bool)


def tasks(frame: pd.DataFrame) -> list[str]:
    """The tasks of a conditions frame, in file order."""
    return list(dict.fromkeys(frame["task"]))


def axes(frame: pd.DataFrame, task: str | None = None) -> list[tuple[str, str]]:
    """(axis, param) of a task (all tasks when None), in file order: the order of the params' axes."""
    rows = frame if task is None else frame[frame["task"] == task]
    return list(dict.fromkeys(zip(rows["axis"], rows["param"])))


def along(frame: pd.DataFrame, task: str, axis: str, **equal) -> pd.DataFrame:
    """One task's rows on one axis (and ``column=value`` filters), in the axis's ``order``, with ``label``
    (the value as a string) and ``main`` (bool: the main study's setting)."""
    rows = frame[(frame["task"] == task) & (frame["axis"] == axis)]
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    rows = rows.sort_values("order", kind="stable")
    return rows.assign(label=[value_label(v) for v in rows["value"]], main=_truthy(rows["is_main"]).to_numpy())


def _axis_title(axis: str, param: str) -> str:
    return axis if axis == param else f"{axis} ({param})"


def _condition(task: str, axis: str, value, main: bool) -> str:
    return f"{task}, {axis} = {value_label(value)}" + (" (the main study's setting)" if main else "")


def _rows(*cols) -> list:
    """customdata: one list per point, NaN as None (JSON has no NaN)."""
    def py(v):
        if isinstance(v, (np.floating, float)):
            return None if math.isnan(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v
    return [[py(v) for v in row] for row in zip(*[list(c) for c in cols])]


def _require_task(frame: pd.DataFrame, task: str, name: str) -> pd.DataFrame:
    rows = frame[frame["task"] == task]
    if not len(rows):
        raise ValueError(f"{name} has no rows for task {task!r}; its tasks: {tasks(frame) or 'none'}")
    return rows


def _vertical_spacing(n_rows: int) -> float:
    return min(0.14, 0.6 / n_rows)


def _no_data(fig: go.Figure, row: int, col: int, text: str) -> None:
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="x domain", yref="y domain", showarrow=False,
                       font=dict(size=11, color="#666"), row=row, col=col, exclude_empty_subplots=False)


# --------------------------------------------------------------------------- figures

def _panel_grid(frame: pd.DataFrame, task: str, what: str, panels, spacing: float):
    """A task's rows, its axes and a figure with one row of ``panels`` per axis."""
    rows = _require_task(frame, task, what)
    task_axes = axes(rows)
    fig = make_subplots(rows=len(task_axes), cols=len(panels), column_titles=[p[1] for p in panels],
                        horizontal_spacing=spacing, vertical_spacing=_vertical_spacing(len(task_axes)))
    return rows, task_axes, fig


def advantage_figure(conditions: pd.DataFrame, task: str) -> go.Figure:
    """Per axis (one row of panels each): the multi-teacher advantage (best multi - best single) and, beside
    it, the distillation effect (best single - no KD) at every value, with 95 % intervals, the
    +-equivalence-margin band, the verdict as marker (colour and shape) and the main study's value ringed."""
    rows, task_axes, fig = _panel_grid(conditions, task, "conditions.csv", DIFFERENCE_PANELS, 0.09)
    margins = set()
    for r, (axis, param) in enumerate(task_axes, 1):
        for c, (comparison, _, y_title) in enumerate(DIFFERENCE_PANELS, 1):
            d = along(rows, task, axis, comparison=comparison)
            fig.update_yaxes(title_text=y_title, row=r, col=c)
            if not len(d):
                _no_data(fig, r, c, f"no '{comparison}' comparison at this axis")
                continue
            fig.update_xaxes(title_text=_axis_title(axis, param), type="category", categoryorder="array",
                             categoryarray=list(d["label"]), row=r, col=c)
            margin = d["margin_pp"].dropna()
            if len(margin):
                m = float(margin.iloc[0])
                margins.add(m)
                fig.add_hrect(y0=-m, y1=m, fillcolor="#9aa5b1", opacity=0.22, line_width=0, layer="below",
                              row=r, col=c, exclude_empty_subplots=False)
            fig.add_hline(y=0, line_color="#444", line_width=1, row=r, col=c, exclude_empty_subplots=False)
            style = [VERDICT_STYLE.get(v, VERDICT_STYLE["inconclusive"]) for v in d["verdict"]]
            fig.add_trace(go.Scatter(
                x=list(d["label"]), y=d["diff_pp"], mode="lines+markers", name=comparison, showlegend=False,
                line=dict(color="#c8c8c8", width=1),
                marker=dict(color=[s[0] for s in style], symbol=[s[1] for s in style],
                            size=[15 if m else 11 for m in d["main"]],
                            line=dict(color=["#111" if m else "#fff" for m in d["main"]],
                                      width=[2.5 if m else 0.5 for m in d["main"]])),
                error_y=dict(type="data", symmetric=False, array=d["ci_high"] - d["diff_pp"],
                             arrayminus=d["diff_pp"] - d["ci_low"], color="#777", thickness=1.2),
                customdata=_rows(d["a"], d["b"], d["ci_low"], d["ci_high"], d["p_adjusted"], d["verdict"],
                                 d["mde_pp"], np.where(d["main"], "the main study's setting", "")),
                hovertemplate=(f"{axis} = %{{x}} %{{customdata[7]}}<br>%{{customdata[0]}} - %{{customdata[1]}}: "
                               "%{y:+.2f} pp<br>95 % CI [%{customdata[2]:.2f}, %{customdata[3]:.2f}]"
                               "<br>p (Holm) %{customdata[4]:.3g}<br>verdict: %{customdata[5]}"
                               "<br>detectable: %{customdata[6]:.2f} pp<extra></extra>"),
                meta={"axis": axis, "comparison": comparison}), row=r, col=c)
    for verdict, (color, symbol) in VERDICT_STYLE.items():       # the legend: what each marker means
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=verdict, legendgroup="verdict",
                                 marker=dict(color=color, symbol=symbol, size=11), meta={"legend": verdict}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="the main study's setting",
                             marker=dict(color="rgba(0,0,0,0)", size=15, line=dict(color="#111", width=2.5)),
                             meta={"legend": "main"}))
    band = f"; grey band: +-{', '.join(f'{m:g}' for m in sorted(margins))} pp equivalence margin" if margins else ""
    fig.update_layout(title=dict(text=f"{task}: does multi-teacher distillation beat the best single teacher, "
                                      f"condition by condition? (95 % intervals{band})", x=0.01),
                      height=330 * len(task_axes) + 130, legend_title_text="verdict (Holm)",
                      **{**LAYOUT, "margin": dict(t=110, l=60, r=20, b=60)})
    return fig


def _best_teacher(d: pd.DataFrame) -> pd.DataFrame:
    """Per value of one axis: the teacher with the highest test score (a teachers axis changes the set)."""
    teachers = d[d["kind"] == "teacher"].dropna(subset=["mean"])
    if not len(teachers):
        return teachers
    best = teachers.loc[teachers.groupby("order", sort=True)["mean"].idxmax()]
    return best.sort_values("order", kind="stable")


def _line_label(role: str, column: str) -> str:
    if role == BEST_TEACHER:
        return role
    return f"{role} student's target" if column == "target_score" else f"{role} student"


def fidelity_figure(summary: pd.DataFrame, task: str) -> go.Figure:
    """Per axis (one row of panels each), the best single and the best multi student at every value: gap closed,
    top-1 agreement with its target, KL(target || student), and the target's own test score beside the best
    teacher's. Values with no number (baseline-free runs, an undefined gap) leave a gap in the line."""
    rows, task_axes, fig = _panel_grid(summary, task, "conditions_summary.csv", FIDELITY_PANELS, 0.06)
    shown = set()
    for r, (axis, param) in enumerate(task_axes, 1):
        d_axis = along(rows, task, axis)
        categories = list(dict.fromkeys(d_axis["label"]))
        for c, (column, title, scale) in enumerate(FIDELITY_PANELS, 1):
            fig.update_xaxes(title_text=_axis_title(axis, param), type="category", categoryorder="array",
                             categoryarray=categories, row=r, col=c)
            lines = [(role, along(rows, task, axis, role=role), STUDENT_ROLES[role]) for role in STUDENT_ROLES]
            if column == "target_score":
                lines.append((BEST_TEACHER, _best_teacher(d_axis), KIND_COLORS["teacher"]))
            drawn = False
            for role, d, color in lines:
                if not len(d):
                    continue
                y = (d["target_score"] if column == "target_score" and role != BEST_TEACHER
                     else d["mean"] if role == BEST_TEACHER else d[column]) * scale
                drawn = drawn or bool(np.isfinite(y.astype(float)).any())
                reason = [r if isinstance(r, str) and column == "gap_closed" else "" for r in d["gap_closed_undefined"]]
                label = _line_label(role, column)
                fig.add_trace(go.Scatter(
                    x=[value_label(v) for v in d["value"]], y=y, mode="lines+markers", name=role,
                    legendgroup=role, showlegend=role not in shown,
                    line=dict(color=color, width=2, dash="dash" if role == BEST_TEACHER else "solid"),
                    marker=dict(color=color, size=9), customdata=_rows(d["method"], reason),
                    hovertemplate=(f"{axis} = %{{x}}<br>{label} (%{{customdata[0]}})<br>{title}: %{{y:.3g}}"
                                   "<br>%{customdata[1]}<extra></extra>"),
                    meta={"axis": axis, "panel": column, "role": role}), row=r, col=c)
                shown.add(role)
            if not drawn:
                reasons = [s for s in d_axis["gap_closed_undefined"].dropna().astype(str) if s] \
                    if column == "gap_closed" else []
                _no_data(fig, r, c, f"not defined:<br>{reasons[0]}" if reasons else "not recorded in this run")
            elif column == "gap_closed":
                fig.add_hline(y=100, line_dash="dot", line_color="#888", row=r, col=c)
    fig.update_layout(title=dict(text=f"{task}: how closely the students follow their targets, condition by "
                                      "condition (test split; dotted line: the whole gap closed)", x=0.01),
                      height=310 * len(task_axes) + 130, legend_title_text="",
                      **{**LAYOUT, "margin": dict(t=110, l=60, r=20, b=60)})
    return fig


# --------------------------------------------------------------------------- sentences

def _listing(items: list[str]) -> str:
    return "; ".join(items) if items else "none"


def conditions_in_words(conditions: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Two or three sentences from the rows: at which (task, axis = value) points the best multi-teacher student
    is better than, equivalent to or worse than the best single one; how many are inconclusive and the widest
    interval; whether any fused target scores above the best teacher on test. Pass one task's rows for its
    sentences. A main-study value appears once per axis (each axis repeats it)."""
    head = conditions[conditions["comparison"] == HEADLINE].reset_index(drop=True)
    if not len(head):
        return ["No condition of this run has a best-multi-vs-best-single comparison: nothing to say."]
    main = _truthy(head["is_main"])
    named = [_condition(t, a, v, m) for t, a, v, m in zip(head["task"], head["axis"], head["value"], main)]
    by = {v: [n for n, verdict in zip(named, head["verdict"]) if verdict == v] for v in VERDICT_STYLE}
    margins = ", ".join(f"{m:g}" for m in sorted(set(head["margin_pp"].dropna())))
    within = f" (within +-{margins} pp)" if margins else ""
    out = [f"Of {len(head)} (task, axis = value) points, the best multi-teacher student is **better** than the best "
           f"single-teacher one at {_listing(by['better'])}; **equivalent**{within} at "
           f"{_listing(by['equivalent'])}; **worse** at {_listing(by['worse'])}."]
    undecided = head[head["verdict"] == "inconclusive"]
    if len(undecided):
        widest = (undecided["ci_high"] - undecided["ci_low"]).idxmax()
        w = head.loc[widest]
        out.append(f"{len(undecided)} of {len(head)} are **inconclusive**; the widest interval is "
                   f"{w['diff_pp']:+.2f} pp [{w['ci_low']:.2f}, {w['ci_high']:.2f}] at {named[widest]}, where the "
                   f"design detects {w['mde_pp']:.2f} pp.")
    else:
        out.append(f"None of the {len(head)} is inconclusive.")
    targets = _targets_against_teacher(summary)
    if len(targets):
        above = targets[targets["target_score"] > targets["teacher_score"]]
        if len(above):
            parts = [f"{r.method}'s target at {_condition(r.task, r.axis, r.value, r.main)}: {r.target_score:.2f} "
                     f"against {r.teacher}'s {r.teacher_score:.2f}" for r in above.itertuples()]
            out.append(f"Fused targets that score above the best teacher on test: {len(above)} of {len(targets)}; "
                       f"{'; '.join(parts)}.")
        else:
            close = targets.loc[(targets["target_score"] - targets["teacher_score"]).idxmax()]
            where = _condition(close["task"], close["axis"], close["value"], close["main"])
            out.append(f"No fused target of the {len(targets)} scores above the best teacher on test; the closest "
                       f"is {close['method']}'s at {where}: {close['target_score']:.2f} against {close['teacher']}'s "
                       f"{close['teacher_score']:.2f}: no fused target here is more accurate than the best teacher.")
    return out


def _targets_against_teacher(summary: pd.DataFrame) -> pd.DataFrame:
    """Every multi method's target score at every (task, axis, value) beside that point's best teacher score."""
    rows = []
    for (task, axis, _), d in summary.groupby(["task", "axis", "order"], sort=False):
        teachers = d[d["kind"] == "teacher"].dropna(subset=["mean"])
        multi = d[(d["kind"] == "multi")].dropna(subset=["target_score"])
        if not len(teachers) or not len(multi):
            continue
        best = teachers.loc[teachers["mean"].idxmax()]
        for m in multi.itertuples():
            rows.append({"task": task, "axis": axis, "value": m.value, "main": _is_true(m.is_main),
                         "method": m.method, "target_score": float(m.target_score), "teacher": best["method"],
                         "teacher_score": float(best["mean"])})
    return pd.DataFrame(rows, columns=["task", "axis", "value", "main", "method", "target_score", "teacher",
                                       "teacher_score"])


# --------------------------------------------------------------------------- tables

TABLE_COLUMNS = ("task", "axis", "value", "is_main", "comparison", "a", "b", "diff_pp", "ci_low", "ci_high",
                 "p_adjusted", "verdict", "margin_pp", "mde_pp")
FIDELITY_TABLE_COLUMNS = ("task", "method", "role", "mean", "ci_low", "ci_high", "n_seeds", "target_score",
                          "agreement_pct", "kl_target_student", "gap_closed", "gap_closed_undefined")


def conditions_table(conditions: pd.DataFrame, caption: str | None = None):
    """conditions.csv as a paper table: per task and axis the values in order, the headline comparison first."""
    df = conditions.copy()
    df["value"] = [value_label(v) for v in df["value"]]
    df["is_main"] = _truthy(df["is_main"])
    rank = {c: i for i, c in enumerate(COMPARISON_ORDER)}
    df = df.assign(_task=df["task"].map({t: i for i, t in enumerate(tasks(df))}),
                   _axis=df["axis"].map({a: i for i, (a, _) in enumerate(axes(df))}),
                   _comparison=df["comparison"].map(rank).fillna(len(rank)))
    df = df.sort_values(["_task", "_axis", "order", "_comparison"], kind="stable")
    return paper(df[list(TABLE_COLUMNS)].reset_index(drop=True), caption)


OVERVIEW_COLUMNS = ("task", "axis", "value", "best single", "best multi", "multi - single (pp)", "verdict",
                    "single - no KD (pp)", "distillation verdict", "gap closed (best multi)",
                    "agreement with target (best multi, %)")


def _difference(row) -> str:
    return f"{row['diff_pp']:+.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def conditions_overview(conditions: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, axis, value): the best single and best multi students with their test scores,
    the headline and distillation comparisons with their intervals and verdicts, and the best multi
    student's gap closed and agreement with its target (what `mtkd summary` prints for a conditions run)."""
    rows = []
    scores = summary.set_index(["task", "axis", "order", "method"])
    for (task, axis, order), d in conditions.groupby(["task", "axis", "order"], sort=False):
        head = d[d["comparison"] == HEADLINE]
        dist = d[d["comparison"] == DISTILLATION]
        if not len(head):
            continue
        h = head.iloc[0]

        def student(method):
            key = (task, axis, order, method)
            return scores.loc[key] if key in scores.index else None

        multi, single = student(h["a"]), student(h["b"])
        rows.append({
            "task": task, "axis": axis,
            "value": value_label(h["value"]) + (" (main)" if _is_true(h["is_main"]) else ""),
            "best single": f"{h['b']} {single['mean']:.2f}" if single is not None else h["b"],
            "best multi": f"{h['a']} {multi['mean']:.2f}" if multi is not None else h["a"],
            "multi - single (pp)": _difference(h), "verdict": h["verdict"],
            "single - no KD (pp)": _difference(dist.iloc[0]) if len(dist) else "",
            "distillation verdict": dist.iloc[0]["verdict"] if len(dist) else "",
            "gap closed (best multi)": ("not defined" if multi is None or pd.isna(multi["gap_closed"])
                                        else f"{multi['gap_closed']:.2f}"),
            "agreement with target (best multi, %)": ("" if multi is None or pd.isna(multi["agreement_pct"])
                                                      else f"{multi['agreement_pct']:.1f}"),
        })
    return pd.DataFrame(rows, columns=list(OVERVIEW_COLUMNS))


def fidelity_table(fidelity: pd.DataFrame, caption: str | None = None):
    """fidelity.csv's students (single and multi) as a paper table: the test score beside how closely each one
    follows its target, that target's own score, and the gap closed (or why it is not defined)."""
    students = fidelity[fidelity["kind"].isin(["single", "multi"])]
    return paper(students[list(FIDELITY_TABLE_COLUMNS)].reset_index(drop=True), caption)


__all__ = ["advantage_figure", "fidelity_figure", "conditions_in_words", "conditions_table", "fidelity_table",
           "tasks", "axes", "along", "value_label"]
