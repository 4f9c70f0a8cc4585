"""Which notebooks a re-run must execute: a key per notebook of everything its pages depend on.

A notebook's *execution key* hashes its own cells (source only, not outputs), the code of
the mtkd package and the pinned environment (pyproject.toml), the run's params except those
that only change the rendering (:data:`RENDER_ONLY`) or how the units ran
(:data:`EXECUTION_ONLY`), and the content of the run's files
that notebooks read (:func:`inputs_digest`: prepared data, logits, fusion info, the result files
the results stage writes, and the list of finished cache units). Only those known files count:
anything else in the run folder (a user's notes, a ``.DS_Store``) changes no key. Its *render key* adds the
rendering params. The runner records both after a notebook ran (:func:`record`) and skips
a notebook whose keys still match and whose pages exist (:func:`status`).

Files are hashed by content, so rewriting a result with the same bytes (a warm "results"
stage) does not invalidate anything, while a notebook that changes its inputs makes every
later notebook's key differ, and those re-execute. Keys are recorded from the inputs as the
whole ordered run left them: a notebook's pages never depend on what later notebooks write.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mtkd.study import config, io
from mtkd.study.collect import CONFIRM_FILES, RESULT_FILES, SWEEP_FILES
from mtkd.study.condition_results import CONDITION_FILES

PACKAGE = Path(__file__).resolve().parents[1]          # the whole mtkd package
PYPROJECT = PACKAGE.parent / "pyproject.toml"
RENDER_ONLY = ("html", "show_code")          # report.<key>: change the HTML, not what a notebook computes
EXECUTION_ONLY = ("workers", "threads")      # how the units ran: whatever they change reaches a notebook as files
# What notebooks read of a run (params.yaml is not among them: the params enter a key through `keys`,
# without the rendering-only ones). cache/ counts by its finished units' markers (`inputs_digest`).
INPUT_FILES = (*RESULT_FILES, *CONFIRM_FILES, *CONDITION_FILES, *SWEEP_FILES)   # top-level files the results
                                                                                # stage writes
INPUT_DIRS = ("data", "logits", "fusion")                          # prepared data, teacher logits, fusion info
MARKER = ".done"        # the only dot file read inside INPUT_DIRS; other dot files are temporaries or OS litter


def keys_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "cache" / "reports"


_DIGESTS: dict[tuple, str] = {}     # (path, size, mtime_ns) -> sha256: each file is read once per process


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as fh:
            _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _DIGESTS[key]


def code_digest() -> str:
    """Every file of the mtkd package (its Python code and page assets) and the pinned environment."""
    h = hashlib.sha256()
    files = sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in files + ([PYPROJECT] if PYPROJECT.exists() else []):
        h.update(str(p.relative_to(PACKAGE.parent)).encode() + b"\0" + _file_digest(p).encode())
    return h.hexdigest()[:16]


def notebook_digest(path: Path) -> str:
    """The cells a notebook runs (type and source), not its outputs or metadata."""
    nb = json.loads(Path(path).read_text())
    cells = [[c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]]
             for c in nb["cells"]]
    return config.params_hash(cells)


def inputs_digest(run_dir: Path) -> str:
    """Content of the run's files that notebooks read (:data:`INPUT_FILES`, everything under
    :data:`INPUT_DIRS` but hidden files other than unit markers), plus the names of the finished cache units.
    Any other file of the run folder is not read by a notebook, so it changes nothing."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    files = [run_dir / name for name in INPUT_FILES if (run_dir / name).is_file()]
    for name in INPUT_DIRS:
        if (run_dir / name).is_dir():
            files += [p for p in (run_dir / name).rglob("*")
                      if p.is_file() and not (p.name.startswith(".") and p.name != MARKER)]
    for p in sorted(files):
        h.update(str(p.relative_to(run_dir)).encode() + b"\0" + _file_digest(p).encode())
    cache = run_dir / "cache"
    done = sorted(str(p.relative_to(cache)) for p in cache.rglob(".done")
                  if p.relative_to(cache).parts[0] != "reports") if cache.is_dir() else []
    h.update("\n".join(done).encode())
    return h.hexdigest()[:16]


def _study_params(params: dict) -> dict:
    plain = {k: v for k, v in config.to_plain(params).items() if k not in EXECUTION_ONLY}
    plain["report"] = {k: v for k, v in (plain.get("report") or {}).items() if k not in RENDER_ONLY}
    return plain


def keys(notebook: Path, params: dict, inputs: str, code: str) -> dict:
    """``{"execute": ..., "render": ...}`` of one notebook for these params, inputs and code."""
    execute = config.params_hash(notebook_digest(notebook), _study_params(params), inputs, code)
    report = config.to_plain(params).get("report") or {}
    render = config.params_hash(execute, {k: report.get(k) for k in RENDER_ONLY})
    return {"execute": execute, "render": render}


def status(run_dir: Path, name: str, now: dict, html: bool) -> str:
    """``"execute"``, ``"render"`` (outputs still valid, the HTML is not) or ``"fresh"``."""
    run_dir = Path(run_dir)
    record_file = keys_dir(run_dir) / f"{name}.json"
    ipynb = run_dir / "reports" / f"{name}.ipynb"
    if not record_file.exists() or not ipynb.exists():
        return "execute"
    old = io.read_json(record_file)
    if old.get("execute") != now["execute"]:
        return "execute"
    if html and (old.get("render") != now["render"] or not ipynb.with_suffix(".html").exists()):
        return "render"
    return "fresh"


def stale(run_dir: Path, name: str, now: dict, target: Path) -> bool:
    """A page built from the run's files (the explorer) must be rebuilt: missing, or its key changed."""
    record_file = keys_dir(run_dir) / f"{name}.json"
    return not (Path(target).exists() and record_file.exists()
                and io.read_json(record_file).get("execute") == now["execute"])


def record(run_dir: Path, name: str, now: dict, seconds: float | None) -> None:
    """Remember a notebook's keys (and how long it took when it last executed)."""
    path = keys_dir(run_dir) / f"{name}.json"
    if seconds is None and path.exists():
        seconds = io.read_json(path).get("seconds")
    io.write_json(path, {**now, "seconds": seconds})


def last_seconds(run_dir: Path, name: str) -> float | None:
    path = keys_dir(run_dir) / f"{name}.json"
    return io.read_json(path).get("seconds") if path.exists() else None
