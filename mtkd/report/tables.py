"""Per-run tables for the analysis notebooks: `mtkd.study.analysis` applied to every task of a finished run.

Each function takes a `mtkd.study.results.RunResults` and returns a tidy frame with a ``task``
column, ready for `mtkd.report.figures`. The notebooks only call these and draw.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mtkd.study import analysis
from mtkd.study.results import RunResults
from mtkd.study.methods import Method


def _student_matrix(run: RunResults, task: str, split: str, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Method -> predictions (seeds, N) aligned with ``idx`` (the teacher logits' order)."""
    df = run.student_predictions(task, split)
    out = {}
    for method, g in df.groupby("method", sort=False):
        wide = g.pivot(index="seed", columns="idx", values="pred")
        out[method] = wide.reindex(columns=idx).to_numpy()
    return out


def _labels(run: RunResults, task: str, split: str, idx: np.ndarray) -> np.ndarray:
    ex = run.examples(task, split).set_index("idx")
    return ex.loc[idx, "label"].to_numpy()


def confidence(run: RunResults, split: str = "test") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Teacher confidence per task and teacher, and the max-probability histogram."""
    tables, hists = [], []
    for task in run.tasks:
        probs = run.teacher_probs(task, split)
        tables.append(analysis.teacher_confidence(probs).assign(task=task))
        hists.append(analysis.confidence_histogram(probs).assign(task=task))
    return pd.concat(tables, ignore_index=True), pd.concat(hists, ignore_index=True)


def confidence_overview(table: pd.DataFrame) -> pd.DataFrame:
    """The original study's two confidence tables: averaged over teachers per task, and over tasks per teacher."""
    cols = ["mean_max_prob", "mean_entropy", "pct_high_conf"]
    per_task = table.groupby("task", sort=False)[cols].mean().reset_index().assign(over="teachers")
    per_teacher = table.groupby("teacher", sort=False)[cols].mean().reset_index().assign(over="tasks")
    return pd.concat([per_task.rename(columns={"task": "name"}), per_teacher.rename(columns={"teacher": "name"})],
                     ignore_index=True)[["over", "name", *cols]]


def calibration(run: RunResults, split: str = "test") -> tuple[pd.DataFrame, dict]:
    """ECE of every teacher, fused target and student (first seed), and their reliability curves."""
    rows, curves = [], {}
    for task in run.tasks:
        idx, _ = run.teacher_logits(task, split)
        y = _labels(run, task, split, idx)
        models = {f"teacher:{t}": p for t, p in run.teacher_probs(task, split).items()}
        models.update({f"target:{f}": p for f, p in run.fused_targets(task, split).items()})
        preds = run.student_predictions(task, split)
        for method, g in preds.groupby("method", sort=False):
            g = g[g["seed"] == g["seed"].min()].set_index("idx").loc[idx]
            models[method] = np.stack(g["probs"].to_numpy())
        for name, p in models.items():
            kind = Method.parse(name).kind
            rows.append({"task": task, "model": name, "kind": kind,
                         "ece": analysis.expected_calibration_error(p, y), "accuracy": 100 * (p.argmax(1) == y).mean()})
            curves[f"{task} | {name}"] = analysis.reliability_curve(p, y)
    return pd.DataFrame(rows), curves


def agreement(run: RunResults, split: str = "test") -> pd.DataFrame:
    """Share of examples per agreement region and every method's accuracy there (mean over seeds)."""
    frames = []
    for task in run.tasks:
        idx, z = run.teacher_logits(task, split)
        y = _labels(run, task, split, idx)
        regions = analysis.agreement_regions(z.argmax(2))
        methods = {f"teacher:{t}": z[:, k].argmax(1) for k, t in enumerate(run.teachers(task))}
        methods.update(_student_matrix(run, task, split, idx))
        frames.append(analysis.accuracy_by_region(regions, y, methods).assign(task=task))
    return pd.concat(frames, ignore_index=True)


def failures(run: RunResults, split: str = "test") -> pd.DataFrame:
    """Every student's errors by cause, summed over seeds."""
    frames = []
    for task in run.tasks:
        idx, z = run.teacher_logits(task, split)
        y = _labels(run, task, split, idx)
        for method, preds in _student_matrix(run, task, split, idx).items():
            frames.append(analysis.failure_categories(preds, y, z.argmax(2)).assign(task=task, method=method))
    return pd.concat(frames, ignore_index=True)


