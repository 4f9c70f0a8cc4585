"""Atomic file writes and completion markers.

Every output is written to a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file; a unit of work is finished
only when its ``.done`` marker exists, a stage of a run only when
``<run>/stages/<stage>.done`` exists, and the whole run only when ``<run>/.complete``
exists. A temporary file left by a killed process (``.<name>.<random>.tmp``) is
never read: the runner removes them when it next takes the run folder's lock.
"""
from __future__ import annotations

import json
import os
import shutil
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


def prepare_unit(unit_dir: str | Path, keep: tuple[str, ...] = ("last_epoch.pt",)) -> Path:
    """Make ``unit_dir`` ready for (re)computing an unfinished unit.

    A unit folder without ``.done`` may hold the partial files of a killed attempt (a model
    saved halfway, temporaries): they are removed, except the files named in ``keep`` (the
    epoch checkpoint, itself written atomically, from which training resumes).
    """
    unit_dir = Path(unit_dir)
    if is_done(unit_dir):
        raise ValueError(f"{unit_dir}: the unit is finished; refusing to clear it")
    if unit_dir.is_dir():
        for entry in unit_dir.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    unit_dir.mkdir(parents=True, exist_ok=True)
    return unit_dir


def remove_stale_temps(root: str | Path) -> int:
    """Delete the temporaries (``.<name>.*.tmp``) a killed writer left under ``root``; returns how many.

    Only safe while nobody writes under ``root``: the runner calls it holding the run's lock.
    """
    n = 0
    for path in Path(root).rglob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            n += 1
    return n


# ---------------------------------------------------------------- stage markers of a run folder

def stage_marker(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / "stages" / f"{stage}.done"


def stage_done(run_dir: str | Path, stage: str) -> bool:
    return stage_marker(run_dir, stage).exists()


def mark_stage(run_dir: str | Path, stage: str, info: dict | None = None) -> None:
    write_json(stage_marker(run_dir, stage), info or {})


def clear_stage(run_dir: str | Path, stage: str) -> None:
    stage_marker(run_dir, stage).unlink(missing_ok=True)


def run_status(run_dir: str | Path) -> dict:
    """What a reader can trust in a run folder: the finished stages and whether the run is complete."""
    run_dir = Path(run_dir)
    stages = sorted(p.name[:-len(".done")] for p in (run_dir / "stages").glob("*.done"))
    return {"complete": (run_dir / ".complete").exists(), "stages": stages}


def cached_unit(unit_dir: str | Path, compute: Callable[[Path], dict | None]) -> bool:
    """Run ``compute(unit_dir)`` unless the unit is already finished. Returns True when it computed."""
    unit_dir = Path(unit_dir)
    if is_done(unit_dir):
        return False
    prepare_unit(unit_dir)
    info = compute(unit_dir)
    mark_done(unit_dir, info)
    return True
