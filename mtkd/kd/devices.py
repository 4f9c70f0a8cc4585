"""Device, autocast precision, threads and seeds: what every training and inference call sets up first."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA GPU is visible; use device: auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_bf16() -> bool:
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
        return torch.bfloat16 if cpu_has_bf16() else None
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