def diversity(run: RunResults, split: str = "train") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Soft-label diversity per task (on the split students learn from, by default) and the targets' sharpness."""
    T = float(run.params["distill"]["temperature"])
    rows, targets = [], []
    for task in run.tasks:
        _, z = run.teacher_logits(task, split)
        d = analysis.soft_label_diversity(z, run.fused_targets(task, split), teacher_names=run.teachers(task))
        dT = analysis.soft_label_diversity(z, teacher_names=run.teachers(task), temperature=T)
        rows.append({"task": task, "mean_js": d["mean_js"], "mean_js_norm": d["mean_js_norm"],
                     f"mean_js_at_T{T:g}": dT["mean_js"], "disagreement_rate": d["disagreement_rate"]})
        targets.append(d["targets"].assign(task=task))
    return pd.DataFrame(rows), pd.concat(targets, ignore_index=True)


def diversity_and_advantage(run: RunResults, split: str = "train") -> tuple[pd.DataFrame, dict]:
    """Per task: teacher diversity beside the multi-vs-single advantage (best multi - best single, test,
    both chosen on selection), and their correlation across tasks."""
    div, _ = diversity(run, split)
    comp = run.comparisons
    head = comp[comp["comparison"] == "best multi vs best single"]
    adv = head[["task", "diff_pp", "ci_low", "ci_high", "significant"]].rename(columns={"diff_pp": "advantage"})
    per_task = div.merge(adv, on="task").assign(diversity=lambda d: d["mean_js"])
    return per_task, analysis.diversity_vs_advantage(per_task)


def main_table(run: RunResults) -> pd.DataFrame:
    """The original study's main table from the choosing stage (every method on the same seeds): one row per
    method, one column per task and AVG, each cell the test mean over seeds with its 95 % interval;
    significance marks come from the secondary comparisons, measured on the same seeds."""
    s = run.summary
    tasks = run.tasks
    order = {"teacher": 0, "baseline": 1, "single": 2, "multi": 3}
    rows = []
    for (method, kind), g in sorted(s.groupby(["method", "kind"], sort=False), key=lambda x: order[x[0][1]]):
        g = g.set_index("task")
        row = {"method": method, "type": kind}
        for t in tasks:
            if t in g.index:
                r = g.loc[t]
                row[t] = f"{r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        means = [g.loc[t, "mean"] for t in tasks if t in g.index]
        row["AVG"] = f"{np.mean(means):.2f}" if len(means) == len(tasks) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    comp = run.comparisons
    same_seeds = comp["family"] == "secondary" if "family" in comp else pd.Series(True, index=comp.index)
    marks = comp[comp["significant"].astype(bool) & same_seeds]
    for _, c in marks.iterrows():
        hit = table["method"] == c["a"]
        if c["task"] in table and hit.any():
            sign = "+" if c["diff_pp"] > 0 else "-"
            table.loc[hit, c["task"]] = table.loc[hit, c["task"]] + f" {sign}* vs {c['b']}"
    return table


def confirming_table(run: RunResults) -> pd.DataFrame:
    """Per task, the primary comparisons' methods in both stages: the choosing stage's mean (the seeds that
    chose them, so a winner's luck included) beside the confirming stage's mean on fresh seeds."""
    cs = run.confirm_summary
    if not len(cs):
        return pd.DataFrame()
    s = run.summary.set_index(["task", "method"])
    rows = []
    for r in cs.itertuples():
        first = s.loc[(r.task, r.method)]
        rows.append({"task": r.task, "method": r.method,
                     f"choosing ({int(first['n_seeds'])} seeds)": f"{first['mean']:.2f}",
                     "confirming (fresh seeds)": f"{r.mean:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]",
                     "fresh seeds": int(r.n_seeds)})
    return pd.DataFrame(rows)


def _headline_rows(run: RunResults):
    """(task, comparison name, its success-metrics entry) for each primary comparison of the headline."""
    for task, t in run.success_metrics["tasks"].items():
        for name, key in (("best multi vs best single", "multi_advantage_pp"),
                          ("best single vs baseline", "distillation_effect_pp")):
            if t.get(key):
                yield task, name, t[key]


