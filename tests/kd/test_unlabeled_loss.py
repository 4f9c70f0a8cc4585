"""Unlabeled (transfer) rows in the KD loss and the loop: CE over the labeled rows only, KD over all."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mtkd.data import models
from mtkd.kd.loop import KDTarget, TrainConfig, concat, encode, fit
from mtkd.kd.losses import UNLABELED, check_labels, kd_loss, kd_loss_unchecked

CPU = torch.device("cpu")


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference(s, t, y, temperature, alpha) -> float:
    """KL summed over classes and averaged over every row; CE averaged over the labeled rows (0 if none)."""
    s, t, y = np.asarray(s, float), np.asarray(t, float), np.asarray(y)
    log_ps, log_pt = _np_log_softmax(s / temperature), _np_log_softmax(t / temperature)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=1).mean()
    labeled = np.flatnonzero(y != UNLABELED)
    ce = -_np_log_softmax(s)[labeled, y[labeled]].mean() if len(labeled) else 0.0
    return alpha * temperature ** 2 * kl + (1 - alpha) * ce


def test_sentinel_is_minus_100():
    assert UNLABELED == -100


def test_hand_computed_one_labeled_one_unlabeled_row():
    # row 0: student (1, 0), label 0; row 1: student uniform, unlabeled. Teachers (ln 3, 0) and (0, ln 3), T = 1.
    s = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    y = torch.tensor([0, UNLABELED])
    p0 = 1 / (1 + math.exp(-1))                                   # the student's softmax of row 0: (p0, 1 - p0)
    kl0 = 0.75 * math.log(0.75 / p0) + 0.25 * math.log(0.25 / (1 - p0))
    kl1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    ce0 = -math.log(p0)                                           # the labeled row alone: not halved
    want = 0.4 * (kl0 + kl1) / 2 + 0.6 * ce0
    assert kd_loss(s, t, y, temperature=1.0, alpha=0.4).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_matches_numpy_with_a_mix_of_rows(temperature, alpha):
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g) * 2
    y = torch.tensor([2, UNLABELED, 0, UNLABELED, UNLABELED, 3, 1])
    got = kd_loss(s, t, y, temperature=temperature, alpha=alpha).item()
    assert got == pytest.approx(reference(s.numpy(), t.numpy(), y.numpy(), temperature, alpha), rel=1e-5)


def test_an_all_unlabeled_batch_is_the_kd_term_alone_and_finite():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(5, 3, generator=g, requires_grad=True)
    t = torch.randn(5, 3, generator=g)
    y = torch.full((5,), UNLABELED)
    loss = kd_loss_unchecked(s, t, y, 2.0, 0.7, partly_unlabeled=True)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference(s.detach().numpy(), t.numpy(), y.numpy(), 2.0, 0.7), rel=1e-6)
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_an_unlabeled_row_gets_the_kd_gradient_only():
    """d L / d s_i of an unlabeled row = alpha * T / N * (softmax(s_i / T) - softmax(t_i / T))."""
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 3, generator=g, requires_grad=True)
    t = torch.randn(4, 3, generator=g)
    y = torch.tensor([1, UNLABELED, 0, 2])
    temperature, alpha = 2.5, 0.6
    kd_loss(s, t, y, temperature=temperature, alpha=alpha).backward()
    sn, tn = s.detach().numpy().astype(float), t.numpy().astype(float)
    want = alpha * temperature / 4 * (np.exp(_np_log_softmax(sn / temperature))[1]
                                      - np.exp(_np_log_softmax(tn / temperature))[1])
    np.testing.assert_allclose(s.grad[1].numpy(), want, rtol=1e-5, atol=1e-7)


def test_no_unlabeled_row_is_bit_identical_to_the_formula_of_before():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 5, generator=g), torch.randn(16, 5, generator=g)
    y = torch.randint(0, 5, (16,), generator=g)
    temperature, alpha = 6.0, 0.7
    before = (alpha * temperature ** 2 * F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                                                  reduction="batchmean", log_target=True)
              + (1 - alpha) * F.cross_entropy(s, y))
    assert torch.equal(kd_loss(s, t, y, temperature=temperature, alpha=alpha), before)
    assert torch.equal(kd_loss(s, None, y), F.cross_entropy(s, y))
    # the masked path on fully labeled rows is the same number up to rounding
    masked = kd_loss_unchecked(s, t, y, temperature, alpha, partly_unlabeled=True)
    assert masked.item() == pytest.approx(before.item(), rel=1e-6)


@pytest.mark.parametrize("teacher, alpha", [(None, 0.7), ("same", 0.0)])
def test_unlabeled_rows_without_a_kd_term_are_refused(teacher, alpha):
    s = torch.zeros(3, 2)
    y = torch.tensor([0, UNLABELED, 1])
    with pytest.raises(ValueError, match="unlabeled rows need a KD target"):
        kd_loss(s, s if teacher else None, y, alpha=alpha)
    with pytest.raises(ValueError, match="unlabeled rows need a KD target"):
        check_labels(y, 3, 2)
    check_labels(y, 3, 2, has_target=True)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        check_labels(torch.tensor([0, -1, 1]), 3, 2, has_target=True)     # only -100 means unlabeled


def _toy(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = {0: ["awful", "dull"], 1: ["great", "fun"]}
    labels = rng.integers(0, 2, n)
    return pd.DataFrame({"text": [" ".join(["the", "film", *rng.choice(words[y], 2)]) for y in labels],
                         "label": labels})


def test_fit_learns_from_unlabeled_rows_and_refuses_them_without_a_target():
    train, pool = _toy(32, 0), _toy(48, 1)
    spec = models.resolve("tiny-bert")
    tok = models.load_tokenizer(spec, train_texts=train["text"].tolist())
    enc = concat(encode(tok, train, ["text"], 16), encode(tok, pool, ["text"], 16))
    assert len(enc) == 80 and enc.input_ids[32].tolist() == encode(tok, pool.iloc[:1], ["text"], 16).input_ids[0].tolist()
    labels = np.concatenate([train["label"].to_numpy(), np.full(48, UNLABELED)])
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=16)
    model = models.load_classifier(spec, ["neg", "pos"], layers=1, seed=0, vocab_size=len(tok))
    with pytest.raises(ValueError, match="unlabeled rows need a KD target"):
        fit(model, enc, labels, cfg, 0, device=CPU, dtype=None)
    z = torch.randn(80, 2, generator=torch.Generator().manual_seed(0))
    info = fit(model, enc, labels, cfg, 0, device=CPU, dtype=None, target=KDTarget(2.0, 0.7, logits=z))
    assert info["steps"] == 5 and all(math.isfinite(h["loss"]) for h in info["history"])
    assert len(enc.head(40)) == 40 and enc.head(40).input_ids[39] is enc.input_ids[39]
