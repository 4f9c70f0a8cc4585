"""The one training loop, for teachers and students alike, and batched inference.

Speed on a CPU comes from three things: tokenising once per task, batches of
similar length with dynamic padding (short texts are the norm), and bf16
autocast where the processor has it. Everything else reads top to bottom.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import io
from .losses import kd_loss
from .models import sentence_features


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss or gradient)."""


# ---------------------------------------------------------------- device, precision, threads

def pick_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA GPU is visible; use device: auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if name == "fp32":
        return None
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has_bf16() else None
    if name == "fp16" and device.type == "cpu":
        raise ValueError("precision: fp16 autocast is for GPUs; use bf16 or fp32 on a CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def set_threads(n: int) -> None:
    """0 = every core this process may use (OMP_NUM_THREADS when set, e.g. by Ray for a 1-CPU task).

    Never more threads than cores: oversubscribed OpenMP threads spin-wait on each other and small
    models then train up to 100x slower."""
    torch.set_num_threads(n if n > 0 else int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def progress_enabled() -> bool:
    """tqdm bars in terminals and notebooks, none under the batch runner (it logs one line per unit)."""
    return os.environ.get("MTKD_BATCH") != "1"


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


# ---------------------------------------------------------------- dropout that is cheap on a CPU

# torch's CPU dropout draws one random number per element (MT19937, ~5 ns each): for a small
# student at 128 tokens the masks cost more than the matmuls (benchmarks/README.md). One 64-bit
# draw makes four 16-bit uniforms instead; an element is kept when its uniform is >= p_drop, i.e.
# p_drop rounded to 1/65536 (0.1 -> 0.100006). Same distribution, same 1/(1-p) scaling, ~4x cheaper.

def _keep_mask(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A {0, 1/(1-p)} tensor: Bernoulli(1-p) keep mask, already scaled."""
    n = math.prod(shape)
    drop = round(p * 65536)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n]
    keep = bits.view(shape) >= (drop - 32768)
    return keep.to(dtype) * (65536 / (65536 - drop))


class CpuDropout(nn.Module):
    """nn.Dropout with the cheaper mask above (CPU training only; eval is the identity as usual)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * _keep_mask(x.shape, self.p, x.dtype)


def cpu_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """transformers' eager attention with CpuDropout's mask on the probabilities. Registered as the
    ``mtkd_cpu`` attention implementation; matmuls stay in the autocast dtype (SDPA's CPU math path,
    taken whenever dropout > 0, upcasts them to fp32)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    if dropout > 0 and module.training:
        weights = weights * _keep_mask(weights.shape, dropout, weights.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _cpu_training_kernels(model: nn.Module):
    """Swap in CpuDropout and cpu_attention for training; returns the function that swaps them back."""
    from transformers import AttentionInterface
    AttentionInterface.register("mtkd_cpu", cpu_attention)
    swapped = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, CpuDropout(child.p).train(child.training))
                swapped.append((parent, name, child))
    config = getattr(model, "config", None)
    attn = getattr(config, "_attn_implementation", None)
    if attn in ("sdpa", "eager") and getattr(config, "attention_probs_dropout_prob", 0) > 0 \
            and model._can_set_attn_implementation():
        model.set_attn_implementation("mtkd_cpu")
    else:
        attn = None

    def restore() -> None:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        if attn is not None:
            model.set_attn_implementation(attn)
    return restore


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
    ``teacher_logits`` (N, K, C) with ``gate`` is learned fusion, recomputed every step.
    """
    temperature: float
    alpha: float
    logits: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    gate: nn.Module | None = None


def _summarise(name: str, t: torch.Tensor) -> str:
    t = t.detach().float()
    finite = torch.isfinite(t)
    shown = t[finite]
    rng = f"min {shown.min().item():.3g}, max {shown.max().item():.3g}" if shown.numel() else "no finite values"
    return f"{name}: {int((~finite).sum())} non-finite of {t.numel()} ({rng})"


def _batch_loss(model, enc: Encoded, rows: np.ndarray, y_all: torch.Tensor, device, dtype,
                target: KDTarget | None, gate: nn.Module | None, desc: str, where: str) -> torch.Tensor:
    """The KD loss of one (micro-)batch, stopping with the batch's numbers when anything is non-finite."""
    batch = collate(enc, rows, device)
    y = y_all[rows].to(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model(**batch, output_hidden_states=gate is not None)
    logits = out.logits.float()
    if not torch.isfinite(logits).all():      # before kd_loss, which would only say "non-finite input"
        raise TrainingError(f"{desc}: the model's logits became non-finite at {where} (examples {rows[:8].tolist()}...); "
                            f"{_summarise('logits', logits)}. Lower the learning rate or use precision: fp32.")
    if target is None:
        loss = kd_loss(logits, None, y)
    elif gate is not None:
        fused, _ = gate(sentence_features(model, out).float().detach(), target.teacher_logits[rows].to(device))
        loss = kd_loss(logits, fused, y, temperature=target.temperature, alpha=target.alpha)
    else:
        loss = kd_loss(logits, target.logits[rows].to(device), y, temperature=target.temperature, alpha=target.alpha)
    if not torch.isfinite(loss):
        raise TrainingError(f"{desc}: the loss became non-finite at {where} (examples {rows[:8].tolist()}...); "
                            f"{_summarise('logits', logits)}. Lower the learning rate or use precision: fp32.")
    return loss


def fit(model: nn.Module, enc: Encoded, labels: np.ndarray, cfg: TrainConfig, seed: int, *,
        device: torch.device, dtype: torch.dtype | None, target: KDTarget | None = None,
        checkpoint_dir: Path | None = None, desc: str = "training") -> dict:
    """Train ``model`` in place with AdamW, linear warm-up and decay, clipping and KD when ``target`` is set.

    With ``checkpoint_dir`` the state is saved at every epoch boundary and a killed run resumes
    from the last one with the same result as an uninterrupted run.
    """
    from tqdm.auto import tqdm
    seed_everything(seed)
    model.to(device).train()
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    gate = target.gate.to(device).train() if target is not None and target.gate is not None else None
    params = [p for p in model.parameters() if p.requires_grad] + (list(gate.parameters()) if gate else [])
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=True)
    restore_kernels = _cpu_training_kernels(model) if device.type == "cpu" else None
    steps_per_epoch = math.ceil(len(enc) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = int(total * cfg.warmup_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    y_all = torch.tensor(np.asarray(labels), dtype=torch.long)
    lengths = enc.lengths
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)   # fp16 needs loss scaling

    start_epoch = 0
    history = []
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

    t0 = time.time()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, cfg.epochs):
        batches = length_batches(lengths, cfg.batch_size, seed=seed * 1000 + epoch)
        total_loss = torch.zeros((), device=device)
        bar = tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not progress_enabled())
        for b, rows in enumerate(bar):
            optim.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=device)
            for part in np.array_split(rows, min(cfg.grad_accum, len(rows))):
                part_loss = _batch_loss(model, enc, part, y_all, device, dtype, target, gate,
                                        desc, where=f"epoch {epoch + 1}, step {step}, batch {b}")
                share = len(part) / len(rows)      # exactly 1.0 without accumulation
                scaler.scale(part_loss * share).backward()
                loss += part_loss.detach() * share
            scaler.unscale_(optim)
            # clip_grad_norm_ split in two (same arithmetic): check the norm before clipping scales every
            # gradient by NaN, so the message can name the tensors that really went non-finite
            norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            if not torch.isfinite(norm) and scaler.is_enabled():
                scaler.step(optim)                 # fp16 overflow: the scaler skips this step and lowers its scale
                scaler.update()
                continue
            if not torch.isfinite(norm):
                bad = [(n, p.grad) for n, p in model.named_parameters()
                       if p.grad is not None and not torch.isfinite(p.grad).all()]
                first = f"; {_summarise('gradient of ' + bad[0][0], bad[0][1])}" if bad else ""
                raise TrainingError(f"{desc}: non-finite gradient at epoch {epoch + 1}, step {step}, batch {b} "
                                    f"in {len(bad)} tensors (first: {[n for n, _ in bad[:3]]}){first}; "
                                    f"loss {loss.item():.4g}. Lower the learning rate or use precision: fp32.")
            nn.utils.clip_grads_with_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"), norm)
            scaler.step(optim)
            scaler.update()
            sched.step()
            total_loss += loss.detach()
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
            with io.atomic_path(ckpt) as tmp:
                torch.save(state, tmp)
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    if restore_kernels is not None:
        restore_kernels()
    model.eval()
    if gate is not None:
        gate.eval()
    return {"history": history, "seconds": round(time.time() - t0, 2), "steps": step}


# ---------------------------------------------------------------- inference

@torch.inference_mode()
def predict(model: nn.Module, enc: Encoded, *, device: torch.device, dtype: torch.dtype | None,
            batch_size: int = 128, with_features: bool = False, desc: str = "inference"):
    """Logits (N, C) float32 in the split's row order (and the head's sentence vectors when asked:
    what a gating fuser sees, see `mtkd.models.sentence_features`)."""
    from tqdm.auto import tqdm
    model.to(device).eval()
    n = len(enc)
    logits = features = None
    for rows in tqdm(length_batches(enc.lengths, batch_size), desc=desc, leave=False,
                     disable=not progress_enabled()):
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
          batch_size: int = 64, desc: str = "embedding") -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings from a frozen encoder (sentence-transformers style)."""
    from tqdm.auto import tqdm
    encoder.to(device).eval()
    out_arr = None
    for rows in tqdm(length_batches(enc.lengths, batch_size), desc=desc, leave=False,
                     disable=not progress_enabled()):
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
