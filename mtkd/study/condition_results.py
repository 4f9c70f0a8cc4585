"""The conditions' result files: ``conditions.csv`` and ``conditions_summary.csv`` (issue 17).

Each condition (one value of one axis of ``conditions.axes``) is read as a study of its own, with the
main table's rigour: its students (the baseline, the single teacher best on selection and the fusers
of ``conditions.fusers``, over the study's seeds) and its teachers on the test split; the best fuser
chosen on selection; the same paired comparisons (`stats.compare`: best multi vs best single, every other
fuser vs best single, best single vs baseline) with bootstrap intervals and TOST; and fidelity beside
every score (`mtkd.study.fidelity`). Holm's correction runs over *every* row of every condition: one
family, so looking along many axes for a condition where multi-teacher wins pays for the looking.
"""
from __future__ import annotations

import pandas as pd

from mtkd.study import io, stats
from mtkd.study.collect import (GATE_FRAME_COLUMNS, fidelity_table, headline_metrics, teacher_predictions,
                                unit_predictions)
from mtkd.study.pipeline import CODE_VERSION, Run, Unit, best_teacher, condition_unit_dirs, log, plan
from mtkd.study.results import CONDITION_KEYS, CONDITIONS_COLUMNS, CONDITIONS_SUMMARY_COLUMNS

CONDITION_FILES = ("conditions.csv", "conditions_summary.csv")


def condition_predictions(run: Run, c, teachers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One condition's prediction rows (its teachers' and its students') and its gates."""
    at = run.at(c.label)
    units = []
    for task in run.tasks:
        for method, seeds in condition_unit_dirs(run, c, task).items():
            units += [(Unit("students", task, method, seed), folder) for seed, folder in seeds]
    preds, gates = [], []
    for unit, folder in units:
        p, g = unit_predictions(at, unit, folder)
        preds += p
        gates += g
    mine = teachers[teachers.method.isin([f"teacher:{t}" for t in at.teachers])]
    return (pd.concat([mine, *preds], ignore_index=True),
            pd.concat(gates, ignore_index=True) if gates else pd.DataFrame(columns=GATE_FRAME_COLUMNS))


def conditions_key(run: Run) -> str:
    from mtkd.study.config import params_hash
    units = [run.unit_dir(u).name for u in plan(run, "conditions")]
    teachers = [run.teacher_key(task, t) for task in run.tasks for t in run.teachers]
    return params_hash(units, teachers, run.params.stats, run.params.conditions, CODE_VERSION,
                       stats.RESULTS_VERSION)


def write_condition_results(run: Run) -> pd.DataFrame | None:
    """conditions.csv and conditions_summary.csv from every condition's finished units (None without
    conditions). Recomputed only when a unit, the teachers, the stats params or the code changed."""
    if not run.conditions:
        return None
    files = [run.dir / f for f in CONDITION_FILES]
    key, marker = conditions_key(run), run.dir / "conditions.key"
    if marker.exists() and marker.read_text() == key and all(f.exists() for f in files):
        return pd.read_csv(files[0])
    marker.unlink(missing_ok=True)
    st = run.params.stats
    metrics = headline_metrics(run)
    teachers = teacher_predictions(run)
    comparisons, summaries = [], []
    for c in run.conditions:
        at = run.at(c.label)
        preds, gates = condition_predictions(run, c, teachers)
        multi = stats.choose_best(preds, metrics, "multi")
        choice = {task: {"best_single": f"single:{best_teacher(at, task)}", "best_multi": multi[task]}
                  for task in run.tasks}
        keys = {"axis": c.axis, "param": c.param, "value": c.value_label, "order": c.order, "is_main": c.is_main}
        comp = stats.compare(preds, metrics, choice, split="test", n_boot=st.bootstrap, confidence=st.confidence,
                             significance=st.significance, margin=st.equivalence_margin, power_level=st.power)
        comparisons.append(comp.assign(**keys))
        summary = stats.summarise(preds, metrics, split="test", n_boot=st.bootstrap, confidence=st.confidence)
        summaries.append(fidelity_table(at, preds, gates, summary, choice).assign(**keys))
    table = stats.adjust_family(pd.concat(comparisons, ignore_index=True), st.significance, st.equivalence_margin,
                                st.power)
    table = table[list(CONDITIONS_COLUMNS)]
    summary = pd.concat(summaries, ignore_index=True)[list(CONDITIONS_SUMMARY_COLUMNS)]
    order = list(CONDITION_KEYS[:2])
    io.write_csv(files[0], table.sort_values(order + ["order"], kind="stable"))
    io.write_csv(files[1], summary.sort_values(order + ["order"], kind="stable"))
    io.write_text(marker, key)
    n = table["verdict"].value_counts().to_dict()
    log(f"conditions: {len(run.conditions)} condition values x {len(run.tasks)} tasks, {len(table)} comparisons in "
        f"one Holm family: " + ", ".join(f"{v} {n.get(v, 0)}" for v in ("better", "worse", "equivalent",
                                                                        "inconclusive")))
    return table
