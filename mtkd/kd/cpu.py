"""Dropout and attention kernels that are cheap on a CPU (same maths as torch's, ~4x cheaper masks)."""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn


# torch's CPU dropout draws one random number per element (MT19937, ~5 ns each): for a small
# student at 128 tokens the masks cost more than the matmuls (benchmarks/README.md). One 64-bit
# draw makes four 16-bit uniforms instead; an element is kept when its uniform is >= p_drop, i.e.
# p_drop rounded to 1/65536 (0.1 -> 0.100006). Same distribution, same 1/(1-p) scaling, ~4x cheaper.

def keep_mask(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
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
        return x * keep_mask(x.shape, self.p, x.dtype)


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
        weights = weights * keep_mask(weights.shape, dropout, weights.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


@contextmanager
def cpu_kernels(model: nn.Module):
    """``with cpu_kernels(model):`` trains with CpuDropout and the ``mtkd_cpu`` attention, and puts the
    model's own modules back on the way out, also when training raises."""
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
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        if attn is not None:
            model.set_attn_implementation(attn)
