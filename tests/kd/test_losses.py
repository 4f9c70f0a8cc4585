"""kd_loss against hand-computed values and an independent numpy formula."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtkd.kd.losses import kd_loss


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference(s, t, y, temperature, alpha) -> float:
    """The loss written out in numpy: KL summed over classes, averaged over rows."""
    s, t, y = np.asarray(s, float), np.asarray(t, float), np.asarray(y)
    log_ps = _np_log_softmax(s / temperature)
    log_pt = _np_log_softmax(t / temperature)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=1).mean()
    ce = -_np_log_softmax(s)[np.arange(len(y)), y].mean()
    return alpha * temperature ** 2 * kl + (1 - alpha) * ce


def _t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


def test_hand_computed_single_row():
    # student uniform, teacher softmax = (3/4, 1/4) at T=1: KL = 3/4 ln(3/2) + 1/4 ln(1/2), CE = ln 2
    s, t, y = _t([[0.0, 0.0]]), _t([[math.log(3.0), 0.0]]), torch.tensor([0])
    kl1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(s, t, y, temperature=1.0, alpha=1.0).item() == pytest.approx(kl1, rel=1e-6)
    assert kd_loss(s, t, y, temperature=1.0, alpha=0.5).item() == pytest.approx(0.5 * kl1 + 0.5 * math.log(2), rel=1e-6)
    # at T=2 the teacher's probabilities are sqrt(3)/(sqrt(3)+1) and 1/(sqrt(3)+1); the factor T^2 = 4
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    kl2 = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    assert kd_loss(s, t, y, temperature=2.0, alpha=1.0).item() == pytest.approx(4 * kl2, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 6.0])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("case", [
    ([[1.0, -1.0], [0.5, 2.0]], [[2.0, 0.0], [-1.0, 1.0]], [0, 1]),
    ([[0.2, -1.3, 2.0], [1.0, 1.0, 1.0], [-3.0, 0.5, 0.1]],
     [[1.5, 0.0, -2.0], [0.3, 2.2, -0.7], [4.0, -4.0, 0.0]], [2, 0, 1]),
])
def test_matches_numpy_formula(case, temperature, alpha):
    s, t, y = case
    got = kd_loss(_t(s), _t(t), torch.tensor(y), temperature=temperature, alpha=alpha).item()
    assert got == pytest.approx(reference(s, t, y, temperature, alpha), rel=1e-5, abs=1e-6)


def test_alpha_zero_and_no_teacher_are_plain_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    ce = F.cross_entropy(s, y)
    assert torch.equal(kd_loss(s, t, y, alpha=0.0), ce)
    assert torch.equal(kd_loss(s, None, y, temperature=3.0, alpha=0.7), ce)


def test_temperature_squared_factor():
    # scaling both logits by T makes the soft targets at T equal those at 1, so only T^2 remains
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    base = kd_loss(s, t, y, temperature=1.0, alpha=1.0)
    for temperature in (2.0, 6.0):
        scaled = kd_loss(s * temperature, t * temperature, y, temperature=temperature, alpha=1.0)
        assert scaled.item() == pytest.approx(temperature ** 2 * base.item(), rel=1e-5)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b: kd_loss(a, b, y, temperature=2.0, alpha=0.6), (s, t))


def test_bf16_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 3, generator=g).bfloat16(), torch.randn(5, 3, generator=g).bfloat16()
    y = torch.tensor([0, 1, 2, 1, 0])
    out = kd_loss(s, t, y, temperature=6.0, alpha=0.7)
    assert out.dtype == torch.float32
    expected = reference(s.float().numpy(), t.float().numpy(), y.numpy(), 6.0, 0.7)
    assert out.item() == pytest.approx(expected, rel=1e-5)


S = torch.zeros(2, 3)
Y = torch.tensor([0, 2])


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.zeros(3), S, Y), {}, "student_logits must be 2-D"),
    ((S, torch.zeros(2, 3, 1), Y), {}, "teacher_logits must be 2-D"),
    ((S, torch.zeros(2, 4), Y), {}, "does not match"),
    ((S, S, Y.float()), {}, "labels must be a 1-D long tensor"),
    ((S, S, Y[None]), {}, "labels must be a 1-D long tensor"),
    ((S, S, torch.tensor([0, 1, 2])), {}, "labels has 3 entries"),
    ((S, S, torch.tensor([0, 3])), {}, r"labels must lie in \[0, 3\)"),
    ((S, S, torch.tensor([-1, 0])), {}, r"labels must lie in \[0, 3\)"),
    ((torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), S, Y), {}, "student_logits has non-finite"),
    ((S, torch.tensor([[0.0, float("inf"), 0.0], [0.0, 0.0, 0.0]]), Y), {}, "teacher_logits has non-finite"),
    ((S, S, Y), {"temperature": 0.0}, "temperature must be"),
    ((S, S, Y), {"temperature": -2.0}, "temperature must be"),
    ((S, S, Y), {"alpha": -0.1}, r"alpha must lie in \[0, 1\]"),
    ((S, S, Y), {"alpha": 1.5}, r"alpha must lie in \[0, 1\]"),
    ((torch.zeros(0, 3), None, torch.zeros(0, dtype=torch.long)), {}, "empty"),
    ((torch.zeros(2, 3, dtype=torch.long), S, Y), {}, "student_logits must be a float tensor"),
])
def test_value_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kd_loss(*args, **kwargs)
