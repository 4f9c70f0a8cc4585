"""Fusion strategies: K teachers' logits (N, K, C) -> one target (N, C) for the student.

Every fuser is a few lines in ``FUSERS`` and goes through ``fuse``, which checks
the input once for all of them. Most return logits; ``majority_vote`` and
``average_probs`` build a probability distribution and return its log, so that
``softmax(output)`` is that distribution at T = 1 (at T > 1 the student sees it
flattened, exactly as it sees any teacher's logits).

``GatingFusion`` is the learned fuser (trained jointly with the student);
``fit_temperature`` calibrates each teacher for ``calibrated_average``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from torch import nn

# Entropies closer than this (in nats) count as ties in best_per_sample, so that
# rounding in the softmax never decides between two equally confident teachers.
ENTROPY_TIE_TOL = 1e-9
VOTE_EPS = 1e-4


def _entropy(z: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(z) over the last dim, in float64."""
    logp = F.log_softmax(z.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _per_teacher(name: str, values, k: int, z: torch.Tensor) -> torch.Tensor:
    """One finite, non-negative number per teacher, as a tensor beside z."""
    v = torch.as_tensor(values, dtype=torch.float64).to(z)
    if v.dim() != 1 or v.numel() != k:
        raise ValueError(f"{name} must have one value per teacher (K={k}), got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all() or (v < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {v.tolist()}")
    return v


def average(z: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of the teachers' logits."""
    return z.mean(1)


def weighted(z: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Weighted sum of logits; weights (K,) >= 0, normalised to sum to 1."""
    w = _per_teacher("weights", weights, z.shape[1], z)
    if w.sum() <= 0:
        raise ValueError(f"weights must not all be zero, got {w.tolist()}")
    return torch.einsum("nkc,k->nc", z, w / w.sum())


def best_per_sample_index(z: torch.Tensor) -> torch.Tensor:
    """Per example, the index of the teacher with the lowest entropy at T=1 (ties: lowest index)."""
    h = _entropy(z)
    tied = h <= h.min(1, keepdim=True).values + ENTROPY_TIE_TOL
    return tied.to(torch.uint8).argmax(1)             # argmax returns the first maximum


def best_per_sample(z: torch.Tensor) -> torch.Tensor:
    """Per example, the logits of the teacher with the lowest entropy (ties: lowest index)."""
    return z[torch.arange(z.shape[0], device=z.device), best_per_sample_index(z)]


def gating(z: torch.Tensor, gate_weights) -> torch.Tensor:
    """Per-example weighted sum of logits with given gate weights (N, K), rows summing to 1."""
    w = torch.as_tensor(gate_weights, dtype=torch.float64).to(z)
    if w.shape != z.shape[:2]:
        raise ValueError(f"gate_weights must have shape (N, K)={tuple(z.shape[:2])}, got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("gate_weights must be finite and >= 0")
    if not torch.allclose(w.sum(1), torch.ones_like(w[:, 0]), atol=1e-3):
        raise ValueError("gate_weights rows must sum to 1 (they are a softmax over teachers)")
    return torch.einsum("nkc,nk->nc", z, w)


def calibrated_average(z: torch.Tensor, temperatures: Sequence[float]) -> torch.Tensor:
    """Mean over teachers of z_k / T_k: each teacher temperature-scaled, then averaged."""
    t = _per_teacher("temperatures", temperatures, z.shape[1], z)
    if (t == 0).any():
        raise ValueError(f"temperatures must be > 0, got {t.tolist()}")
    return (z / t[None, :, None]).mean(1)


def entropy_weighted(z: torch.Tensor) -> torch.Tensor:
    """Per-example weights proportional to exp(-H_k) (entropy at T=1); weighted sum of logits.

    exp(-H) is the inverse of the perplexity: a teacher spread over two classes
    counts half as much as a certain one, and no weight is ever exactly zero.
    """
    w = torch.softmax(-_entropy(z), dim=1).to(z)
    return torch.einsum("nkc,nk->nc", z, w)


def majority_vote(z: torch.Tensor) -> torch.Tensor:
    """Log of the smoothed share of teachers voting for each class (log-probabilities).

    Each teacher votes for its argmax (ties: lowest class); shares get VOTE_EPS
    added and are renormalised, so softmax(output) is the smoothed vote share.
    """
    c = z.shape[2]
    share = F.one_hot(z.argmax(2), c).to(z).mean(1)
    return torch.log((share + VOTE_EPS) / (1 + c * VOTE_EPS))


def average_probs(z: torch.Tensor) -> torch.Tensor:
    """Log of the mean of the teachers' softmax at T=1 (log-probabilities)."""
    return torch.logsumexp(F.log_softmax(z, dim=2), dim=1) - math.log(z.shape[1])


FUSERS: dict[str, Callable[..., torch.Tensor]] = {
    "average": average,
    "weighted": weighted,
    "best_per_sample": best_per_sample,
    "gating": gating,
    "calibrated_average": calibrated_average,
    "entropy_weighted": entropy_weighted,
    "majority_vote": majority_vote,
    "average_probs": average_probs,
}

# What each fuser needs besides the logits, so the pipeline knows what to pass.
FUSER_KWARGS: dict[str, tuple[str, ...]] = {
    "weighted": ("weights",),
    "gating": ("gate_weights",),
    "calibrated_average": ("temperatures",),
}
# Fusers whose weights are learned with the student (GatingFusion): no fixed target to precompute.
LEARNED_FUSERS = ("gating",)


def fuse(name: str, teacher_logits: torch.Tensor, **kw) -> torch.Tensor:
    """Check the input (N, K, C) once and apply the fuser ``name``; returns (N, C).

    Half-precision logits are upcast to float32 first.
    """
    if name not in FUSERS:
        raise ValueError(f"unknown fuser {name!r}; known fusers: {', '.join(FUSERS)}")
    z = teacher_logits
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise ValueError(f"teacher_logits must be a float tensor (N, K, C), got {type(z).__name__}"
                         + (f" of dtype {z.dtype}" if isinstance(z, torch.Tensor) else ""))
    if z.dim() != 3 or z.shape[1] < 1 or z.shape[2] < 2:
        raise ValueError(f"teacher_logits must have shape (N, K, C) with K >= 1 and C >= 2, got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("teacher_logits has non-finite values (NaN or inf)")
    needed = FUSER_KWARGS.get(name, ())
    missing = [k for k in needed if k not in kw]
    if missing:
        raise ValueError(f"fuser {name!r} needs the argument {missing[0]!r}")
    extra = sorted(set(kw) - set(needed))
    if extra:
        raise ValueError(f"fuser {name!r} takes no argument {extra[0]!r}"
                         + (f" (it takes {', '.join(needed)})" if needed else ""))
    return FUSERS[name](z.to(torch.promote_types(z.dtype, torch.float32)), **kw)


class GatingFusion(nn.Module):
    """Learned fusion: an MLP on the student's [CLS] state gives softmax weights over teachers.

    The last layer starts at zero, so the gate starts as the plain average of the
    teachers: training begins from a known baseline instead of a random
    preference for one teacher, and any move away from the average is learned.
    """

    def __init__(self, hidden_size: int, num_teachers: int, hidden: int = 128):
        super().__init__()
        if hidden_size < 1 or num_teachers < 1 or hidden < 1:
            raise ValueError(f"hidden_size, num_teachers and hidden must be >= 1, "
                             f"got {hidden_size}, {num_teachers}, {hidden}")
        self.hidden_size, self.num_teachers = hidden_size, num_teachers
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden), nn.Tanh(), nn.Linear(hidden, num_teachers))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, cls_hidden: torch.Tensor, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, H), (N, K, C) -> fused logits (N, C) and the gate weights (N, K)."""
        n, k = teacher_logits.shape[0], self.num_teachers
        if cls_hidden.dim() != 2 or cls_hidden.shape[1] != self.hidden_size:
            raise ValueError(f"cls_hidden must have shape (N, {self.hidden_size}), got {tuple(cls_hidden.shape)}")
        if teacher_logits.dim() != 3 or teacher_logits.shape[1] != k:
            raise ValueError(f"teacher_logits must have shape (N, {k}, C), got {tuple(teacher_logits.shape)}")
        if cls_hidden.shape[0] != n:
            raise ValueError(f"cls_hidden has {cls_hidden.shape[0]} rows but teacher_logits has {n}")
        weights = torch.softmax(self.mlp(cls_hidden).float(), dim=-1)
        fused = torch.einsum("nkc,nk->nc", teacher_logits.float(), weights)
        return fused, weights


def fit_temperature(logits, labels) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising the NLL of softmax(logits / T).

    The NLL is convex in 1/T, hence unimodal in log T, so a bounded Brent search
    over log T in [log 0.05, log 20] finds it; the result is clipped to that range.
    """
    z = np.asarray(logits.detach().double().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, C) with N >= 1 and C >= 2, got {z.shape}")
    if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({z.shape[0]},), got {y.dtype} {y.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits has non-finite values (NaN or inf)")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1]}), got values in [{y.min()}, {y.max()}]")
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return -log_softmax(z / math.exp(log_t), axis=1)[rows, y].mean()

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))
