"""The peers we are measured against, each run the way its own documentation shows.

* Hugging Face ``Trainer`` with a ``compute_loss`` that adds mtkd's KD loss, fed by
  ``DataCollatorWithPadding`` (dynamic padding, random batches: the library's default recipe).
* TextBrewer's ``MultiTeacherDistiller`` with its teachers run online at every step.

TextBrewer 0.2.1 is installed on demand into ``benchmarks/.deps`` (never into the project's
environment) and appended to ``sys.path`` only inside the benchmark, so the project's own
packages always win. Shims, all listed in ``TEXTBREWER_SHIMS`` and in the results:

* ``save_and_callback`` is overridden to record the end of the epoch instead of writing a
  checkpoint with ``torch.save``: neither side writes checkpoints while it is timed.
* Precision: TextBrewer's own ``fp16`` flag needs NVIDIA apex (CUDA), so bf16 on a CPU is had the
  way any PyTorch user gets it, by running ``distiller.train`` under ``torch.autocast``. Teachers
  and student then run in the same precision as our side.
* ``batch_postprocessor=dict``: TextBrewer tests ``type(batch) is dict`` and DataCollatorWithPadding
  returns a ``BatchEncoding`` (a dict subclass), which it would otherwise treat as a tuple.
* Nothing else was needed for torch 2.13 / transformers 5.24 (it imports ``torch.utils.tensorboard``,
  hence the ``tensorboard`` package).
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEPS = HERE / ".deps"
TEXTBREWER = "textbrewer==0.2.1.post1"
TEXTBREWER_SHIMS = [
    "save_and_callback overridden: records the epoch end instead of torch.save of a checkpoint "
    "(our side writes none while timed either)",
    "bf16: distiller.train runs under torch.autocast('cpu', bfloat16) (TextBrewer's fp16 flag needs apex/CUDA)",
    "batch_postprocessor=dict: TextBrewer tests `type(batch) is dict`, and DataCollatorWithPadding returns a "
    "BatchEncoding (a dict subclass)",
    "installed with --no-deps into benchmarks/.deps (plus tensorboard with its dependencies), appended to "
    "sys.path inside the benchmark only",
]


# ---------------------------------------------------------------- install on demand

def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark dependency install failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")


def ensure_textbrewer() -> str:
    """Install TextBrewer (and tensorboard, which it imports) into benchmarks/.deps once; import it."""
    stamp = DEPS / f".complete-{TEXTBREWER}"
    if not stamp.exists():
        DEPS.mkdir(parents=True, exist_ok=True)
        print(f"bench: installing {TEXTBREWER} (--no-deps) and tensorboard into {DEPS}", file=sys.stderr)
        _pip("--no-deps", "--target", str(DEPS), "--upgrade", TEXTBREWER)
        _pip("--target", str(DEPS), "--upgrade", "tensorboard")
        stamp.write_text("ok\n")
    if str(DEPS) not in sys.path:
        sys.path.append(str(DEPS))      # appended: the project's own packages (numpy, torch...) win
    try:
        importlib.import_module("tqdm")
    except ImportError:                 # the project pins tqdm; this is for a bare environment only
        _pip("--target", str(DEPS), "tqdm")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its `is not 'none'` comparisons raise SyntaxWarnings on 3.8+
        tb = importlib.import_module("textbrewer")
    return tb.__version__


# ---------------------------------------------------------------- features in the peers' format

def features(enc, labels: np.ndarray, rows: np.ndarray, teacher_logits: np.ndarray | None = None) -> list[dict]:
    """Pre-tokenised examples as a list of dicts (what ``datasets.map(tokenizer)`` would give)."""
    out = []
    for r in rows:
        ids = enc.input_ids[r].tolist()
        f = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(labels[r])}
        if enc.token_type_ids is not None:
            f["token_type_ids"] = enc.token_type_ids[r].tolist()
        if teacher_logits is not None:
            f["teacher_logits"] = teacher_logits[r].astype(np.float32).tolist()
        out.append(f)
    return out


class ShapeRecorder:
    """Wraps a collator and records every batch's shape (padded tokens are the work done)."""

    def __init__(self, collator):
        self.collator = collator
        self.shapes: list[tuple[int, int]] = []
        self.first: tuple[float, float] | None = None     # (wall, cpu) when the first batch was asked for

    def __call__(self, feats):
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())
        batch = self.collator(feats)
        self.shapes.append(tuple(batch["input_ids"].shape))
        return batch


# ---------------------------------------------------------------- Hugging Face Trainer

