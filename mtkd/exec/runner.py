"""`mtkd run`: validate everything, then execute the numbered notebooks with papermill.

Each notebook calls into `mtkd.study.pipeline`, whose units are cached, so a warm re-run
only re-executes the (fast) notebooks and re-renders them. Every executed notebook
lands in ``<run>/reports/`` with a self-contained HTML rendering (plotly.js inline).

Reliability contract (issue 9):

* everything that can be checked is checked before anything is written: params,
  every task's data, every model (name, availability offline, label order), the
  output folder and the free disk space (on the nearest existing parent, so a bad
  run leaves no folder behind);
* one run at a time per folder: a lock (``<run>/.lock``, an ``fcntl`` lock the
  kernel releases when its holder dies, so a killed run never blocks the next);
* progress is visible and trustworthy: ``<run>/stages/<stage>.done`` per finished
  pipeline stage and ``<run>/stages/report-<notebook>.done`` per executed and
  rendered notebook (cleared when a run starts), ``<run>/.complete`` at the very end;
* a killed run resumes: the same command again reuses every finished unit and
  the last epoch checkpoint of an unfinished one.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from filelock import FileLock, Timeout

# jsonschema compiles rfc3987_syntax's grammars when imported (5-15 s, on every `mtkd run`) for an "iri" format
# check nbformat never asks for: without it jsonschema skips that one check.
sys.modules.setdefault("rfc3987_syntax", None)

from mtkd.exec import freshness, quiet
from mtkd.exec.accelerate_executor import launch_rank, world_size
from mtkd.report import pages
from mtkd.study import config, io
from mtkd.study.results_stage import run_results_stage
from mtkd.study.pipeline import STAGES, Run, active_stages, force, log, plan, run_stage

ROOT = Path(__file__).resolve().parents[2]         # the repository: notebooks/, outputs/
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("01_teachers", "02_logits", "03_distillation", "04_confidence", "05_agreement",
             "06_failures", "07_sweep", "08_summary", "09_conditions", "10_humans")
NOTEBOOK_PARAMETERS = {"run_dir", "params_file"}
MIN_FREE_BYTES = 2 * 1024**3
EXECUTORS = ("sequential", "ray", "accelerate")
RUN_MARKERS = (".lock", "params.yaml")     # a folder holding one of these is an mtkd run folder


class RunError(RuntimeError):
    """The run stopped; the message says where and what to do."""


def resolve_out(params: config.Params, out: str | None) -> Path:
    return Path(out) if out else ROOT / "outputs" / params.run_name


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_out_dir(run_dir: Path, min_free: int | None = None) -> None:
    """The run folder can be created (or reused) and its disk has room; creates nothing."""
    min_free = MIN_FREE_BYTES if min_free is None else min_free
    run_dir = Path(run_dir).resolve()
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ValueError(f"--out {run_dir}: exists and is not a folder; choose a folder for the run")
        entries = [e.name for e in run_dir.iterdir()]
        if entries and not any(m in entries for m in RUN_MARKERS):
            raise ValueError(f"--out {run_dir}: the folder is not empty and is not an mtkd run folder "
                             f"(it has {', '.join(sorted(entries)[:3])}{', ...' if len(entries) > 3 else ''}); "
                             "choose a new or empty folder, --force would delete parts of it")
    base = _existing_parent(run_dir)
    if not base.is_dir():
        raise ValueError(f"--out {run_dir}: {base} is a file, not a folder; choose another place for the run")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"--out {run_dir}: no permission to write in {base}; choose a folder you can write to")
    free = shutil.disk_usage(base).free
    if free < min_free:
        raise ValueError(f"only {free / 1024**3:.1f} GiB free under {base}; the run needs at least "
                         f"{min_free / 1024**3:.0f} GiB (free space or use --out on another disk)")


def _check_model_config(who: str, m, tasks: dict, uses_head: bool = True, pooling: str = "cls") -> int | None:
    """The checkpoint's configuration loads, and a head that carries label names matches every task's
    label order (or can be remapped by name). Returns its number of transformer layers (None when unknown).
    """
    from mtkd.data import models
    if m.kind not in ("packaged", "local", "hub"):
        return None
    try:
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(models.model_path(m))
    except (OSError, ValueError) as e:
        raise ValueError(f"{who}.model: cannot load the configuration of {m.name!r} ({e}); check the name "
                         "(`mtkd models`) or the folder") from None
    for name, task in (tasks.items() if uses_head else ()):
        try:
            models.label_permutation(getattr(cfg, "id2label", None) or {}, list(task.label_names))
        except ValueError as e:
            raise ValueError(f"{who}.model {m.name!r} on task {name}: {e}") from None
    if who == "student" and pooling == "mean" and cfg.model_type not in models.MEAN_POOLING_TYPES:
        raise ValueError(f"student.pooling: mean needs a BERT-family model with a pooler "
                         f"({', '.join(models.MEAN_POOLING_TYPES)}); {m.name!r} is {cfg.model_type!r}: use pooling: cls")
    return getattr(cfg, "num_hidden_layers", None)


def preflight(run: Run, strict: bool = True, executor: str = "sequential") -> list[str]:
    """Everything that can be checked before the first long step; returns notes for the dry run.

    Writes nothing (the run folder is not created here): a failed check leaves no trace.
    """
    from mtkd.data import models
    notes = []
    tasks = {}
    for name in run.tasks:
        task = run.task(name)          # validates files, columns, texts, labels, idx, splits (or the run's prepared copy)
        if task.num_labels < 2:
            raise ValueError(f"data.tasks: {name} has fewer than two labels")
        for split, frame in task.splits.items():
            if len(frame) == 0:
                raise ValueError(f"data.tasks: {name} has an empty {split} split; check the data sizes")
        tasks[name] = task
        notes.append(f"task {name}: " + ", ".join(f"{s} {len(f):,}" for s, f in task.splits.items())
                     + f"; labels {', '.join(task.label_names)}; metric {task.metrics[0]}")
        if run.transfer_rows:
            run.transfer_set(name)     # the pool holds the draw and files.unlabeled reads, or the run stops here
            notes[-1] += f"; transfer set {run.transfer_rows:,} (unlabeled, KD term only)"
    for who, spec in [*((f"teachers.{n}", t) for n, t in run.params.teachers.items()),
                      ("student", run.params.student)]:
        m = models.resolve(spec["model"])
        if who == "student" and m.kind in ("tfidf", "human"):
            raise ValueError(f"student.model: {m.kind} cannot be a student (it has no logits to distil into)")
        if spec.get("mode") == "human":
            from mtkd.study.teachers import check_human_teacher
            for task in tasks.values():
                check_human_teacher(task, who)
        if spec.get("mode") == "probe" and m.kind == "tiny":
            raise ValueError(f"{who}.mode: probe needs a pretrained encoder, not {m.name}")
        note = models.check_available(m, strict=strict)
        if note is None and (strict or m.kind != "packaged"):
            layers = _check_model_config(who, m, tasks, uses_head=spec.get("mode", "finetune") == "finetune",
                                         pooling=spec.get("pooling", "cls"))
            if who == "student" and layers and run.params.student.layers > layers:
                raise ValueError(f"student.layers: {run.params.student.layers} but {m.name} has only "
                                 f"{layers} layers")
            deeper = [c for c in run.conditions if who == "student" and layers and c.param == "student.layers"
                      and c.value > layers]
            if deeper:
                raise ValueError(f"conditions.axes.{deeper[0].axis}: student.layers {deeper[0].value} but "
                                 f"{m.name} has only {layers} layers")
        notes.append(f"{who}: {m.name} ({m.kind})" + (f"; {note}" if note else ""))
    if executor == "ray":
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            raise RunError("--executor ray: Ray is not installed; pip install mtkd[ray] (or use the default "
                           "sequential executor)")
    check_out_dir(run.dir)
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


def kernel_name() -> str:
    """A kernel that runs this very interpreter, so notebooks see the same mtkd and packages.

    A user-level "python3" kernelspec may point at another Python; an "mtkd" spec inside this
    environment (the Makefile installs it; installed here when missing) cannot.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        spec = KernelSpecManager().get_kernel_spec("mtkd")
        if spec.argv[0] == sys.executable:
            return "mtkd"
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install
    install(kernel_name="mtkd", display_name="mtkd", prefix=sys.prefix)
    return "mtkd"


