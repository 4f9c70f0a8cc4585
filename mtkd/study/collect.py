"""Gather finished units into the run's result files (SPEC: outputs of a run).

Every score in ``master_results.csv`` is computed here from the rows of
``predictions.parquet``, and every interval and test in ``summary.csv``,
``comparisons.csv`` and ``success_metrics.json`` from the same rows: nothing is
computed twice in two ways.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mtkd.study import io, power
from mtkd.study.methods import Method
from mtkd.study.pipeline import EVAL_SPLITS, SPLITS, Run, log, plan, read_logits

PROTOCOL = ("Two stages. Stage 1 (the choosing stage) trains every method on the params' seeds; every choice (best "
            "single teacher, best multi-teacher fuser, fusion weights, calibration temperatures, T and alpha in the "
            "sweep) is made on its selection split, and its test predictions plan stage 2 from their variance "
            "components alone. Stage 2 (the confirming stage) trains the methods of the primary comparisons (best "
            "multi vs best single, best single vs baseline: stats.primary, fixed before the run) on fresh seeds "
            "that made no choice; the primary verdicts come from those seeds alone, Holm-adjusted over the primary "
            "family. Every other comparison is secondary: exploratory, on the choosing seeds, its own Holm family. "
            "Intervals: t intervals whose variance counts seeds and test examples as crossed random effects, at "
            "seeds - 1 degrees of freedom; comparisons paired on the same examples and seeds. Verdicts: better / "
            "worse (significant after Holm), equivalent (two one-sided tests inside +-margin, Holm-adjusted), "
            "inconclusive (neither); mde_pp is the difference the design detects with the stated power (exact "
            "noncentral t).")
SINGLE_STAGE = ("One stage (stats.max_confirm_seeds: 0): the primary comparisons are tested on the seeds that made "
                "the choices, so a lucky seed can carry its luck from the choice into the test.")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _rows(task: str, method: str, kind: str, seed: int, split: str, idx, labels, logits) -> pd.DataFrame:
    probs = _softmax(logits.astype(np.float64)).astype(np.float32)
    return pd.DataFrame({"task": task, "method": method, "kind": kind, "seed": seed, "split": split,
                         "idx": idx, "label": labels, "pred": logits.argmax(1), "probs": list(probs)})


def _labels(run: Run, task: str, split: str, idx: np.ndarray) -> np.ndarray:
    frame = run.task(task).splits[split]
    if not np.array_equal(frame["idx"].to_numpy(), idx):
        raise ValueError(f"{task}/{split}: a unit's predictions are not in the split's idx order; "
                         "its cache is stale (re-run with --force students)")
    return frame["label"].to_numpy()


def teacher_predictions(run: Run) -> pd.DataFrame:
    frames = []
    for task in run.tasks:
        for t in run.teachers:
            for split in SPLITS:
                idx, z = read_logits(run, task, t, split)
                frames.append(_rows(task, f"teacher:{t}", "teacher", run.params.seeds[0], split, idx,
                                    _labels(run, task, split, idx), z))
    return pd.concat(frames, ignore_index=True)


def unit_predictions(run: Run, unit, folder=None) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """A finished student unit's prediction rows and gate weights on every evaluation split."""
    folder = folder or run.unit_dir(unit)
    if not io.is_done(folder):
        raise FileNotFoundError(f"{unit.label}: not trained yet ({folder}); run the {unit.stage} stage first")
    preds, gates = [], []
    with np.load(folder / "predictions.npz") as arr:
        for split in EVAL_SPLITS:
            idx = arr[f"idx_{split}"]
            rows = _rows(unit.task, unit.name, Method.parse(unit.name).kind, unit.seed, split, idx,
                         _labels(run, unit.task, split, idx), arr[f"logits_{split}"])
            if unit.stage == "sweep":
                rows = rows.assign(temperature=unit.temperature, alpha=unit.alpha)
            preds.append(rows)
            if f"gate_{split}" in arr:
                w = arr[f"gate_{split}"]
                gates.append(pd.DataFrame({"task": unit.task, "method": unit.name, "seed": unit.seed,
                                           "split": split, "idx": idx, "weights": list(w),
                                           "temperature": unit.temperature, "alpha": unit.alpha}))
    return preds, gates


