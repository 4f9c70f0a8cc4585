"""A task (and its transfer set) read back from the run's prepared files (``data/<task>/``), not from its raw
archives.

`mtkd.study.pipeline.prepare_data` records every task's validated splits once per run folder
(``examples.parquet``) with their metadata and the hash of the params that made them
(``task.json``: ``data_key``). While that hash matches, the run reads these files: a warm
re-run, or a re-executed notebook, never re-reads (and re-validates) the raw archives,
which takes seconds per task.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mtkd.data.tasks import SPLITS



def prepared_task(run_dir: Path, name: str, data_key: str):
    """The `mtkd.data.tasks.Task` of the prepared files, or None when they are missing or from other params."""
    from mtkd.data.tasks import Task
    folder = Path(run_dir) / "data" / name
    meta_file, examples_file = folder / "task.json", folder / "examples.parquet"
    if not (meta_file.exists() and examples_file.exists()):
        return None
    meta = json.loads(meta_file.read_text())
    if meta.get("data_key") != data_key:
        return None
    examples = pd.read_parquet(examples_file)
    present = [s for s in SPLITS if s in set(examples["split"])]
    splits = {s: examples[examples["split"] == s].drop(columns="split").reset_index(drop=True) for s in present}
    return Task(name, tuple(meta["text_fields"]), tuple(meta["label_names"]), tuple(meta["metrics"]), splits,
                meta["source"], meta["license"], meta.get("group_key"), tuple(meta.get("label_counts_fields") or ()))


def prepared_transfer(run_dir: Path, name: str, transfer_key: str, rows: int):
    """The first ``rows`` transfer examples from ``data/<task>/transfer.parquet``, or None when the file is
    missing, holds fewer rows or comes from other params. The pool (its order too) is a function of the
    params its ``transfer_key`` hashes, so any recorded draw with that key starts with the draw asked for."""
    folder = Path(run_dir) / "data" / name
    meta_file, pool_file = folder / "task.json", folder / "transfer.parquet"
    if not (meta_file.exists() and pool_file.exists()):
        return None
    meta = json.loads(meta_file.read_text())
    if meta.get("transfer_key") != transfer_key or meta.get("transfer_rows", 0) < rows:
        return None
    return pd.read_parquet(pool_file).iloc[:rows].reset_index(drop=True)