def execute_notebook(name: str, run: Run) -> Path:
    import papermill
    from papermill.exceptions import PapermillExecutionError
    src = NOTEBOOK_DIR / f"{name}.ipynb"
    out = run.dir / "reports" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    stderr = quiet.KernelStderr(freshness.keys_dir(run.dir) / f"{name}.stderr.log")
    try:
        papermill.execute_notebook(str(src), str(out), parameters={"run_dir": str(run.dir),
                                                                   "params_file": str(run.dir / "params.yaml")},
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False, kernel_name=kernel_name(),
                                   stderr_file=stderr, extra_arguments=quiet.KERNEL_ARGUMENTS)
    except PapermillExecutionError as e:
        more = f"; its other stderr lines are in {stderr.log_path}" if stderr.hidden else ""
        raise RunError(f"{name}.ipynb failed in cell {e.exec_count} ({e.ename}: {e.evalue}); the partly "
                       f"executed notebook is kept at {out}{more}") from e
    except Exception as e:
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        if isinstance(e, (DeadKernelError, CellTimeoutError)):
            raise RunError(f"{name}.ipynb: the notebook's kernel died or stopped answering ({type(e).__name__}: "
                           f"{e}); out of memory? Finished units are kept: run the same command again to "
                           "resume") from e
        raise
    finally:
        stderr.close()
    return out


