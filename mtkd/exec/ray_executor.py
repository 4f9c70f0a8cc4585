"""`mtkd run --executor ray`: the study's units of work as Ray tasks.

The stages run in order (teachers -> logits -> students -> sweep -> conditions), each one after
the previous has finished; inside a stage every unit is independent and goes out
as one Ray task with a resource request (one GPU per unit on a CUDA run, CPUs
otherwise). A worker reopens the run from ``<run>/params.yaml`` and does exactly
what the sequential executor does (`mtkd.study.pipeline.run_unit`), so each unit writes
the same files in the same folder, keyed by the same params hashes; afterwards the
runner executes the notebooks, which find every unit done and only assemble and
render. Results are identical to the sequential executor's.

A failed unit is retried up to ``max_retries`` times; units that finished are
never touched again (each has its own folder and ``.done`` marker), so a run that
stops on a failure resumes where it stopped. Ray is an optional dependency:
``pip install mtkd[ray]``. The run folder must be on a filesystem every node sees.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Callable

from mtkd.study import config, io
from mtkd.study.pipeline import (Run, active_stages, Unit, ensure_params_file, log, plan, prepare_data, run_unit,
                                 write_fusion_info)

INSTALL_HINT = "the Ray executor needs Ray: pip install mtkd[ray] (or pip install ray==2.60.0)"

# Quiet, offline-friendly Ray defaults (set before ray is imported; the user's own values win).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",          # no usage-stats reporting (the network may be off)
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",    # workers use this very interpreter/venv, never a `uv run` env
}
# Passed through to the workers when set in the driver (offline switches, caches).
PASSTHROUGH_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "HF_HUB_CACHE",
                   "HF_DATASETS_CACHE", "MTKD_CACHE")


class RayExecutorError(RuntimeError):
    """The Ray executor cannot run (Ray missing, a cluster not ready for this run)."""


class UnitFailed(RayExecutorError):
    """A unit still failed after its retries (the message names it, the attempts and the error)."""


def import_ray():
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError as e:
        raise RayExecutorError(INSTALL_HINT) from e
    return ray


def worker_env(run_device: str) -> dict[str, str]:
    """Environment of every worker: offline switches as in the driver (run_unit opens runs without progress bars)."""
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    for key in PASSTHROUGH_ENV:
        if key in os.environ and key not in env:
            env[key] = os.environ[key]
    if run_device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""      # a CPU run stays on the CPU on every node (its cache keys say cpu)
    return env


def resources(run: Run, unit: Unit, device: str, node_cpus: float) -> dict:
    """The Ray resource request of one unit.

    CUDA run: one GPU per unit (a unit uses one device; its cache key records the device type).
    CPU run: ``threads`` CPUs per unit when set, else one, and up to four for a transformer teacher
    (the longest units, so the scheduler does not pack them onto one core). Capped by the largest node.
    """
    if device == "cuda":
        return {"num_gpus": 1, "num_cpus": 1}
    threads = int(run.params.threads)
    want = threads if threads > 0 else 1
    if unit.stage == "teachers" and threads == 0 and run.params.teachers[unit.name]["mode"] != "tfidf":
        want = 4
    return {"num_cpus": max(1, min(want, int(node_cpus) or 1))}


def _execute(unit_fn: Callable, run_dir: str, unit: Unit, expect_device: str) -> tuple[str, float]:
    """The body of one Ray task: check the worker resolves the run's device, then do the unit."""
    t0 = time.time()
    from mtkd.kd.devices import pick_device
    params = config.load_params(Path(run_dir) / "params.yaml")
    got = pick_device(params.device).type
    if got != expect_device:
        raise RayExecutorError(f"this worker resolves device {params.device!r} to {got}, the driver to {expect_device}; "
                           "the units' cache keys would differ: set device: cpu or cuda in the params")
    unit_fn(run_dir, unit)
    return unit.label, time.time() - t0


def _probe(run_dir: str, code_version: int, version: str) -> dict:
    """Runs once per node before any unit: can it see the run folder and the same mtkd?"""
    import socket
    import mtkd
    from mtkd.study import pipeline
    return {"host": socket.gethostname(), "sees_run": (Path(run_dir) / "params.yaml").is_file(),
            "same_code": (pipeline.CODE_VERSION, mtkd.__version__) == (code_version, version)}


def _connect(ray, address: str | None, num_cpus: int | None) -> bool:
    """Connect to a cluster (address) or start a local Ray; returns True when this call started it."""
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                  logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **kwargs)
        log(f"ray: connected to {address}")
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
        log(f"ray: started a local Ray with {num_cpus or os.cpu_count()} CPUs")
    return True


