"""The confirming stage: the primary comparisons trained again on fresh seeds, planned from the choosing stage.

Stage 1 (the ``students`` stage, the params' ``seeds``) trains every method; the best single teacher's
student and the best fuser are chosen on its selection split. Its test predictions give, per primary
comparison (``stats.primary``), the variance components (seeds, examples, interaction: `mtkd.study.power`),
and from those alone -- never from an observed difference -- each task gets the fewest fresh seeds, within
``stats.min_confirm_seeds`` .. ``stats.max_confirm_seeds``, whose design reaches ``stats.target_mde_pp`` and
gives TOST ``stats.power`` to find ``equivalent`` at a true difference of 0, at the primary family's Holm
level. Stage 2 trains only the methods of the primary comparisons (best single, best multi, baseline) on
seeds that made no choice, so a lucky seed cannot carry its luck from the choice into the test; the primary
verdicts come from those seeds alone.

The plan is ``confirm_plan.json``, rewritten only when what it depends on changes (the stage-1 units, the
teachers, the stats params). Its fresh seeds follow the largest of ``seeds`` (42, 43, 44 -> 45, 46, ...),
and its units live in the students' cache like every student, so a re-run trains nothing and a killed run
resumes.
"""
from __future__ import annotations

import math

from mtkd.study import io, power
from mtkd.study.config import params_hash
from mtkd.study.methods import BASELINE

PLAN_FILE = "confirm_plan.json"
PLAN_VERSION = 2          # bump when the planning rule changes (2: `capped` per comparison)
ONE_SEED = "one choosing seed: no spread across seeds to plan from, so the cap"


def fresh_seeds(seeds, count: int) -> list[int]:
    """``count`` seeds after the largest choosing seed: seeds that made no choice."""
    first = max(seeds) + 1
    return list(range(first, first + count))


def comparison_methods(comparison: str, choice: dict) -> tuple[str, str]:
    """The two methods (a, b) of a primary comparison, given a task's choice."""
    return {"best multi vs best single": (choice["best_multi"], choice["best_single"]),
            "best single vs baseline": (choice["best_single"], str(BASELINE))}[comparison]


def primary_methods(primary, choice: dict, methods: list[str]) -> list[str]:
    """The methods stage 2 trains on a task: those of its primary comparisons that the study has."""
    out = []
    for comparison in primary:
        if comparison == "best multi vs best single" and choice.get("best_multi") is None:
            continue
        pair = comparison_methods(comparison, choice)
        if all(m in methods for m in pair):
            out += [m for m in pair if m not in out]
    return out


def family_size(primary, tasks) -> int:
    """Rows of the primary family (Holm's first level is significance / this)."""
    return len(primary) * len(tasks)


def plan_key(run, stage1_units) -> str:
    """What the plan depends on: the stage-1 units (their folder names hold their params), the teachers,
    the stats params and the planning rule."""
    teachers = [run.teacher_key(task, t) for task in run.tasks for t in run.teachers]
    return params_hash([run.unit_dir(u).name for u in stage1_units], teachers, run.params.stats, PLAN_VERSION)


def plan_task(components: dict[str, dict], n_seeds: int, n_examples: int, st, families: int) -> dict:
    """One task's plan: the seeds each primary comparison needs (inf: more than the cap, ``capped``) and the
    design it gets at the task's count (the largest need, within the bounds)."""
    target = {"target_mde_pp": st.target_mde_pp, "margin": st.equivalence_margin,
              "significance": st.significance, "power": st.power, "family_size": families}
    needs = {c: power.seeds_needed(parts, n_seeds, n_examples, n_examples, least=st.min_confirm_seeds,
                                   most=st.max_confirm_seeds, **target) for c, parts in components.items()}
    count = int(min(st.max_confirm_seeds, max([st.min_confirm_seeds, *needs.values()])))
    designs = {c: power.design(parts, n_seeds, n_examples, count, n_examples, **target)
               for c, parts in components.items()}
    examples_at_cap = {c: power.examples_needed(parts, n_seeds, n_examples, st.max_confirm_seeds, **target)
                       for c, parts in components.items()}
    return {"count": count, "capped": any(math.isinf(n) for n in needs.values()),
            "comparisons": {c: {"components": components[c], "seeds_needed": None if math.isinf(needs[c])
                                else int(needs[c]), "capped": math.isinf(needs[c]), "planned": designs[c],
                                "examples_needed_at_cap": None if math.isinf(examples_at_cap[c])
                                else int(examples_at_cap[c])} for c in components}}


