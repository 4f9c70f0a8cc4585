"""`mtkd run`: validate everything, then execute the numbered notebooks with papermill.

Each notebook calls into `mtkd.pipeline`, whose units are cached, so a warm re-run
only re-executes the (fast) notebooks and re-renders them. Every executed notebook
lands in ``<run>/reports/`` with a self-contained HTML rendering (plotly.js inline).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from . import config, io
from .pipeline import STAGES, Run, force, log, plan

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("01_teachers", "02_logits", "03_distillation", "04_confidence", "05_agreement",
             "06_failures", "07_sweep", "08_summary")
NOTEBOOK_PARAMETERS = {"run_dir", "params_file"}
RESULT_FILES = ("params.yaml", "master_results.csv", "predictions.parquet", "summary.csv", "comparisons.csv",
                "success_metrics.json")
MIN_FREE_BYTES = 2 * 1024**3


class RunError(RuntimeError):
    """The run stopped; the message says where and what to do."""


def resolve_out(params: config.Params, out: str | None) -> Path:
    return Path(out) if out else ROOT / "outputs" / params.run_name


def preflight(run: Run, strict: bool = True) -> list[str]:
    """Everything that can be checked before the first long step; returns notes for the dry run."""
    from . import models
    from .data import load_task
    notes = []
    for name in run.tasks:
        task = load_task(name, run.params.data)
        if task.num_labels < 2:
            raise ValueError(f"data.tasks: {name} has fewer than two labels")
        notes.append(f"task {name}: " + ", ".join(f"{s} {len(f):,}" for s, f in task.splits.items())
                     + f"; labels {', '.join(task.label_names)}; metric {task.metrics[0]}")
    for who, spec in [*((f"teachers.{n}", t) for n, t in run.params.teachers.items()),
                      ("student", run.params.student)]:
        m = models.resolve(spec["model"])
        if who == "student" and m.kind == "tfidf":
            raise ValueError("student.model: tfidf cannot be a student (it has no logits to distil into)")
        if spec.get("mode") == "probe" and m.kind == "tiny":
            raise ValueError(f"{who}.mode: probe needs a pretrained encoder, not {m.name}")
        note = models.check_available(m, strict=strict)
        notes.append(f"{who}: {m.name} ({m.kind})" + (f"; {note}" if note else ""))
    run.dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(run.dir).free
    if free < MIN_FREE_BYTES:
        raise ValueError(f"only {free / 1024**3:.1f} GiB free under {run.dir}; the run needs at least "
                         f"{MIN_FREE_BYTES / 1024**3:.0f} GiB (free space or use --out on another disk)")
    return notes


def _check_notebook(path: Path) -> None:
    import papermill
    if not path.exists():
        raise RunError(f"notebook {path} is missing")
    declared = set(papermill.inspect_notebook(str(path)))
    unknown = NOTEBOOK_PARAMETERS - declared
    if unknown:
        raise RunError(f"{path.name}: its parameters cell does not declare {sorted(unknown)}; "
                       "the runner would pass parameters the notebook ignores")


def execute_notebook(name: str, run: Run) -> Path:
    import papermill
    from papermill.exceptions import PapermillExecutionError
    src = NOTEBOOK_DIR / f"{name}.ipynb"
    out = run.dir / "reports" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    env_batch = os.environ.get("MTKD_BATCH")
    os.environ["MTKD_BATCH"] = "1"
    try:
        papermill.execute_notebook(str(src), str(out), parameters={"run_dir": str(run.dir),
                                                                   "params_file": str(run.dir / "params.yaml")},
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False, kernel_name="python3",
                                   stderr_file=sys.stderr)
    except PapermillExecutionError as e:
        raise RunError(f"{name}.ipynb failed in cell {e.exec_count} ({e.ename}: {e.evalue}); the partly "
                       f"executed notebook is kept at {out}") from e
    finally:
        if env_batch is None:
            os.environ.pop("MTKD_BATCH", None)
        else:
            os.environ["MTKD_BATCH"] = env_batch
    return out


def render_html(notebook: Path) -> Path:
    """A self-contained HTML page: plotly.js is inline in the notebook outputs, nothing comes from a CDN."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    target = notebook.with_suffix(".html")
    io.write_text(target, body)
    return target


def run_study(params_path: str, overrides: list[str] | None = None, out: str | None = None,
              force_stages: list[str] | None = None, executor: str = "sequential", address: str | None = None,
              dry_run: bool = False) -> Path:
    params = config.load_params(params_path, overrides)
    run = Run(params, resolve_out(params, out))
    for stage in force_stages or []:
        if stage not in (*STAGES, "reports"):
            raise ValueError(f"--force {stage!r}: not a stage; stages: {', '.join((*STAGES, 'reports'))}")
    for name in NOTEBOOKS:
        _check_notebook(NOTEBOOK_DIR / f"{name}.ipynb")
    notes = preflight(run, strict=not dry_run)
    if dry_run:
        from .estimate import describe_plan
        for line in notes + describe_plan(run):
            print(line)
        return run.dir
    lock = FileLock(str(run.dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(f"another mtkd run is writing to {run.dir} (its lock is held); wait for it to finish, "
                       "or choose another folder with --out") from None
    try:
        t_start = time.time()
        io.write_text(run.dir / "params.yaml", config.dump_params(params))
        for stage in force_stages or []:
            force(run, stage)
            log(f"--force {stage}: its cached units are forgotten")
        if executor == "ray":
            from .ray_executor import run_all
            run_all(run, address=address)
        for i, name in enumerate(NOTEBOOKS, 1):
            t0 = time.time()
            log(f"[{i}/{len(NOTEBOOKS)}] {name}: running")
            nb = execute_notebook(name, run)
            if params.report.html:
                render_html(nb)
            log(f"[{i}/{len(NOTEBOOKS)}] {name}: done in {time.time() - t0:.0f} s")
        missing = [f for f in RESULT_FILES if not (run.dir / f).exists()]
        if missing:
            raise RunError(f"the notebooks finished but {', '.join(missing)} were not written in {run.dir}")
        io.write_json(run.dir / ".complete", {"seconds": round(time.time() - t_start, 1)})
        log(f"study finished in {time.time() - t_start:.0f} s: results in {run.dir}")
    finally:
        lock.release()
    return run.dir


def units_summary(run: Run) -> dict[str, tuple[int, int]]:
    """(finished, total) units per stage."""
    out = {}
    for stage in STAGES:
        try:
            units = plan(run, stage)
        except FileNotFoundError:
            continue
        out[stage] = (sum(run.is_done(u) for u in units), len(units))
    return out