def _seeds(entry: dict) -> str:
    seeds = entry.get("seeds") or []
    return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})" if len(seeds) > 1 else " ".join(map(str, seeds))


def verdicts(run: RunResults) -> pd.DataFrame:
    """Per task: best single, best multi (both chosen on selection), the paired test difference, its MDE,
    the verdict in words, and the distillation effect (best single vs no KD) with its own verdict; the seeds
    each used (the confirming stage's fresh seeds for the primary family)."""
    sm = run.success_metrics
    rows = []
    for task, t in sm["tasks"].items():
        a = t["multi_advantage_pp"]
        if "mde_pp" not in a:
            raise ValueError(f"success_metrics.json of {run.path} has no verdicts or MDEs (written by an older mtkd); "
                             "run the same `mtkd run` again to rewrite the result files")
        d = t.get("distillation_effect_pp") or {}
        gap = t["gap_closed"]["best_multi"]
        score = {k: ((t.get("confirming") or {}).get(t[k]["method"]) or t[k])["mean"]
                 for k in ("best_single", "best_multi")}      # on the seeds the verdict used
        rows.append({"task": task, "metric": t["metric"], "best single": t["best_single"]["method"],
                     "single": round(score["best_single"], 2), "best multi": t["best_multi"]["method"],
                     "multi": round(score["best_multi"], 2), "seeds": _seeds(a),
                     "advantage (pp)": round(a["diff_pp"], 2),
                     "95% CI": f"[{a['ci_low']:.2f}, {a['ci_high']:.2f}]", "p (Holm)": round(a["p_adjusted"], 4),
                     "MDE (pp)": _mde(a), "verdict": a["verdict"], "in words": a["in_words"],
                     "distillation (pp)": round(d["diff_pp"], 2) if d else None,
                     "distillation MDE (pp)": _mde(d) if d else None,
                     "distillation verdict": d.get("verdict"),
                     "gap closed (multi)": "not defined" if gap is None else gap})
    return pd.DataFrame(rows)


def _mde(entry: dict):
    """The MDE as shown: a number, or the note that replaces it."""
    return entry.get("note") or round(entry["mde_pp"], 2)


def design(run: RunResults) -> pd.DataFrame:
    """Per primary comparison: the seeds it used, the design's MDE, its power at the target MDE and TOST's
    power at 0 (from its measured se), the verdict, and whether the cap on fresh seeds bound the plan."""
    st = stats_params(run)
    rows = []
    for task, name, c in _headline_rows(run):
        plan = c.get("design") or {}
        rows.append({"task": task, "comparison": name, "family": c.get("family", "primary"), "seeds": _seeds(c),
                     "test examples": c["variance_components"]["n_examples"], "MDE (pp)": _mde(c),
                     f"power at {st['target_mde_pp']:g} pp": _share(c.get("power_at_target")),
                     f"TOST power (+-{st['equivalence_margin']:g} pp)": _share(c.get("tost_power")),
                     "verdict": c["verdict"],
                     "plan": _plan_words(plan)})
    return pd.DataFrame(rows)


def _plan_words(plan: dict) -> str:
    if not plan:
        return "no confirming stage: choice and test share seeds"
    if plan.get("unplanned"):
        return plan["in_words"]
    if not plan["se_pp"] > 0:
        return "planned from no spread at all (identical predictions while choosing): the fewest seeds"
    if plan["capped"]:
        return f"cap bound: the plan needed more seeds (MDE {plan['mde_pp']:.2f} pp planned at the cap)"
    return f"planned to reach the target (MDE {plan['mde_pp']:.2f} pp planned)"


def _share(x) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.0%}"


