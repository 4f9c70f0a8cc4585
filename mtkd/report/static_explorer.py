"""``reports/explorer.html``: the disagreement explorer as one self-contained page (no kernel, no network).

The data come from :class:`mtkd.report.explorer.Explorer` (its :class:`~mtkd.report.explorer.TaskTable`
per task and split, its filters and sort orders), so the page shows what the JupyterLab
explorer shows; the page's small script (``mtkd/static/explorer.js``) only selects rows.
Everything is embedded as JSON, columnar and compact:

* probabilities (teachers, fused targets, gate weights) as integer percent (0-100), i.e.
  rounded to 0.01 (about 0.5 kB per example for three teachers and eight fusers);
* every student's prediction per seed (and the majority over seeds) as class ids, and its
  error cause per seed as one character per example (an index into ``causes``);
* the sort orders (teacher disagreement, teacher entropy, idx) as row positions;
* ``extra_filters``: per table, optional filters with one code per example. Human
  agreement (from a task's ``label_counts_fields``, when its prepared examples carry them:
  the level ``k/n``, the largest class count of n annotator labels, or "no counts") is the
  first; a task without them simply has none. ``human_probs`` (integer percent, -1 on rows
  without counts) is then the human label distribution, shown above the teachers.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from mtkd.study import analysis as A
from mtkd.study import humans as H
from mtkd.study import io
from mtkd.report.explorer import MAJORITY, SORT_LABELS, SORT_OPTIONS, Explorer

STATIC = Path(__file__).resolve().parent / "static"
CAUSES = ("correct", *A.FAILURE_CATEGORIES, "missing")       # one digit per example: the index here
NO_COUNTS = "no counts"


def _percent(a) -> list[int]:
    """Probabilities as integer percent, flattened row-major (-1 where missing)."""
    a = np.asarray(a, dtype=float)
    out = np.where(np.isfinite(a), np.rint(np.clip(a, 0, 1) * 100), -1).astype(int)
    return out.ravel().tolist()


def human_agreement(examples, info: dict) -> list[str] | None:
    """Per example: the human agreement level ``k/n`` (``max_c n_c`` of ``sum_c n_c`` annotator labels),
    or "no counts"; None when the task carries no label counts."""
    fields = list(info.get("label_counts_fields") or [])
    if not fields or not set(fields) <= set(examples.columns):
        return None
    levels = H.agreement_level(examples[fields].to_numpy())
    return [lv or NO_COUNTS for lv in levels]


def human_levels(values: list[str]) -> list[str]:
    """The levels present, most agreement first, "no counts" last."""
    levels = {v for v in values if v != NO_COUNTS}
    ordered = sorted(levels, key=lambda v: (-int(v.split("/")[0]) / int(v.split("/")[1]), v))
    return ordered + ([NO_COUNTS] if NO_COUNTS in values else [])


def table_data(explorer: Explorer, task: str, split: str) -> dict:
    """One (task, split) of the page: the explorer's table, filters' inputs and sort orders."""
    t = explorer.table(task, split)
    n = len(t.frame)
    seed_options = [str(s) for s in t.seeds] + ([MAJORITY] if len(t.seeds) > 1 else [])
    preds, causes = {}, {}
    for m in t.methods:
        preds[m], causes[m] = {}, {}
        for opt in seed_options:
            seed = MAJORITY if opt == MAJORITY else int(opt)
            rows = explorer.filtered(task, method=m, seed=seed, sort="idx", split=split).sort_values("pos")
            preds[m][opt] = rows["pred"].astype(int).tolist()
            causes[m][opt] = "".join(str(CAUSES.index(c)) for c in rows["category"])
    gates = {}
    pos_of = {int(i): p for p, i in enumerate(t.frame["idx"])}
    for (m, s), ser in t.gates.items():
        w = np.full((n, len(t.teachers)), np.nan)
        for i, weights in ser.items():
            if int(i) in pos_of:
                w[pos_of[int(i)]] = np.asarray(weights, dtype=float)
        gates.setdefault(m, {})[str(s)] = _percent(w)
    orders = {s: explorer.filtered(task, sort=s, split=split)["pos"].astype(int).tolist() for s in SORT_OPTIONS}
    extra = []
    ex = explorer.run.examples(task, split).set_index("idx").loc[t.frame["idx"].to_numpy()]
    human = human_agreement(ex, explorer.run.task_info(task))
    human_probs = None
    if human is not None:
        options = human_levels(human)
        extra.append({"name": "human", "label": "human agreement", "options": options,
                      "option_labels": [o if o == NO_COUNTS else f"{o} agree" for o in options], "values": human})
        fields = list(explorer.run.task_info(task)["label_counts_fields"])
        human_probs = _percent(H.human_distribution(ex[fields].to_numpy()))
    return {
        "task": task, "split": split, "n": n, "label_names": t.label_names, "text_fields": t.text_fields,
        "teachers": t.teachers, "fusers": list(t.fused), "methods": t.methods, "seeds": seed_options,
        "idx": t.frame["idx"].astype(int).tolist(), "label": t.frame["label"].astype(int).tolist(),
        "texts": {f: t.frame[f].astype(str).tolist() for f in t.text_fields},
        "region": [A.REGIONS.index(r) for r in t.frame["region"]],
        "disagreement": np.round(t.frame["disagreement"].to_numpy(dtype=float), 3).tolist(),
        "teacher_probs": _percent(t.teacher_probs), "teacher_preds": t.teacher_probs.argmax(-1).ravel().tolist(),
        "fused": {f: _percent(q) for f, q in t.fused.items()},
        "preds": preds, "causes": causes, "gates": gates, "orders": orders, "extra_filters": extra,
        "human_probs": human_probs,
    }


def explorer_data(run_dir: Path) -> dict:
    """Every task and every split with student predictions (test first)."""
    explorer = Explorer(run_dir)
    run = explorer.run
    tables = []
    for task in run.tasks:
        for split in explorer.splits(task):
            sp = run.student_predictions(task, split)
            if split == "test" or len(sp):
                tables.append(table_data(explorer, task, split))
    return {"run": str(run.params.get("run_name", Path(run_dir).name)), "tables": tables,
            "regions": list(A.REGIONS), "region_labels": A.REGION_LABELS, "causes": list(CAUSES),
            "cause_labels": {"correct": "right", "missing": "no prediction", **A.FAILURE_LABELS},
            "sorts": list(SORT_OPTIONS), "sort_labels": SORT_LABELS}


def _json_for_script(obj) -> str:
    """JSON safe inside a <script> element (no "</" can close it early)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def write_explorer(run_dir: Path, target: Path | None = None) -> Path:
    """Write ``reports/explorer.html`` of a finished run folder; returns its path."""
    run_dir = Path(run_dir)
    data = explorer_data(run_dir)
    target = Path(target) if target else run_dir / "reports" / "explorer.html"
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mtkd explorer: {html.escape(data['run'])}</title>"
            f"<style>{(STATIC / 'explorer.css').read_text()}</style></head><body>"
            f'<nav class="mtkd-nav"><a href="index.html">&larr; report index</a></nav>'
            f"<h1>Disagreement explorer <span class=\"muted\">{html.escape(data['run'])}</span></h1>"
            f'<div id="mtkd-explorer" class="mtkd-explorer"><noscript>The explorer needs JavaScript.</noscript></div>'
            f'<script type="application/json" id="mtkd-data">{_json_for_script(data)}</script>'
            f"<script>{(STATIC / 'explorer.js').read_text()}</script></body></html>")
    io.write_text(target, page)
    return target
