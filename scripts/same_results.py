#!/usr/bin/env python
"""Are two runs' results identical? Exit 0 when they are, 1 with the first difference when not.

Compares master_results.csv and every row of predictions.parquet (predictions and probabilities, to the
bit), gates.parquet, summary.csv and comparisons.csv. A refactor that claims "no change of behaviour"
runs the smoke study before and after (same machine, same seeds) and shows this script passing:

    git worktree add /tmp/before <commit before the change> && (cd /tmp/before && make .venv/.installed &&
        .venv/bin/mtkd run params/smoke.yaml --out /tmp/smoke-before)
    .venv/bin/mtkd run params/smoke.yaml --out /tmp/smoke-after
    .venv/bin/python scripts/same_results.py /tmp/smoke-before /tmp/smoke-after
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["task", "method", "seed", "split", "idx"]


def read(run: Path, name: str) -> pd.DataFrame:
    path = run / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: is {run} a finished run?")
    return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)


def differences(before: Path, after: Path) -> list[str]:
    out = []
    for name in ("master_results.csv", "summary.csv", "comparisons.csv", "predictions.parquet", "gates.parquet"):
        a, b = read(before, name), read(after, name)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            out.append(f"{name}: columns or row counts differ ({list(a.columns)}, {len(a)} vs {list(b.columns)}, {len(b)})")
            continue
        keys = [k for k in KEYS if k in a.columns] or list(a.columns[:2])
        a, b = a.sort_values(keys, kind="stable").reset_index(drop=True), b.sort_values(keys, kind="stable").reset_index(drop=True)
        for col in a.columns:
            x, y = a[col], b[col]
            if x.dtype == object and len(x) and isinstance(x.iloc[0], (list, np.ndarray)):
                same = all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(x, y))
            else:
                same = x.equals(y)
            if not same:
                out.append(f"{name}: column {col!r} differs")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    diff = differences(Path(argv[0]), Path(argv[1]))
    for line in diff:
        print(line)
    print("identical" if not diff else f"{len(diff)} difference(s)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
