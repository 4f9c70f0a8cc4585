"""The study as stages of cached units of work.

A unit (one teacher, one teacher's logits, one student for one seed, one sweep
point) lives in a folder named by a hash of exactly the params it depends on and
is finished only when its ``.done`` marker exists. A re-run reuses every finished
unit, a changed parameter recomputes only what depends on it, and a killed run
resumes where it stopped (training also checkpoints at epoch boundaries).

Stages, in order: data -> teachers -> logits -> students -> (sweep) -> results.
The notebooks call them; `mtkd run --executor ray` runs the same units on Ray.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import config, io
from .config import Params

STAGES = ("teachers", "logits", "students", "sweep")
SPLITS = ("train", "selection", "test")
EVAL_SPLITS = ("selection", "test")
CODE_VERSION = 5          # bump when a change alters results, so caches of older code are not reused


def log(msg: str) -> None:
    print(f"mtkd: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Unit:
    """One independent piece of work; everything needed to find or redo it."""
    stage: str                  # teachers | logits | students | sweep
    task: str
    name: str                   # teacher name, or student method (baseline, single:<t>, multi:<fuser>)
    seed: int
    temperature: float | None = None
    alpha: float | None = None

    @property
    def label(self) -> str:
        extra = f" T={self.temperature:g} alpha={self.alpha:g}" if self.stage == "sweep" else ""
        return f"{self.stage} {self.task}/{self.name} seed {self.seed}{extra}"


class Run:
    """A run folder and its validated params: where every stage reads and writes."""

    def __init__(self, params: Params, run_dir: str | Path):
        self.params = params
        self.dir = Path(run_dir).resolve()

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        run_dir = Path(run_dir)
        return cls(config.load_params(run_dir / "params.yaml"), run_dir)

    # ------------------------------------------------------------ context
    @cached_property
    def ctx(self):
        from .teachers import Context
        from .train import pick_device, pick_precision, set_threads
        set_threads(self.params.threads)
        device = pick_device(self.params.device)
        return Context(device=device, dtype=pick_precision(self.params.precision, device),
                       max_length=self.params.data.max_length, seed=self.params.seeds[0],
                       eval_batch_size=self.params.eval_batch_size)

    @property
    def tasks(self) -> list[str]:
        return list(self.params.data.tasks)

    @property
    def teachers(self) -> list[str]:
        return list(self.params.teachers)

    def task(self, name: str):
        if not hasattr(self, "_tasks"):
            self._tasks = {}
        if name not in self._tasks:
            from .data import load_task
            self._tasks[name] = load_task(name, self.params.data)
        return self._tasks[name]

    # ------------------------------------------------------------ hashes: what each unit depends on
    def data_key(self, task: str) -> str:
        d = self.params.data
        return config.params_hash({k: v for k, v in d.items() if k not in ("tasks", "custom")},
                                  d.custom.get(task), task, CODE_VERSION)

    def _run_key(self) -> dict:
        return {"precision": self.params.precision, "device": self.ctx.device.type}

    def teacher_key(self, task: str, teacher: str) -> str:
        return config.params_hash(self.data_key(task), self.params.teachers[teacher], self.params.seeds[0],
                                  self._run_key())

    def student_key(self, unit: Unit) -> str:
        teachers = self.teachers_of(unit.name)
        return config.params_hash(self.data_key(unit.task), self.params.student, unit.name, unit.seed,
                                  unit.temperature, unit.alpha, self.params.distill.gate_hidden,
                                  [self.teacher_key(unit.task, t) for t in teachers], self._run_key())

    def teachers_of(self, method: str) -> list[str]:
        if method == "baseline":
            return []
        if method.startswith("single:"):
            return [method.split(":", 1)[1]]
        return self.teachers

    # ------------------------------------------------------------ folders
    def unit_dir(self, unit: Unit) -> Path:
        base = self.dir / "cache" / unit.stage / unit.task
        if unit.stage == "teachers":
            return base / f"{unit.name}-{self.teacher_key(unit.task, unit.name)}"
        if unit.stage == "logits":
            return self.dir / "logits" / unit.task / unit.name
        method = unit.name.replace(":", "-")
        point = f"T{unit.temperature:g}-a{unit.alpha:g}-" if unit.stage == "sweep" else ""
        return base / method / f"{point}seed{unit.seed}-{self.student_key(unit)}"

    def is_done(self, unit: Unit) -> bool:
        if unit.stage == "logits":
            return logits_fresh(self, unit.task, unit.name)
        return io.is_done(self.unit_dir(unit))


# ---------------------------------------------------------------- planning

def student_methods(run: Run) -> list[str]:
    methods = []
    for m in run.params.distill.methods:
        if m == "baseline":
            methods.append("baseline")
        elif m == "single":
            methods += [f"single:{t}" for t in run.teachers]
        else:
            methods.append(f"multi:{m}")
    return methods


def plan(run: Run, stage: str) -> list[Unit]:
    """Every unit of a stage, in the order the sequential executor runs them."""
    seed0 = run.params.seeds[0]
    if stage in ("teachers", "logits"):
        return [Unit(stage, task, t, seed0) for task in run.tasks for t in run.teachers]
    if stage == "students":
        d = run.params.distill
        return [Unit("students", task, m, s, d.temperature, d.alpha)
                for task in run.tasks for m in student_methods(run) for s in run.params.seeds]
    if stage == "sweep":
        if not run.params.sweep.enabled:
            return []
        sw = run.params.sweep
        units = []
        for task in run.tasks:
            for m in sw.methods:
                method = f"single:{best_teacher(run, task)}" if m == "single_best" else f"multi:{m}"
                units += [Unit("sweep", task, method, s, float(T), float(a))
                          for T in sw.temperatures for a in sw.alphas for s in run.params.seeds]
        return units
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


# ---------------------------------------------------------------- data

def prepare_data(run: Run) -> None:
    """Load every task (validating it) and record its examples in the run folder."""
    for name in run.tasks:
        task = run.task(name)
        folder = run.dir / "data" / name
        meta = {"name": name, "text_fields": list(task.text_fields), "label_names": list(task.label_names),
                "metrics": list(task.metrics), "source": task.source, "license": task.license,
                "group_key": task.group_key, "data_key": run.data_key(name)}
        if (folder / "task.json").exists() and io.read_json(folder / "task.json") == meta:
            continue
        frames = [f.assign(split=s) for s, f in task.splits.items()]
        examples = pd.concat(frames, ignore_index=True)[["split", "idx", "label", *task.text_fields]]
        io.write_parquet(folder / "examples.parquet", examples)
        io.write_json(folder / "task.json", meta)


# ---------------------------------------------------------------- teachers and their logits

def _start_unit(run: Run, unit: Unit) -> Path | None:
    """The unit's folder ready for work, or None when the unit is already finished."""
    folder = run.unit_dir(unit)
    if io.is_done(folder):
        return None
    io.prepare_unit(folder)          # drop a killed attempt's partial files, keep its epoch checkpoint
    if (folder / "last_epoch.pt").exists():
        log(f"{unit.label}: resuming from its last epoch checkpoint")
    return folder


