"""ca_mkd, ebkd, curriculum and region_weighted on examples worked out by hand, their errors, and the
training loop passing the progress to a scheduled fuser."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtkd.kd.fusion import FUSER_KWARGS, FUSERS, LABEL_FREE_FALLBACK, WEIGHTS, fuse, fusion_weights
from mtkd.kd.loop import KDTarget, TrainConfig, encode, fit

LN2, LN3 = math.log(2), math.log(3)
Q, H = 0.25, 0.5
# K=3 teachers, C=3 classes; logits are log-probabilities, so softmax gives back these probabilities.
P = np.array([
    [[H, Q, Q], [Q, H, Q], [Q, Q, H]],          # teacher k puts 1/2 on class k
    [[H, Q, Q], [Q, H, Q], [Q, Q, H]],
    [[1 / 3, 1 / 3, 1 / 3], [H, Q, Q], [Q, H, Q]],   # uniform, then two teachers at 1/2
])
Z = torch.tensor(np.log(P), dtype=torch.float32)
Y = [0, 1, 2]


def close(a, b, atol=1e-6) -> None:
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               rtol=1e-5, atol=atol)


def expected_ca_mkd_weights() -> np.ndarray:
    # row 0, label 0: CE = (ln 2, ln 4, ln 4), exp = (2, 4, 4): softmax (0.2, 0.4, 0.4) -> w = (0.4, 0.3, 0.3)
    # row 1, label 1: CE = (ln 4, ln 2, ln 4) -> w = (0.3, 0.4, 0.3)
    # row 2, label 2: CE = (ln 3, ln 4, ln 4), exp = (3, 4, 4): softmax (3/11, 4/11, 4/11) -> w = (4/11, 7/22, 7/22)
    return np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [4 / 11, 7 / 22, 7 / 22]])


def test_ca_mkd_weights_and_target_by_hand():
    w = expected_ca_mkd_weights()
    close(fusion_weights("ca_mkd", Z, labels=Y), w)
    # row 0's target: class 0: 0.4 ln(1/2) + 0.6 ln(1/4) = -1.6 ln 2; classes 1, 2: 0.4 ln(1/4) + 0.3 ln(1/2)
    # + 0.3 ln(1/4) = -1.7 ln 2
    out = fuse("ca_mkd", Z, labels=torch.tensor(Y))
    close(out[0], [-1.6 * LN2, -1.7 * LN2, -1.7 * LN2], atol=1e-5)
    close(out, np.einsum("nk,nkc->nc", w, np.log(P)), atol=1e-5)


def test_ca_mkd_favours_the_teacher_right_on_the_label():
    z = torch.tensor([[[4.0, 0.0], [0.0, 4.0]]])
    w0 = fusion_weights("ca_mkd", z, labels=[0])[0]
    w1 = fusion_weights("ca_mkd", z, labels=[1])[0]
    assert w0[0] > w0[1] and w1[1] > w1[0]
    # K=2: w_k = 1 - softmax_k(CE) = softmax over the *other* teacher's CE; CE_0 = ln(1+e^-4), CE_1 = ln(1+e^4)
    ce = np.log1p(np.exp([-4.0, 4.0]))
    close(w0, np.exp(ce[::-1]) / np.exp(ce).sum())


def test_ebkd_weights_by_hand():
    # rows 0, 1: three teachers with the same entropy (permutations): 1/3 each
    # row 2: H = (ln 3, 1.5 ln 2, 1.5 ln 2), S = ln 3 + 3 ln 2; w_k = (1 - H_k / S) / 2
    s = LN3 + 3 * LN2
    row2 = [(1 - LN3 / s) / 2, (1 - 1.5 * LN2 / s) / 2, (1 - 1.5 * LN2 / s) / 2]
    w = fusion_weights("ebkd", Z)
    close(w, [[1 / 3] * 3, [1 / 3] * 3, row2])
    assert w[2, 0] < w[2, 1]                 # the uniform teacher is the least certain, so it gets the least
    close(fuse("ebkd", Z)[2], np.einsum("k,kc->c", np.array(row2), np.log(P[2])), atol=1e-5)


def test_ties_give_uniform_weights():
    same = torch.tensor([[[1.0, -2.0, 0.5]] * 3])
    close(fusion_weights("ca_mkd", same, labels=[1]), [[1 / 3] * 3])
    close(fusion_weights("ebkd", same), [[1 / 3] * 3])
    certain = torch.tensor([[[1000.0, 0.0], [0.0, 1000.0]]])        # every entropy exactly zero
    close(fusion_weights("ebkd", certain), [[0.5, 0.5]])


@pytest.mark.parametrize("name, kw", [("ca_mkd", {"labels": [1, 0]}), ("ebkd", {}),
                                      ("curriculum", {"labels": [1, 0], "progress": 0.3})])
def test_one_teacher_weight_is_one(name, kw):
    z = torch.tensor([[[2.0, -1.0]], [[0.5, 0.25]]])
    close(fusion_weights(name, z, **kw), [[1.0], [1.0]])
    close(fuse(name, z, **kw), z[:, 0])


def test_curriculum_moves_from_average_to_ca_mkd():
    close(fuse("curriculum", Z, labels=Y, progress=0.0), np.log(P).mean(1), atol=1e-5)
    w = expected_ca_mkd_weights()
    close(fuse("curriculum", Z, labels=Y, progress=1.0), np.einsum("nk,nkc->nc", w, np.log(P)), atol=1e-5)
    close(fusion_weights("curriculum", Z, labels=Y, progress=0.25), 0.75 / 3 + 0.25 * w)


def test_region_weighted_on_each_region():
    z = torch.tensor([
        [[3.0, 0.0, 0.0], [2.0, 1.0, 0.0], [1.0, 0.0, 0.0]],     # argmax 0, 0, 0: all_agree
        [[3.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 1.0, 0.0]],     # 0, 0, 1: partial
        [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]],     # 0, 1, 2: full_disagree
    ])
    W = [[1.0, 1.0, 2.0], [3.0, 1.0, 0.0], [0.0, 0.0, 5.0]]
    expected_w = [[0.25, 0.25, 0.5], [0.75, 0.25, 0.0], [0.0, 0.0, 1.0]]
    close(fusion_weights("region_weighted", z, region_weights=W), expected_w)
    close(fuse("region_weighted", z, region_weights=torch.tensor(W)),
          np.einsum("nk,nkc->nc", np.array(expected_w), z.numpy()), atol=1e-6)


def test_region_weighted_two_teachers_never_full():
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [2.0, 0.0]]])     # disagree, agree
    W = [[1.0, 3.0], [1.0, 1.0], [0.0, 1.0]]
    close(fusion_weights("region_weighted", z, region_weights=W), [[0.5, 0.5], [0.25, 0.75]])


def test_every_weighted_sum_fuser_is_its_weights_times_the_logits():
    z = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(3))
    y = [0, 1, 2, 3, 0, 1]
    kw = {"weighted": {"weights": [1, 2, 5]}, "ca_mkd": {"labels": y}, "curriculum": {"labels": y, "progress": 0.4},
          "region_weighted": {"region_weights": [[1, 2, 3], [3, 2, 1], [1, 1, 1]]}}
    for name in WEIGHTS:
        w = fusion_weights(name, z, **kw.get(name, {})).numpy()
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-9)
        np.testing.assert_allclose(fuse(name, z, **kw.get(name, {})).numpy(),
                                   np.einsum("nk,nkc->nc", w, z.numpy()), atol=1e-5)


def test_label_free_fallback_covers_every_label_aware_fuser_and_needs_no_labels():
    label_aware = {name for name, args in FUSER_KWARGS.items() if "labels" in args}
    assert set(LABEL_FREE_FALLBACK) == label_aware
    for fallback in LABEL_FREE_FALLBACK.values():
        assert "labels" not in FUSER_KWARGS.get(fallback, ())


Z2 = torch.zeros(2, 3, 3)


@pytest.mark.parametrize("name, kw, match", [
    ("ca_mkd", {}, "needs the argument 'labels'"),
    ("ca_mkd", {"labels": None}, "needs the examples' gold labels"),
    ("ca_mkd", {"labels": [0, 3]}, r"labels must lie in \[0, 3\)"),
    ("ca_mkd", {"labels": [-1, 0]}, r"labels must lie in \[0, 3\)"),
    ("ca_mkd", {"labels": [0, 1, 2]}, r"shape \(N,\)=\(2,\)"),
    ("ca_mkd", {"labels": [0.0, 1.0]}, "integers"),
    ("curriculum", {"labels": [0, 1]}, "needs the argument 'progress'"),
    ("curriculum", {"labels": [0, 1], "progress": 1.5}, r"progress must be a number in \[0, 1\]"),
    ("curriculum", {"labels": [0, 1], "progress": -0.1}, r"progress must be a number in \[0, 1\]"),
    ("curriculum", {"labels": [0, 1], "progress": float("nan")}, r"progress must be a number in \[0, 1\]"),
    ("curriculum", {"labels": [0, 1], "progress": "half"}, r"progress must be a number in \[0, 1\]"),
    ("curriculum", {"labels": [0, 7], "progress": 0.5}, r"labels must lie in \[0, 3\)"),
    ("ebkd", {"labels": [0, 1]}, "takes no argument 'labels'"),
    ("region_weighted", {}, "needs the argument 'region_weights'"),
    ("region_weighted", {"region_weights": torch.ones(3, 2)}, r"shape \(3, K\)=\(3, 3\)"),
    ("region_weighted", {"region_weights": torch.ones(2, 3)}, r"shape \(3, K\)=\(3, 3\)"),
    ("region_weighted", {"region_weights": [[1, 1, 1], [1, -1, 1], [1, 1, 1]]}, ">= 0"),
    ("region_weighted", {"region_weights": [[1, 1, 1], [0, 0, 0], [1, 1, 1]]}, "every row summing"),
    ("region_weighted", {"region_weights": [[1, 1, 1], [1, float("inf"), 1], [1, 1, 1]]}, "finite"),
])
def test_errors(name, kw, match):
    with pytest.raises(ValueError, match=match):
        fuse(name, Z2, **kw)


def test_weights_of_a_fuser_that_is_not_a_weighted_sum():
    with pytest.raises(ValueError, match="not a weighted sum"):
        fusion_weights("majority_vote", Z2)


# ---------------------------------------------------------------- the loop passes the progress

def _toy(n=64):
    import pandas as pd
    from mtkd.data import models
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    frame = pd.DataFrame({"text": [("good fun" if y else "bad dull") + " movie" for y in labels]})
    spec = models.resolve("tiny-bert")
    tok = models.load_tokenizer(spec, train_texts=frame["text"].tolist())
    model = models.load_classifier(spec, ["neg", "pos"], layers=1, seed=0, vocab_size=len(tok))
    return model, encode(tok, frame, ["text"], 8), labels


def test_fit_passes_the_fraction_of_steps_done_to_a_scheduled_fuser(monkeypatch):
    model, enc, labels = _toy()
    seen = []
    original = FUSERS["curriculum"]

    def recording(z, labels, progress):
        seen.append((progress, len(z), z[:, 0, 0].long().tolist(), labels.tolist()))
        return original(z, labels, progress)

    monkeypatch.setitem(FUSERS, "curriculum", recording)
    z = torch.randn(len(enc), 3, 2, generator=torch.Generator().manual_seed(0))
    z[:, 0, 0] = torch.arange(len(enc))                     # so each call shows which rows it got
    target = KDTarget(4.0, 0.7, teacher_logits=z, fuser="curriculum", fuser_kwargs={"labels": labels})
    info = fit(model, enc, labels, TrainConfig(epochs=2, lr=1e-3, batch_size=16), 0, device=torch.device("cpu"),
               dtype=None, target=target)
    total = 2 * 4                                            # 64 examples / 16 per batch, two epochs
    assert info["steps"] == total
    check, steps = seen[0], seen[1:]                          # the target is checked once on all rows at t = 0
    assert check[:2] == (0.0, 64)
    assert [t for t, _, _, _ in steps] == [s / total for s in range(total)]
    assert all(n == 16 for _, n, _, _ in steps)
    for _, _, rows, ys in steps:                              # each row gets its own label
        assert ys == labels[rows].tolist()
    assert sorted(r for _, _, rows, _ in steps[:4] for r in rows) == list(range(64))     # an epoch sees every row


@pytest.mark.parametrize("kw, match", [
    ({"fuser": "ca_mkd", "fuser_kwargs": {"labels": np.zeros(64, dtype=int)}}, "does not take the training progress"),
    ({"fuser": "curriculum", "fuser_kwargs": {"labels": np.full(64, 2)}}, r"labels must lie in \[0, 2\)"),
    ({"fuser": "curriculum", "fuser_kwargs": {"labels": np.zeros(64, dtype=int), "progress": 0.5}},
     "must not hold progress"),
    ({"fuser": "curriculum", "fuser_kwargs": {}}, "needs the argument 'labels'"),
])
def test_a_bad_scheduled_target_is_refused_before_training(kw, match):
    model, enc, labels = _toy()
    z = torch.zeros(len(enc), 3, 2)
    with pytest.raises(ValueError, match=match):
        fit(model, enc, labels, TrainConfig(epochs=1, lr=1e-3, batch_size=16), 0, device=torch.device("cpu"),
            dtype=None, target=KDTarget(4.0, 0.7, teacher_logits=z, **kw))


def test_a_target_with_a_fuser_and_fixed_logits_is_refused():
    with pytest.raises(ValueError, match="exactly one of"):
        KDTarget(4.0, 0.7, logits=torch.zeros(4, 2), teacher_logits=torch.zeros(4, 3, 2),
                 fuser="curriculum").check(4, 2)