def hf_epoch(model, feats: list[dict], tokenizer, *, batch_size: int, lr: float, weight_decay: float,
             warmup_ratio: float, grad_clip: float, temperature: float, alpha: float, bf16: bool, seed: int,
             out_dir: Path, sampling: str = "random") -> dict:
    """One epoch of the usual HF recipe with the KD loss added; timed from epoch begin to epoch end."""
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from mtkd.kd.losses import kd_loss

    class KDTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            teacher = inputs.pop("teacher_logits")
            out = model(**inputs)
            loss = kd_loss(out.logits.float(), teacher, labels, temperature=temperature, alpha=alpha)
            return (loss, out) if return_outputs else loss

    class Clock(TrainerCallback):
        def __init__(self):
            self.t = {}

        def on_epoch_begin(self, args, state, control, **kw):
            self.t["threads"] = torch.get_num_threads()
            self.t["begin"] = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, args, state, control, **kw):
            self.t["end"] = (time.perf_counter(), time.process_time())

    steps = -(-len(feats) // batch_size)
    args = TrainingArguments(
        output_dir=str(out_dir), use_cpu=True, bf16=bf16, report_to="none", per_device_train_batch_size=batch_size,
        num_train_epochs=1, learning_rate=lr, weight_decay=weight_decay, warmup_steps=int(steps * warmup_ratio),
        max_grad_norm=grad_clip, save_strategy="no", logging_strategy="no", disable_tqdm=True,
        remove_unused_columns=False, train_sampling_strategy=sampling, seed=seed)
    clock = Clock()
    collator = ShapeRecorder(DataCollatorWithPadding(tokenizer))
    trainer = KDTrainer(model=model, args=args, train_dataset=feats, data_collator=collator, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)     # it prints the end-of-training metrics dict to stdout
    trainer.train()
    (w0, c0), (w1, c1) = clock.t["begin"], clock.t["end"]
    return {"seconds": w1 - w0, "cpu_seconds": c1 - c0, "examples": len(feats), "shapes": collator.shapes,
            "threads": clock.t["threads"], "optimizer": args.optim if isinstance(args.optim, str) else args.optim.value}


# ---------------------------------------------------------------- TextBrewer

def textbrewer_epoch(student, teachers: list, feats: list[dict], tokenizer, *, batch_size: int, lr: float,
                     weight_decay: float, warmup_ratio: float, grad_clip: float, temperature: float, alpha: float,
                     dtype: torch.dtype | None, seed: int, out_dir: Path) -> dict:
    """One epoch of TextBrewer's MultiTeacherDistiller, teachers online; timed from the first batch asked
    for to the end of the epoch."""
    import textbrewer
    from textbrewer import DistillationConfig, TrainingConfig
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    end: list[tuple[float, float]] = []
    collator = ShapeRecorder(DataCollatorWithPadding(tokenizer))

    class TimedDistiller(textbrewer.MultiTeacherDistiller):
        def save_and_callback(self, global_step, step, epoch, callback):   # shim: no checkpoint while timed
            end.append((time.perf_counter(), time.process_time()))

    def adaptor_t(batch, out):
        return {"logits": out.logits}

    def adaptor_s(batch, out):
        return {"logits": out.logits, "losses": out.loss}

    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(feats, batch_size=batch_size, shuffle=True, collate_fn=collator, generator=g)
    params = [p for p in student.parameters() if p.requires_grad]
    optim = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                               {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=lr)
    steps = len(loader)
    tcfg = TrainingConfig(device="cpu", output_dir=str(out_dir), ckpt_frequency=1, log_dir=None)
    dcfg = DistillationConfig(temperature=temperature, kd_loss_type="ce", kd_loss_weight=alpha,
                              hard_label_weight=1.0 - alpha)
    distiller = TimedDistiller(tcfg, dcfg, model_T=teachers, model_S=student, adaptor_T=adaptor_t, adaptor_S=adaptor_s)
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        distiller.train(optim, loader, num_epochs=1, scheduler_class=get_linear_schedule_with_warmup,
                        scheduler_args={"num_warmup_steps": int(steps * warmup_ratio), "num_training_steps": steps},
                        max_grad_norm=grad_clip, batch_postprocessor=dict)
    (w0, c0), (w1, c1) = collator.first, end[-1]
    return {"seconds": w1 - w0, "cpu_seconds": c1 - c0, "examples": len(feats), "shapes": collator.shapes,
            "threads": torch.get_num_threads(), "optimizer": "torch.optim.AdamW (default, foreach)"}