def _run_teacher(run: Run, unit: Unit) -> None:
    from .teachers import fit_teacher
    folder = _start_unit(run, unit)
    if folder is None:
        return
    t0 = time.time()
    info = fit_teacher(run.task(unit.task), unit.name, run.params.teachers[unit.name], run.ctx, folder)
    io.mark_done(folder, info)
    log(f"teacher {unit.task}/{unit.name} trained in {time.time() - t0:.0f} s")


def logits_meta(run: Run, task: str, teacher: str, split: str, shape) -> dict:
    t = run.task(task)
    return {"task": task, "teacher": teacher, "split": split, "model": run.params.teachers[teacher]["model"],
            "params_hash": run.teacher_key(task, teacher), "label_names": list(t.label_names),
            "dtype": "float32", "shape": list(shape)}


def read_logits(run: Run, task: str, teacher: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's cached logits (idx, logits), refused when stale, misaligned or corrupt."""
    from .logits import read_cached
    t = run.task(task)
    expected = logits_meta(run, task, teacher, split, (len(t.splits[split]), t.num_labels))
    return read_cached(run.dir / "logits" / task / teacher / split, expected, t.splits[split]["idx"].to_numpy())


def logits_fresh(run: Run, task: str, teacher: str) -> bool:
    try:
        for split in SPLITS:
            read_logits(run, task, teacher, split)
        return True
    except (FileNotFoundError, ValueError):
        return False


def _run_logits(run: Run, unit: Unit) -> None:
    from .logits import write_cached
    from .teachers import teacher_logits
    if logits_fresh(run, unit.task, unit.name):
        return
    _run_teacher(run, Unit("teachers", unit.task, unit.name, unit.seed))
    t0 = time.time()
    task = run.task(unit.task)
    for split in SPLITS:
        frame = task.splits[split]
        z = teacher_logits(task, run.params.teachers[unit.name], run.ctx, run.unit_dir(
            Unit("teachers", unit.task, unit.name, unit.seed)), frame)
        write_cached(run.dir / "logits" / unit.task / unit.name / split, z, frame["idx"].to_numpy(),
                     logits_meta(run, unit.task, unit.name, split, z.shape))
    log(f"logits {unit.task}/{unit.name} computed in {time.time() - t0:.0f} s")


def teacher_stack(run: Run, task: str, split: str) -> np.ndarray:
    """Logits of every teacher on a split, (N, K, C) in teacher order."""
    return np.stack([read_logits(run, task, t, split)[1] for t in run.teachers], axis=1)


def fusion_info(run: Run, task: str) -> dict:
    """Everything fusers need, chosen on the selection split only: scores, weights, calibration."""
    from .fusion import fit_temperature
    from .metrics import score
    t = run.task(task)
    labels = t.splits["selection"]["label"].to_numpy()
    scores, temps = {}, {}
    for name in run.teachers:
        z = np.array(read_logits(run, task, name, "selection")[1])
        scores[name] = score(t.metrics[0], z.argmax(1), labels)
        temps[name] = float(fit_temperature(torch.from_numpy(z), torch.tensor(labels)))   # labels: a read-only view
    best = max(run.teachers, key=lambda n: (scores[n], -run.teachers.index(n)))
    return {"teachers": run.teachers, "metric": t.metrics[0], "best_teacher": best, "selection_scores": scores,
            "weights": scores, "temperatures": temps}


def write_fusion_info(run: Run) -> None:
    for task in run.tasks:
        io.write_json(run.dir / "fusion" / f"{task}.json", fusion_info(run, task))


def read_fusion_info(run: Run, task: str) -> dict:
    path = run.dir / "fusion" / f"{task}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the logits stage writes it (run notebook 02_logits first)")
    return io.read_json(path)