def variance_components(run: RunResults) -> pd.DataFrame:
    """Per task and headline comparison: how much of the difference's variance comes from seeds, from test
    examples and from their interaction (pp^2 and shares); it says whether seeds or examples buy power."""
    rows = []
    for task, name, c in _headline_rows(run):
        v = c["variance_components"]
        rows.append({"task": task, "comparison": name, "seeds": v["n_seeds"], "test examples": v["n_examples"],
                     "se (pp)": c["se_pp"], "df": c["df"], "MDE (pp)": c["mde_pp"],
                     "var seeds (pp^2)": v["var_seeds"], "var examples (pp^2)": v["var_examples"],
                     "var interaction (pp^2)": v["var_interaction"], "share seeds": v["share_seeds"],
                     "share examples": v["share_examples"], "share interaction": v["share_interaction"]})
    return pd.DataFrame(rows)


def stats_params(run: RunResults) -> dict:
    """The run's stats params, with the defaults of keys added since the run was made."""
    from mtkd.study.config import SCHEMA
    return {**{k: f.default for k, f in SCHEMA["stats"].items()}, **(run.params.get("stats") or {})}


def plan(run: RunResults, target_mde_pp: float, seeds=(5, 8, 10, 15, 20, 30)) -> pd.DataFrame:
    """For each task and primary comparison: the fewest seeds at the run's test size, and the test examples
    needed with each number of seeds, to reach ``target_mde_pp`` with the run's power and TOST's power to
    find ``equivalent`` at 0 (`mtkd.study.power.design`), from the comparison's variance components, at the
    Holm level of the primary family."""
    from mtkd.study import power
    if not target_mde_pp > 0:
        raise ValueError(f"the target MDE must be > 0 pp, got {target_mde_pp}")
    comp = run.comparisons
    missing = [c for c in ("se_pp", "df", "var_seeds", "var_examples", "var_interaction", "n_seeds", "n_examples",
                           "family") if c not in comp.columns]
    if missing:
        raise ValueError(f"comparisons.csv of {run.path} lacks {missing} (written by an older mtkd); run the "
                         "same `mtkd run` again to rewrite the result files")
    st = stats_params(run)
    primary = comp[comp["family"] == "primary"]
    target = {"target_mde_pp": target_mde_pp, "margin": float(st["equivalence_margin"]),
              "significance": float(st["significance"]), "power": float(st["power"]), "family_size": len(primary)}
    rows = []
    for _, c in primary.iterrows():
        if int(c["n_seeds"]) < 2:
            continue
        parts = {k: float(c[k]) for k in ("var_seeds", "var_examples", "var_interaction")}
        s0, n0 = int(c["n_seeds"]), int(c["n_examples"])
        fewest = power.seeds_needed(parts, s0, n0, n0, **target)
        row = {"task": c["task"], "comparison": c["comparison"],
               "now": f"{s0} seeds x {n0}: MDE {c['mde_pp']:.2f} pp",
               f"seeds at {n0} examples": "unreachable" if math.isinf(fewest) else int(fewest)}
        for k in seeds:
            need = power.examples_needed(parts, s0, n0, k, **target)
            row[f"{k} seeds"] = "unreachable" if math.isinf(need) else int(need)
        rows.append(row)
    return pd.DataFrame(rows)


def per_class_f1(run: RunResults, split: str = "test") -> pd.DataFrame:
    """Per task whose headline is macro-F1: every method's F1 per class (mean over seeds) beside its macro-F1,
    with the class's support, so a rare class's effect on the headline is visible."""
    rows = []
    for task in run.tasks:
        if run.task_info(task)["metrics"][0] != "macro_f1":
            continue
        names = run.label_names(task)
        pred = run.predictions
        pred = pred[(pred["task"] == task) & (pred["split"] == split)]
        for method, g in pred.groupby("method", sort=False):
            per_seed = np.stack([analysis.per_class_f1(s["label"].to_numpy(), s["pred"].to_numpy(), len(names))
                                 for _, s in g.groupby("seed")])
            row = {"task": task, "method": method}
            row.update({f"F1 {n}": v for n, v in zip(names, per_seed.mean(0))})
            row["macro-F1"] = float(np.nanmean(per_seed, axis=1).mean())
            rows.append(row)
        support = run.examples(task, split)["label"].value_counts()
        rows.append({"task": task, "method": "(test examples)",
                     **{f"F1 {n}": float(support.get(i, 0)) for i, n in enumerate(names)}, "macro-F1": None})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (for READMEs and issue notes) without extra dependencies."""
    cells = [[str(c) for c in frame.columns]] + [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines)


def _cell(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)
