"""Strict study parameters: one YAML profile, validated before any work.

Every key is declared once in SCHEMA below, with its type, its default and what
it means. Loading a profile (and every ``--set a.b=value`` override) goes through
the same checks, so an unknown key, a wrong type, a value out of range or a
missing required value stops the run at once with a message that names the
dotted key, what was given and what is allowed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtkd.data.metrics import METRICS
from mtkd.data.tasks import task_names
from mtkd.kd.fusion import FUSERS
from mtkd.study.power import PRIMARY

REQUIRED = object()


class ParamsError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


@dataclass
class Field:
    kind: str                      # "str", "int", "float", "bool", "list[int]", "list[float]", "list[str]", "dict",
                                   # "any" (checked by the cross checks: a condition axis's values)
    default: Any = REQUIRED
    help: str = ""
    choices: tuple | None = None   # allowed values (for lists: allowed elements)
    min: float | None = None       # inclusive bounds for numbers (for lists: each element)
    max: float | None = None
    nonempty: bool = False         # lists / strings must not be empty
    pattern: str | None = None     # regex a string must match


@dataclass
class MapOf:
    """A mapping from user-chosen names to entries that all follow one schema."""
    schema: dict
    default: dict = field(default_factory=dict)
    help: str = ""
    nonempty: bool = False


NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

TEACHER = {
    "model": Field("str", help="model registry name (see `mtkd models`) or a hub id / local path"),
    "mode": Field("str", "finetune", "finetune: train the whole model; probe: frozen encoder + logistic head; "
                  "tfidf: word+char n-gram TF-IDF with logistic regression; human: the task's human label "
                  "distribution (model human)", choices=("finetune", "probe", "tfidf", "human")),
    "epochs": Field("int", 2, "fine-tuning epochs", min=1, max=100),
    "lr": Field("float", 5e-5, "peak learning rate (AdamW, linear warm-up then decay)", min=1e-7, max=1.0),
    "batch_size": Field("int", 32, "training batch size", min=1, max=4096),
    "warmup_ratio": Field("float", 0.1, "share of steps with linear warm-up", min=0.0, max=0.5),
    "weight_decay": Field("float", 0.01, "AdamW weight decay", min=0.0, max=1.0),
    "grad_clip": Field("float", 1.0, "max gradient norm (0 = off)", min=0.0),
    "max_length": Field("int", 0, "max tokens (0 = data.max_length)", min=0, max=4096),
    "freeze_embeddings": Field("bool", False, "keep the word embeddings fixed while fine-tuning"),
    "grad_accum": Field("int", 1, "micro-batches per optimizer step (large models on small GPUs)", min=1, max=1024),
    "C": Field("float", 1.0, "inverse regularisation of the logistic head (probe, tfidf)", min=1e-6, max=1e6),
}

CUSTOM_TASK = {
    "files": Field("dict", help="split -> local CSV/JSONL/parquet path; needs train and test, selection optional; "
                   "unlabeled (optional): text columns only, the transfer pool (a label column is ignored)"),
    "text_fields": Field("list[str]", help="one or two text columns", nonempty=True),
    "label_field": Field("str", "label", "label column (integer ids or label names)"),
    "label_names": Field("list[str]", help="label names in id order", nonempty=True),
    "metric": Field("str", "accuracy", "headline metric", choices=METRICS),
    "label_counts_fields": Field("list[str]", [], "optional human label count columns, one per class in label_names "
                                 "order (e.g. annotator votes); every row needs counts summing to more than 0"),
}

FUSER_NAMES = tuple(FUSERS)

CONDITION_AXIS = {
    "param": Field("str", help="the dotted param the axis changes: student.<key>, distill.temperature, "
                   "distill.alpha, distill.transfer_size, distill.gate_hidden, or teachers (a subset of them)"),
    "values": Field("any", help="the values it takes, each changing that param alone; for teachers a list of "
                    "teacher-name lists (two or more each), or 'subsets' = every subset of two or more"),
}
# params a condition may change: what the students depend on. Teachers, data and the student's own
# tokenizer inputs stay the main study's, so every condition shares the run's teachers and logits.
CONDITION_PARAMS = ("distill.temperature", "distill.alpha", "distill.transfer_size", "distill.gate_hidden",
                    "teachers")

SCHEMA: dict = {
    "run_name": Field("str", help="run folder name under outputs/", pattern=NAME),
    "seeds": Field("list[int]", [42, 43, 44], "student seeds: every student configuration runs once per seed; "
                   "teachers use the first seed", nonempty=True, min=0),
    "device": Field("str", "auto", "auto picks cuda when present", choices=("auto", "cpu", "cuda")),
    "precision": Field("str", "auto", "auto = bf16 where the CPU/GPU supports it", choices=("auto", "fp32", "bf16", "fp16")),
    "threads": Field("int", 0, "torch threads (0 = all cores; with workers > 1: each worker's share)", min=0, max=512),
    "workers": Field("int", 1, "local processes that share a stage's units (CPU: two single-thread workers "
                     "train the small students 1.2-1.3x faster than one two-thread process on 2 cores)", min=1, max=256),
    "eval_batch_size": Field("int", 32, "batch size of inference: logits, evaluation, embeddings (on CPU 32 is "
                             "~2x faster than 256; on a GPU larger is faster: glue.yaml has 256)", min=1, max=65536),
    "data": {
        "tasks": Field("list[str]", help="task registry names (see `mtkd data --list`)", nonempty=True),
        "train_size": Field("int", 0, "training examples per task, stratified subsample (0 = all that remain)", min=0),
        "train_sizes": Field("dict", {}, "per-task train sizes: task -> examples (0 = all that remain), overriding "
                             "train_size for that task (TREC's rare ABBR class is learned only from all its rows)"),
        "selection_size": Field("int", 0, "selection examples: every choice is made here (0 = 10 %; GLUE: 2,000 from train)", min=0),
        "selection_max_share": Field("float", 1.0, "GLUE: the selection carved from train is at most this share of "
                                     "the task's train split (0.1 leaves MRPC 90 % of its 3,668 examples)",
                                     min=0.01, max=1.0),
        "test_size": Field("int", 0, "reporting examples, never used for a choice (0 = 20 %; GLUE: all of validation)", min=0),
        "test_sizes": Field("dict", {}, "per-task test sizes: task -> examples, overriding test_size for that "
                            "task (evaluation is cheap next to training: larger test splits buy power)"),
        "split_seed": Field("int", 0, "seed of the deterministic splits and subsamples", min=0),
        "counts_rows_only": Field("bool", False, "embedded tasks with human label counts (snli): draw every split "
                                  "from the rows that carry counts, so a `human` teacher can run"),
        "max_length": Field("int", 64, "max tokens per example", min=8, max=4096),
        "glue_dir": Field("str", "", "local folder in the hub's GLUE parquet layout (<dir>/<task>/<split>-00000-of-00001.parquet); "
                          "empty = load GLUE from the hub"),
        "allow_duplicates": Field("bool", False, "custom tasks: accept texts shared by two files (refused by default)"),
        "custom": MapOf(CUSTOM_TASK, help="bring-your-own tasks: name -> files and fields"),
    },
    "teachers": MapOf(TEACHER, help="teacher name -> how to build it", nonempty=True),
    "student": {
        "model": Field("str", help="model registry name of the student's source checkpoint"),
        "layers": Field("int", 0, "keep only the first k transformer layers (0 = all)", min=0, max=128),
        "pooling": Field("str", "cls", "sentence vector for the head: cls (the model's own pooler) or mean "
                         "(mean of the last layer over real tokens; BERT-family models)", choices=("cls", "mean")),
        "epochs": Field("int", 2, "training epochs", min=1, max=100),
        "task_epochs": Field("dict", {}, "per-task epochs: task -> epochs, overriding epochs for that task (a task "
                             "whose student is still learning at the end gets a seed-dependent score)"),
        "lr": Field("float", 1e-4, "peak learning rate", min=1e-7, max=1.0),
        "batch_size": Field("int", 32, "training batch size", min=1, max=4096),
        "warmup_ratio": Field("float", 0.1, "share of steps with linear warm-up", min=0.0, max=0.5),
        "weight_decay": Field("float", 0.01, "AdamW weight decay", min=0.0, max=1.0),
        "grad_clip": Field("float", 1.0, "max gradient norm (0 = off)", min=0.0),
        "freeze_embeddings": Field("bool", False, "keep the word embeddings fixed (faster on CPU)"),
        "grad_accum": Field("int", 1, "micro-batches per optimizer step (large models on small GPUs)", min=1, max=1024),
    },
    "distill": {
        "temperature": Field("float", 6.0, "softmax temperature T of the KD term", min=0.05, max=100.0),
        "alpha": Field("float", 0.7, "weight of the KD term; 1 - alpha weighs the hard-label CE", min=0.0, max=1.0),
        "methods": Field("list[str]", ["baseline", "single", *FUSER_NAMES],
                         "students to train: baseline (no KD), single (one per teacher), then fusers",
                         choices=("baseline", "single", *FUSER_NAMES), nonempty=True),
        "gate_hidden": Field("int", 128, "hidden units of the gating MLP", min=1, max=8192),
        "transfer_size": Field("int", 0, "unlabeled transfer examples per task that distilled students also learn "
                               "from, through the KD term only (0 = none): drawn from the task's unused training "
                               "pool (train-side rows outside the train subsample, or a custom task's "
                               "files.unlabeled), their labels never read; the baseline ignores them", min=0),
    },
    "sweep": {
        "enabled": Field("bool", False, "run the T x alpha grid (picked per method on the selection split)"),
        "temperatures": Field("list[float]", [3.0, 6.0, 9.0], "grid of T", nonempty=True, min=0.05),
        "alphas": Field("list[float]", [0.3, 0.5, 0.7], "grid of alpha", nonempty=True, min=0.0, max=1.0),
        "methods": Field("list[str]", ["single_best", "average"], "single_best = the teacher best on selection",
                         choices=("single_best", *FUSER_NAMES), nonempty=True),
    },
    "stats": {
        "confidence": Field("float", 0.95, "confidence level of every interval", min=0.5, max=0.999),
        "bootstrap": Field("int", 2000, "bootstrap resamples", min=100, max=100000),
        "significance": Field("float", 0.05, "family-wise error rate (Holm)", min=0.001, max=0.5),
        "equivalence_margin": Field("float", 1.0, "equivalence margin in pp: a paired difference whose TOST "
                                    "interval lies inside +-margin is 'equivalent'", min=0.01, max=100.0),
        "power": Field("float", 0.8, "power at which the minimum detectable effect (mde_pp) is computed",
                       min=0.5, max=0.99),
        "primary": Field("list[str]", list(PRIMARY), "the primary family, fixed before the run: per task these "
                         "comparisons are confirmed on fresh seeds and Holm-adjusted alone; every other "
                         "comparison is secondary (exploratory, on the choosing seeds, its own Holm family)",
                         choices=PRIMARY, nonempty=True),
        "target_mde_pp": Field("float", 1.5, "the confirming stage's planning target: the fewest fresh seeds whose "
                               "MDE (pp) is at most this and whose TOST finds 'equivalent' at a true difference of 0 "
                               "with `power`, planned from the choosing stage's variance components",
                               min=0.01, max=100.0),
        "min_confirm_seeds": Field("int", 5, "fewest fresh seeds of the confirming stage, whatever the plan says",
                                   min=2, max=1000),
        "max_confirm_seeds": Field("int", 10, "most fresh seeds of the confirming stage (the cap: where the plan "
                                   "needs more, the report states the power reached); 0 = no confirming stage, "
                                   "the primary rows then share seeds with the choice", min=0, max=1000),
    },
    "conditions": {
        "fusers": Field("list[str]", ["average", "weighted", "gating"], "multi-teacher students trained at every "
                        "condition value, beside the baseline and the best single teacher (chosen on selection)",
                        choices=FUSER_NAMES, nonempty=True),
        "axes": MapOf(CONDITION_AXIS, help="axis name -> the one param it changes and its values; each value "
                      "is a study of its own, compared with the main table's rigour (empty = no conditions)"),
    },
    "report": {
        "html": Field("bool", True, "render every executed notebook to self-contained HTML"),
        "show_code": Field("bool", False, "show the code cells in the HTML pages (the .ipynb always keeps them)"),
    },
}


class Params(dict):
    """A validated nested dict that also reads as attributes: ``p.student.lr``."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _wrap(obj):
    if isinstance(obj, dict):
        return Params({k: _wrap(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_wrap(v) for v in obj]
    return obj


def _type_name(v) -> str:
    return type(v).__name__


def _check_scalar(path: str, f: Field, v, elem: str) -> Any:
    if elem == "bool":
        if not isinstance(v, bool):
            raise ParamsError(f"{path}: expected true or false, got {v!r} ({_type_name(v)})")
        return v
    if elem == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ParamsError(f"{path}: expected an integer, got {v!r} ({_type_name(v)})")
    elif elem == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ParamsError(f"{path}: expected a number, got {v!r} ({_type_name(v)})")
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            raise ParamsError(f"{path}: expected a finite number, got {v!r}")
    elif elem == "str":
        if not isinstance(v, str):
            raise ParamsError(f"{path}: expected a string, got {v!r} ({_type_name(v)})")
        if f.pattern and not re.match(f.pattern, v):
            raise ParamsError(f"{path}: {v!r} is not allowed here (letters, digits, '-', '_', '.'; "
                              "no path separators)")
    if f.choices is not None and v not in f.choices:
        raise ParamsError(f"{path}: {v!r} is not one of {', '.join(map(str, f.choices))}")
    if f.min is not None and v < f.min:
        raise ParamsError(f"{path}: {v!r} is below the minimum {f.min}")
    if f.max is not None and v > f.max:
        raise ParamsError(f"{path}: {v!r} is above the maximum {f.max}")
    return v


def _check_field(path: str, f: Field, v) -> Any:
    if f.kind.startswith("list["):
        elem = f.kind[5:-1]
        if not isinstance(v, list):
            raise ParamsError(f"{path}: expected a list of {elem}, got {v!r} ({_type_name(v)})")
        if f.nonempty and not v:
            raise ParamsError(f"{path}: must not be empty")
        out = [_check_scalar(f"{path}[{i}]", f, x, elem) for i, x in enumerate(v)]
        if len(set(map(repr, out))) != len(out):
            raise ParamsError(f"{path}: has duplicates: {v!r}")
        return out
    if f.kind == "any":
        return copy.deepcopy(v)
    if f.kind == "dict":
        if not isinstance(v, dict):
            raise ParamsError(f"{path}: expected a mapping, got {v!r} ({_type_name(v)})")
        return dict(v)
    v = _check_scalar(path, f, v, f.kind)
    if f.nonempty and v == "":
        raise ParamsError(f"{path}: must not be empty")
    return v


def _validate(schema: dict, given: Any, prefix: str) -> dict:
    where = prefix or "the top level"
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ParamsError(f"{where}: expected a mapping of keys, got {given!r}")
    unknown = sorted(set(given) - set(schema))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamsError(f"{key}: unknown parameter; allowed keys at {where}: {', '.join(sorted(schema))}")
    out = {}
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, dict):
            out[key] = _validate(spec, given.get(key), path)
        elif isinstance(spec, MapOf):
            entries = given.get(key, copy.deepcopy(spec.default))
            if entries is None:
                entries = {}
            if not isinstance(entries, dict):
                raise ParamsError(f"{path}: expected a mapping name -> settings, got {entries!r}")
            if spec.nonempty and not entries:
                raise ParamsError(f"{path}: at least one entry is required")
            for name in entries:
                if not isinstance(name, str) or not re.match(NAME, name):
                    raise ParamsError(f"{path}.{name}: entry names use letters, digits, '-', '_', '.'")
            out[key] = {name: _validate(spec.schema, entry, f"{path}.{name}") for name, entry in entries.items()}
        else:
            if key in given:
                out[key] = _check_field(path, spec, given[key])
            elif spec.default is REQUIRED:
                raise ParamsError(f"{path}: required parameter is missing ({spec.help})")
            else:
                out[key] = copy.deepcopy(spec.default)
    return out


def _cross_checks(p: dict) -> None:
    """Checks that involve more than one key."""
    for name, t in p["teachers"].items():
        for own in ("tfidf", "human"):
            if (t["mode"] == own) != (t["model"] == own):
                raise ParamsError(f"teachers.{name}: mode {own!r} goes with model {own!r} "
                                  f"(got model={t['model']!r}, mode={t['mode']!r})")
    fusers = [m for m in p["distill"]["methods"] if m in FUSER_NAMES]
    if fusers and len(p["teachers"]) < 2:
        raise ParamsError(f"distill.methods: fusers {fusers} need at least two teachers; "
                          f"teachers has {len(p['teachers'])}")
    _transfer_checks(p)
    st = p["stats"]
    if st["max_confirm_seeds"] and st["min_confirm_seeds"] > st["max_confirm_seeds"]:
        raise ParamsError(f"stats.min_confirm_seeds ({st['min_confirm_seeds']}) is above stats.max_confirm_seeds "
                          f"({st['max_confirm_seeds']}): lower the first or raise the second")
    tasks = p["data"]["tasks"]
    if len(set(tasks)) != len(tasks):
        raise ParamsError(f"data.tasks: has duplicates: {tasks}")
    per_task = [("data.test_sizes", 0, None, "an integer >= 0 (0 = data.test_size)"),
                ("data.train_sizes", 0, None, "an integer >= 0 (0 = all that remain)"),
                ("student.task_epochs", 1, 100, "an integer from 1 to 100")]
    known = task_names(p["data"])
    for path, low, high, expected in per_task:            # an entry for a known task outside data.tasks waits
        section, key = path.split(".")                    # unused (--set data.tasks=[trec] keeps the file's maps)
        for task, value in p[section][key].items():
            if task not in known:
                raise ParamsError(f"{path}.{task}: not a known task (data.tasks: {', '.join(tasks)}; "
                                  f"all known: {', '.join(known)})")
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise ParamsError(f"{path}.{task}: expected {expected}, got {value!r}")


def _transfer_checks(p: dict) -> None:
    """A transfer set needs students that can learn from it: a KD term, and a target without labels."""
    if not p["distill"]["transfer_size"]:
        return
    size = p["distill"]["transfer_size"]
    sweep = p["sweep"]
    scheduled = [m for m in p["distill"]["methods"] if m == "curriculum"]
    if sweep["enabled"]:
        scheduled += [f"sweep.methods {m}" for m in sweep["methods"] if m == "curriculum"]
    if scheduled:
        raise ParamsError(f"distill.transfer_size={size}: curriculum ({', '.join(scheduled)}) needs gold labels at "
                          "every step and transfer examples have none; drop curriculum from distill.methods and "
                          "sweep.methods, or set distill.transfer_size: 0")
    distilled = [m for m in p["distill"]["methods"] if m != "baseline"]
    alphas = [("distill.alpha", p["distill"]["alpha"])] if distilled else []
    if sweep["enabled"]:
        alphas += [("sweep.alphas", a) for a in sweep["alphas"]]
    zero = sorted({key for key, a in alphas if a == 0})
    if zero:
        raise ParamsError(f"distill.transfer_size={size}: transfer examples learn from the KD term only, and "
                          f"{' and '.join(zero)} holds alpha = 0 (no KD term); use alpha > 0 or set "
                          "distill.transfer_size: 0")
    humans = [name for name, t in p["teachers"].items() if t["mode"] == "human"]
    if humans:
        raise ParamsError(f"distill.transfer_size={size}: teacher {humans[0]!r} (mode human) scores examples from "
                          "their annotator counts, which transfer examples do not have; drop it or set "
                          "distill.transfer_size: 0")


def validate(raw: dict) -> Params:
    """Validate a raw params mapping against SCHEMA and fill defaults (every condition's params too)."""
    p = _validate(SCHEMA, raw, "")
    _cross_checks(p)
    params = _wrap(p)
    expand_conditions(params)
    return params


# ---------------------------------------------------------------- conditions (issue 17)

@dataclass(frozen=True)
class Condition:
    """One value of one condition axis: the main study with that param changed, and nothing else."""
    axis: str                   # the axis name in conditions.axes
    param: str                  # the dotted param it changes, or "teachers"
    value: Any                  # the value given (for teachers: the tuple of teacher names)
    order: int                  # position on its axis
    is_main: bool               # the main study's own setting

    @property
    def value_label(self) -> str:
        if self.param == "teachers":
            return "+".join(self.value)
        return yaml.safe_dump(self.value, default_flow_style=True).strip().removesuffix("...").strip()

    @property
    def label(self) -> str:
        """``axis=value``, e.g. ``layers=1`` or ``teachers=minilm+mpnet``: the unit labels' and files' name."""
        return f"{self.axis}={self.value_label}"


def _teacher_subsets(names: list[str]) -> list[tuple[str, ...]]:
    from itertools import combinations
    return [c for k in range(2, len(names) + 1) for c in combinations(names, k)]


def _axis_values(name: str, axis: dict, p: Params) -> list:
    where = f"conditions.axes.{name}.values"
    values = axis["values"]
    if axis["param"] == "teachers":
        if values == "subsets":
            return _teacher_subsets(list(p.teachers))
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{where}: expected 'subsets' or a list of teacher-name lists, got {values!r}")
        out = []
        for i, v in enumerate(values):
            if not isinstance(v, list) or len(v) < 2 or not all(isinstance(t, str) for t in v):
                raise ParamsError(f"{where}[{i}]: a list of two or more teacher names, got {v!r}")
            unknown = [t for t in v if t not in p.teachers]
            if unknown:
                raise ParamsError(f"{where}[{i}]: {unknown[0]!r} is not a teacher of this profile "
                                  f"(teachers: {', '.join(p.teachers)})")
            if len(set(v)) != len(v):
                raise ParamsError(f"{where}[{i}]: names a teacher twice: {v!r}")
            out.append(tuple(t for t in p.teachers if t in v))        # in the profile's teacher order
        return out
    if not isinstance(values, list) or not values:
        raise ParamsError(f"{where}: expected a non-empty list of values for {axis['param']}, got {values!r}")
    return list(values)


def expand_conditions(p: Params) -> list[Condition]:
    """Every condition of ``conditions.axes``, each checked by validating its own params (a bad value stops
    the run here, naming the axis and the value, before any work)."""
    out = []
    for name, axis in p.conditions.axes.items():
        param = axis["param"]
        if param not in CONDITION_PARAMS and not (param.startswith("student.") and param[8:] in SCHEMA["student"]):
            raise ParamsError(f"conditions.axes.{name}.param: {param!r} is not a param a condition may change; "
                              f"allowed: student.<key> ({', '.join(SCHEMA['student'])}), "
                              f"{', '.join(CONDITION_PARAMS)} (data and teacher settings stay the main study's, "
                              "so every condition shares its teachers)")
        if param == "teachers" and len(p.teachers) < 2:
            raise ParamsError(f"conditions.axes.{name}: a teachers axis needs at least two teachers; teachers has "
                              f"{len(p.teachers)}")
        values = _axis_values(name, axis, p)
        main = tuple(p.teachers) if param == "teachers" else _get_dotted(p, param)
        conds = [Condition(name, param, v, i, v == main) for i, v in enumerate(values)]
        labels = [c.label for c in conds]
        if len(set(labels)) != len(labels):
            raise ParamsError(f"conditions.axes.{name}.values: has duplicates: {labels}")
        for c in conds:
            condition_params(p, c)
        out += conds
    return out


def _get_dotted(p: dict, dotted: str):
    node = p
    for part in dotted.split("."):
        node = node[part]
    return node


def condition_params(p: Params, c: Condition) -> Params:
    """The params of one condition: the main study's with ``c.param`` set to ``c.value``, the students of
    ``conditions.fusers`` (beside baseline and single), no sweep and no conditions of their own. A
    ``student.epochs`` axis sets the epochs of every task (``student.task_epochs`` is cleared)."""
    raw = to_plain(p)
    raw["conditions"] = {"fusers": list(p.conditions.fusers), "axes": {}}
    raw["sweep"] = {"enabled": False}            # a condition trains its own students only
    raw["distill"]["methods"] = ["baseline", "single", *p.conditions.fusers]
    if c.param == "teachers":
        raw["teachers"] = {t: raw["teachers"][t] for t in c.value}
    else:
        section, key = c.param.split(".")
        raw[section][key] = copy.deepcopy(c.value)
    if c.param == "student.epochs":              # an epochs axis sets every task's epochs
        raw["student"]["task_epochs"] = {}
    try:
        return validate(raw)
    except ParamsError as e:
        raise ParamsError(f"conditions.axes.{c.axis}: the value {c.value_label} ({c.param}): {e}") from None


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ParamsError(f"--set {item!r}: expected key=value, e.g. --set student.epochs=1")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ParamsError(f"--set {item!r}: the key must be a dotted path like student.epochs")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise ParamsError(f"--set {item!r}: the value is not valid YAML ({e.problem})") from None
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a raw mapping."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        parts, value = _parse_override(item)
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ParamsError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (profiles live in params/, e.g. params/embedded.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of parameters at the top level")
    return raw


def load_params(path: str | Path, overrides: list[str] | None = None) -> Params:
    """Read a YAML profile, apply ``--set`` overrides and validate everything."""
    return validate(apply_overrides(read_yaml(path), overrides))


def to_plain(obj):
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    return obj


def dump_params(params: dict) -> str:
    return yaml.safe_dump(to_plain(params), sort_keys=False)


def params_hash(*parts: Any) -> str:
    """A short stable hash of JSON-able values: the cache key of a unit of work."""
    blob = json.dumps(to_plain(list(parts)), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def describe_schema(schema: dict = SCHEMA, prefix: str = "") -> list[str]:
    """One line per key: the reference behind `mtkd params --help`."""
    lines = []
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, dict):
            lines += describe_schema(spec, path)
        elif isinstance(spec, MapOf):
            lines.append(f"{path}.<name>: {spec.help}")
            lines += describe_schema(spec.schema, f"{path}.<name>")
        else:
            default = "required" if spec.default is REQUIRED else f"default {spec.default!r}"
            extra = f"; one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
            lines.append(f"{path} ({spec.kind}, {default}{extra}): {spec.help}")
    return lines

