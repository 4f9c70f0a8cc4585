"""The one training loop, for teachers and students alike, and batched inference.

Speed on a CPU comes from three things: tokenising once per task, batches of
similar length with dynamic padding (short texts are the norm), and bf16
autocast where the processor has it. Everything else reads top to bottom.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtkd.kd.cpu import cpu_kernels
from mtkd.kd.devices import seed_everything
from mtkd.kd.fusion import FUSER_KWARGS, FUSERS, fuse
from mtkd.kd.heads import sentence_features
from mtkd.kd.losses import UNLABELED, check_labels, check_temperature_alpha, kd_loss_unchecked


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss or gradient)."""


# ---------------------------------------------------------------- tokenised data and batches

@dataclass
class Encoded:
    """Token ids of one split, one array per example (no padding)."""
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def head(self, n: int) -> "Encoded":
        """The first n examples: a transfer set of size n is the first n rows of its pool."""
        tt = None if self.token_type_ids is None else self.token_type_ids[:n]
        return Encoded(self.input_ids[:n], tt, self.pad_id)


def concat(first: Encoded, second: Encoded) -> Encoded:
    """``first``'s examples, then ``second``'s (one tokenizer's: a student's labeled and transfer rows)."""
    if (first.token_type_ids is None) != (second.token_type_ids is None) or first.pad_id != second.pad_id:
        raise ValueError("concat: the two parts come from different tokenizers")
    tt = None if first.token_type_ids is None else first.token_type_ids + second.token_type_ids
    return Encoded(first.input_ids + second.input_ids, tt, first.pad_id)


def encode(tokenizer, frame, text_fields, max_length: int) -> Encoded:
    texts = [frame[f].tolist() for f in text_fields]
    out = tokenizer(*texts, truncation=True, max_length=max_length, padding=False)
    ids = [np.asarray(x, dtype=np.int64) for x in out["input_ids"]]
    tt = [np.asarray(x, dtype=np.int64) for x in out["token_type_ids"]] if "token_type_ids" in out else None
    return Encoded(ids, tt, tokenizer.pad_token_id or 0)


def length_batches(lengths: np.ndarray, batch_size: int, seed: int | None = None) -> list[np.ndarray]:
    """Batches of similar length. With a seed (training): shuffle, sort within pools of 50 batches,
    shuffle the batch order, so every epoch differs but padding stays small. Without: sorted (inference)."""
    n = len(lengths)
    if seed is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    pool = batch_size * 50
    batches = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(enc: Encoded, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(enc.input_ids[r]) for r in rows)
    ids = np.full((len(rows), width), enc.pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, :len(enc.input_ids[r])] = enc.input_ids[r]
        mask[j, :len(enc.input_ids[r])] = 1
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if enc.token_type_ids is not None:
        tt = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            tt[j, :len(enc.token_type_ids[r])] = enc.token_type_ids[r]
        batch["token_type_ids"] = torch.from_numpy(tt)
    pin = device.type == "cuda"
    return {k: (v.pin_memory() if pin else v).to(device, non_blocking=pin) for k, v in batch.items()}


# ---------------------------------------------------------------- training

@dataclass
class TrainConfig:
    epochs: int
    lr: float
    batch_size: int
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    freeze_embeddings: bool = False
    grad_accum: int = 1          # micro-batches per optimizer step (each batch is split in this many)

    @classmethod
    def from_params(cls, p: dict) -> "TrainConfig":
        return cls(**{k: p[k] for k in cls.__dataclass_fields__ if k in p})