def best_teacher(run: Run, task: str) -> str:
    return read_fusion_info(run, task)["best_teacher"]


# ---------------------------------------------------------------- students

def _student_data(run: Run, task_name: str):
    """Tokenised splits for the student, built once per task and process."""
    from . import models
    from .train import encode
    cache = run.__dict__.setdefault("_student_enc", {})
    if task_name not in cache:
        task = run.task(task_name)
        spec = models.resolve(run.params.student.model)
        texts = [x for f in task.text_fields for x in task.splits["train"][f].tolist()]
        tok = models.load_tokenizer(spec, train_texts=texts)
        enc = {s: encode(tok, task.splits[s], task.text_fields, run.params.data.max_length) for s in SPLITS}
        cache[task_name] = (spec, len(tok), enc)
    return cache[task_name]


def fuser_kwargs(info: dict, fuser: str) -> dict:
    """The keyword arguments a fuser needs, from the selection-split fusion info."""
    if fuser == "weighted":
        return {"weights": [info["weights"][t] for t in info["teachers"]]}
    if fuser == "calibrated_average":
        return {"temperatures": [info["temperatures"][t] for t in info["teachers"]]}
    return {}


def _kd_target(run: Run, unit: Unit, hidden_size: int):
    from .fusion import GatingFusion, fuse
    from .train import KDTarget
    if unit.name == "baseline":
        return None
    if unit.name.startswith("single:"):
        z = read_logits(run, unit.task, unit.name.split(":", 1)[1], "train")[1]
        return KDTarget(unit.temperature, unit.alpha, logits=torch.from_numpy(z))
    fuser = unit.name.split(":", 1)[1]
    z = torch.from_numpy(teacher_stack(run, unit.task, "train"))
    if fuser == "gating":
        torch.manual_seed(unit.seed)
        gate = GatingFusion(hidden_size, z.shape[1], hidden=run.params.distill.gate_hidden)
        return KDTarget(unit.temperature, unit.alpha, teacher_logits=z, gate=gate)
    kw = fuser_kwargs(read_fusion_info(run, unit.task), fuser)
    return KDTarget(unit.temperature, unit.alpha, logits=fuse(fuser, z, **kw).detach())


