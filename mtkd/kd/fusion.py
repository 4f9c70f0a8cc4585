"""Fusion strategies: K teachers' logits (N, K, C) -> one target (N, C) for the student.

Every fuser is a few lines in ``FUSERS`` and goes through ``fuse``, which checks
the input once for all of them. Most return logits; ``majority_vote`` and
``average_probs`` build a probability distribution and return its log, so that
``softmax(output)`` is that distribution at T = 1 (at T > 1 the student sees it
flattened, exactly as it sees any teacher's logits).

Fusers from the literature weight each teacher per example: ``ca_mkd`` by how
right it is on the example's label, ``ebkd`` by how certain it is, ``curriculum``
moves from the average to ``ca_mkd`` as training proceeds (the loop passes the
progress), ``region_weighted`` by the teachers' agreement region. Every fuser that
is a per-example weighted sum of logits has its (N, K) weights in ``WEIGHTS``
(``fusion_weights`` returns them, checked like ``fuse``).

``GatingFusion`` is the learned fuser (trained jointly with the student);
``fit_temperature`` calibrates each teacher for ``calibrated_average``.
"""
from __future__ import annotations

import math
import numbers
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
    return _weighted_sum(z, entropy_weights(z))


def entropy_weights(z: torch.Tensor) -> torch.Tensor:
    """(N, K) weights of ``entropy_weighted``: softmax over teachers of -H_k."""
    return torch.softmax(-_entropy(z), dim=1)


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


# ---------------------------------------------------------------- fusers from the literature

REGION_ORDER = ("all_agree", "partial", "full_disagree")    # the rows of region_weighted's W


def _weighted_sum(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] * z[n, k, :]: the per-example weighted sum of logits (N, K) x (N, K, C) -> (N, C)."""
    return torch.einsum("nkc,nk->nc", z, w.to(z))


def ca_mkd_weights(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CA-MKD (Zhang, Chen and Wang, ICASSP 2022) weights: a teacher that is more wrong gets less.

    With CE_k = -log softmax(z_k)[y] (teacher k's cross-entropy on the gold label, T = 1):

        w_k = (1 - softmax_k(CE_1, ..., CE_K)) / (K - 1)

    The softmax terms sum to 1, so the K numerators sum to K - 1 and the weights to 1; each
    w_k lies in [0, 1/(K-1)]. Equal CEs give 1/K each. K = 1: the weight is 1.
    """
    n, k = z.shape[:2]
    if k == 1:
        return torch.ones(n, 1, dtype=torch.float64, device=z.device)
    logp = F.log_softmax(z.double(), dim=-1)
    ce = -logp.gather(2, labels.view(n, 1, 1).expand(n, k, 1)).squeeze(2)
    return (1 - torch.softmax(ce, dim=1)) / (k - 1)


def ebkd_weights(z: torch.Tensor) -> torch.Tensor:
    """EBKD (Kwon et al., ICASSP 2020) weights: a more uncertain teacher gets less.

    With H_k the entropy of softmax(z_k) at T = 1:

        w_k = (1 - H_k / sum_j H_j) / (K - 1)

    The ratios H_k / sum_j H_j sum to 1, so the weights sum to 1. All entropies zero (every
    teacher certain): uniform 1/K. K = 1: the weight is 1.
    """
    n, k = z.shape[:2]
    if k == 1:
        return torch.ones(n, 1, dtype=torch.float64, device=z.device)
    h = _entropy(z)
    total = h.sum(1, keepdim=True)
    w = (1 - h / torch.where(total > 0, total, 1.0)) / (k - 1)
    return torch.where(total > 0, w, torch.full_like(w, 1.0 / k))


def curriculum_weights(z: torch.Tensor, labels: torch.Tensor, progress: float) -> torch.Tensor:
    """From the average to CA-MKD as training proceeds: w = (1 - t) / K + t * w_ca_mkd.

    t = progress, the fraction of training steps done (the loop passes it per step). Early on
    the student learns from the plain consensus; by the end, from the teachers that are right
    on each example. A convex mix of two weight vectors that sum to 1 sums to 1.
    """
    k = z.shape[1]
    return (1 - progress) / k + progress * ca_mkd_weights(z, labels)