def render_html(notebook: Path, show_code: bool = False) -> Path:
    """The notebook's page (code hidden unless ``show_code``; one shared plotly.js): `mtkd.report.pages`."""
    return pages.render_notebook(notebook, show_code=show_code)


def _launched_executor(executor: str) -> str:
    """Under a multi-process launch (WORLD_SIZE > 1) the processes share the units: the accelerate executor."""
    if world_size() == 1:
        return executor
    if executor == "ray":
        raise RunError("--executor ray under a multi-process launch (WORLD_SIZE > 1): start `mtkd run` once, "
                       "Ray places the units itself; or drop --executor ray to share the units among the launched "
                       "processes")
    return "accelerate"


def _check_args(force_stages, executor: str) -> None:
    for stage in force_stages or []:
        if stage not in (*STAGES, "reports"):
            raise ValueError(f"--force {stage!r}: not a stage; stages: {', '.join((*STAGES, 'reports'))}")
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r}: not an executor; use one of {', '.join(EXECUTORS)}")


def acquire_lock(run_dir: Path) -> FileLock:
    """The run folder's lock, or RunError when another run holds it.

    ``filelock.FileLock`` is an ``fcntl`` lock on Unix: the kernel drops it when the holding
    process dies, so the ``.lock`` file a killed run leaves behind never blocks a re-run.
    """
    lock = FileLock(str(Path(run_dir) / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(f"another mtkd run is writing to {run_dir} (its lock {run_dir / '.lock'} is held); wait "
                       "for it to finish, or choose another folder with --out") from None
    return lock


def _start(run: Run, params: config.Params) -> None:
    """Under the lock: forget the previous invocation's markers and temporaries, record the params."""
    (run.dir / ".complete").unlink(missing_ok=True)
    shutil.rmtree(run.dir / "stages", ignore_errors=True)      # markers describe this invocation's progress
    stale = io.remove_stale_temps(run.dir)
    if stale:
        log(f"removed {stale} temporary file(s) left by an interrupted run")
    io.write_text(run.dir / "params.yaml", config.dump_params(params))


def run_study(params_path: str, overrides: list[str] | None = None, out: str | None = None,
              force_stages: list[str] | None = None, executor: str = "sequential", address: str | None = None,
              dry_run: bool = False) -> Path:
    params = config.load_params(params_path, overrides)
    executor = _launched_executor(executor)
    _check_args(force_stages, executor)
    run = Run(params, resolve_out(params, out))
    if (run.dir / ".lock").is_file() and not dry_run and launch_rank() == 0:
        acquire_lock(run.dir).release()             # refuse at once, not after the checks, when a run is going on
    for name in NOTEBOOKS:
        _check_notebook(NOTEBOOK_DIR / f"{name}.ipynb")
    notes = preflight(run, strict=not dry_run, executor=executor)
    if dry_run:
        from mtkd.exec.estimate import describe_plan
        for line in notes + describe_plan(run):
            print(line)
        return run.dir
    if executor == "accelerate":
        return _run_launched(run, params, force_stages)
    run.dir.mkdir(parents=True, exist_ok=True)       # the first write, after every check passed
    lock = acquire_lock(run.dir)
    try:
        t_start = time.time()
        _begin(run, params, force_stages)
        if executor == "ray":
            from mtkd.exec.ray_executor import run_all
            run_all(run, address=address)
        else:
            for stage in active_stages(run):
                run_stage(run, stage)
        run_results_stage(run)
        _reports(run, params, t_start)
    finally:
        lock.release()
    return run.dir


def _begin(run: Run, params: config.Params, force_stages: list[str] | None) -> None:
    _start(run, params)
    for stage in force_stages or []:
        force(run, stage)
        log(f"--force {stage}: its cached units are forgotten")


def _reports(run: Run, params: config.Params, t_start: float) -> None:
    """The notebooks, each executed only when its key changed (`mtkd.exec.freshness`), their pages, the
    static explorer and the index, then ``.complete``. With ``workers`` > 1 that many notebooks run at once:
    a notebook only reads the finished run, so none waits for another (on 2 cores 10 notebooks take ~45 s
    instead of ~85 s)."""
    code = freshness.code_digest()
    html, show_code = params.report.html, params.report.show_code
    inputs = freshness.inputs_digest(run.dir)            # notebooks read the run, they never write to it
    done: dict[str, float | None] = {}                   # notebooks finished in this invocation, executed or not

    def report(i: int, name: str) -> dict:
        t0 = time.time()
        src, nb = NOTEBOOK_DIR / f"{name}.ipynb", run.dir / "reports" / f"{name}.ipynb"
        key = freshness.keys(src, params, inputs, code)
        state = freshness.status(run.dir, name, key, html)
        seconds = None
        if state == "execute":
            log(f"[{i}/{len(NOTEBOOKS)}] {name}: running")
            execute_notebook(name, run)
            seconds = round(time.time() - t0, 1)
        if html and state != "fresh":
            render_html(nb, show_code=show_code)
        done[name] = seconds
        freshness.record(run.dir, name, key, seconds)           # kept if the run is killed later
        io.mark_stage(run.dir, f"report-{name}", {"seconds": round(time.time() - t0, 1), "state": state})
        if state == "execute":
            log(f"[{i}/{len(NOTEBOOKS)}] {name}: done in {time.time() - t0:.0f} s")
        else:
            log(f"[{i}/{len(NOTEBOOKS)}] {name}: unchanged since its last run, "
                + ("page re-rendered" if state == "render" else "reused"))
        return {"name": name, "title": pages.notebook_title(nb), "seconds": seconds,
                "status": {"execute": "executed", "render": "re-rendered", "fresh": "reused"}[state]}

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(params.workers, len(NOTEBOOKS)))) as pool:
            futures = [pool.submit(report, i, name) for i, name in enumerate(NOTEBOOKS, 1)]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:                  # after a failure: the queued notebooks are not started
                f.cancel()
            listing = [f.result() for f in futures]          # the first failure (in notebook order) is raised
    finally:
        inputs = freshness.inputs_digest(run.dir)           # as this invocation's notebooks left them
        for name, seconds in done.items():
            freshness.record(run.dir, name, freshness.keys(NOTEBOOK_DIR / f"{name}.ipynb", params, inputs, code),
                             seconds)
    if html:
        _shared_pages(run, listing, code, t_start)
    io.write_json(run.dir / ".complete", {"seconds": round(time.time() - t_start, 1),
                                          "params_hash": config.params_hash(params)})
    log(f"study finished in {time.time() - t_start:.0f} s: results in {run.dir}")