GATE_FRAME_COLUMNS = ["task", "method", "seed", "split", "idx", "weights"]


def student_predictions(run: Run, stage: str = "students", units=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and gate weights of every finished student unit of a stage (or of ``units``)."""
    preds, gates = [], []
    for unit in plan(run, stage) if units is None else units:
        p, g = unit_predictions(run, unit)
        preds += p
        gates += g
    return (pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
            pd.concat(gates, ignore_index=True) if gates else pd.DataFrame(columns=GATE_FRAME_COLUMNS))


def fusion_weight_rows(run: Run) -> pd.DataFrame:
    """The per-example weights of every weighted-sum fuser of the run (students and sweep) on every
    split, recomputed from the cached teacher logits and the fusion info: task, method, split, idx,
    weights (one per teacher), applied (the fuser whose weights these are: a label-aware fuser
    outside the train split is its label-free fallback, see fusion_args.FUSION_LABEL_SPLITS).
    The gate's weights depend on the student and are in gates.parquet instead."""
    import torch
    from mtkd.kd.fusion import LEARNED_FUSERS, WEIGHTS, fusion_weights
    from mtkd.study.fusion_args import FUSION_LABEL_SPLITS, fuser_arguments
    from mtkd.study.pipeline import read_fusion_info, teacher_stack
    fusers = [f for f in dict.fromkeys([*run.params.distill.methods, *run.params.sweep.methods])
              if f in WEIGHTS and f not in LEARNED_FUSERS]
    frames = []
    for task in run.tasks:
        info = read_fusion_info(run, task)
        for split in SPLITS:
            frame = run.task(task).splits[split]
            z = torch.from_numpy(teacher_stack(run, task, split))
            labels = frame["label"].to_numpy() if split in FUSION_LABEL_SPLITS else None
            for fuser in fusers:
                applied, kw = fuser_arguments(info, fuser, labels)
                w = fusion_weights(applied, z, **kw).float().numpy()
                frames.append(pd.DataFrame({"task": task, "method": str(Method("multi", fuser)), "split": split,
                                            "idx": frame["idx"].to_numpy(), "weights": list(w),
                                            "applied": applied}))
    columns = ["task", "method", "split", "idx", "weights", "applied"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def score_table(run: Run, predictions: pd.DataFrame, extra_keys: tuple = ()) -> pd.DataFrame:
    """One row per (task, method, seed, split[, extra]) with the task's headline metric, from predictions."""
    from mtkd.data.metrics import score
    keys = ["task", "method", "kind", "seed", "split", *extra_keys]
    rows = []
    for key, g in predictions.groupby(keys, sort=False):
        metric = run.task(key[0]).metrics[0]
        rows.append({**dict(zip(keys, key)), "metric": metric,
                     "score": score(metric, g["pred"].to_numpy(), g["label"].to_numpy())})
    return pd.DataFrame(rows)


def headline_metrics(run: Run) -> dict[str, str]:
    return {t: run.task(t).metrics[0] for t in run.tasks}


def _comparison_entry(row: pd.Series, versus: str, st, family_rows: int) -> dict:
    """One paired comparison of comparisons.csv as the headline states it: numbers, verdict, its words, the
    seeds it used and what its design could see (power at the target MDE, TOST's power at 0, from its se)."""
    out = {k: float(row[k]) for k in ("diff_pp", "ci_low", "ci_high", "p_value", "p_adjusted", "equivalence_p",
                                      "equivalence_p_adjusted", "margin_pp", "mde_pp", "se_pp", "df")}
    out["significant"] = bool(row["significant"])
    out["verdict"] = str(row["verdict"])
    out["family"] = str(row["family"])
    out["seeds"] = [int(x) for x in str(row["seeds"]).split()]
    out["note"] = "" if pd.isna(row["note"]) else str(row["note"])
    out["in_words"] = power.in_words(out["verdict"], out["diff_pp"], out["ci_low"], out["ci_high"],
                                     out["margin_pp"], out["mde_pp"], versus, st.power, out["note"])
    level = st.significance / family_rows
    identical = out["note"] == power.IDENTICAL              # no spread at all: no power to speak of
    out["power_at_target"] = None if identical else power.difference_power(st.target_mde_pp, out["se_pp"],
                                                                           out["df"], level)
    out["tost_power"] = None if identical else power.tost_power(out["se_pp"], out["df"], st.equivalence_margin,
                                                                level)
    parts = {k: float(row[k]) for k in ("var_seeds", "var_examples", "var_interaction")}
    total = sum(parts.values())
    out["variance_components"] = {**parts, "n_seeds": int(row["n_seeds"]), "n_examples": int(row["n_examples"]),
                                  **{f"share_{k[4:]}": (v / total if total > 0 else None)
                                     for k, v in parts.items()}}
    return out


def success_metrics(run: Run, summary: pd.DataFrame, comparisons: pd.DataFrame, choice: dict,
                    plan: dict | None = None, confirm_summary: pd.DataFrame | None = None) -> dict:
    """The headline per task and overall, every number taken from summary / comparisons (and, with a
    confirming stage, its plan and confirm_summary)."""
    from mtkd.study.analysis import gap_closed, gap_closed_undefined
    from mtkd.study.confirm import reached_in_words
    st = run.params.stats
    family_rows = comparisons["family"].value_counts()           # Holm's first level is significance / this
    tasks = {}
    for task in run.tasks:
        s = summary[summary.task == task].set_index("method")
        teachers = s[s.kind == "teacher"]
        best_teacher = teachers["mean"].idxmax()
        comp = comparisons[comparisons.task == task]
        single, multi = choice[task]["best_single"], choice[task]["best_multi"]
        c = comp[(comp.a == multi) & (comp.b == single)].iloc[0]
        d = comp[(comp.a == single) & (comp.b == "baseline")]

        def entry(method, frame=s):
            r = frame.loc[method]
            return {"method": method, "mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                    "n_seeds": int(r["n_seeds"])}

        def headline(row, versus):
            out = _comparison_entry(row, versus, st, int(family_rows[row["family"]]))
            t = plan["tasks"][task] if plan is not None and row["family"] == "primary" else None
            if t is not None and t.get("unplanned"):
                out["design"] = {"capped": True, "unplanned": True, "in_words": t["unplanned"]}
            elif t is not None and row["comparison"] in t["comparisons"]:
                out["design"] = {**t["comparisons"][row["comparison"]]["planned"],
                                 "capped": t["comparisons"][row["comparison"]]["capped"],
                                 "in_words": reached_in_words(t, row["comparison"], st.target_mde_pp,
                                                              st.equivalence_margin)}
            return out
        baseline = s.loc["baseline", "mean"] if "baseline" in s.index else float("nan")
        advantage = headline(c, f"the best single teacher ({single})")
        reason = gap_closed_undefined(baseline, teachers["mean"].max())
        confirming = None
        if confirm_summary is not None and len(confirm_summary):
            cs = confirm_summary[confirm_summary.task == task].set_index("method")
            confirming = {m: entry(m, cs) for m in cs.index}
        tasks[task] = {
            "metric": run.task(task).metrics[0],
            "best_teacher": entry(best_teacher),
            "baseline": entry("baseline") if "baseline" in s.index else None,
            "best_single": entry(single),
            "best_multi": entry(multi),
            "confirming": confirming,
            "multi_advantage_pp": advantage,
            "distillation_effect_pp": headline(d.iloc[0], "the no-KD baseline") if len(d) else None,
            "gap_closed": {**{k: (None if reason else gap_closed(s.loc[choice[task][k], "mean"], baseline,
                                                                teachers["mean"].max()))
                              for k in ("best_single", "best_multi")}, "undefined_reason": reason},
            "verdict": advantage["verdict"],
            "verdict_in_words": advantage["in_words"],
        }
    adv = [t["multi_advantage_pp"]["diff_pp"] for t in tasks.values()]
    overall = {
        "avg_best_teacher": float(np.mean([t["best_teacher"]["mean"] for t in tasks.values()])),
        "avg_baseline": float(np.mean([t["baseline"]["mean"] for t in tasks.values() if t["baseline"]]))
        if all(t["baseline"] for t in tasks.values()) else None,
        "avg_best_single": float(np.mean([t["best_single"]["mean"] for t in tasks.values()])),
        "avg_best_multi": float(np.mean([t["best_multi"]["mean"] for t in tasks.values()])),
        "avg_multi_advantage_pp": float(np.mean(adv)),
        "max_mde_multi_vs_single_pp": float(max(t["multi_advantage_pp"]["mde_pp"] for t in tasks.values())),
        **{f"tasks_multi_{v}": sum(t["verdict"] == v for t in tasks.values()) for v in power.VERDICTS},
        **{f"tasks_distillation_{v}": sum(bool(t["distillation_effect_pp"])
                                          and t["distillation_effect_pp"]["verdict"] == v for t in tasks.values())
           for v in power.VERDICTS},
    }
    return {"protocol": PROTOCOL if plan is not None else f"{PROTOCOL} {SINGLE_STAGE}",
            "design": "two stages" if plan is not None else "one stage",
            "seeds": list(run.params.seeds), "confidence": st.confidence,
            "significance": st.significance, "equivalence_margin_pp": st.equivalence_margin, "power": st.power,
            "target_mde_pp": st.target_mde_pp, "primary": list(st.primary), "tasks": tasks, "overall": overall}


RESULT_FILES = ("predictions.parquet", "gates.parquet", "fusion_weights.parquet", "master_results.csv",
                "summary.csv", "comparisons.csv", "choices.json", "success_metrics.json", "fidelity.csv")
CONFIRM_FILES = ("confirm_plan.json", "confirm_summary.csv")     # with a confirming stage
SWEEP_FILES = ("sweep_predictions.parquet", "sweep_results.csv")  # with the sweep


def results_key(run: Run, stage: str = "students") -> str:
    """What a stage's result files depend on: every unit (its folder name holds its params hash; the
    students' results include the confirming stage's), the teachers and the stats params."""
    from mtkd.study.config import params_hash
    from mtkd.study.confirm import PLAN_VERSION
    from mtkd.study.pipeline import CODE_VERSION, active_stages
    from mtkd.study.stats import RESULTS_VERSION
    stages = [stage, *(["confirm"] if stage == "students" and "confirm" in active_stages(run) else [])]
    units = [run.unit_dir(u).name for s in stages for u in plan(run, s)]
    teachers = [run.teacher_key(task, t) for task in run.tasks for t in run.teachers]
    return params_hash(units, teachers, run.params.stats, CODE_VERSION, RESULTS_VERSION, PLAN_VERSION)


def write_results(run: Run) -> dict:
    """Write predictions, gates, master results, summaries, comparisons and success metrics.

    Both stages' predictions go to predictions.parquet (``stage``: choosing / confirming); summary.csv holds
    the choosing stage (every method on the same seeds), confirm_summary.csv the confirming one. A warm
    re-run whose units and stats params are unchanged reuses the files (the bootstrap is the slow part);
    ``results.key`` is written last, so a killed write is redone."""
    from mtkd.study import stats
    from mtkd.study.pipeline import active_stages
    key = results_key(run)
    marker = run.dir / "results.key"
    two_stages = "confirm" in active_stages(run)
    expected = [*RESULT_FILES, *(CONFIRM_FILES if two_stages else ())]
    if marker.exists() and marker.read_text() == key and all((run.dir / f).exists() for f in expected):
        return io.read_json(run.dir / "success_metrics.json")
    marker.unlink(missing_ok=True)
    students, gates = student_predictions(run)
    predictions = pd.concat([teacher_predictions(run), students], ignore_index=True).assign(stage="choosing")
    metrics = headline_metrics(run)
    st = run.params.stats
    plan_file, confirming, confirm_summary = None, None, None
    if two_stages:
        from mtkd.study.confirm import write_plan
        plan_file = write_plan(run)
        confirming = student_predictions(run, "confirm")[0].assign(stage="confirming")
        confirm_summary = stats.summarise(confirming, metrics, split="test", n_boot=st.bootstrap,
                                          confidence=st.confidence).assign(stage="confirming")
    everything = pd.concat([predictions, confirming], ignore_index=True) if two_stages else predictions
    master = score_table(run, everything, extra_keys=("stage",))
    summary = stats.summarise(predictions, metrics, split="test", n_boot=st.bootstrap,
                              confidence=st.confidence).assign(stage="choosing")
    choice = {task: {"best_single": stats.choose_best(predictions, metrics, "single")[task],
                     "best_multi": stats.choose_best(predictions, metrics, "multi")[task]}
              for task in run.tasks}
    comparisons = stats.compare(predictions, metrics, choice, split="test", n_boot=st.bootstrap,
                                confidence=st.confidence, significance=st.significance,
                                margin=st.equivalence_margin, power_level=st.power, primary=st.primary,
                                confirming=confirming)
    success = success_metrics(run, summary, comparisons, choice, plan_file, confirm_summary)
    fidelity = fidelity_table(run, predictions, gates, summary, choice)
    io.write_parquet(run.dir / "predictions.parquet", everything)
    io.write_parquet(run.dir / "gates.parquet", gates)
    io.write_parquet(run.dir / "fusion_weights.parquet", fusion_weight_rows(run))
    io.write_csv(run.dir / "master_results.csv", master)
    io.write_csv(run.dir / "summary.csv", summary)
    if two_stages:
        io.write_csv(run.dir / "confirm_summary.csv", confirm_summary)
    io.write_csv(run.dir / "comparisons.csv", comparisons)
    io.write_json(run.dir / "choices.json", choice)
    io.write_json(run.dir / "success_metrics.json", success)
    io.write_csv(run.dir / "fidelity.csv", fidelity)
    io.write_text(marker, key)
    return success


def fidelity_table(run: Run, predictions: pd.DataFrame, gates: pd.DataFrame, summary: pd.DataFrame,
                   choice: dict) -> pd.DataFrame:
    """fidelity.csv (or one condition's part of conditions_summary.csv): per task and method, the test
    score beside agreement with its target, KL(target || student), the target's own score and the gap
    closed (`mtkd.study.fidelity`). ``run`` is the study's (or the condition's) run."""
    from mtkd.study.fidelity import fidelity_rows
    from mtkd.study.pipeline import read_fusion_info
    frames = []
    for task in run.tasks:
        test = predictions[(predictions.task == task) & (predictions.split == "test")
                           & predictions.kind.isin(["single", "multi"])]
        logits = {t: read_logits(run, task, t, "test") for t in run.teachers}
        idx = next(iter(logits.values()))[0]
        frames.append(fidelity_rows(task, run.task(task).metrics[0], test, idx,
                                    {t: z for t, (_, z) in logits.items()}, read_fusion_info(run, task),
                                    gates[(gates.task == task) & (gates.split == "test")] if len(gates) else gates,
                                    summary[summary.task == task], choice[task]))
    return pd.concat(frames, ignore_index=True)


def write_sweep_results(run: Run) -> pd.DataFrame | None:
    """The T x alpha grid's predictions and scores, and each method at its own best setting
    (picked on the selection split, reported on test)."""
    if not plan(run, "sweep"):
        return None
    key, marker = results_key(run, "sweep"), run.dir / "sweep.key"
    files = [run.dir / name for name in SWEEP_FILES]
    if marker.exists() and marker.read_text() == key and all(f.exists() for f in files):
        return pd.read_csv(files[1])          # a warm re-run: the same units, the same scores
    marker.unlink(missing_ok=True)
    preds, gates = student_predictions(run, "sweep")
    scores = score_table(run, preds, extra_keys=("temperature", "alpha"))
    io.write_parquet(files[0], preds)
    io.write_csv(files[1], scores)
    io.write_text(marker, key)
    return scores


def tuned_settings(sweep_scores: pd.DataFrame) -> pd.DataFrame:
    """Per task and method, the (T, alpha) with the best mean selection score and its test score."""
    mean = sweep_scores.groupby(["task", "method", "split", "temperature", "alpha"], as_index=False)["score"].mean()
    sel = mean[mean.split == "selection"].sort_values(["task", "method", "score", "temperature", "alpha"],
                                                      ascending=[True, True, False, True, True])
    best = sel.groupby(["task", "method"], as_index=False).first()
    test = mean[mean.split == "test"].rename(columns={"score": "test_score"}).drop(columns="split")
    return best.rename(columns={"score": "selection_score"}).drop(columns="split").merge(
        test, on=["task", "method", "temperature", "alpha"])