def write_plan(run) -> dict:
    """``confirm_plan.json``: per task the choice, the methods and fresh seeds of stage 2 and the design each
    primary comparison gets; computed from stage 1's finished units (refused before they exist)."""
    from mtkd.study import stats
    from mtkd.study.collect import headline_metrics, student_predictions
    from mtkd.study.pipeline import plan
    units = plan(run, "students")
    missing = [u.label for u in units if not run.is_done(u)]
    if missing:
        raise FileNotFoundError(f"the confirming stage is planned from the choosing stage's students; "
                                f"{len(missing)} are not trained yet (e.g. {missing[0]}): run the students stage first")
    key, path = plan_key(run, units), run.dir / PLAN_FILE
    if path.exists() and io.read_json(path).get("key") == key:
        return io.read_json(path)
    st = run.params.stats
    predictions, _ = student_predictions(run, units=units)
    metrics = headline_metrics(run)
    best = {kind: stats.choose_best(predictions, metrics, kind) for kind in ("single", "multi")}
    families = family_size(st.primary, run.tasks)
    tasks = {}
    for task in run.tasks:
        choice = {"best_single": best["single"][task], "best_multi": best["multi"].get(task)}
        rows = stats.split_rows(predictions[predictions.task == task], metrics, "test")
        methods = sorted(rows["method"].unique())
        components, n_seeds, n_examples = {}, len(run.params.seeds), 0
        if n_seeds < 2:                          # no spread across seeds to plan from: the cap
            tasks[task] = {"choice": choice, "methods": primary_methods(st.primary, choice, methods),
                           "seeds": fresh_seeds(run.params.seeds, st.max_confirm_seeds), "n_examples": None,
                           "choosing_seeds": list(run.params.seeds), "count": st.max_confirm_seeds,
                           "capped": True, "comparisons": {}, "unplanned": ONE_SEED}
            continue
        for comparison in st.primary:
            if not set(primary_methods([comparison], choice, methods)):
                continue
            a, b = comparison_methods(comparison, choice)
            pa, pb = (stats.seed_predictions(rows[rows.method == m], f"task {task!r}, method {m!r}")[1]
                      for m in (a, b))
            r = stats.paired_comparison(pa, pb, metrics[task], st.bootstrap, st.confidence,
                                        stats.task_rng(0, task), st.equivalence_margin)
            components[comparison] = {k: r[k] for k in ("var_seeds", "var_examples", "var_interaction")}
            n_examples = int(r["n_examples"])
        planned = plan_task(components, n_seeds, n_examples, st, families)
        tasks[task] = {"choice": choice, "methods": primary_methods(st.primary, choice, methods),
                       "seeds": fresh_seeds(run.params.seeds, planned["count"]), "n_examples": n_examples,
                       "choosing_seeds": list(run.params.seeds), **planned}
    out = {"key": key, "primary": list(st.primary), "family_size": families,
           "target_mde_pp": st.target_mde_pp, "margin_pp": st.equivalence_margin, "power": st.power,
           "significance": st.significance, "min_seeds": st.min_confirm_seeds, "max_seeds": st.max_confirm_seeds,
           "tasks": tasks}
    io.write_json(path, out)
    return out


def describe(plan: dict) -> list[str]:
    """The plan in lines for the run's log: per task the seeds and what they buy."""
    lines = []
    for task, t in plan["tasks"].items():
        head = (f"confirm {task}: {len(t['seeds'])} fresh seeds ({t['seeds'][0]}-{t['seeds'][-1]}) for "
                f"{', '.join(t['methods'])}" + (f" on {t['n_examples']} test examples" if t["n_examples"] else ""))
        if t.get("unplanned"):
            head += f" ({t['unplanned']})"
        elif t["capped"]:
            head += f" (the cap, stats.max_confirm_seeds = {plan['max_seeds']}: the target needs more)"
        lines.append(head)
        for c, d in t["comparisons"].items():
            p = d["planned"]
            lines.append(f"  {c}: MDE {p['mde_pp']:.2f} pp, power {p['power_at_target']:.0%} at "
                         f"{plan['target_mde_pp']:g} pp, TOST power {p['tost_power']:.0%} at 0 within "
                         f"+-{plan['margin_pp']:g} pp")
    return lines


def reached_in_words(plan_task_entry: dict, comparison: str, target_mde_pp: float, margin_pp: float) -> str:
    """What the confirming design of one comparison bought, e.g. "8 fresh seeds (the cap): MDE 2.10 pp, ..."."""
    t = plan_task_entry
    d = t["comparisons"][comparison]["planned"]
    seeds = f"{len(t['seeds'])} fresh seeds" + (" (the cap)" if t["comparisons"][comparison]["capped"] else "")
    return (f"{seeds}: MDE {d['mde_pp']:.2f} pp (target {target_mde_pp:g}), power {d['power_at_target']:.0%} at "
            f"{target_mde_pp:g} pp, TOST power {d['tost_power']:.0%} within +-{margin_pp:g} pp")
