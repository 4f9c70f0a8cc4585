"""Is bf16 autocast safe as the default? The same study in bf16 against its fp32 run.

``precision: auto`` trains and predicts under bf16 autocast where the hardware has it (2-2.5x faster
on this CPU). That is the default only because a study run both ways gives the same answers: every
(task, method) test score of the bf16 run lies in the fp32 run's confidence interval, and no paired
bf16 - fp32 difference is significant after Holm's correction. `tests/test_precision.py` checks it
for the smoke profile live and for the embedded study from the record that
``make bench-precision`` writes (``benchmarks/precision-embedded.json``).
Everything here is recomputed from the two runs' saved predictions.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from mtkd.study import stats
from mtkd.study.results import load_run

# the keys a precision comparison may differ in; anything else makes it another study
FREE_KEYS = ("precision", "run_name")


def comparable_params(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in FREE_KEYS}


def compare_predictions(reference: pd.DataFrame, candidate: pd.DataFrame, metrics: dict[str, str],
                        n_boot: int = 2000, confidence: float = 0.95, significance: float = 0.05) -> pd.DataFrame:
    """Per (task, method) on the test split: the reference run's mean and interval, the candidate's mean,
    whether it lies in that interval, and the paired candidate - reference difference (Holm-adjusted)."""
    ref = stats.summarise(reference, metrics, n_boot=n_boot, confidence=confidence)
    cand = stats.summarise(candidate, metrics, n_boot=n_boot, confidence=confidence)
    merged = ref.merge(cand[["task", "method", "mean"]], on=["task", "method"], how="outer",
                       suffixes=("_reference", "_candidate"), indicator=True)
    missing = merged[merged["_merge"] != "both"]
    if len(missing):
        raise ValueError("the two runs do not have the same (task, method) rows: "
                         + ", ".join(f"{r.task}/{r.method}" for r in missing.itertuples()))
    groups = {name: dict(list(stats.split_rows(frame, metrics, "test").groupby(["task", "method"])))
              for name, frame in (("candidate", candidate), ("reference", reference))}
    rows = []
    for r in merged.itertuples():
        where = f"task {r.task!r}, method {r.method!r}"
        cand_seeds, ref_seeds = (stats.seed_predictions(groups[name][(r.task, r.method)], f"{name} run, {where}")[1]
                                 for name in ("candidate", "reference"))
        diff = stats.paired_comparison(cand_seeds, ref_seeds, r.metric, n_boot, confidence, stats.task_rng(0, r.task))
        rows.append({"task": r.task, "method": r.method, "metric": r.metric,
                     "reference_mean": r.mean_reference, "reference_ci_low": r.ci_low, "reference_ci_high": r.ci_high,
                     "candidate_mean": r.mean_candidate,
                     "within_reference_ci": bool(r.ci_low <= r.mean_candidate <= r.ci_high),
                     **{f"paired_{k}": v for k, v in diff.items()}})
    out = pd.DataFrame(rows)
    out["paired_p_adjusted"] = stats.holm(out["paired_p_value"].to_numpy())
    out["paired_significant"] = out["paired_p_adjusted"] < significance
    return out


def compare_runs(reference_dir: str | Path, candidate_dir: str | Path) -> dict:
    """Two finished runs of the same study that differ only in precision: the comparison and its verdict."""
    for d in (reference_dir, candidate_dir):
        if not (Path(d) / ".complete").exists():
            raise ValueError(f"{d} is not a finished run (no .complete): finish it with `mtkd run` first")
    a, b = (comparable_params(yaml.safe_load((Path(d) / "params.yaml").read_text())) for d in (reference_dir, candidate_dir))
    if a != b:
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{reference_dir} and {candidate_dir} are not the same study: they differ in {keys} "
                         f"(only {', '.join(FREE_KEYS)} may differ)")
    ref, cand = load_run(reference_dir), load_run(candidate_dir)
    p = ref.params["stats"]
    metrics = {task: ref.task_info(task)["metrics"][0] for task in ref.tasks}
    table = compare_predictions(ref.predictions, cand.predictions, metrics, p["bootstrap"], p["confidence"],
                                p["significance"])
    within = int(table["within_reference_ci"].sum())
    significant = int(table["paired_significant"].sum())
    return {"reference": {"dir": str(reference_dir), "precision": ref.params["precision"]},
            "candidate": {"dir": str(candidate_dir), "precision": cand.params["precision"]},
            "params": a, "rows": table.to_dict(orient="records"),
            "within_reference_ci": within, "total": len(table), "paired_significant": significant,
            "max_abs_diff_pp": float(table["paired_diff_pp"].abs().max()),
            "mean_diff_pp": float(table["paired_diff_pp"].mean())}