@dataclass
class KDTarget:
    """What a student learns from besides the gold labels.

    ``logits`` (N, C) is a fixed target (one teacher, or a fuser applied once up front);
    ``teacher_logits`` (N, K, C) with ``gate`` is learned fusion, recomputed every step;
    ``teacher_logits`` with ``fuser`` (one that takes ``progress``, e.g. ``curriculum``) is a
    scheduled fusion, recomputed every step at t = the fraction of training steps done, with
    ``fuser_kwargs`` (``labels`` (N,) are per example: each batch gets its rows).
    """
    temperature: float
    alpha: float
    logits: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    gate: nn.Module | None = None
    fuser: str | None = None
    fuser_kwargs: dict = field(default_factory=dict)

    def check(self, n: int, c: int) -> None:
        """Validate the target once, before training: the loop then trusts it at every step."""
        if (self.logits is not None) + (self.gate is not None) + (self.fuser is not None) != 1:
            raise ValueError("a KDTarget has exactly one of: fixed logits, a gate (with teacher_logits), "
                             "or a scheduled fuser (with teacher_logits)")
        check_temperature_alpha(self.temperature, self.alpha)
        if self.fuser is not None:
            self._check_fuser(n, c)
            return
        name, z = ("logits", self.logits) if self.gate is None else ("teacher_logits", self.teacher_logits)
        if z is None:
            raise ValueError(f"the KD target has no {name}")
        if not isinstance(z, torch.Tensor):
            return          # a target that computes its rows per batch (benchmarks' online teachers) is its own check
        want = (n, c) if self.gate is None else (n, "K", c)
        if z.dim() != len(want) or z.shape[0] != n or z.shape[-1] != c:
            raise ValueError(f"the KD target's {name} must have shape {want}, got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("teacher_logits has non-finite values (NaN or inf): the logit cache is corrupt")

    def _check_fuser(self, n: int, c: int) -> None:
        """A scheduled fuser: one that takes progress, its arguments valid at t = 0 on all N rows."""
        if "progress" not in FUSER_KWARGS.get(self.fuser, ()):
            raise ValueError(f"fuser {self.fuser!r} does not take the training progress; give its fused logits "
                             "as a fixed target (KDTarget(logits=fuse(...))) instead")
        z = self.teacher_logits
        if not isinstance(z, torch.Tensor) or z.dim() != 3 or z.shape[0] != n or z.shape[2] != c:
            raise ValueError(f"the KD target's teacher_logits must have shape ({n}, K, {c}), "
                             f"got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        if "progress" in self.fuser_kwargs:
            raise ValueError("fuser_kwargs must not hold progress: the training loop passes it at every step")
        fuse(self.fuser, z, **self.fuser_kwargs, progress=0.0)      # checks the logits, labels and the rest
        if "labels" in self.fuser_kwargs:
            labels = self.fuser_kwargs["labels"]
            labels = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.array(labels))
            self.fuser_kwargs = {**self.fuser_kwargs, "labels": labels.long()}

    def for_batch(self, rows: np.ndarray, model: nn.Module, out, device: torch.device,
                  progress: float = 0.0) -> torch.Tensor:
        """The teacher side of the KD term for these rows: cached logits, the gate's fusion of them,
        or the scheduled fuser's at ``progress`` (the fraction of training steps done)."""
        if self.fuser is not None:
            kw = {k: (v[rows].to(device) if k == "labels" else v) for k, v in self.fuser_kwargs.items()}
            return FUSERS[self.fuser](self.teacher_logits[rows].to(device).float(), progress=progress, **kw)
        if self.gate is None:
            return self.logits[rows].to(device)
        features = sentence_features(model, out).float().detach()
        fused, _ = self.gate(features, self.teacher_logits[rows].to(device))
        return fused


def _summarise(name: str, t: torch.Tensor) -> str:
    t = t.detach().float()
    finite = torch.isfinite(t)
    shown = t[finite]
    rng = f"min {shown.min().item():.3g}, max {shown.max().item():.3g}" if shown.numel() else "no finite values"
    return f"{name}: {int((~finite).sum())} non-finite of {t.numel()} ({rng})"


def _diagnose(desc: str, where: str, parts: list, loss: torch.Tensor, model: nn.Module) -> TrainingError:
    """Why a step's gradient norm is not finite: the logits, the loss, or the gradients themselves."""
    for rows, logits in parts:
        if not torch.isfinite(logits).all():
            return TrainingError(f"{desc}: the model's logits became non-finite at {where} (examples "
                                 f"{rows[:8].tolist()}...); {_summarise('logits', logits)}. Lower the learning "
                                 "rate or use precision: fp32.")
    if not torch.isfinite(loss):
        rows, logits = parts[-1]
        return TrainingError(f"{desc}: the loss became non-finite at {where} (examples {rows[:8].tolist()}...); "
                             f"{_summarise('logits', logits)}. Lower the learning rate or use precision: fp32.")
    bad = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    first = f"; {_summarise('gradient of ' + bad[0][0], bad[0][1])}" if bad else ""
    return TrainingError(f"{desc}: non-finite gradient at {where} in {len(bad)} tensors (first: "
                         f"{[n for n, _ in bad[:3]]}){first}; loss {loss.item():.4g}. Lower the learning rate or "
                         "use precision: fp32.")


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write the epoch checkpoint atomically (a killed write leaves the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def fit(model: nn.Module, enc: Encoded, labels: np.ndarray, cfg: TrainConfig, seed: int, *,
        device: torch.device, dtype: torch.dtype | None, target: KDTarget | None = None,
        checkpoint_dir: Path | None = None, desc: str = "training", progress: bool = False,
        cheap_cpu_kernels: bool = True) -> dict:
    """Train ``model`` in place with AdamW, linear warm-up and decay, clipping and KD when ``target`` is set.

    Rows labeled ``UNLABELED`` (a transfer set) learn from the KD term only; they need a ``target``.

    With ``checkpoint_dir`` the state is saved at every epoch boundary and a killed run resumes
    from the last one with the same result as an uninterrupted run. On a CPU it trains inside
    ``cpu_kernels(model)`` unless ``cheap_cpu_kernels`` is off (benchmarks compare both). ``progress``
    shows a tqdm bar per epoch (interactive use; the batch runner logs one line per unit instead).
    """
    from tqdm.auto import tqdm
    # ---- setup: seeds, data, the target (checked once here, trusted at every step), optimiser, schedule
    seed_everything(seed)
    model.to(device).train()
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    y_all = torch.tensor(np.asarray(labels), dtype=torch.long)
    num_labels = model.config.num_labels
    check_labels(y_all, len(enc), num_labels, has_target=target is not None and target.alpha > 0)
    partly_unlabeled = bool((y_all == UNLABELED).any())      # decided once: the loss takes no sync per step
    if target is not None:
        target.check(len(enc), num_labels)
    gate = target.gate.to(device).train() if target is not None and target.gate is not None else None
    params = [p for p in model.parameters() if p.requires_grad] + (list(gate.parameters()) if gate else [])
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=True)
    steps_per_epoch = math.ceil(len(enc) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = int(total * cfg.warmup_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)   # fp16 needs loss scaling
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    temperature, alpha = (target.temperature, target.alpha) if target is not None else (1.0, 0.0)   # alpha 0: CE

    # ---- resume from the last finished epoch, if a killed run left one
    start_epoch, history = 0, []
    ckpt = checkpoint_dir / "last_epoch.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        if gate is not None:
            gate.load_state_dict(state["gate"])
        torch.set_rng_state(state["rng"].cpu())          # map_location moved it; the CPU RNG wants a CPU ByteTensor
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        start_epoch = int(state["epoch"]) + 1
        history = list(state.get("history", []))

    # ---- the loop: for each batch, the target, the loss, the step
    t0 = time.time()
    step = start_epoch * steps_per_epoch
    with cpu_kernels(model) if device.type == "cpu" and cheap_cpu_kernels else nullcontext():
        for epoch in range(start_epoch, cfg.epochs):
            batches = length_batches(enc.lengths, cfg.batch_size, seed=seed * 1000 + epoch)
            total_loss = torch.zeros((), device=device)
            for b, rows in enumerate(tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                                          disable=not progress)):
                optim.zero_grad(set_to_none=True)
                loss = torch.zeros((), device=device)
                parts = []
                for part in np.array_split(rows, min(cfg.grad_accum, len(rows))):
                    batch, y = collate(enc, part, device), y_all[part].to(device)
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                        out = model(**batch, output_hidden_states=gate is not None)
                    logits = out.logits.float()
                    teacher = None if target is None else target.for_batch(
                        part, model, out, device, progress=(epoch * steps_per_epoch + b) / total)
                    part_loss = kd_loss_unchecked(logits, teacher, y, temperature, alpha, partly_unlabeled)
                    share = len(part) / len(rows)      # exactly 1.0 without accumulation
                    scaler.scale(part_loss * share).backward()
                    loss += part_loss.detach() * share
                    parts.append((part, logits.detach()))
                scaler.unscale_(optim)
                # the gradient norm is the step's one device-to-host sync: non-finite logits, loss or
                # gradients all show here, and only then is the step searched for the cause
                norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
                if not torch.isfinite(norm):
                    if scaler.is_enabled() and torch.isfinite(loss):
                        scaler.step(optim)             # fp16 overflow: the scaler skips this step, lowers its scale
                        scaler.update()
                        continue
                    raise _diagnose(desc, f"epoch {epoch + 1}, step {step}, batch {b}", parts, loss, model)
                nn.utils.clip_grads_with_norm_(params, clip, norm)
                scaler.step(optim)
                scaler.update()
                sched.step()
                total_loss += loss
                step += 1
            history.append({"epoch": epoch + 1, "loss": float(total_loss) / max(1, len(batches)),
                            "seconds": round(time.time() - t0, 2)})
            if ckpt is not None and epoch + 1 < cfg.epochs:
                state = {"model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
                         "rng": torch.get_rng_state(), "epoch": epoch, "history": history}
                if device.type == "cuda":
                    state["cuda_rng"] = torch.cuda.get_rng_state(device)
                if gate is not None:
                    state["gate"] = gate.state_dict()
                _save_checkpoint(ckpt, state)
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    model.eval()
    if gate is not None:
        gate.eval()
    return {"history": history, "seconds": round(time.time() - t0, 2), "steps": step}


# ---------------------------------------------------------------- inference

@torch.inference_mode()
def predict(model: nn.Module, enc: Encoded, *, device: torch.device, dtype: torch.dtype | None,
            batch_size: int = 128, with_features: bool = False, desc: str = "inference", progress: bool = False):
    """Logits (N, C) float32 in the split's row order (and the head's sentence vectors when asked:
    what a gating fuser sees, see `mtkd.data.models.sentence_features`)."""
    from tqdm.auto import tqdm
    model.to(device).eval()
    n = len(enc)
    logits = features = None
    for rows in tqdm(length_batches(enc.lengths, batch_size), desc=desc, leave=False,
                     disable=not progress):
        batch = collate(enc, rows, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(**batch, output_hidden_states=with_features)
        z = out.logits.float().cpu().numpy()
        if logits is None:
            logits = np.zeros((n, z.shape[1]), dtype=np.float32)
        logits[rows] = z
        if with_features:
            h = sentence_features(model, out).float().cpu().numpy()
            if features is None:
                features = np.zeros((n, h.shape[1]), dtype=np.float32)
            features[rows] = h
    return (logits, features) if with_features else logits


@torch.inference_mode()
def embed(encoder: nn.Module, enc: Encoded, *, device: torch.device, dtype: torch.dtype | None,
          batch_size: int = 64, desc: str = "embedding", progress: bool = False) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings from a frozen encoder (sentence-transformers style)."""
    from tqdm.auto import tqdm
    encoder.to(device).eval()
    out_arr = None
    for rows in tqdm(length_batches(enc.lengths, batch_size), desc=desc, leave=False,
                     disable=not progress):
        batch = collate(enc, rows, device)
        batch.pop("token_type_ids", None)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            hidden = encoder(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        if out_arr is None:
            out_arr = np.zeros((len(enc), pooled.shape[1]), dtype=np.float32)
        out_arr[rows] = pooled
    return out_arr
