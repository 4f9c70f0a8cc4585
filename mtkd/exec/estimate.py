"""What a run will do, and roughly how long it takes and how much memory it needs (for ``--dry-run``).

Everything here comes from the params and the loaded data alone; nothing is trained.
The estimates are deliberately simple, and rough (expect a factor of 2-3 either way):

* time: a transformer step costs ~3 forward passes; a forward pass costs
  ``2 x (12 L H^2) x tokens + 4 L H tokens^2`` FLOPs (the encoder's matrix products and
  attention), tokens = the task's mean length in tokens (dynamic padding); divided by a
  nominal effective throughput per device, plus a fixed overhead per step and layer;
* memory of a training unit: fp32 weights, gradients and AdamW states (16 bytes per
  trainable parameter, 4 per frozen one) plus activations ~ ``L x batch x length x
  (34 H + 5 heads x length)`` bytes in 16-bit (twice that in fp32) at the longest batch;
* the Ray wall time: stages run one after another and the units of a stage spread over
  N workers (longest first), so the critical path is the longest unit of each stage.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mtkd.study.pipeline import Run, best_teacher, condition_units, plan, student_methods

GiB = 1024**3


@dataclass(frozen=True)
class Arch:
    """The size of a transformer encoder: enough for FLOPs and memory."""
    layers: int
    hidden: int
    vocab: int
    cost: float = 1.0          # relative cost per layer (DeBERTa's disentangled attention ~1.5x BERT)

    @property
    def heads(self) -> int:
        return max(1, self.hidden // 64)

    @property
    def body(self) -> int:
        """Parameters of the transformer layers (what every token goes through)."""
        return 12 * self.layers * self.hidden ** 2

    @property
    def embeddings(self) -> int:
        return (self.vocab + 514) * self.hidden

    @property
    def params(self) -> int:
        return self.body + self.embeddings

    def forward_flops(self, tokens: float) -> float:
        """FLOPs of one forward pass over one example of ``tokens`` tokens."""
        return self.cost * (2 * self.body * tokens + 4 * self.layers * self.hidden * tokens ** 2)


# Registry names (and the usual hub names) -> size. Others are read from their config.json when at hand.
ARCH = {
    "tiny-bert": Arch(2, 32, 2000),
    "minilm-l6": Arch(6, 384, 30522),
    "mpnet-base": Arch(12, 768, 30527),
    "distilbert-base-uncased": Arch(6, 768, 30522),
    "bert-base-uncased": Arch(12, 768, 30522),
    "bert-large-uncased": Arch(24, 1024, 30522),
    "roberta-base": Arch(12, 768, 50265),
    "roberta-large": Arch(24, 1024, 50265),
    "microsoft/deberta-base": Arch(12, 768, 50265, cost=1.5),
    "microsoft/deberta-v3-base": Arch(12, 768, 128100, cost=1.5),
    "microsoft/deberta-large": Arch(24, 1024, 50265, cost=1.5),
}
ASSUMED = Arch(12, 768, 30522)


@dataclass(frozen=True)
class Hardware:
    """A nominal device: effective FLOP/s while training these models, and fixed costs per step."""
    name: str
    kind: str                  # cpu | cuda
    flops: float               # effective FLOP/s (16-bit autocast where the device has it)
    step_overhead: float       # seconds per optimizer step, plus ...
    layer_overhead: float      # ... seconds per layer and step (kernel launches, Python)
    memory: float | None = None   # bytes of device memory, when known
    base_memory: float = 0.0      # what the process needs before the model (CUDA context, torch, data)


def cpu_hardware(threads: int, bf16: bool) -> Hardware:
    cores = threads if threads > 0 else (os.cpu_count() or 1)
    # ~0.08 TFLOP/s per core in fp32 (measured: MiniLM-L6 trains at ~80 examples/s on 2 cores), bf16 ~1.6x
    per_core = 0.08e12 * (1.6 if bf16 else 1.0)
    return Hardware(f"this CPU ({cores} cores{', bf16' if bf16 else ''})", "cpu", per_core * min(cores, 32),
                    0.005, 0.001, None, 1.0 * GiB)


def gpu_hardware(half: bool = True, name: str | None = None, memory: float | None = None) -> Hardware:
    # A100-class GPU at the utilisation short-sequence fine-tuning reaches (~10-30 % of peak): 30 TFLOP/s in
    # bf16/fp16, 10 in fp32. Calibrated on the original study: BERT-large on MNLI, 3 epochs ~1.1 h.
    return Hardware(name or "one CUDA GPU (A100-class)", "cuda", 30e12 if half else 10e12, 0.003, 0.001,
                    memory, 0.6 * GiB)


def arch_of(model: str, layers: int = 0) -> tuple[Arch, bool]:
    """(size, known) of a model; ``layers`` keeps the first k layers. Unknown models are assumed BERT-base."""
    arch, known = ARCH.get(model), True
    if arch is None:
        arch, known = _arch_from_config(model), True
        if arch is None:
            arch, known = ASSUMED, False
    if layers and layers < arch.layers:
        arch = Arch(layers, arch.hidden, arch.vocab, arch.cost)
    return arch, known


def _arch_from_config(model: str) -> Arch | None:
    """Read a local folder's (or the hub cache's) config.json; None when it is not here."""
    import json
    from pathlib import Path
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(model, "config.json")
        except Exception:  # noqa: BLE001 - not a valid repo id, no cache: unknown
            cached = None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        cfg = json.loads(path.read_text())
        layers = cfg.get("num_hidden_layers") or cfg.get("n_layers")
        hidden = cfg.get("hidden_size") or cfg.get("dim")
        return Arch(int(layers), int(hidden), int(cfg.get("vocab_size", 30522)))
    except (OSError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------- per unit

def mean_tokens(frame, text_fields, max_length: int) -> float:
    """Mean length in tokens after truncation: ~1.3 tokens per word plus [CLS]/[SEP]."""
    if len(frame) == 0:
        return 8.0
    words = sum(frame[f].astype(str).str.split().str.len() for f in text_fields)
    tokens = (words * 1.3 + 1 + len(text_fields)).clip(upper=max_length)
    return float(tokens.mean())


def load_seconds(arch: Arch) -> float:
    """Fixed cost of a unit: building or loading the model (~0.5 GB/s), tokenising, writing results."""
    return 0.5 + 4 * arch.params / 0.5e9


def train_seconds(arch: Arch, hw: Hardware, examples: int, epochs: int, batch: int, tokens: float) -> float:
    steps = math.ceil(examples / batch) * epochs
    padded = tokens * 1.15          # length-sorted batches: little padding
    compute = 3 * arch.forward_flops(padded) * examples * epochs / hw.flops
    return load_seconds(arch) + compute + steps * (hw.step_overhead + hw.layer_overhead * arch.layers)


def infer_seconds(arch: Arch, hw: Hardware, examples: int, tokens: float, batch: int = 256) -> float:
    steps = math.ceil(examples / batch)
    return arch.forward_flops(tokens * 1.05) * examples / hw.flops + steps * hw.layer_overhead * arch.layers / 3


def train_memory(arch: Arch, hw: Hardware, batch: int, length: int, half: bool, frozen_embeddings: bool) -> float:
    """Peak bytes of one training unit: weights, gradients, AdamW states, activations at the longest batch."""
    trainable = arch.body + (0 if frozen_embeddings else arch.embeddings)
    states = 4 * arch.params + 12 * trainable
    activations = arch.layers * batch * length * (34 * arch.hidden + 5 * arch.heads * length) * (1 if half else 2)
    return hw.base_memory + states + activations * arch.cost


def infer_memory(arch: Arch, hw: Hardware, length: int, half: bool, batch: int = 256) -> float:
    return hw.base_memory + 4 * arch.params + batch * length * arch.hidden * 24 * (1 if half else 2)


@dataclass
class StagePlan:
    name: str
    durations: list[float]          # one per unit, seconds
    memory: float                   # peak bytes of its largest unit
    per_task: dict[str, str]        # task -> a short description


def _fmt_time(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_bytes(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= 0.1 * GiB else f"{n / 1024**2:.0f} MiB"


def makespan(durations: list[float], workers: int) -> float:
    """Wall time of independent units on ``workers`` equal workers, longest first (LPT)."""
    loads = [0.0] * max(1, workers)
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


def stage_plans(run: Run, hw: Hardware, half: bool) -> list[StagePlan]:
    p = run.params
    teachers, logits, students, confirm, sweep = [], [], [], [], []
    mem = {"teachers": 0.0, "logits": 0.0, "students": 0.0, "sweep": 0.0}
    desc = {"teachers": {}, "logits": {}, "students": {}, "confirm": {}, "sweep": {}}
    planned = confirm_counts(run)
    st = p.student
    s_arch, _ = arch_of(st.model, st.layers)
    sw = p.sweep
    n_sweep_methods = len(sw.methods) if sw.enabled else 0
    grid = len(sw.temperatures) * len(sw.alphas)
    n_methods = len(student_methods(run))
    for name in run.tasks:
        task = run.task(name)
        sizes = {s: len(f) for s, f in task.splits.items()}
        n_train, n_all = sizes["train"], sum(sizes.values()) + run.transfer_rows    # teachers score the transfer set
        parts = []
        for tname, t in p.teachers.items():
            length = t["max_length"] or p.data.max_length
            tokens = mean_tokens(task.splits["train"], task.text_fields, length)
            if t["mode"] in ("tfidf", "human"):
                fit, score, m_fit, m_score = n_train / 2000 + 2, n_all / 20000, 1.0 * GiB, 0.5 * GiB
            else:
                arch, _ = arch_of(t["model"])
                if t["mode"] == "probe":       # embeds train once (kept), then a logistic head
                    fit = load_seconds(arch) + infer_seconds(arch, hw, n_train, tokens, 64) + 5
                    score = load_seconds(arch) + infer_seconds(arch, hw, n_all - n_train, tokens, 64)
                    m_fit = m_score = infer_memory(arch, hw, length, half, 64)
                else:
                    fit = train_seconds(arch, hw, n_train, t["epochs"], t["batch_size"], tokens)
                    score = load_seconds(arch) + infer_seconds(arch, hw, n_all, tokens)
                    m_fit = train_memory(arch, hw, t["batch_size"], length, half, t["freeze_embeddings"])
                    m_score = infer_memory(arch, hw, length, half)
            teachers.append(fit)
            logits.append(score)
            mem["teachers"] = max(mem["teachers"], m_fit)
            mem["logits"] = max(mem["logits"], m_score)
            parts.append(f"{tname} ~{_fmt_time(fit)}")
        desc["teachers"][name] = ", ".join(parts)
        tokens = mean_tokens(task.splits["train"], task.text_fields, p.data.max_length)

        epochs = run.student_params(name)["epochs"]

        def student_seconds(examples: int) -> float:
            return (train_seconds(s_arch, hw, examples, epochs, st.batch_size, tokens)
                    + infer_seconds(s_arch, hw, sizes["selection"] + sizes["test"], tokens))
        # a student trains on the train split and its transfer examples (none for the baseline)
        per_method = [student_seconds(n_train + run.transfer_examples(m)) for m in student_methods(run)]
        one = max(per_method)
        k = n_methods * len(p.seeds)
        students += per_method * len(p.seeds)
        n_transfer = p.distill.transfer_size
        transfer = f"; + {n_transfer:,} transfer examples per distilled student" if n_transfer else ""
        desc["students"][name] = f"{k} x ~{_fmt_time(one)} ({n_methods} methods x {len(p.seeds)} seeds{transfer})"
        if name in planned:                      # the primary comparisons' methods on the fresh seeds
            seeds, known = planned[name]
            confirm += [student_seconds(n_train), one, one] * seeds     # baseline, best single, best multi
            desc["confirm"][name] = (f"{3 * seeds} x ~{_fmt_time(one)} (3 methods x {seeds} fresh seeds, "
                                     + ("as planned)" if known else "the worst case: stats.max_confirm_seeds)"))
        if n_sweep_methods:
            one = student_seconds(n_train + p.distill.transfer_size)      # every sweep student distils
            k = n_sweep_methods * grid * len(p.seeds)
            sweep += [one] * k
            desc["sweep"][name] = (f"{k} x ~{_fmt_time(one)} ({n_sweep_methods} methods x {grid} grid points "
                                   f"x {len(p.seeds)} seeds)")
        m_student = train_memory(s_arch, hw, st.batch_size, p.data.max_length, half, st.freeze_embeddings)
        mem["students"] = max(mem["students"], m_student)
        mem["sweep"] = mem["students"] if n_sweep_methods else 0.0
    out = [StagePlan("teachers", teachers, mem["teachers"], desc["teachers"]),
           StagePlan("logits", logits, mem["logits"], {}),
           StagePlan("students", students, mem["students"], desc["students"])]
    if confirm:
        out.append(StagePlan("confirm", confirm, mem["students"], desc["confirm"]))
    if sweep:
        out.append(StagePlan("sweep", sweep, mem["sweep"], desc["sweep"]))
    if p.conditions.axes:
        out.append(condition_stage_plan(run, hw, half))
    return out


def confirm_counts(run: Run) -> dict[str, tuple[int, bool]]:
    """Per task, the confirming stage's fresh seeds and whether they are planned (True) or the worst case,
    the cap (False: the plan needs the choosing stage's students)."""
    cap = run.params.stats.max_confirm_seeds
    if not cap:
        return {}
    from mtkd.study.confirm import PLAN_FILE
    from mtkd.study import io
    path = run.dir / PLAN_FILE
    if path.exists():
        plan_file = io.read_json(path)
        if set(plan_file["tasks"]) == set(run.tasks) and plan_file["max_seeds"] == cap:
            return {t: (len(v["seeds"]), True) for t, v in plan_file["tasks"].items()}
    return {t: (cap, False) for t in run.tasks}


def best_or_first_teacher(run: Run, task: str) -> str:
    """The single teacher best on selection, or (before the logits exist) the first: the count of units
    to train is the same either way, since the main study trains every single teacher."""
    try:
        return best_teacher(run, task)
    except FileNotFoundError:
        return run.teachers[0]


def shared_units(run: Run) -> set:
    """Folders of the main study's student units (students, and the sweep once its best teacher is known)."""
    folders = {run.unit_dir(u) for u in plan(run, "students")}
    try:
        folders |= {run.unit_dir(u) for u in plan(run, "sweep")}
    except FileNotFoundError:
        pass
    return folders


def condition_stage_plan(run: Run, hw: Hardware, half: bool) -> StagePlan:
    """The conditions' units that no main-study unit (and no other condition) already is, each timed with
    its own condition's student: layers, epochs, batch and transfer rows."""
    shared = shared_units(run)
    durations, per_axis, memory = [], {}, 0.0
    for unit in condition_units(run, best_or_first_teacher):
        if run.unit_dir(unit) in shared:
            continue
        at = run.at(unit.condition)
        st, task = at.params.student, run.task(unit.task)
        arch, _ = arch_of(st.model, st.layers)
        sizes = {s: len(f) for s, f in task.splits.items()}
        tokens = mean_tokens(task.splits["train"], task.text_fields, at.params.data.max_length)
        rows = sizes["train"] + at.transfer_examples(unit.name)
        epochs = at.student_params(unit.task)["epochs"]
        durations.append(train_seconds(arch, hw, rows, epochs, st.batch_size, tokens)
                         + infer_seconds(arch, hw, sizes["selection"] + sizes["test"], tokens))
        memory = max(memory, train_memory(arch, hw, st.batch_size, at.params.data.max_length, half,
                                          st.freeze_embeddings))
        axis = at.condition.axis
        n, t = per_axis.get(axis, (0, 0.0))
        per_axis[axis] = (n + 1, t + durations[-1])
    desc = {axis: f"{n} new units, ~{_fmt_time(t)}" for axis, (n, t) in per_axis.items()}
    return StagePlan("conditions", durations, memory, desc)


def disk_bytes(run: Run) -> tuple[float, float]:
    """(run folder, hub downloads) in bytes, roughly."""
    p = run.params
    folder = hub = 0.0
    for name in run.tasks:
        task = run.task(name)
        n_all = sum(len(f) for f in task.splits.values()) + run.transfer_rows
        for t in p.teachers.values():
            folder += n_all * task.num_labels * 4 * 2        # logits of every split and the transfer set (+ npz)
            if t["mode"] == "finetune":
                arch, _ = arch_of(t["model"])
                folder += 4 * arch.params                     # the fine-tuned model (fp32 safetensors)
        n_eval = len(task.splits["selection"]) + len(task.splits["test"])
        n_students = len(student_methods(run)) * len(p.seeds)
        if p.sweep.enabled:
            n_students += len(p.sweep.methods) * len(p.sweep.temperatures) * len(p.sweep.alphas) * len(p.seeds)
        folder += n_students * n_eval * task.num_labels * 4 * 3   # predictions: unit npz + parquet
    largest_ckpt = max([16 * arch_of(t["model"])[0].params for t in p.teachers.values() if t["mode"] == "finetune"]
                       + [16 * arch_of(p.student.model, p.student.layers)[0].params])
    folder += largest_ckpt                                    # one epoch checkpoint at a time per worker
    from mtkd.data import models
    for model in {t["model"] for t in p.teachers.values()} | {p.student.model}:
        if model != "tfidf" and models.resolve(model).kind == "hub":
            hub += 4 * arch_of(model)[0].params
    return folder, hub


def _hardware_targets(run: Run) -> tuple[list[Hardware], bool]:
    """The devices to estimate for: this machine's, and one GPU when the profile is meant for one."""
    import torch
    from mtkd.kd.devices import cpu_has_bf16
    p = run.params
    if torch.cuda.is_available() and p.device != "cpu":
        props = torch.cuda.get_device_properties(0)
        half = p.precision != "fp32"
        return [gpu_hardware(half, f"this GPU ({props.name}, {props.total_memory / GiB:.0f} GiB)",
                             props.total_memory)], half
    bf16 = p.precision == "bf16" or (p.precision == "auto" and cpu_has_bf16())
    targets = [cpu_hardware(p.threads, bf16)]
    if p.device != "cpu":
        targets.append(gpu_hardware(p.precision != "fp32"))
    return targets, bf16


# Throughput of N single-thread workers against one N-thread process on the study's small models
# (measured on 2 cores: two 1-thread students train 1.17-1.33x faster than one 2-thread student, benchmarks/README.md)
WORKER_GAIN = 1.3


def workers_wall(stages, workers: int) -> float:
    """Wall time of the stages on ``workers`` local processes: each unit runs on its share of the cores,
    slower alone but with a better throughput (WORKER_GAIN), the units spread over the workers."""
    return sum(makespan([d * workers / WORKER_GAIN for d in s.durations], workers) for s in stages)


def describe_plan(run: Run) -> list[str]:
    """The dry run's report: units per stage and task, time and memory per stage, the Ray critical path."""
    p = run.params
    targets, _ = _hardware_targets(run)
    lines = ["", "plan (nothing is trained by --dry-run):"]
    n_t = len(run.teachers)
    unknown = [m for m in {t["model"] for t in p.teachers.values() if t["mode"] not in ("tfidf", "human")}
               | {p.student.model}
               if not arch_of(m)[1]]
    s_arch, _ = arch_of(p.student.model, p.student.layers)
    lines.append(f"  tasks {', '.join(run.tasks)}; teachers {', '.join(run.teachers)}; student {p.student.model} "
                 f"({s_arch.layers} layers); seeds {list(p.seeds)}; device {p.device}, precision {p.precision}")
    n_students = len(plan(run, "students"))
    per_task = len(student_methods(run)) * len(p.seeds)
    lines.append(f"  units: teachers {len(run.tasks) * n_t} ({n_t} per task), logits {len(run.tasks) * n_t}, "
                 f"students {n_students} ({len(student_methods(run))} methods x {len(p.seeds)} seeds = {per_task} "
                 f"per task)")
    counts = confirm_counts(run)
    if counts:
        planned = all(known for _, known in counts.values())
        n = sum(3 * k for k, _ in counts.values())
        lines.append(f"  confirm: {'' if planned else 'at most '}{n} units (stage 2: best single, best multi and "
                     f"baseline on {p.stats.min_confirm_seeds}-{p.stats.max_confirm_seeds} fresh seeds per task, "
                     + ("as planned from stage 1)" if planned else "planned from stage 1's variance once it is "
                        "trained; the time below is this worst case)"))
    else:
        lines.append("  confirm: off (stats.max_confirm_seeds: 0; the primary comparisons share seeds with the choice)")
    if p.sweep.enabled:
        grid = len(p.sweep.temperatures) * len(p.sweep.alphas)
        n = len(run.tasks) * len(p.sweep.methods) * grid * len(p.seeds)
        lines.append(f"  sweep: {n} units ({', '.join(p.sweep.methods)} x T {list(p.sweep.temperatures)} x alpha "
                     f"{list(p.sweep.alphas)} x {len(p.seeds)} seeds per task; single_best is chosen after the "
                     "logits stage)")
    else:
        lines.append("  sweep: off")
    if run.conditions:
        units = condition_units(run, best_or_first_teacher)
        shared = shared_units(run)
        new = sum(run.unit_dir(u) not in shared for u in units)
        axes = "; ".join(f"{name} ({axis['param']}): {', '.join(c.value_label for c in run.conditions if c.axis == name)}"
                         for name, axis in p.conditions.axes.items())
        lines.append(f"  conditions: {len(run.conditions)} values of {len(p.conditions.axes)} axes ({axes}); each "
                     f"trains baseline, the best single teacher and {', '.join(p.conditions.fusers)} x "
                     f"{len(p.seeds)} seeds: {len(units)} units, {len(units) - new} of them the main study's "
                     f"(trained once), {new} new")
    else:
        lines.append("  conditions: none")
    lines.append("")
    lines.append("estimates (rough, from model sizes, token counts and a nominal throughput; expect 2-3x either "
                 "way):")
    if unknown:
        lines.append(f"  note: size of {', '.join(sorted(unknown))} unknown here; assumed BERT-base")
    for hw in targets:
        half = hw.kind == "cuda" and p.precision != "fp32" or hw.kind == "cpu" and "bf16" in hw.name
        stages = stage_plans(run, hw, half)
        lines.append(f"  on {hw.name}:")
        lines.append(f"    {'stage':9s} {'units':>6s} {'sequential':>11s} {'longest unit':>13s} {'memory/unit':>12s}")
        for s in stages:
            lines.append(f"    {s.name:9s} {len(s.durations):6d} {_fmt_time(sum(s.durations)):>11s} "
                         f"{_fmt_time(max(s.durations, default=0)):>13s} {_fmt_bytes(s.memory):>12s}")
        total = sum(sum(s.durations) for s in stages)
        lines.append(f"    {'total':9s} {sum(len(s.durations) for s in stages):6d} {_fmt_time(total):>11s}")
        if hw.kind == "cpu" and p.workers > 1:
            lines.append(f"    with workers: {p.workers} (local processes sharing each stage's units): "
                         f"~{_fmt_time(workers_wall(stages, p.workers))}")
        if hw is targets[-1]:
            for s in stages:
                for task, text in s.per_task.items():
                    lines.append(f"    {s.name} {task}: {text}")
        if hw.memory:
            worst = max(s.memory for s in stages)
            if worst > hw.memory:
                lines.append(f"    warning: a unit may need ~{_fmt_bytes(worst)} but the GPU has "
                             f"{_fmt_bytes(hw.memory)}: lower batch_size or data.max_length")
    primary = targets[-1]
    stages = stage_plans(run, primary, primary.kind == "cuda" and p.precision != "fp32")
    per = "one GPU each" if primary.kind == "cuda" else "each a CPU like this one"
    lines.append("")
    lines.append(f"Ray (--executor ray): stages run one after another, the units of a stage in parallel; wall time "
                 f"on N workers ({per}):")
    biggest = max(len(s.durations) for s in stages)
    for n in [w for w in (1, 2, 4, 8, 16, 32, 64) if w <= max(1, biggest)] or [1]:
        wall = sum(makespan(s.durations, n) for s in stages)
        lines.append(f"    {n:3d} worker{'s' if n > 1 else ' '}: ~{_fmt_time(wall)}")
    critical = sum(max(s.durations, default=0) for s in stages)
    lines.append(f"    critical path (unlimited workers): ~{_fmt_time(critical)} = the longest unit of each stage "
                 f"({', '.join(f'{s.name} {_fmt_time(max(s.durations, default=0))}' for s in stages)})")
    folder, hub = disk_bytes(run)
    lines.append("")
    lines.append(f"disk: ~{_fmt_bytes(folder)} in the run folder" + (f", ~{_fmt_bytes(hub)} of hub downloads "
                                                                      "in the Hugging Face cache" if hub else ""))
    free = _free_bytes(run.dir)
    if free is not None and free < folder:
        lines.append(f"  warning: only {_fmt_bytes(free)} free under {run.dir}: the run folder may not fit "
                     "(use --out on another disk)")
    return lines


def _free_bytes(path) -> float | None:
    import shutil
    from pathlib import Path
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return float(shutil.disk_usage(path).free)
    except OSError:
        return None
