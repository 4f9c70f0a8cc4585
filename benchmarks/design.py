"""Choose the default study's design from a finished run: variance components and the MDE of other designs.

    .venv/bin/python benchmarks/design.py outputs/embedded [--seeds 3 5] [--test trec=3000 snli=9000 ...]

Recomputes the paired comparisons of the run with the current ``mtkd.study.stats`` (so a run written by an
older mtkd works too), prints the variance components of the two headline comparisons per task, and the
MDE each candidate design (seeds x per-task test size) would have, from those components (mtkd.study.power).
Writes nothing into the run folder.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pandas as pd
import yaml

from mtkd.study import power, stats
from mtkd.study.config import SCHEMA

HEADLINE = ("best multi vs best single", "best single vs baseline")


def comparisons(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    st = {**{k: f.default for k, f in SCHEMA["stats"].items()}, **params.get("stats", {})}
    preds = pd.read_parquet(run_dir / "predictions.parquet", columns=list(stats.COLUMNS))
    choice = json.loads((run_dir / "choices.json").read_text())
    metrics = {t: json.loads((run_dir / "data" / t / "task.json").read_text())["metrics"][0] for t in choice}
    table = stats.compare(preds, metrics, choice, n_boot=st["bootstrap"], confidence=st["confidence"],
                          significance=st["significance"], margin=st["equivalence_margin"], power_level=st["power"])
    return table, st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--test", nargs="*", default=[], metavar="TASK=N1,N2",
                    help="candidate test sizes per task, e.g. snli=5000,9800 trec=2000,3000")
    args = ap.parse_args()
    table, st = comparisons(args.run_dir)
    family = len(table)
    head = table[table["comparison"].isin(HEADLINE)]
    cols = ["task", "comparison", "diff_pp", "ci_low", "ci_high", "p_adjusted", "verdict", "se_pp", "mde_pp",
            "var_seeds", "var_examples", "var_interaction", "n_seeds", "n_examples"]
    print(f"family of {family} comparisons; significance {st['significance']}, power {st['power']}, "
          f"margin {st['equivalence_margin']} pp")
    print(head[cols].round(3).to_string(index=False))
    candidates = {t: [int(n) for n in v.split(",")] for t, v in (item.split("=") for item in args.test)}
    rows = []
    for r in head.itertuples(index=False):
        comp = {"var_seeds": r.var_seeds, "var_examples": r.var_examples, "var_interaction": r.var_interaction}
        for seeds, n in itertools.product(args.seeds, candidates.get(r.task, [int(r.n_examples)])):
            rows.append({"task": r.task, "comparison": r.comparison, "seeds": seeds, "test": n,
                         "mde_pp": power.planned_mde(comp, int(r.n_seeds), int(r.n_examples), seeds, n,
                                                     st["significance"], st["power"], family)})
    print()
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