def _check_nodes(ray, run: Run) -> None:
    """Every alive node must see the run folder (a shared filesystem) and run the same mtkd."""
    import mtkd
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from mtkd.study import pipeline
    probe = ray.remote(_probe)
    refs = {}
    for node in ray.nodes():
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0:
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            refs[node.get("NodeManagerAddress", node["NodeID"])] = probe.options(
                num_cpus=0, scheduling_strategy=strategy, max_retries=1).remote(
                str(run.dir), pipeline.CODE_VERSION, mtkd.__version__)
    problems = []
    for where, ref in refs.items():
        try:
            got = ray.get(ref, timeout=300)
        except Exception as e:  # noqa: BLE001 - any failure here is a setup problem of that node
            problems.append(f"node {where}: cannot run mtkd ({type(e).__name__}: {str(e).splitlines()[0]}); "
                            "install the same mtkd and its dependencies on every node")
            continue
        if not got["sees_run"]:
            problems.append(f"node {where} ({got['host']}): does not see {run.dir}/params.yaml; the run folder "
                            "(--out) must be on a filesystem shared by every node")
        elif not got["same_code"]:
            problems.append(f"node {where} ({got['host']}): runs another mtkd version; install the same one everywhere")
    if problems:
        raise RayExecutorError("ray executor: the cluster is not ready:\n  " + "\n  ".join(problems))


def _cause(err: BaseException) -> BaseException:
    """The user's exception behind a Ray task error, when there is one."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def _describe(err: BaseException) -> str:
    cause = _cause(err)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_units(ray, run: Run, stage: str, units: list[Unit], unit_fn: Callable, device: str, node_cpus: float,
              max_retries: int, env: dict) -> dict:
    """Run one stage's units on Ray, retrying failures; raise after the stage when a unit keeps failing."""
    task = ray.remote(_execute)
    todo = [u for u in units if not run.is_done(u)]
    reused = len(units) - len(todo)
    if not todo:
        log(f"{stage}: all {len(units)} units already done")
        return {"stage": stage, "computed": 0, "reused": reused}
    log(f"{stage}: {len(todo)} of {len(units)} units to compute on Ray")

    def submit(unit: Unit):
        return task.options(**resources(run, unit, device, node_cpus), max_retries=0,
                            runtime_env={"env_vars": env}).remote(unit_fn, str(run.dir), unit, device)

    pending = {submit(u): u for u in todo}
    attempts = {u: 1 for u in todo}
    failed: list[tuple[Unit, BaseException]] = []
    finished = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            unit = pending.pop(ref)
            try:
                _, seconds = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a unit's own error, a dead worker or node: all retried
                if attempts[unit] <= max_retries:
                    log(f"{stage}: {unit.label} failed (attempt {attempts[unit]} of {max_retries + 1}: "
                        f"{_describe(e)}); retrying")
                    attempts[unit] += 1
                    pending[submit(unit)] = unit
                else:
                    log(f"{stage}: {unit.label} failed after {attempts[unit]} attempts: {_describe(e)}")
                    # a Ray task error carries the worker's traceback in its text
                    detail = str(e) if hasattr(e, "cause") else "".join(traceback.format_exception(e)).rstrip()
                    log(f"{stage}: traceback of {unit.label}:\n{detail}")
                    failed.append((unit, e))
                continue
            finished += 1
            log(f"[{finished}/{len(todo)}] {unit.label}: done in {seconds:.0f} s"
                + (f" (attempt {attempts[unit]})" if attempts[unit] > 1 else ""))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    if failed:
        names = "; ".join(f"{u.label} after {attempts[u]} attempts ({_describe(e)})" for u, e in failed)
        raise UnitFailed(f"ray executor: {len(failed)} of {len(todo)} {stage} units failed: {names}. "
                         f"The other {finished} finished units are kept; run the same command again to resume") \
            from _cause(failed[0][1])
    return {"stage": stage, "computed": finished, "reused": reused}


def _ensure_params_file(run: Run) -> None:
    try:
        ensure_params_file(run)
    except ValueError as e:
        raise RayExecutorError(str(e)) from None


def run_all(run: Run, address: str | None = None, max_retries: int = 2, unit_fn: Callable | None = None,
            num_cpus: int | None = None) -> list[dict]:
    """Run every stage of the study on Ray (a cluster at ``address``, else a local Ray); see the module doc.

    unit_fn(run_dir: str, unit: Unit) does one unit (default `mtkd.study.pipeline.run_unit`); it must be
    importable or picklable by the workers. num_cpus sizes a local Ray (default: every core).
    Returns one summary per stage: computed and reused units.
    """
    ray = import_ray()
    unit_fn = unit_fn or run_unit
    t_start = time.time()
    _ensure_params_file(run)
    device = run.ctx.device.type
    started = _connect(ray, address, num_cpus)
    try:
        cluster = ray.cluster_resources()
        if device == "cuda" and cluster.get("GPU", 0) < 1:
            raise RayExecutorError("ray executor: this run uses CUDA but the Ray cluster reports no GPU; start the "
                               "workers with GPUs or set device: cpu")
        node_cpus = max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
        log(f"ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; device {device}, "
            f"up to {max_retries} retries per unit")
        _check_nodes(ray, run)
        env = worker_env(device)
        summaries = []
        for stage in active_stages(run):
            if stage == "teachers":
                prepare_data(run)
            io.clear_stage(run.dir, stage)
            info = run_units(ray, run, stage, plan(run, stage), unit_fn, device, node_cpus, max_retries, env)
            summaries.append(info)
            if stage == "logits":
                write_fusion_info(run)
            io.mark_stage(run.dir, stage, {**info, "params_hash": config.params_hash(run.params), "executor": "ray"})
        log(f"ray: every unit done in {time.time() - t_start:.0f} s "
            f"({sum(s['computed'] for s in summaries)} computed, {sum(s['reused'] for s in summaries)} reused)")
        return summaries
    finally:
        if started:
            ray.shutdown()
