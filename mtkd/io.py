"""Atomic file writes, completion markers and the run-folder lock.

Every output is written to a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file; a unit of work is finished
only when its ``.done`` marker exists.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success, delete it on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def is_done(unit_dir: str | Path) -> bool:
    return (Path(unit_dir) / ".done").exists()


def mark_done(unit_dir: str | Path, info: dict | None = None) -> None:
    write_json(Path(unit_dir) / ".done", info or {})


def cached_unit(unit_dir: str | Path, compute: Callable[[Path], dict | None]) -> bool:
    """Run ``compute(unit_dir)`` unless the unit is already finished. Returns True when it computed."""
    unit_dir = Path(unit_dir)
    if is_done(unit_dir):
        return False
    unit_dir.mkdir(parents=True, exist_ok=True)
    info = compute(unit_dir)
    mark_done(unit_dir, info)
    return True
