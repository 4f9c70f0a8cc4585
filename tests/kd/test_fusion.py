"""Every fuser on small tensors with hand-computed answers, the gate, and temperature fitting."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtkd.kd.fusion import (FUSER_KWARGS, FUSERS, GatingFusion, VOTE_EPS, best_per_sample_index,
                         fit_temperature, fuse)
from mtkd.kd.losses import kd_loss

# N=3 examples, K=2 teachers, C=2 classes: z[n, k] is teacher k's logits for example n.
Z = torch.tensor([
    [[2.0, 0.0], [0.0, 4.0]],
    [[0.0, 0.0], [1.0, -1.0]],
    [[5.0, 0.0], [1.0, 0.0]],
])


def _entropy(logits: list[float]) -> float:
    e = [math.exp(v) for v in logits]
    p = [v / sum(e) for v in e]
    return -sum(q * math.log(q) for q in p)


def close(a: torch.Tensor, b) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=1e-5, atol=1e-6)


def test_registry_and_kwargs_metadata():
    assert set(FUSERS) == {"average", "weighted", "best_per_sample", "gating", "calibrated_average",
                           "entropy_weighted", "majority_vote", "average_probs",
                           "ca_mkd", "ebkd", "curriculum", "region_weighted"}
    assert FUSER_KWARGS == {"weighted": ("weights",), "gating": ("gate_weights",),
                            "calibrated_average": ("temperatures",), "ca_mkd": ("labels",),
                            "curriculum": ("labels", "progress"), "region_weighted": ("region_weights",)}


def test_average():
    close(fuse("average", Z), [[1.0, 2.0], [0.5, -0.5], [3.0, 0.0]])


def test_weighted_is_normalised():
    expected = [[0.5, 3.0], [0.75, -0.75], [2.0, 0.0]]     # weights 1/4, 3/4
    close(fuse("weighted", Z, weights=[1, 3]), expected)
    close(fuse("weighted", Z, weights=[2.0, 6.0]), expected)
    close(fuse("weighted", Z, weights=np.array([0.0, 5.0])), Z[:, 1])


def test_best_per_sample():
    # row 0: margins 2 vs 4 -> teacher 1; row 1: uniform vs margin 2 -> teacher 1; row 2: 5 vs 1 -> teacher 0
    assert best_per_sample_index(Z).tolist() == [1, 1, 0]
    close(fuse("best_per_sample", Z), [[0.0, 4.0], [1.0, -1.0], [5.0, 0.0]])


def test_best_per_sample_ties_go_to_lower_index():
    v = torch.tensor([0.3, -1.2, 2.7, 0.9, 0.0, -0.4])
    same = torch.stack([v, v])[None]                          # identical teachers
    assert best_per_sample_index(same).tolist() == [0]
    shifted = torch.stack([v, v + 7.3])[None]                 # same softmax, different logits
    assert best_per_sample_index(shifted).tolist() == [0]
    close(fuse("best_per_sample", shifted), v[None])
    g = torch.Generator().manual_seed(0)
    for _ in range(50):                                       # equal entropy, different classes
        a, b = v[torch.randperm(6, generator=g)], v[torch.randperm(6, generator=g)]
        pair = torch.stack([torch.stack([a, b]), torch.stack([b, a])])
        assert best_per_sample_index(pair).tolist() == [0, 0]
    # a genuinely lower entropy in a later teacher still wins
    assert best_per_sample_index(torch.stack([v, 2 * v, v])[None]).tolist() == [1]


def test_gating():
    gate = [[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]]
    close(fuse("gating", Z, gate_weights=gate), [[2.0, 0.0], [0.5, -0.5], [2.0, 0.0]])


def test_calibrated_average():
    close(fuse("calibrated_average", Z, temperatures=[2.0, 4.0]),
          [[0.5, 0.5], [0.125, -0.125], [1.375, 0.0]])


def test_entropy_weighted():
    expected = []
    for row in Z.tolist():
        w = [math.exp(-_entropy(t)) for t in row]
        w = [x / sum(w) for x in w]
        expected.append([w[0] * row[0][c] + w[1] * row[1][c] for c in range(2)])
    close(fuse("entropy_weighted", Z), expected)
    # row 1: teacher 0 is uniform (weight e^-ln2 = 1/2 before normalising)
    h1 = _entropy([1.0, -1.0])
    w1 = math.exp(-h1) / (0.5 + math.exp(-h1))
    close(fuse("entropy_weighted", Z)[1], [w1, -w1])


def test_majority_vote_is_log_smoothed_share():
    z = torch.tensor([
        [[3.0, 1.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 4.0]],    # votes 0, 0, 2
        [[1.0, 1.0, 0.0], [0.0, 5.0, 5.0], [0.0, 0.0, 0.0]],    # ties inside a teacher: votes 0, 1, 0
    ])
    out = fuse("majority_vote", z)
    e = VOTE_EPS
    share = torch.tensor([[2 / 3, 0.0, 1 / 3], [2 / 3, 1 / 3, 0.0]])
    close(out, torch.log((share + e) / (1 + 3 * e)))
    close(torch.softmax(out, dim=1), (share + e) / (1 + 3 * e))


def test_average_probs_is_log_mean_probability():
    out = fuse("average_probs", Z)
    for n, row in enumerate(Z.tolist()):
        probs = [[math.exp(v) / sum(math.exp(u) for u in t) for v in t] for t in row]
        mean = [(probs[0][c] + probs[1][c]) / 2 for c in range(2)]
        close(out[n], [math.log(m) for m in mean])
    close(torch.softmax(out, dim=1).sum(1), [1.0, 1.0, 1.0])


KW = {"weighted": {"weights": [3.0]}, "gating": {"gate_weights": torch.ones(4, 1)},
      "calibrated_average": {"temperatures": [2.0]}, "ca_mkd": {"labels": [0, 5, 2, 3]},
      "curriculum": {"labels": [0, 5, 2, 3], "progress": 0.6}, "region_weighted": {"region_weights": [[1], [2], [3]]}}


@pytest.mark.parametrize("name", sorted(FUSERS))
def test_single_teacher_returns_the_teacher(name):
    t = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    out = fuse(name, t[:, None], **KW.get(name, {}))
    assert out.shape == (4, 6)
    if name == "calibrated_average":
        close(out, t / 2)
    elif name == "majority_vote":
        one_hot = torch.nn.functional.one_hot(t.argmax(1), 6).float()
        close(out, torch.log((one_hot + VOTE_EPS) / (1 + 6 * VOTE_EPS)))
    elif name == "average_probs":
        close(out, torch.log_softmax(t, dim=1))
    else:
        close(out, t)


@pytest.mark.parametrize("name", sorted(FUSERS))
def test_six_classes_many_teachers(name):
    z = torch.randn(5, 4, 6, generator=torch.Generator().manual_seed(2))
    kw = {"weighted": {"weights": [1, 2, 3, 4]}, "gating": {"gate_weights": torch.full((5, 4), 0.25)},
          "calibrated_average": {"temperatures": [1, 1, 1, 1]}, "ca_mkd": {"labels": [0, 1, 2, 3, 5]},
          "curriculum": {"labels": [0, 1, 2, 3, 5], "progress": 0.0},
          "region_weighted": {"region_weights": torch.ones(3, 4)}}.get(name, {})
    out = fuse(name, z, **kw)
    assert out.shape == (5, 6) and out.dtype == torch.float32 and torch.isfinite(out).all()
    if name in ("gating", "calibrated_average", "curriculum", "region_weighted"):
        close(out, z.mean(1))


def test_half_precision_is_upcast():
    assert fuse("average", Z.bfloat16()).dtype == torch.float32
    assert fuse("average", Z.double()).dtype == torch.float64


@pytest.mark.parametrize("name, z, kw, match", [
    ("nope", Z, {}, "unknown fuser 'nope'; known fusers: average, weighted"),
    ("average", Z[0], {}, r"shape \(N, K, C\)"),
    ("average", Z[:, :, :1], {}, "C >= 2"),
    ("average", Z[:, :0], {}, "K >= 1"),
    ("average", Z.long(), {}, "float tensor"),
    ("average", [[[1.0, 2.0]]], {}, "float tensor"),
    ("average", torch.where(Z == 5.0, float("nan"), Z), {}, "non-finite"),
    ("weighted", Z, {}, "needs the argument 'weights'"),
    ("gating", Z, {}, "needs the argument 'gate_weights'"),
    ("calibrated_average", Z, {}, "needs the argument 'temperatures'"),
    ("average", Z, {"weights": [1, 1]}, "takes no argument 'weights'"),
    ("weighted", Z, {"weights": [1, 1, 1]}, r"one value per teacher \(K=2\)"),
    ("weighted", Z, {"weights": [1, -1]}, ">= 0"),
    ("weighted", Z, {"weights": [0, 0]}, "not all be zero"),
    ("weighted", Z, {"weights": [1, float("nan")]}, "finite"),
    ("gating", Z, {"gate_weights": torch.ones(3, 3) / 3}, r"shape \(N, K\)=\(3, 2\)"),
    ("gating", Z, {"gate_weights": torch.ones(3, 2)}, "sum to 1"),
    ("calibrated_average", Z, {"temperatures": [1.0, 0.0]}, "> 0"),
    ("calibrated_average", Z, {"temperatures": [1.0]}, "one value per teacher"),
])
def test_fuse_errors(name, z, kw, match):
    with pytest.raises(ValueError, match=match):
        fuse(name, z, **kw)


def test_gating_module_shapes_start_and_gradients():
    torch.manual_seed(0)
    gate = GatingFusion(hidden_size=16, num_teachers=3, hidden=8)
    h, z = torch.randn(5, 16), torch.randn(5, 3, 4)
    fused, w = gate(h, z)
    assert fused.shape == (5, 4) and w.shape == (5, 3)
    close(w.sum(1), torch.ones(5))
    close(w, torch.full((5, 3), 1 / 3))                      # zero last layer: uniform weights
    close(fused, z.mean(1))                                  # ... so it starts as the average
    close(fused, fuse("gating", z, gate_weights=w.detach()))
    student = torch.randn(5, 4, requires_grad=True)
    kd_loss(student, fused, torch.tensor([0, 1, 2, 3, 0]), temperature=2.0, alpha=0.5).backward()
    last = gate.mlp[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    assert last.bias.grad.abs().sum() > 0
    # after one step the first layer learns too
    with torch.no_grad():
        last.weight.add_(0.1 * torch.randn_like(last.weight))
    gate.zero_grad()
    fused, w = gate(h, z)
    kd_loss(student, fused, torch.tensor([0, 1, 2, 3, 0]), alpha=1.0).backward()
    assert gate.mlp[0].weight.grad.abs().sum() > 0
    close(w.sum(1), torch.ones(5))


@pytest.mark.parametrize("h, z, match", [
    (torch.randn(5, 15), torch.randn(5, 3, 4), r"cls_hidden must have shape \(N, 16\)"),
    (torch.randn(5, 16), torch.randn(5, 2, 4), r"teacher_logits must have shape \(N, 3, C\)"),
    (torch.randn(4, 16), torch.randn(5, 3, 4), "4 rows but teacher_logits has 5"),
])
def test_gating_module_errors(h, z, match):
    with pytest.raises(ValueError, match=match):
        GatingFusion(16, 3)(h, z)


def test_fit_temperature_recovers_known_temperature():
    g = torch.Generator().manual_seed(0)
    z = 3.0 * torch.randn(20000, 4, generator=g)
    t_true = 2.5
    y = torch.multinomial(torch.softmax(z / t_true, dim=1), 1, generator=g)[:, 0]
    assert fit_temperature(z, y) == pytest.approx(t_true, rel=0.1)
    assert fit_temperature(z.numpy(), y.numpy()) == pytest.approx(fit_temperature(z, y))


def test_fit_temperature_sharpens_underconfident_logits():
    g = torch.Generator().manual_seed(1)
    z = 3.0 * torch.randn(20000, 3, generator=g)
    y = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g)[:, 0]
    assert fit_temperature(z / 4.0, y) == pytest.approx(0.25, rel=0.1)


@pytest.mark.parametrize("logits, labels, match", [
    (np.zeros(3), np.zeros(3, dtype=int), r"shape \(N, C\)"),
    (np.zeros((3, 2)), np.zeros(2, dtype=int), "labels must be integers of shape"),
    (np.zeros((3, 2)), np.zeros(3), "labels must be integers"),
    (np.full((3, 2), np.nan), np.zeros(3, dtype=int), "non-finite"),
    (np.zeros((3, 2)), np.array([0, 1, 2]), r"\[0, 2\)"),
])
def test_fit_temperature_errors(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)