def _shared_pages(run: Run, listing: list[dict], code: str, t_start: float) -> None:
    """``reports/explorer.html`` (rebuilt when the run's files or the code changed) and ``reports/index.html``."""
    from mtkd.report.static_explorer import write_explorer
    target = run.dir / "reports" / "explorer.html"
    key = {"execute": config.params_hash("explorer", freshness.inputs_digest(run.dir), code)}
    if freshness.stale(run.dir, "explorer", key, target):
        t0 = time.time()
        write_explorer(run.dir, target)
        freshness.record(run.dir, "explorer", key, round(time.time() - t0, 1))
        log(f"explorer.html written in {time.time() - t0:.0f} s ({target.stat().st_size / 1e6:.1f} MB)")
    for p in listing:
        if p["seconds"] is None:
            p["seconds"] = freshness.last_seconds(run.dir, p["name"])
    pages.write_index(run.dir, listing, total_seconds=time.time() - t_start)
    log(f"report index: {run.dir / 'reports' / 'index.html'}")


def _run_launched(run: Run, params: config.Params, force_stages: list[str] | None) -> Path:
    """Under `accelerate launch` / `torchrun`: the main process holds the lock and starts the run, every
    process computes its share of the units, then the main process alone runs the notebooks."""
    from mtkd.exec.accelerate_executor import Group, run_all
    group = Group(cpu=run.ctx.device.type == "cpu")
    t_start = time.time()
    lock = None
    try:
        errors = []
        if group.is_main:
            def begin():
                nonlocal lock
                run.dir.mkdir(parents=True, exist_ok=True)
                lock = acquire_lock(run.dir)
                _begin(run, params, force_stages)
            errors = group.run(begin)
        group.meet(errors, "starting the run")
        run_all(run)
        if group.is_main:
            run_results_stage(run)
            _reports(run, params, t_start)
    finally:
        if lock is not None:
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
