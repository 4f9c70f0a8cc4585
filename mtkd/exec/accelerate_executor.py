"""Several GPUs on one box: `accelerate launch --multi_gpu --num_processes N -m mtkd.cli run PARAMS`.

`accelerate launch` (or `torchrun`, which sets the same ``RANK``/``WORLD_SIZE`` environment) starts N
copies of `mtkd run`; `mtkd.exec.runner` sees ``WORLD_SIZE > 1`` and comes here. Every process walks the
stages in order (teachers -> logits -> students -> sweep -> conditions). Inside a stage the plan is the same list on
every process, and process r takes units r, r + N, r + 2N, ... and trains each on its own GPU
(`accelerate.PartialState` picks ``cuda:<local rank>``), writing exactly the files the sequential
executor writes. All processes meet at the end of every stage; the main process then writes the
stage's shared files, and after the last stage runs the notebooks, which find every unit done.

Each unit stays on one device, so the results are identical to the sequential executor's (the same
cache keys, the same numbers), and N GPUs train N units at a time with no gradient traffic: the study
is hundreds of independent trainings, and that beats splitting one training's batches over the GPUs.
A failed unit is retried up to ``max_retries`` times; a unit that keeps failing stops the run after
its stage on every process, with every finished unit kept for the next attempt.
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Callable

from mtkd.study import config, io
from mtkd.study.pipeline import Run, active_stages, Unit, log, plan, prepare_data, run_unit, write_fusion_info


class UnitFailed(RuntimeError):
    """Units still failed after their retries (the message names each, its process and its error)."""


def world_size() -> int:
    """Processes of this launch (1 without `accelerate launch` / `torchrun`)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def launch_rank() -> int:
    """This process's rank in the launch (0 without one): read before the process group exists."""
    return int(os.environ.get("RANK", "0") or 0)


class Group:
    """The launched processes: who am I, and a meeting point that carries every process's errors.

    A meeting where any process failed raises on every process, so none waits forever for a
    process that has stopped."""

    def __init__(self, cpu: bool):
        from accelerate import PartialState
        self.state = PartialState(cpu=cpu)             # cpu: a gloo group (tests, CPU boxes); else NCCL
        self.rank, self.size = self.state.process_index, self.state.num_processes
        self.is_main = self.state.is_main_process
        if self.state.device.type == "cuda":
            import torch
            torch.cuda.set_device(self.state.device)      # torch.device("cuda") now means this process's GPU

    def meet(self, errors: list[str] | None = None, what: str = "") -> None:
        errors = list(errors or [])
        if self.size > 1:
            from accelerate.utils import gather_object
            errors = gather_object(errors)
        if errors:
            raise UnitFailed(f"{what}: " + "; ".join(errors) if what else "; ".join(errors))

    def run(self, fn: Callable, *args) -> list[str]:
        """fn(*args) on this process, its error as a message for `meet` instead of a raise."""
        try:
            fn(*args)
            return []
        except Exception as e:  # noqa: BLE001 - reported to every process at the next meeting
            log(f"process {self.rank}: {fn.__name__} failed:\n{traceback.format_exc().rstrip()}")
            return [f"process {self.rank}: {type(e).__name__}: {e}"]


def _run_mine(group: Group, run: Run, stage: str, unit_fn: Callable, max_retries: int) -> tuple[list[str], int]:
    """This process's share of a stage: every size-th unit of the plan, retried on failure."""
    units = plan(run, stage)
    mine = [u for u in units[group.rank::group.size] if not run.is_done(u)]
    log(f"{stage}: process {group.rank} of {group.size} has {len(mine)} of {len(units)} units to compute")
    failed, computed = [], 0
    for unit in mine:
        for attempt in range(1, max_retries + 2):
            t0 = time.time()
            try:
                unit_fn(str(run.dir), unit)
            except Exception as e:  # noqa: BLE001 - a unit's own error: retried, then reported
                log(f"{stage}: {unit.label} failed on process {group.rank} (attempt {attempt} of {max_retries + 1}): "
                    f"{type(e).__name__}: {e}")
                if attempt > max_retries:
                    log(traceback.format_exc().rstrip())
                    failed.append(f"{unit.label} on process {group.rank} after {attempt} attempts "
                                  f"({type(e).__name__}: {e})")
                continue
            computed += 1
            log(f"{stage}: {unit.label} done on process {group.rank} in {time.time() - t0:.0f} s")
            break
    return failed, computed


def run_all(run: Run, max_retries: int = 2, unit_fn: Callable[[str, Unit], object] | None = None) -> list[dict]:
    """Every stage's units spread over the launched processes (see the module doc); called on every process.

    unit_fn(run_dir, unit) does one unit (default `mtkd.study.pipeline.run_unit`). Returns one summary per
    stage (units computed by this process, units computed by all, units reused)."""
    group = Group(cpu=run.ctx.device.type == "cpu")
    unit_fn = unit_fn or run_unit
    t_start = time.time()
    summaries = []
    for stage in active_stages(run):
        if stage == "teachers":
            group.meet(group.run(prepare_data, run) if group.is_main else [], "preparing the data")
        units = plan(run, stage)
        reused = sum(run.is_done(u) for u in units)
        group.meet(group.run(io.clear_stage, run.dir, stage) if group.is_main else [])
        failed, computed = _run_mine(group, run, stage, unit_fn, max_retries)
        group.meet(failed, f"{len(units)} {stage} units on {group.size} processes: the finished ones are kept; "
                           "run the same command again to resume. Failed")
        info = {"stage": stage, "computed": len(units) - reused, "reused": reused, "computed_here": computed}
        summaries.append(info)
        if group.is_main:
            errors = []
            if stage == "logits":
                errors = group.run(write_fusion_info, run)
            if not errors:
                errors = group.run(io.mark_stage, run.dir, stage, {**info, "params_hash": config.params_hash(run.params),
                                                                    "executor": f"accelerate x {group.size}"})
        group.meet(errors if group.is_main else [], f"after the {stage} stage")
    log(f"process {group.rank}: every unit done in {time.time() - t_start:.0f} s "
        f"({sum(s['computed_here'] for s in summaries)} computed here)")
    return summaries
