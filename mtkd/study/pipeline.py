"""The study as stages of cached units of work.

A unit (one teacher, one teacher's logits, one student for one seed, one sweep
point) lives in a folder named by a hash of exactly the params it depends on and
is finished only when its ``.done`` marker exists. A re-run reuses every finished
unit, a changed parameter recomputes only what depends on it, and a killed run
resumes where it stopped (training also checkpoints at epoch boundaries).

Stages, in order: data -> teachers -> logits -> students -> (confirm) -> (sweep) -> (conditions) -> results.
``confirm`` trains the primary comparisons' methods again on fresh seeds, as many as the choosing stage's
variance plans (`mtkd.study.confirm`); its units are students, in the students' cache.
A condition (one value of one axis of ``conditions.axes``) is the main study with one param changed: its
students live in the same cache as the main study's, so a unit the two share is trained once.
`mtkd run --executor ray` (or accelerate) runs the same units.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtkd.study import config, io
from mtkd.data.tasks import SPLITS
from mtkd.study.config import Params
from mtkd.study.fusion_args import fuser_kwargs
from mtkd.study.methods import BASELINE, Method

STAGES = ("teachers", "logits", "students", "confirm", "sweep", "conditions")
EVAL_SPLITS = ("selection", "test")
CODE_VERSION = 5          # bump when a change alters results, so caches of older code are not reused


def log(msg: str) -> None:
    """One line on stderr, written by one call: notebooks run in threads, and print's separate write of
    the newline let two threads' lines run into one."""
    sys.stderr.write(f"mtkd: {msg}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Unit:
    """One independent piece of work; everything needed to find or redo it."""
    stage: str                  # teachers | logits | students | confirm | sweep | conditions
    task: str
    name: str                   # teacher name, or student method (baseline, single:<t>, multi:<fuser>)
    seed: int
    temperature: float | None = None
    alpha: float | None = None
    condition: str = ""         # conditions stage: the condition's label, e.g. "layers=1"

    @property
    def label(self) -> str:
        extra = f" T={self.temperature:g} alpha={self.alpha:g}" if self.stage == "sweep" else ""
        extra += f" [{self.condition}]" if self.condition else ""
        return f"{self.stage} {self.task}/{self.name} seed {self.seed}{extra}"


class Run:
    """A run folder and its validated params: where every stage writes, and (``results``) what it wrote.

    ``progress`` shows tqdm bars while units train (interactive use); the batch runner keeps it off
    and logs one line per unit. ``condition`` (a `config.Condition`) makes it the run of one condition:
    the same folder, params with the condition's one change (see :meth:`at`).
    """

    def __init__(self, params: Params, run_dir: str | Path, progress: bool = False,
                 condition: config.Condition | None = None):
        self.params = params
        self.dir = Path(run_dir).resolve()
        self.progress = progress
        self.condition = condition
        self._tasks: dict = {}
        self._transfer_sets: dict = {}
        self._student_inputs: dict = {}
        self._conditions: dict[str, Run] = {}
        self._pool_rows: int | None = None

    @classmethod
    def open(cls, run_dir: str | Path, progress: bool = False) -> "Run":
        run_dir = Path(run_dir)
        return cls(config.load_params(run_dir / "params.yaml"), run_dir, progress)

    @cached_property
    def results(self):
        """The read side of this run's folder (its result files, logits, examples): a RunResults."""
        from mtkd.study.results import RunResults
        return RunResults(self.dir, self.params)

    # ------------------------------------------------------------ context
    @cached_property
    def device(self) -> torch.device:
        from mtkd.kd.devices import pick_device
        return pick_device(self.params.device)

    @cached_property
    def ctx(self):
        from mtkd.kd.devices import pick_precision
        from mtkd.study.teachers import Context
        return Context(device=self.device, dtype=pick_precision(self.params.precision, self.device),
                       max_length=self.params.data.max_length, seed=self.params.seeds[0],
                       eval_batch_size=self.params.eval_batch_size, progress=self.progress)

    def use_threads(self) -> None:
        """Set torch's thread count from the params: done where work starts, never as a side effect."""
        from mtkd.kd.devices import set_threads
        set_threads(self.params.threads)

    @cached_property
    def conditions(self) -> list[config.Condition]:
        """Every value of every axis of ``conditions.axes``, in the params' order (none for a condition's run)."""
        return config.expand_conditions(self.params)

    def at(self, label: str) -> "Run":
        """The run of the condition ``label`` (``axis=value``): this folder, its data and tokenised inputs
        shared (a condition changes neither), params with the condition's one change."""
        if label not in self._conditions:
            found = [c for c in self.conditions if c.label == label]
            if not found:
                raise ValueError(f"condition {label!r} is not in this run's conditions.axes "
                                 f"({', '.join(c.label for c in self.conditions) or 'none'})")
            run = Run(config.condition_params(self.params, found[0]), self.dir, self.progress, found[0])
            run._tasks = self._tasks
            run._pool_rows, run._transfer_sets = self.transfer_rows, self._transfer_sets
            if run.params.student == self.params.student:
                run._student_inputs = self._student_inputs
            self._conditions[label] = run
        return self._conditions[label]

    @property
    def tasks(self) -> list[str]:
        return list(self.params.data.tasks)

    @property
    def teachers(self) -> list[str]:
        return list(self.params.teachers)

    def task(self, name: str):
        if name not in self._tasks:
            from mtkd.data.tasks import load_task
            from mtkd.study.prepared import prepared_task
            self._tasks[name] = prepared_task(self.dir, name, self.data_key(name)) or load_task(name, self.params.data)
        return self._tasks[name]

    @property
    def transfer_rows(self) -> int:
        """How many rows of each task's transfer pool this run scores (and records): every student reads the
        first ``transfer_examples(method)`` of them, so this is the largest transfer set any of them uses,
        the main study's or a condition's (a condition's run scores nothing: it reads its study's pool)."""
        if self._pool_rows is None:
            sizes = [c.value for c in self.conditions if c.param == "distill.transfer_size"]
            self._pool_rows = max([self.params.distill.transfer_size, *sizes])
        return self._pool_rows

    def transfer_examples(self, method: str) -> int:
        """The transfer examples a student learns from: ``distill.transfer_size``, none for the baseline (no KD)."""
        return 0 if Method.parse(method).kind == "baseline" else self.params.distill.transfer_size

    def transfer_set(self, name: str) -> pd.DataFrame:
        """The first ``transfer_rows`` rows of a task's transfer pool (idx + texts, no label), once per process:
        from the run's ``data/<task>/transfer.parquet`` while its transfer key matches, else from the source."""
        if name not in self._transfer_sets:
            from mtkd.data.tasks import transfer_pool
            from mtkd.study.prepared import prepared_transfer
            rows = self.transfer_rows
            self._transfer_sets[name] = (prepared_transfer(self.dir, name, self.transfer_key(name), rows)
                                         if rows else None)
            if self._transfer_sets[name] is None:
                self._transfer_sets[name] = transfer_pool(name, self.params.data, rows)
        return self._transfer_sets[name]

    def student_inputs(self, task_name: str):
        """The student's model spec, vocabulary size and tokenised splits of a task (and its transfer set,
        as ``transfer``, when the run has one), built once per process."""
        if task_name not in self._student_inputs:
            from mtkd.data import models
            from mtkd.kd.loop import encode
            task = self.task(task_name)
            spec = models.resolve(self.params.student.model)
            texts = [x for f in task.text_fields for x in task.splits["train"][f].tolist()]
            tok = models.load_tokenizer(spec, train_texts=texts)
            enc = {s: encode(tok, task.splits[s], task.text_fields, self.params.data.max_length) for s in SPLITS}
            if self.transfer_rows:
                enc["transfer"] = encode(tok, self.transfer_set(task_name), task.text_fields,
                                         self.params.data.max_length)
            self._student_inputs[task_name] = (spec, len(tok), enc)
        return self._student_inputs[task_name]

    # ------------------------------------------------------------ hashes: what each unit depends on
    def data_key(self, task: str) -> str:
        """What a task's labeled splits depend on (not a custom task's files.unlabeled: see transfer_key)."""
        d = self.params.data
        custom = d.custom.get(task)
        if custom is not None and "unlabeled" in custom["files"]:
            custom = {**custom, "files": {k: v for k, v in custom["files"].items() if k != "unlabeled"}}
        # counts_rows_only and allow_duplicates join the key only when set: runs made before they existed
        # keep their caches
        return config.params_hash({k: v for k, v in d.items() if k not in ("tasks", "custom")
                                   and not (k in ("counts_rows_only", "allow_duplicates") and not v)},
                                  custom, task, CODE_VERSION)

    def transfer_key(self, task: str) -> str:
        """What a task's transfer pool (its rows and their order) depends on: the data params, and a custom
        task's files.unlabeled."""
        custom = self.params.data.custom.get(task)
        return config.params_hash(self.data_key(task), custom["files"].get("unlabeled") if custom else None)

    def _run_key(self) -> dict:
        return {"precision": self.params.precision, "device": self.device.type}

    def teacher_key(self, task: str, teacher: str) -> str:
        return config.params_hash(self.data_key(task), self.params.teachers[teacher], self.params.seeds[0],
                                  self._run_key())

    def student_params(self, task: str) -> dict:
        """The student's params on one task: ``student.task_epochs`` resolved into ``epochs`` and dropped, so
        a task without an entry keeps the key it had before that param existed."""
        student = config.to_plain(self.params.student)
        student["epochs"] = student.pop("task_epochs").get(task, student["epochs"])
        return student

    def student_key(self, unit: Unit) -> str:
        teachers = self.teachers_of(unit.name)
        # the transfer set joins the key only when the student learns from one: every other key stays as it was
        n = self.transfer_examples(unit.name)
        transfer = [{"transfer_size": n, "pool": self.transfer_key(unit.task)}] if n else []
        return config.params_hash(self.data_key(unit.task), self.student_params(unit.task), unit.name, unit.seed,
                                  unit.temperature, unit.alpha, self.params.distill.gate_hidden,
                                  [self.teacher_key(unit.task, t) for t in teachers], self._run_key(), *transfer)

    def teachers_of(self, method: str) -> list[str]:
        m = Method.parse(method)
        return {"baseline": [], "single": [m.name]}.get(m.kind, self.teachers)

    # ------------------------------------------------------------ folders
    def unit_dir(self, unit: Unit) -> Path:
        if unit.stage == "conditions":          # a condition's student: in the students' cache, shared
            return self.at(unit.condition).unit_dir(replace(unit, stage="students", condition=""))
        if unit.stage == "confirm":             # a fresh seed's student: in the students' cache too
            return self.unit_dir(replace(unit, stage="students"))
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

    def fusion_path(self, task: str) -> Path:
        """``fusion/<task>.json``; a condition with its own teachers has its own, under ``fusion/<condition>/``."""
        if self.condition is not None and self.condition.param == "teachers" and not self.condition.is_main:
            return self.dir / "fusion" / self.condition.label / f"{task}.json"
        return self.dir / "fusion" / f"{task}.json"


# ---------------------------------------------------------------- planning

def student_methods(run: Run) -> list[str]:
    methods = []
    for m in run.params.distill.methods:
        if m == "baseline":
            methods.append(str(BASELINE))
        elif m == "single":
            methods += [str(Method("single", t)) for t in run.teachers]
        else:
            methods.append(str(Method("multi", m)))
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
                method = str(Method("single", best_teacher(run, task)) if m == "single_best" else Method("multi", m))
                units += [Unit("sweep", task, method, s, float(T), float(a))
                          for T in sw.temperatures for a in sw.alphas for s in run.params.seeds]
        return units
    if stage == "confirm":
        return confirm_units(run)
    if stage == "conditions":
        return condition_units(run)
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def confirm_units(run: Run) -> list[Unit]:
    """The confirming stage's students (none when ``stats.max_confirm_seeds`` is 0), from its plan, which
    needs the choosing stage's students (FileNotFoundError before they exist)."""
    if not run.params.stats.max_confirm_seeds:
        return []
    from mtkd.study.confirm import write_plan
    d = run.params.distill
    return [Unit("confirm", task, m, s, d.temperature, d.alpha)
            for task, t in write_plan(run)["tasks"].items() for m in t["methods"] for s in t["seeds"]]


def condition_methods(run: Run, task: str, best=None) -> list[str]:
    """The students of one condition's run on a task: the baseline, the single teacher best on selection
    (``best(run, task)``, default: from its fusion info) and the fusers of ``conditions.fusers``."""
    best = best or best_teacher
    return [str(BASELINE), str(Method("single", best(run, task))),
            *(str(Method("multi", f)) for f in run.params.conditions.fusers)]


def condition_task_units(run: Run, c: config.Condition, task: str, best=None) -> dict[str, list[Unit]]:
    """One condition's students on a task: method -> its unit per seed. The baseline learns from no
    teacher, so it is taken at the main study's T and alpha whatever the condition changes."""
    at = run.at(c.label)
    d, cd = run.params.distill, at.params.distill
    out = {}
    for method in condition_methods(at, task, best):
        T, a = (d.temperature, d.alpha) if method == str(BASELINE) else (cd.temperature, cd.alpha)
        out[method] = [Unit("conditions", task, method, seed, T, a, c.label) for seed in run.params.seeds]
    return out


def condition_units(run: Run, best=None) -> list[Unit]:
    """Every condition's students, each unit once: a unit whose folder another condition (or the main study)
    already names is that unit, trained once."""
    units, seen = [], set()
    for c in run.conditions:
        for task in run.tasks:
            for method_units in condition_task_units(run, c, task, best).values():
                for unit in method_units:
                    folder = run.unit_dir(unit)
                    if folder not in seen:
                        seen.add(folder)
                        units.append(unit)
    return units


def condition_unit_dirs(run: Run, c: config.Condition, task: str) -> dict[str, list[tuple[int, Path]]]:
    """One condition's students on a task: method -> [(seed, unit folder)], wherever the unit was planned."""
    return {method: [(u.seed, run.unit_dir(u)) for u in units]
            for method, units in condition_task_units(run, c, task).items()}


def active_stages(run: Run) -> list[str]:
    """The stages this run's params switch on (the sweep and the conditions are optional)."""
    off = {"confirm": not run.params.stats.max_confirm_seeds, "sweep": not run.params.sweep.enabled,
           "conditions": not run.params.conditions.axes}
    return [s for s in STAGES if not off.get(s, False)]


# ---------------------------------------------------------------- data

def prepare_data(run: Run) -> None:
    """Load every task (validating it) and record its examples in the run folder, and its transfer set
    (``transfer.parquet``: idx + texts, the rows the logits stage scores) when the run has one."""
    for name in run.tasks:
        task = run.task(name)
        folder = run.dir / "data" / name
        meta = {"name": name, "text_fields": list(task.text_fields), "label_names": list(task.label_names),
                "metrics": list(task.metrics), "source": task.source, "license": task.license,
                "group_key": task.group_key, "label_counts_fields": list(task.label_counts_fields),
                "data_key": run.data_key(name)}
        if run.transfer_rows:
            meta.update(transfer_rows=run.transfer_rows, transfer_key=run.transfer_key(name))
            transfer = run.transfer_set(name)            # a pool too small for the size stops the run here
        if (folder / "task.json").exists() and io.read_json(folder / "task.json") == meta:
            continue
        frames = [f.assign(split=s) for s, f in task.splits.items()]
        examples = pd.concat(frames, ignore_index=True)[["split", "idx", "label", *task.text_fields,
                                                         *task.label_counts_fields]]
        io.write_parquet(folder / "examples.parquet", examples)
        if run.transfer_rows:
            io.write_parquet(folder / "transfer.parquet", transfer)
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
    from mtkd.study.teachers import fit_teacher
    folder = _start_unit(run, unit)
    if folder is None:
        return
    t0 = time.time()
    info = fit_teacher(run.task(unit.task), unit.name, run.params.teachers[unit.name], run.ctx, folder)
    io.mark_done(folder, info)
    log(f"teacher {unit.task}/{unit.name} trained in {time.time() - t0:.0f} s")


def logits_meta(run: Run, task: str, teacher: str, split: str, shape) -> dict:
    t = run.task(task)
    key = run.teacher_key(task, teacher)
    if split == "transfer":                   # the examples scored depend on the pool's params too
        key = config.params_hash(key, run.transfer_key(task))
    return {"task": task, "teacher": teacher, "split": split, "model": run.params.teachers[teacher]["model"],
            "params_hash": key, "label_names": list(t.label_names), "dtype": "float32", "shape": list(shape)}


def read_logits(run: Run, task: str, teacher: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's cached logits (idx, logits), refused when stale, misaligned or corrupt."""
    from mtkd.study.logits import read_cached
    t = run.task(task)
    expected = logits_meta(run, task, teacher, split, (len(t.splits[split]), t.num_labels))
    return read_cached(run.dir / "logits" / task / teacher / split, expected, t.splits[split]["idx"].to_numpy())


def read_transfer_logits(run: Run, task: str, teacher: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's cached logits (idx, logits) on the first ``n`` rows of the task's transfer set (the cache
    may hold more: a larger set serves a smaller one), refused when stale, misaligned or corrupt."""
    from mtkd.study.logits import read_cached
    idx = run.transfer_set(task)["idx"].to_numpy()[:n]
    expected = logits_meta(run, task, teacher, "transfer", (n, run.task(task).num_labels))
    return read_cached(run.dir / "logits" / task / teacher / "transfer", expected, idx, prefix=True)


def _scored_parts(run: Run) -> tuple[str, ...]:
    """What the logits stage scores for every teacher: the splits, and the transfer set when there is one."""
    return (*SPLITS, "transfer") if run.transfer_rows else SPLITS


def _part_fresh(run: Run, task: str, teacher: str, part: str) -> bool:
    try:
        if part == "transfer":
            read_transfer_logits(run, task, teacher, run.transfer_rows)
        else:
            read_logits(run, task, teacher, part)
        return True
    except (FileNotFoundError, ValueError):
        return False


def logits_fresh(run: Run, task: str, teacher: str) -> bool:
    return all(_part_fresh(run, task, teacher, part) for part in _scored_parts(run))


def _run_logits(run: Run, unit: Unit) -> None:
    from mtkd.study.logits import write_cached
    from mtkd.study.teachers import teacher_logits
    stale = [part for part in _scored_parts(run) if not _part_fresh(run, unit.task, unit.name, part)]
    if not stale:
        return
    _run_teacher(run, Unit("teachers", unit.task, unit.name, unit.seed))
    t0 = time.time()
    task = run.task(unit.task)
    for split in stale:
        frame = run.transfer_set(unit.task) if split == "transfer" else task.splits[split]
        z = teacher_logits(task, run.params.teachers[unit.name], run.ctx, run.unit_dir(
            Unit("teachers", unit.task, unit.name, unit.seed)), frame)
        write_cached(run.dir / "logits" / unit.task / unit.name / split, z, frame["idx"].to_numpy(),
                     logits_meta(run, unit.task, unit.name, split, z.shape))
    log(f"logits {unit.task}/{unit.name} computed in {time.time() - t0:.0f} s")


def teacher_stack(run: Run, task: str, split: str) -> np.ndarray:
    """Logits of every teacher on a split, (N, K, C) in teacher order."""
    return np.stack([read_logits(run, task, t, split)[1] for t in run.teachers], axis=1)


def transfer_stack(run: Run, task: str, n: int) -> np.ndarray:
    """Logits of every teacher on the first ``n`` transfer examples, (n, K, C) in teacher order."""
    return np.stack([read_transfer_logits(run, task, t, n)[1] for t in run.teachers], axis=1)


def fusion_info(run: Run, task: str) -> dict:
    """Everything fusers need, chosen on the selection split only: scores, weights, calibration."""
    from mtkd.kd.fusion import fit_temperature
    from mtkd.data.metrics import score
    t = run.task(task)
    labels = t.splits["selection"]["label"].to_numpy()
    scores, temps = {}, {}
    for name in run.teachers:
        z = np.array(read_logits(run, task, name, "selection")[1])
        scores[name] = score(t.metrics[0], z.argmax(1), labels)
        temps[name] = float(fit_temperature(torch.from_numpy(z), torch.tensor(labels)))   # labels: a read-only view
    best = max(run.teachers, key=lambda n: (scores[n], -run.teachers.index(n)))
    z = teacher_stack(run, task, "selection")
    region_weights, region_counts = fit_region_weights(z, labels, run.teachers)
    return {"teachers": run.teachers, "metric": t.metrics[0], "best_teacher": best, "selection_scores": scores,
            "weights": scores, "temperatures": temps, "region_weights": region_weights,
            "region_counts": region_counts}


def fit_region_weights(z: np.ndarray, labels: np.ndarray, teachers: list[str]) -> tuple[dict, dict]:
    """``region_weighted``'s W from the selection split: per agreement region, each teacher's accuracy on
    the selection examples of that region, normalised over teachers.

    W[r, k] = acc_k(r) / sum_j acc_j(r). A region with no selection examples, or where no teacher is
    right on any of them (the row would be all zero), takes the teachers' accuracy over the whole
    selection split instead (accuracy rather than the headline metric, so every row is in the same
    unit and never negative). Returns {teacher: {region: w}} and {region: n selection examples}.
    """
    from mtkd.study.analysis import REGIONS, agreement_regions
    right = z.argmax(2) == labels[:, None]                        # (N, K)
    regions = agreement_regions(z.argmax(2))
    overall = right.mean(0) if len(right) else np.ones(len(teachers))
    if overall.sum() <= 0:
        overall = np.ones(len(teachers))                           # no teacher right anywhere: uniform
    rows, counts = {}, {}
    for r in REGIONS:
        inside = regions == r
        counts[r] = int(inside.sum())
        acc = right[inside].mean(0) if inside.any() else np.zeros(len(teachers))
        rows[r] = acc / acc.sum() if acc.sum() > 0 else overall / overall.sum()
    return {t: {r: float(rows[r][k]) for r in REGIONS} for k, t in enumerate(teachers)}, counts


def fusion_key(run: Run, task: str) -> str:
    """What a task's fusion info depends on: its teachers (each key names its params and data) and the code."""
    return config.params_hash([run.teacher_key(task, t) for t in run.teachers], CODE_VERSION)


def write_fusion_info(run: Run) -> None:
    """``fusion/<task>.json`` of every task (and of every condition with teachers of its own), recomputed
    only when its teachers or the code changed (its ``key``): the stages that need it all call this, and
    a warm run then reads no metric module."""
    runs = [run, *(run.at(c.label) for c in run.conditions if c.param == "teachers" and not c.is_main)]
    for r in runs:
        for task in r.tasks:
            path, key = r.fusion_path(task), fusion_key(r, task)
            if path.exists() and io.read_json(path).get("key") == key:
                continue
            io.write_json(path, {**fusion_info(r, task), "key": key})


def read_fusion_info(run: Run, task: str) -> dict:
    path = run.fusion_path(task)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the logits stage writes it (run notebook 02_logits first)")
    return io.read_json(path)


def best_teacher(run: Run, task: str) -> str:
    return read_fusion_info(run, task)["best_teacher"]


# ---------------------------------------------------------------- students

def _kd_target(run: Run, unit: Unit, hidden_size: int):
    """The student's KD target on its training rows: the train split's, then (``transfer_examples``) the
    transfer set's. There a label-aware fuser takes its label-free fallback (``fuser_arguments``)."""
    from mtkd.kd.fusion import FUSER_KWARGS, GatingFusion, fuse
    from mtkd.kd.loop import KDTarget
    from mtkd.study.fusion_args import fuser_arguments
    method = Method.parse(unit.name)
    if method.kind == "baseline":
        return None
    n = run.transfer_examples(unit.name)
    if method.kind == "single":
        z = read_logits(run, unit.task, method.name, "train")[1]
        if n:
            z = np.concatenate([z, read_transfer_logits(run, unit.task, method.name, n)[1]])
        return KDTarget(unit.temperature, unit.alpha, logits=torch.from_numpy(z))
    fuser = method.name
    z = torch.from_numpy(teacher_stack(run, unit.task, "train"))
    pool = torch.from_numpy(transfer_stack(run, unit.task, n)) if n else None
    if fuser == "gating":
        torch.manual_seed(unit.seed)
        gate = GatingFusion(hidden_size, z.shape[1], hidden=run.params.distill.gate_hidden)
        return KDTarget(unit.temperature, unit.alpha, teacher_logits=z if pool is None else torch.cat([z, pool]),
                        gate=gate)
    info = read_fusion_info(run, unit.task)
    kw = fuser_kwargs(info, fuser)
    needs = FUSER_KWARGS.get(fuser, ())
    if "labels" in needs:                        # label-aware fusers: the training labels
        kw["labels"] = torch.tensor(run.task(unit.task).splits["train"]["label"].to_numpy())
    if "progress" in needs:                      # scheduled: the loop recomputes it every step
        return KDTarget(unit.temperature, unit.alpha, teacher_logits=z, fuser=fuser, fuser_kwargs=kw)
    fused = fuse(fuser, z, **kw).detach()
    if pool is not None:                         # no labels there: a label-aware fuser's fallback
        pool_fuser, pool_kw = fuser_arguments(info, fuser)
        fused = torch.cat([fused, fuse(pool_fuser, pool, **pool_kw).detach()])
    return KDTarget(unit.temperature, unit.alpha, logits=fused)


def _run_student(run: Run, unit: Unit) -> None:
    from mtkd.data import models
    from mtkd.kd.losses import UNLABELED
    from mtkd.kd.loop import TrainConfig, concat, fit, predict
    folder = _start_unit(run, unit)
    if folder is None:
        return
    t0 = time.time()
    task = run.task(unit.task)
    spec, vocab, enc = run.student_inputs(unit.task)
    model = models.load_classifier(spec, list(task.label_names), layers=run.params.student.layers,
                                   seed=unit.seed, vocab_size=vocab, pooling=run.params.student.pooling)
    target = _kd_target(run, unit, model.config.hidden_size)
    train_enc, labels = enc["train"], task.splits["train"]["label"].to_numpy()
    n = run.transfer_examples(unit.name)
    if n:                                        # the transfer rows after the train rows, as in the target
        train_enc = concat(train_enc, enc["transfer"].head(n))
        labels = np.concatenate([labels, np.full(n, UNLABELED, dtype=labels.dtype)])
    info = fit(model, train_enc, labels, TrainConfig.from_params(run.student_params(unit.task)), unit.seed,
               device=run.ctx.device, dtype=run.ctx.dtype, target=target, checkpoint_dir=folder,
               desc=f"{unit.task} {unit.name} seed {unit.seed}", progress=run.progress)
    gating = target is not None and target.gate is not None
    arrays = {}
    for split in EVAL_SPLITS:
        out = predict(model, enc[split], device=run.ctx.device, dtype=run.ctx.dtype,
                      batch_size=run.params.eval_batch_size, with_features=gating, progress=run.progress)
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
    io.mark_done(folder, {**info, "unit": unit.label, **({"transfer_examples": n} if n else {})})
    log(f"student {unit.label} trained in {time.time() - t0:.0f} s")


# ---------------------------------------------------------------- executing stages

def _run_condition_student(run: Run, unit: Unit) -> None:
    """A condition's student: trained by the condition's run, into the students' cache."""
    _run_student(run.at(unit.condition), replace(unit, stage="students", condition=""))


RUNNERS = {"teachers": _run_teacher, "logits": _run_logits, "students": _run_student, "confirm": _run_student,
           "sweep": _run_student, "conditions": _run_condition_student}


def run_unit(run_dir: str, unit: Unit) -> str:
    """Run one unit from a fresh process (local, Ray and accelerate workers use this): reopen the run, do the unit."""
    run = Run.open(run_dir)
    run.use_threads()
    RUNNERS[unit.stage](run, unit)
    return unit.label


def ensure_params_file(run: Run) -> None:
    """Workers reopen the run from params.yaml: it must hold exactly this run's params."""
    path = run.dir / "params.yaml"
    if path.exists():
        if config.to_plain(config.load_params(path)) != config.to_plain(run.params):
            raise ValueError(f"{path} holds other params than this run's; the workers would compute something "
                             "else (use another --out, or let `mtkd run` write it)")
        return
    io.write_text(path, config.dump_params(run.params))


def usable_cores() -> int:
    """The cores this process may run on (a container's or a job's CPU set, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_WORKER_RUN: list[Run] = []        # a local worker's run, opened once: its inputs and models stay cached


def _start_worker(run_dir: str, threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)      # read by run.use_threads() when params.threads = 0
    run = Run.open(run_dir)
    run.use_threads()
    _WORKER_RUN.append(run)


def _work(unit: Unit) -> str:
    RUNNERS[unit.stage](_WORKER_RUN[0], unit)
    return unit.label


def run_in_workers(run: Run, stage: str, units: list[Unit]) -> None:
    """A stage's units shared by ``params.workers`` local processes, each with its share of the cores.

    Why: the study's models are small, and on a small CPU two processes of one thread each train them
    1.2-1.3x faster than one process with two threads (benchmarks/README.md). Each worker opens the run once
    per stage (its tokenized inputs and loaded models then serve every unit it does) and runs each unit as
    the one-process loop does, so every unit writes the same files in the same folder; a unit
    that fails stops the stage with its own error, after the units already running have finished."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from tqdm.auto import tqdm
    ensure_params_file(run)
    workers = min(run.params.workers, len(units))
    threads = run.params.threads or max(1, usable_cores() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(str(run.dir), threads))
    try:
        futures = [pool.submit(_work, unit) for unit in units]
        for future in tqdm(as_completed(futures), total=len(futures), desc=stage, disable=not run.progress):
            future.result()
    except BrokenProcessPool as e:
        raise RuntimeError(f"{stage}: a worker process died without an error of its own (killed, or out of "
                           f"memory: each of the {workers} workers holds a model); finished units are kept: "
                           "run again with fewer `workers` (--set workers=1)") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_stage(run: Run, stage: str) -> dict:
    """Run every unit of a stage that is not finished yet; returns how many were computed and reused."""
    from tqdm.auto import tqdm
    run.use_threads()
    io.clear_stage(run.dir, stage)
    if stage in ("teachers", "logits", "students"):
        prepare_data(run)
    if stage in ("students", "confirm", "sweep", "conditions"):
        write_fusion_info(run)
    units = plan(run, stage)
    if stage == "confirm":
        from mtkd.study.confirm import describe, write_plan
        for line in describe(write_plan(run)):
            log(line)
    todo = [u for u in units if not run.is_done(u)]
    if todo:
        log(f"{stage}: {len(todo)} of {len(units)} units to compute")
    if run.params.workers > 1 and len(todo) > 1:
        run_in_workers(run, stage, todo)
    else:
        for unit in tqdm(todo, desc=stage, disable=not run.progress):
            RUNNERS[stage](run, unit)
    if stage == "logits":
        write_fusion_info(run)
    info = {"stage": stage, "computed": len(todo), "reused": len(units) - len(todo)}
    io.mark_stage(run.dir, stage, {**info, "params_hash": config.params_hash(run.params)})
    return info


def force(run: Run, stage: str) -> None:
    """Forget a stage's finished units so the next run recomputes them (for the conditions: the units no
    main-study stage shares; their best single teacher is known only once the logits are)."""
    if stage not in (*STAGES, "reports"):
        raise ValueError(f"--force {stage!r}: not a stage; stages: {', '.join((*STAGES, 'reports'))}")
    if stage in ("conditions", "confirm"):
        others = ("students", "sweep") if stage == "conditions" else ("students",)
        shared = {run.unit_dir(u) for s in others for u in plan(run, s)}
        try:
            units = plan(run, stage)
        except FileNotFoundError:                # nothing planned yet, so nothing to forget
            units = []
        for unit in units:
            if run.unit_dir(unit) not in shared:
                shutil.rmtree(run.unit_dir(unit), ignore_errors=True)
    else:
        target = {"logits": run.dir / "logits", "reports": run.dir / "reports"}.get(stage, run.dir / "cache" / stage)
        shutil.rmtree(target, ignore_errors=True)
    io.clear_stage(run.dir, stage)