def agreement_region_index(z: torch.Tensor) -> torch.Tensor:
    """Per example, the row of ``REGION_ORDER`` its teachers' argmax predictions fall in.

    0 all_agree: every teacher predicts the same class (always for K = 1); 2 full_disagree:
    K >= 3 and no two teachers agree; 1 partial: everything else. The same regions as
    ``mtkd.study.analysis.agreement_regions`` (argmax ties: the lowest class).
    """
    pred = z.argmax(2)
    region = torch.ones(pred.shape[0], dtype=torch.long, device=z.device)
    region[(pred == pred[:, :1]).all(1)] = 0
    if pred.shape[1] >= 3:
        region[(pred.sort(1).values.diff(dim=1) != 0).all(1)] = 2
    return region


def region_weights_per_example(z: torch.Tensor, region_weights: torch.Tensor) -> torch.Tensor:
    """(N, K) weights of ``region_weighted``: the row of W (normalised to sum to 1) of each example's region."""
    w = region_weights.to(torch.float64)
    return (w / w.sum(1, keepdim=True))[agreement_region_index(z)]


def ca_mkd(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Confidence-aware multi-teacher KD: sum_k w_k z_k with ``ca_mkd_weights`` per example.

    The paper sums w-weighted per-teacher KL terms, sum_k w_k KL(p_k || q); here the same weights
    combine the teachers' logits into one target, as ``weighted`` and ``gating`` do, so the
    student matches one distribution instead of a weighted mix of K. The two differ when the
    teachers disagree: the loss form pulls the student toward each teacher in turn, the target
    form toward one compromise whose softmax is sharper than the mix of the teachers' softmaxes.
    """
    return _weighted_sum(z, ca_mkd_weights(z, labels))


def ebkd(z: torch.Tensor) -> torch.Tensor:
    """Entropy-based KD: sum_k w_k z_k with ``ebkd_weights`` per example (label-free)."""
    return _weighted_sum(z, ebkd_weights(z))


def curriculum(z: torch.Tensor, labels: torch.Tensor, progress: float) -> torch.Tensor:
    """Curriculum fusion: sum_k w_k z_k with ``curriculum_weights``; t = 0 is ``average``, t = 1 ``ca_mkd``."""
    return _weighted_sum(z, curriculum_weights(z, labels, progress))


def region_weighted(z: torch.Tensor, region_weights: torch.Tensor) -> torch.Tensor:
    """Difficulty-adaptive fusion: the agreement region of each example picks its row of W (3, K).

    W is fitted on the selection split (per region, each teacher's accuracy there, normalised),
    so easy examples (all teachers agree) and hard ones (partial or full disagreement) can trust
    different teachers.
    """
    return _weighted_sum(z, region_weights_per_example(z, region_weights))


FUSERS: dict[str, Callable[..., torch.Tensor]] = {
    "average": average,
    "weighted": weighted,
    "best_per_sample": best_per_sample,
    "gating": gating,
    "calibrated_average": calibrated_average,
    "entropy_weighted": entropy_weighted,
    "majority_vote": majority_vote,
    "average_probs": average_probs,
    "ca_mkd": ca_mkd,
    "ebkd": ebkd,
    "curriculum": curriculum,
    "region_weighted": region_weighted,
}

# What each fuser needs besides the logits, so the pipeline knows what to pass. ``labels`` are the
# examples' gold labels and ``progress`` the fraction of training done (the loop passes it per step);
# the other arguments are chosen on the selection split (fusion/<task>.json keeps them by name).
FUSER_KWARGS: dict[str, tuple[str, ...]] = {
    "weighted": ("weights",),
    "gating": ("gate_weights",),
    "calibrated_average": ("temperatures",),
    "ca_mkd": ("labels",),
    "curriculum": ("labels", "progress"),
    "region_weighted": ("region_weights",),
}
# Arguments that come from the examples or from training, not from the fusion info.
DATA_KWARGS = ("labels", "progress")
# Fusers whose weights are learned with the student (GatingFusion): no fixed target to precompute.
LEARNED_FUSERS = ("gating",)
# Where examples have no gold label (transfer / unlabeled examples, held-out splits), a label-aware
# fuser falls back to this label-free one: ebkd weights instead of CA-MKD's.
LABEL_FREE_FALLBACK = {"ca_mkd": "ebkd", "curriculum": "ebkd"}

def uniform_weights(z: torch.Tensor) -> torch.Tensor:
    """(N, K) weights of ``average``: 1/K each."""
    return torch.full(z.shape[:2], 1.0 / z.shape[1], dtype=torch.float64, device=z.device)


def fixed_weights(z: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """(N, K) weights of ``weighted``: the same normalised weights on every row."""
    w = _per_teacher("weights", weights, z.shape[1], z).double()
    if w.sum() <= 0:
        raise ValueError(f"weights must not all be zero, got {w.tolist()}")
    return (w / w.sum()).expand(z.shape[:2])


def best_per_sample_weights(z: torch.Tensor) -> torch.Tensor:
    """(N, K) weights of ``best_per_sample``: one-hot on the lowest-entropy teacher."""
    return F.one_hot(best_per_sample_index(z), z.shape[1]).double()


# The (N, K) per-example weights of every fuser that is a weighted sum of logits, same arguments.
WEIGHTS: dict[str, Callable[..., torch.Tensor]] = {
    "average": uniform_weights,
    "weighted": fixed_weights,
    "best_per_sample": best_per_sample_weights,
    "entropy_weighted": entropy_weights,
    "ca_mkd": ca_mkd_weights,
    "ebkd": ebkd_weights,
    "curriculum": curriculum_weights,
    "region_weighted": region_weights_per_example,
}


def fuse(name: str, teacher_logits: torch.Tensor, **kw) -> torch.Tensor:
    """Check the input (N, K, C) once and apply the fuser ``name``; returns (N, C).

    Half-precision logits are upcast to float32 first.
    """
    z, kw = _checked(name, teacher_logits, kw)
    return FUSERS[name](z, **kw)


def fusion_weights(name: str, teacher_logits: torch.Tensor, **kw) -> torch.Tensor:
    """The (N, K) float64 per-example weights of a weighted-sum fuser, same arguments as ``fuse``.

    ``fuse(name, z, **kw) == sum_k fusion_weights(name, z, **kw)[:, k, None] * z[:, k]``.
    """
    if name in FUSERS and name not in WEIGHTS:
        raise ValueError(f"fuser {name!r} is not a weighted sum of the teachers' logits; fusers with "
                         f"weights: {', '.join(WEIGHTS)}")
    z, kw = _checked(name, teacher_logits, kw)
    return WEIGHTS[name](z, **kw)


def _checked(name: str, teacher_logits, kw: dict) -> tuple[torch.Tensor, dict]:
    """The logits (upcast to at least float32) and the arguments of a fuser call, validated."""
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
    n, k, c = z.shape
    kw = dict(kw)
    if "labels" in kw:
        kw["labels"] = _checked_labels(kw["labels"], n, c, z.device)
    if "progress" in kw:
        t = kw["progress"]
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 <= t <= 1:     # also refuses NaN
            raise ValueError(f"progress must be a number in [0, 1] (the fraction of training done), "
                             f"got {kw['progress']!r}")
        kw["progress"] = float(t)
    if "region_weights" in kw:
        w = torch.as_tensor(kw["region_weights"], dtype=torch.float64).to(z.device)
        if w.shape != (len(REGION_ORDER), k):
            raise ValueError(f"region_weights must have shape (3, K)=(3, {k}) (rows {', '.join(REGION_ORDER)}), "
                             f"got {tuple(w.shape)}")
        if not torch.isfinite(w).all() or (w < 0).any() or (w.sum(1) <= 0).any():
            raise ValueError("region_weights must be finite and >= 0 with every row summing to more than 0")
        kw["region_weights"] = w
    return z.to(torch.promote_types(z.dtype, torch.float32)), kw


def _checked_labels(labels, n: int, c: int, device) -> torch.Tensor:
    """Gold labels as a long tensor (N,) in [0, C), or a ValueError saying what is wrong."""
    if labels is None:
        raise ValueError("labels is None: this fuser needs the examples' gold labels (on unlabeled examples use "
                         "its label-free fallback, LABEL_FREE_FALLBACK)")
    y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.array(labels))   # a copy: never read-only
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"labels must have shape (N,)=({n},), got {tuple(y.shape)}")
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels must lie in [0, {c}) (C={c} classes), got values in [{int(y.min())}, {int(y.max())}]")
    return y.long().to(device)


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
