"""The distillation loss of the study (Hinton et al. 2015), one formula for every student.

    L = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

The KL term is summed over classes and averaged over the batch ("batchmean"),
CE is averaged over the batch. The T^2 factor keeps the gradient of the soft
term on the same scale as the hard term when T changes, so a (T, alpha) sweep
compares like with like. Half-precision inputs are upcast to float32 first:
bf16 softmaxes at T = 6 lose most of the soft-target signal.

Unlabeled rows (a transfer set: label ``UNLABELED``) learn from the KD term only. With
L the labeled rows of a batch of N,

    L = alpha * T^2 * (1/N) sum_{i<N} KL_i + (1 - alpha) * (1/|L|) sum_{i in L} CE_i

(the CE term is 0 when |L| = 0), so a batch of labeled rows only gives the formula above.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The label of a row without one (a transfer example): it joins the KD term only. -100 is also
# F.cross_entropy's default ignore_index, so such a row can never be read as a class.
UNLABELED = -100


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_logits(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor (N, C), got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, C), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has non-finite values (NaN or inf)")


def check_labels(labels: torch.Tensor, n: int, c: int, has_target: bool = False) -> None:
    """Labels (N,) in [0, C); ``UNLABELED`` rows too when ``has_target`` (a KD term they can learn from)."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a 1-D long tensor (N,), got {type(labels).__name__}")
    if labels.dtype != torch.long or labels.dim() != 1:
        raise ValueError(f"labels must be a 1-D long tensor (N,), got {labels.dtype} shape {tuple(labels.shape)}")
    if n == 0:
        raise ValueError("the batch is empty (N=0): the batch-averaged loss is undefined")
    if labels.numel() != n:
        raise ValueError(f"labels has {labels.numel()} entries but the logits have N={n} rows")
    unlabeled = labels == UNLABELED
    if unlabeled.any() and not has_target:
        raise ValueError(f"{int(unlabeled.sum())} rows are UNLABELED ({UNLABELED}): unlabeled rows need a KD "
                         "target (teacher logits and alpha > 0), they learn from the KD term only")
    labeled = labels[~unlabeled]
    if labeled.numel() and (labeled.min() < 0 or labeled.max() >= c):
        raise ValueError(f"labels must lie in [0, {c}) (or be UNLABELED={UNLABELED} with a KD target), got "
                         f"values in [{int(labeled.min())}, {int(labeled.max())}]")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
            temperature: float = 6.0, alpha: float = 0.7) -> torch.Tensor:
    """The KD loss above; plain CE when ``alpha == 0`` or there is no teacher.

    ``teacher_logits`` is not detached: a gate that produces the fused target
    (``GatingFusion``) learns through this loss. Pass detached logits for a fixed target.
    ``labels`` may hold ``UNLABELED`` rows when there is a KD term (a teacher and alpha > 0).
    """
    _check_logits("student_logits", student_logits)
    n, c = student_logits.shape
    check_labels(labels, n, c, has_target=teacher_logits is not None and alpha > 0)
    if teacher_logits is not None:
        _check_logits("teacher_logits", teacher_logits)
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(f"teacher_logits shape {tuple(teacher_logits.shape)} does not match "
                             f"student_logits shape {tuple(student_logits.shape)}")
    check_temperature_alpha(temperature, alpha)
    return kd_loss_unchecked(student_logits, teacher_logits, labels, temperature, alpha,
                             partly_unlabeled=bool((labels == UNLABELED).any()))


def check_temperature_alpha(temperature: float, alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")


def kd_loss_unchecked(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                      temperature: float, alpha: float, partly_unlabeled: bool = False) -> torch.Tensor:
    """``kd_loss`` without its input checks, for the training loop: it validates its target once before
    training, and each check here would be a device-to-host sync at every step on a GPU.

    ``partly_unlabeled`` (known before training: does the training set hold UNLABELED rows?) takes the
    CE over the labeled rows of the batch, summed and divided on the device (0 when there are none);
    without it the CE is exactly ``F.cross_entropy``'s batch mean, as before transfer sets existed."""
    s = _upcast(student_logits)
    if partly_unlabeled:          # UNLABELED is cross_entropy's ignore_index: those rows add 0 to the sum
        labeled = (labels != UNLABELED).sum().clamp(min=1)
        ce = F.cross_entropy(s, labels, ignore_index=UNLABELED, reduction="sum") / labeled
    else:
        ce = F.cross_entropy(s, labels)
    if teacher_logits is None or alpha == 0:
        return ce
    log_p_student = F.log_softmax(s / temperature, dim=-1)
    log_p_teacher = F.log_softmax(_upcast(teacher_logits) / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * kl + (1.0 - alpha) * ce
