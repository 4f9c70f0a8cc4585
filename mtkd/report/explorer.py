"""The per-example disagreement explorer over a finished run.

``explore(run_dir)`` returns an ipywidgets box: pick a task, split, student method and seed,
filter by teacher agreement region, by why the student erred, and by whether it erred; sort
by how much the teachers disagree; page through examples. Each example shows its text(s),
the gold label, the human label distribution and agreement level (``k/n``: the largest class
count of n annotator labels) when the task has ``label_counts_fields``, every teacher's probabilities, every fuser's target (recomputed from the
cached logits), the gating weights, every weighted-sum fuser's per-example weights over the
teachers, and every student's prediction.

The logic lives in :class:`Explorer` (no widgets; testable): one table per (task, split) is
built once (:meth:`Explorer.table`) and filtering / rendering only touch that table. The
widget (:class:`ExplorerWidget`) only re-renders one example's HTML on each change.

Student predictions come from one seed (the first by default; the seed dropdown picks
another) or from the majority over seeds ("majority": the most frequent class, ties to the
lowest class id); the example header says which. Gate weights shown are the chosen seed's
(the first seed's under "majority").
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as W
import numpy as np
import pandas as pd

from mtkd.study import analysis as A
from mtkd.study import humans as H
from mtkd.study.results import RunResults, load_run
from mtkd.study.methods import Method

ANY = "any"
REGION_OPTIONS = (ANY, "all_agree", "partial", "full_disagree", "disagree")
CORRECTNESS_OPTIONS = (ANY, "wrong", "right")
CATEGORY_OPTIONS = (ANY, *A.FAILURE_CATEGORIES)
SORT_OPTIONS = ("disagreement", "teacher_entropy", "idx")
SORT_LABELS = {"disagreement": "teacher disagreement (mean pairwise JS), high first",
               "teacher_entropy": "teacher uncertainty (mean entropy), high first", "idx": "example idx"}
MAJORITY = "majority"
EMPTY_MESSAGE = "No examples match these filters. Loosen a filter (region, cause, right/wrong) to see examples."
_KIND_COLORS = {"human": "#2ca02c", "teacher": "#6b6b6b", "fuser": "#8c564b", "gate": "#9467bd", "baseline": "#d08c00",
                "single": "#1f77b4", "multi": "#d62728"}


@dataclass
class TaskTable:
    """Everything the explorer shows for one (task, split), aligned by row position ``pos``."""
    task: str
    split: str
    frame: pd.DataFrame                      # pos, task, split, idx, label, texts, region, disagreement, ...
    teachers: list
    label_names: list
    text_fields: list
    teacher_probs: np.ndarray                # (N, K, C)
    fused: dict                              # fuser -> (N, C)
    methods: list                            # student methods with predictions on this split
    seeds: list
    preds: dict                              # method -> (S, N) int, -1 where missing
    student_probs: dict = field(default_factory=dict)   # (method, seed) -> Series idx -> probs
    gates: dict = field(default_factory=dict)           # (method, seed) -> Series idx -> weights
    fusion_weights: dict = field(default_factory=dict)  # (method, applied fuser) -> Series idx -> weights
    human_probs: np.ndarray | None = None    # (N, C) human label shares (NaN rows: no counts); None: task has none

    @property
    def human_levels(self) -> list[str]:
        """The agreement levels present (``k/n``), most agreement first; empty without counts."""
        if self.human_probs is None:
            return []
        levels = {v for v in self.frame["human"] if v}
        return sorted(levels, key=lambda v: (-int(v.split("/")[0]) / int(v.split("/")[1]), v))


class Explorer:
    """Filtering, sorting and rendering of examples of a finished run (no widgets here)."""

    def __init__(self, run: RunResults | str | Path, split: str = "test"):
        self.run = run if isinstance(run, RunResults) else load_run(run)
        self.split = split
        self._tables: dict = {}

    # ------------------------------------------------------------------ data
    def splits(self, task: str) -> list[str]:
        """Splits with cached teacher logits for every teacher (test first)."""
        out = []
        for s in ("test", "selection", "train"):
            if all((self.run.path / "logits" / task / t / f"{s}.npz").exists() for t in self.run.teachers(task)):
                out.append(s)
        return out

    def table(self, task: str, split: str | None = None) -> TaskTable:
        """The per-(task, split) table, built once and cached."""
        split = split or self.split
        key = (task, split)
        if key not in self._tables:
            self._tables[key] = self._build(task, split)
        return self._tables[key]

    def _build(self, task: str, split: str) -> TaskTable:
        run = self.run
        info = run.task_info(task)
        idx, z = run.teacher_logits(task, split)
        teachers = run.teachers(task)
        probs = A.softmax(z)                                          # (N, K, C)
        ex = run.examples(task, split).set_index("idx")
        missing = np.setdiff1d(idx, ex.index.to_numpy())
        if len(missing):
            raise ValueError(f"{len(missing)} teacher-logit idx (e.g. {missing[:3].tolist()}) are not in "
                             f"data/{task}/examples.parquet split {split!r}")
        ex = ex.loc[idx]
        fields = list(info.get("text_fields") or [])
        tpred = z.argmax(-1)
        frame = pd.DataFrame({"pos": np.arange(len(idx)), "task": task, "split": split, "idx": idx,
                              "label": ex["label"].to_numpy().astype(int)})
        for f in fields:
            frame[f] = ex[f].astype(str).to_numpy()
        frame["region"] = A.agreement_regions(tpred)
        frame["disagreement"] = A.mean_pairwise_js(probs)
        frame["teacher_entropy"] = A.entropy(probs).mean(axis=1)
        frame["n_teachers_right"] = (tpred == frame["label"].to_numpy()[:, None]).sum(axis=1)
        counts_fields = list(info.get("label_counts_fields") or [])
        human = None
        if counts_fields and set(counts_fields) <= set(ex.columns):
            counts = ex[counts_fields].to_numpy()
            human = H.human_distribution(counts)
            frame["human"] = H.agreement_level(counts)
        sp = run.student_predictions(task, split)
        methods = [m for m in run.student_methods(task) if m in set(sp["method"])]
        seeds = sorted(int(s) for s in sp["seed"].unique()) if len(sp) else list(run.seeds)
        pos_of = pd.Series(np.arange(len(idx)), index=idx)
        preds, sprobs = {}, {}
        for m in methods:
            arr = np.full((len(seeds), len(idx)), -1, dtype=np.int64)
            for si, s in enumerate(seeds):
                g = sp[(sp["method"] == m) & (sp["seed"] == s)]
                if g.empty:
                    continue
                g = g[g["idx"].isin(pos_of.index)]
                arr[si, pos_of[g["idx"].to_numpy()].to_numpy()] = g["pred"].to_numpy()
                if "probs" in g.columns:
                    sprobs[(m, s)] = pd.Series(list(g["probs"]), index=g["idx"].to_numpy())
            preds[m] = arr
        gates = {}
        gdf = run.gates(task, split)
        for (m, s), g in gdf.groupby(["method", "seed"], sort=False):
            gates[(m, int(s))] = pd.Series(list(g["weights"]), index=g["idx"].to_numpy())
        fweights = {}
        for (m, applied), g in run.fusion_weights(task, split).groupby(["method", "applied"], sort=False):
            fweights[(m, applied)] = pd.Series(list(g["weights"]), index=g["idx"].to_numpy())
        fused = run.fused_targets(task, split) if methods else {}
        return TaskTable(task, split, frame, teachers, list(info["label_names"]), fields, probs, fused,
                         methods, seeds, preds, sprobs, gates, fweights, human)

    # ------------------------------------------------------------------ predictions of one method
    def student_pred(self, table: TaskTable, method: str, seed=None) -> np.ndarray:
        """Predictions ``(N,)`` of ``method``: one seed (default the first) or ``"majority"`` over seeds (-1 = none)."""
        arr = table.preds[method]
        if seed == MAJORITY:
            c = len(table.label_names)
            votes = np.stack([(arr == k).sum(axis=0) for k in range(c)], axis=1)     # (N, C)
            out = votes.argmax(axis=1)
            out[votes.sum(axis=1) == 0] = -1
            return out
        si = 0 if seed is None else table.seeds.index(int(seed))
        return arr[si]

    def filtered(self, task: str, region: str = ANY, category: str = ANY, method: str | None = None,
                 correctness: str = ANY, sort: str = "disagreement", split: str | None = None,
                 seed=None, human: str = ANY) -> pd.DataFrame:
        """Rows of :meth:`table` that pass the filters, sorted; adds ``pred, correct, category`` of ``method``.

        ``region``: any / all_agree / partial / full_disagree / disagree (= partial or full);
        ``category``: any or a failure category (implies the student erred); ``correctness``:
        any / wrong / right, both about ``method`` (default: the first student method) at
        ``seed`` (default first seed; ``"majority"`` over seeds). ``sort``: disagreement or
        teacher_entropy (descending, ties by idx) or idx. ``human``: any or a human agreement
        level ``k/n`` (``TaskTable.human_levels``), for a task with human label counts.
        """
        t = self.table(task, split)
        df = t.frame
        if method is None and t.methods:
            method = t.methods[0]
        if method is not None and method not in t.preds:
            raise ValueError(f"method {method!r} has no predictions on {task}/{t.split}; has {t.methods}")
        if region not in REGION_OPTIONS:
            raise ValueError(f"region must be one of {REGION_OPTIONS}, got {region!r}")
        if category not in CATEGORY_OPTIONS:
            raise ValueError(f"category must be one of {CATEGORY_OPTIONS}, got {category!r}")
        if correctness not in CORRECTNESS_OPTIONS:
            raise ValueError(f"correctness must be one of {CORRECTNESS_OPTIONS}, got {correctness!r}")
        if sort not in SORT_OPTIONS:
            raise ValueError(f"sort must be one of {SORT_OPTIONS}, got {sort!r}")
        if human != ANY and human not in t.human_levels:
            raise ValueError(f"human must be {ANY!r} or an agreement level of {task}/{t.split}: "
                             f"{t.human_levels or 'none (the task has no human label counts)'}; got {human!r}")
        mask = np.ones(len(df), dtype=bool)
        if region == "disagree":
            mask &= df["region"].to_numpy() != "all_agree"
        elif region != ANY:
            mask &= df["region"].to_numpy() == region
        if human != ANY:
            mask &= df["human"].to_numpy() == human
        extra = {}
        if method is not None:
            pred = self.student_pred(t, method, seed)
            y = df["label"].to_numpy()
            tpred = t.teacher_probs.argmax(-1)
            cat = A.error_categories(pred, y, tpred)
            cat[pred < 0] = "missing"
            correct = pred == y
            extra = {"method": method, "pred": pred, "correct": correct, "category": cat}
            if correctness == "wrong":
                mask &= (~correct) & (pred >= 0)
            elif correctness == "right":
                mask &= correct
            if category != ANY:
                mask &= cat == category
        elif correctness != ANY or category != ANY:
            mask &= False                                  # nothing to filter on: no student on this split
        out = df[mask].copy()
        for k, v in extra.items():
            out[k] = v[mask] if isinstance(v, np.ndarray) else v
        if sort == "idx":
            order = np.argsort(out["idx"].to_numpy(), kind="stable")
        else:
            order = np.lexsort((out["idx"].to_numpy(), -out[sort].to_numpy()))
        return out.iloc[order].reset_index(drop=True)

    # ------------------------------------------------------------------ rendering
    def render_example(self, row, seed=None, method: str | None = None) -> str:
        """HTML of one example (a row of :meth:`filtered` or :meth:`table`); root has ``data-idx``."""
        t = self.table(row["task"], row["split"])
        pos = int(row["pos"])
        idx = int(row["idx"])
        y = int(row["label"])
        names = t.label_names
        if method is None and hasattr(row, "get"):
            method = row.get("method")                     # the student the filters were about, if any
        seed_label = "majority over seeds" if seed == MAJORITY else f"seed {seed if seed is not None else t.seeds[0]}"
        gate_seed = t.seeds[0] if seed in (None, MAJORITY) else int(seed)
        e = html.escape
        region = str(row["region"])
        parts = [f'<div class="mtkd-explorer-example" data-idx="{idx}" data-task="{e(t.task)}" '
                 f'data-split="{e(t.split)}" style="font-size:13px;line-height:1.35">']
        parts.append(
            f'<div style="margin-bottom:6px"><b>{e(t.task)}</b> · {e(t.split)} · idx <b>{idx}</b> · gold '
            f'<b>{e(_name(names, y))}</b> · {_badge(A.REGION_LABELS.get(region, region), _REGION_BG.get(region))}'
            f' · teacher disagreement (mean pairwise JS) {float(row["disagreement"]):.3f} nats</div>')
        for f in t.text_fields:
            parts.append(f'<div style="margin:2px 0 2px 0"><span style="color:#777;font-size:11px">{e(f)}</span> '
                         f'<span style="white-space:pre-wrap">{e(str(row[f]))}</span></div>')
        head = "".join(f'<th style="{_TH}{"background:#e8f5e9;" if c == y else ""}">{e(n)}{" (gold)" if c == y else ""}</th>'
                       for c, n in enumerate(names))
        rows = []
        if t.human_probs is not None and np.isfinite(t.human_probs[pos]).all():
            rows.append(_prob_row(f"humans ({t.frame['human'].iat[pos]} agree)", "human", t.human_probs[pos], y,
                                  names))
        for k, name in enumerate(t.teachers):
            p = t.teacher_probs[pos, k]
            rows.append(_prob_row(f"teacher {name}", "teacher", p, y, names))
        for fuser, q in t.fused.items():
            rows.append(_prob_row(f"fused: {fuser}", "fuser", q[pos], y, names))
        for m in t.methods:
            pred = int(self.student_pred(t, m, seed)[pos])
            n_ok = int((t.preds[m][:, pos] == y).sum())
            n_have = int((t.preds[m][:, pos] >= 0).sum())
            sp = None
            if seed != MAJORITY:
                s = t.seeds[0] if seed is None else int(seed)
                ser = t.student_probs.get((m, s))
                if ser is not None and idx in ser.index:
                    sp = np.asarray(ser[idx], dtype=float)
            kind = Method.parse(m).kind
            note = f"{n_ok}/{n_have} seeds right"
            if pred >= 0 and pred != y:
                cat = A.error_categories(np.array([pred]), np.array([y]), t.teacher_probs[pos].argmax(-1)[None, :])[0]
                note += f" · {A.FAILURE_LABELS.get(cat, cat)}"
            bold = m == method
            rows.append(_prob_row(("▶ " if bold else "") + f"student {m}", kind, sp, y, names, pred=pred, note=note))
        parts.append(f'<table style="border-collapse:collapse;margin-top:6px"><tr><th style="{_TH}">source</th>{head}'
                     f'<th style="{_TH}">pred</th><th style="{_TH}"></th></tr>{"".join(rows)}</table>')
        parts.append(f'<div style="color:#777;font-size:11px;margin-top:3px">student predictions: {e(seed_label)}; '
                     'bars are probabilities at T = 1 (students: the chosen seed\'s; none shown under majority)</div>')
        gate_rows = []
        for (m, s), ser in t.gates.items():
            if s != gate_seed or idx not in ser.index:
                continue
            w = np.asarray(ser[idx], dtype=float)
            cells = "".join(f'<td style="{_TD}">{_bar(v, _KIND_COLORS["gate"])}</td>' for v in w)
            gate_rows.append(f'<tr><td style="{_TD}">{e(m)} (seed {s})</td>{cells}</tr>')
        for (m, applied), ser in t.fusion_weights.items():
            if idx not in ser.index:
                continue
            w = np.asarray(ser[idx], dtype=float)
            cells = "".join(f'<td style="{_TD}">{_bar(v, _KIND_COLORS["fuser"])}</td>' for v in w)
            fallback = "" if Method.parse(m).name == applied else f" ({e(applied)} weights: no labels used here)"
            gate_rows.append(f'<tr><td style="{_TD}">{e(m)} fuser{fallback}</td>{cells}</tr>')
        if gate_rows:
            th = "".join(f'<th style="{_TH}">{e(n)}</th>' for n in t.teachers)
            parts.append(f'<div style="margin-top:8px"><b>gate weights and fuser weights over teachers</b> '
                         '(gates: the student seed\'s; fusers: from the cached logits)</div>'
                         f'<table style="border-collapse:collapse"><tr><th style="{_TH}">student</th>{th}</tr>'
                         f'{"".join(gate_rows)}</table>')
        parts.append("</div>")
        return "".join(parts)

    def render_empty(self, task: str = "", split: str = "") -> str:
        """The friendly message shown when no example passes the filters."""
        return (f'<div class="mtkd-explorer-example mtkd-explorer-empty" data-idx="" data-task="{html.escape(task)}" '
                f'data-split="{html.escape(split)}" style="padding:12px;color:#555">{html.escape(EMPTY_MESSAGE)}</div>')


_TH = "text-align:left;padding:2px 8px;border-bottom:1px solid #ccc;font-weight:600;font-size:12px;"
_TD = "padding:2px 8px;border-bottom:1px solid #eee;vertical-align:middle;"
_REGION_BG = {"all_agree": "#d8f0d8", "partial": "#ffe7c2", "full_disagree": "#e6dcf5"}


def _name(names, c: int) -> str:
    return names[c] if 0 <= c < len(names) else ("—" if c < 0 else str(c))


def _badge(text: str, bg: str | None) -> str:
    return f'<span style="background:{bg or "#eee"};padding:1px 6px;border-radius:8px">{html.escape(text)}</span>'


def _bar(p: float, color: str) -> str:
    w = max(0.0, min(1.0, float(p))) * 100
    return (f'<span style="display:inline-block;width:56px;height:9px;background:#eee;vertical-align:middle">'
            f'<span style="display:block;width:{w:.0f}%;height:100%;background:{color}"></span></span> '
            f'<span style="font-variant-numeric:tabular-nums">{float(p):.3f}</span>')


def _prob_row(label: str, kind: str, probs, y: int, names, pred: int | None = None, note: str = "") -> str:
    color = _KIND_COLORS.get(kind, "#555")
    if probs is not None and len(probs) == len(names):
        cells = "".join(f'<td style="{_TD}">{_bar(v, color)}</td>' for v in probs)
        if pred is None:
            pred = int(np.argmax(probs))
    else:
        cells = "".join(f'<td style="{_TD};color:#aaa">·</td>' for _ in names)
    mark = "" if pred is None or pred < 0 else ('<span style="color:#2ca02c">✓</span>' if pred == y
                                                  else '<span style="color:#d62728">✗</span>')
    pred_txt = html.escape(_name(names, pred)) if pred is not None else "—"
    return (f'<tr><td style="{_TD};white-space:nowrap"><span style="color:{color}">■</span> {html.escape(label)}</td>'
            f'{cells}<td style="{_TD}">{pred_txt} {mark}</td><td style="{_TD};color:#666;font-size:11px">'
            f'{html.escape(note)}</td></tr>')


# --------------------------------------------------------------------------- the widget

class _Lay(dict):
    """Fresh layout/style kwargs for each control (a Layout instance is not shared between widgets)."""

    def keys(self):
        return ["layout", "style"]

    def __getitem__(self, key):
        return W.Layout(width="auto") if key == "layout" else {"description_width": "initial"}


class ExplorerWidget(W.VBox):
    """The explorer's widget tree; ``.explorer``, ``.controls``, ``.example_html``, ``.rows`` for scripting."""

    def __init__(self, explorer: Explorer, task: str | None = None, split: str = "test"):
        run = explorer.run
        task = task or run.tasks[0]
        if task not in run.tasks:
            raise ValueError(f"unknown task {task!r}; this run has {run.tasks}")
        lay = _Lay()
        c = {
            "task": W.Dropdown(options=run.tasks, value=task, description="task", **lay),
            "split": W.Dropdown(options=[split], value=split, description="split", **lay),
            "method": W.Dropdown(options=[], description="student", **lay),
            "seed": W.Dropdown(options=[], description="seed", **lay),
            "region": W.Dropdown(options=[("any", ANY), ("all agree", "all_agree"), ("partial", "partial"),
                                          ("full disagreement", "full_disagree"),
                                          ("any disagreement", "disagree")], value=ANY,
                                 description="teachers", **lay),
            "correctness": W.Dropdown(options=[("any", ANY), ("wrong", "wrong"), ("right", "right")], value=ANY,
                                      description="student is", **lay),
            "category": W.Dropdown(options=[("any", ANY)] + [(A.FAILURE_LABELS[k], k) for k in A.FAILURE_CATEGORIES],
                                   value=ANY, description="error cause", **lay),
            "sort": W.Dropdown(options=[(SORT_LABELS[k], k) for k in SORT_OPTIONS], value="disagreement",
                               description="sort by", **lay),
            "human": W.Dropdown(options=[("any", ANY)], value=ANY, description="human agreement", **lay),
            "prev": W.Button(description="◀ Prev", layout=W.Layout(width="90px")),
            "next": W.Button(description="Next ▶", layout=W.Layout(width="90px")),
            "position": W.BoundedIntText(value=1, min=1, max=1, description="example", **lay),
        }
        page_label, example_html = W.HTML(), W.HTML()
        example_html.add_class("mtkd-explorer-example-view")
        example_html.add_class("mtkd-explorer-example")
        super().__init__(children=[
            W.HBox([c["task"], c["split"], c["method"], c["seed"]]),
            W.HBox([c["region"], c["correctness"], c["category"], c["human"], c["sort"]]),
            W.HBox([c["prev"], c["next"], c["position"], page_label]),
            example_html])
        self.add_class("mtkd-explorer")
        self.page_label, self.example_html = page_label, example_html
        self.explorer, self.controls = explorer, c
        self.rows = pd.DataFrame()
        self._busy = False
        self._set_task_options(task, split)
        for k in ("method", "seed", "region", "correctness", "category", "human", "sort"):
            c[k].observe(self._on_filter, names="value")
        c["task"].observe(self._on_task, names="value")
        c["split"].observe(self._on_split, names="value")
        c["position"].observe(self._on_position, names="value")
        c["prev"].on_click(lambda _: self.go(-1))
        c["next"].on_click(lambda _: self.go(+1))
        self.refresh()

    # ---------------------------------------------------------- state
    @property
    def position(self) -> int:
        return self.controls["position"].value - 1

    @property
    def shown_idx(self) -> int | None:
        """idx of the example on screen (None when no example matches)."""
        if self.rows.empty:
            return None
        return int(self.rows.iloc[self.position]["idx"])

    def _set_task_options(self, task: str, split: str | None = None) -> None:
        c = self.controls
        self._busy = True
        try:
            splits = self.explorer.splits(task) or [split or "test"]
            split = split if split in splits else splits[0]
            c["split"].options = splits
            c["split"].value = split
            t = self.explorer.table(task, split)
            keep = c["method"].value
            c["method"].options = t.methods
            default = next((m for m in t.methods if Method.parse(m).kind == "multi"), t.methods[0] if t.methods else None)
            c["method"].value = keep if keep in t.methods else default
            seeds = [(f"seed {s}", s) for s in t.seeds] + ([("majority over seeds", MAJORITY)] if len(t.seeds) > 1 else [])
            old = c["seed"].value
            c["seed"].options = seeds
            c["seed"].value = old if old in [v for _, v in seeds] else (seeds[0][1] if seeds else None)
            levels = t.human_levels
            kept = c["human"].value
            c["human"].options = [("any", ANY)] + [(f"{lv} agree", lv) for lv in levels]
            c["human"].value = kept if kept in levels else ANY
            c["human"].layout.display = "" if levels else "none"       # shown only for a task with counts
        finally:
            self._busy = False

    def _on_task(self, change) -> None:
        if self._busy:
            return
        self._set_task_options(change["new"], self.controls["split"].value)
        self.refresh()

    def _on_split(self, change) -> None:
        if self._busy:
            return
        self._set_task_options(self.controls["task"].value, change["new"])
        self.refresh()

    def _on_filter(self, change) -> None:
        if not self._busy:
            self.refresh()

    def _on_position(self, change) -> None:
        if not self._busy:
            self.render()

    # ---------------------------------------------------------- actions
    def refresh(self) -> None:
        """Re-filter (after a control change) and show the first matching example."""
        c = self.controls
        self.rows = self.explorer.filtered(
            c["task"].value, region=c["region"].value, category=c["category"].value, method=c["method"].value,
            correctness=c["correctness"].value, sort=c["sort"].value, split=c["split"].value,
            seed=c["seed"].value, human=c["human"].value)
        self._busy = True
        try:
            c["position"].max = max(1, len(self.rows))
            c["position"].value = 1
        finally:
            self._busy = False
        self.render()

    def go(self, step: int) -> None:
        """Move by ``step`` examples (clamped to the matching rows)."""
        pos = self.controls["position"]
        pos.value = int(min(max(1, pos.value + step), pos.max))

    def render(self) -> None:
        c = self.controls
        n, total = len(self.rows), len(self.explorer.table(c["task"].value, c["split"].value).frame)
        c["prev"].disabled = n == 0 or self.position <= 0
        c["next"].disabled = n == 0 or self.position >= n - 1
        if n == 0:
            self.page_label.value = f"<span style='color:#777'>0 of {total} examples match</span>"
            self.example_html.value = self.explorer.render_empty(c["task"].value, c["split"].value)
            return
        self.page_label.value = (f"<span style='color:#555'>{self.position + 1} / {n} matching "
                                 f"({100 * n / total:.1f}% of {total} in {c['split'].value})</span>")
        self.example_html.value = self.explorer.render_example(self.rows.iloc[self.position], seed=c["seed"].value,
                                                               method=c["method"].value)


def explore(run_dir, task: str | None = None, split: str = "test"):
    """The disagreement explorer over a finished run folder, as an ipywidgets ``VBox``.

    The returned widget exposes ``.explorer`` (:class:`Explorer`), ``.controls`` (dict of the
    control widgets: task, split, method, seed, region, correctness, category, human, sort, prev,
    next, position), ``.example_html`` (the HTML widget, CSS class ``mtkd-explorer-example``;
    its HTML carries ``data-idx``), ``.rows`` (the matching rows) and ``.shown_idx``.
    """
    explorer = run_dir if isinstance(run_dir, Explorer) else Explorer(run_dir, split=split)
    return ExplorerWidget(explorer, task=task, split=split)