def _run_student(run: Run, unit: Unit) -> None:
    from . import models
    from .train import TrainConfig, fit, predict
    folder = _start_unit(run, unit)
    if folder is None:
        return
    t0 = time.time()
    task = run.task(unit.task)
    spec, vocab, enc = _student_data(run, unit.task)
    model = models.load_classifier(spec, list(task.label_names), layers=run.params.student.layers,
                                   seed=unit.seed, vocab_size=vocab, pooling=run.params.student.pooling)
    target = _kd_target(run, unit, model.config.hidden_size)
    info = fit(model, enc["train"], task.splits["train"]["label"].to_numpy(),
               TrainConfig.from_params(run.params.student), unit.seed, device=run.ctx.device, dtype=run.ctx.dtype,
               target=target, checkpoint_dir=folder, desc=f"{unit.task} {unit.name} seed {unit.seed}")
    gating = target is not None and target.gate is not None
    arrays = {}
    for split in EVAL_SPLITS:
        out = predict(model, enc[split], device=run.ctx.device, dtype=run.ctx.dtype,
                      batch_size=run.params.eval_batch_size, with_features=gating)
        if gating:
            logits, features = out
            with torch.inference_mode():
                z = torch.from_numpy(teacher_stack(run, unit.task, split))
                _, w = target.gate(torch.from_numpy(features).to(run.ctx.device), z.to(run.ctx.device))
            arrays[f"gate_{split}"] = w.float().cpu().numpy()
        else:
            logits = out
        arrays[f"logits_{split}"] = logits
        arrays[f"idx_{split}"] = task.splits[split]["idx"].to_numpy()
    io.write_npz(folder / "predictions.npz", **arrays)
    io.mark_done(folder, {**info, "unit": unit.label})
    log(f"student {unit.label} trained in {time.time() - t0:.0f} s")


# ---------------------------------------------------------------- executing stages

RUNNERS = {"teachers": _run_teacher, "logits": _run_logits, "students": _run_student, "sweep": _run_student}


def run_unit(run_dir: str, unit: Unit) -> str:
    """Run one unit from a fresh process (Ray workers use this): reopen the run, do the unit."""
    run = Run.open(run_dir)
    RUNNERS[unit.stage](run, unit)
    return unit.label


def run_stage(run: Run, stage: str) -> dict:
    """Run every unit of a stage that is not finished yet; returns how many were computed and reused."""
    from tqdm.auto import tqdm
    from .train import progress_enabled
    io.clear_stage(run.dir, stage)
    if stage in ("teachers", "logits", "students"):
        prepare_data(run)
    if stage in ("students", "sweep"):
        write_fusion_info(run)
    units = plan(run, stage)
    todo = [u for u in units if not run.is_done(u)]
    if todo:
        log(f"{stage}: {len(todo)} of {len(units)} units to compute")
    for unit in tqdm(todo, desc=stage, disable=not progress_enabled()):
        RUNNERS[stage](run, unit)
    if stage == "logits":
        write_fusion_info(run)
    info = {"stage": stage, "computed": len(todo), "reused": len(units) - len(todo)}
    io.mark_stage(run.dir, stage, {**info, "params_hash": config.params_hash(run.params)})
    return info


def force(run: Run, stage: str) -> None:
    """Forget a stage's finished units so the next run recomputes them."""
    if stage not in (*STAGES, "reports"):
        raise ValueError(f"--force {stage!r}: not a stage; stages: {', '.join((*STAGES, 'reports'))}")
    target = {"logits": run.dir / "logits", "reports": run.dir / "reports"}.get(stage, run.dir / "cache" / stage)
    shutil.rmtree(target, ignore_errors=True)
    io.clear_stage(run.dir, stage)
