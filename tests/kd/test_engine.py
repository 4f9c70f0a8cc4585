"""The training engine learns for real, distils for real, and is deterministic."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from mtkd.data import models
from mtkd.kd.fusion import GatingFusion
from mtkd.kd.cpu import CpuDropout, cpu_kernels, keep_mask
from mtkd.kd.heads import MeanPooler, sentence_features, use_mean_pooling
from mtkd.kd.loop import KDTarget, TrainConfig, encode, fit, length_batches, predict

CPU = torch.device("cpu")
WORDS = {0: ["awful", "bad", "boring", "dull"], 1: ["great", "good", "lovely", "fun"]}


def toy_frame(n: int, seed: int) -> pd.DataFrame:
    """Trivially separable: the label decides which words appear, filler words carry no signal."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    filler = ["the", "movie", "was", "quite", "a", "plot", "and", "it"]
    texts = [" ".join(rng.choice(filler, 4).tolist() + rng.choice(WORDS[y], 2).tolist()) for y in labels]
    return pd.DataFrame({"idx": np.arange(n), "text": texts, "label": labels})


def tiny(frame: pd.DataFrame, seed: int = 0, layers: int = 2):
    spec = models.resolve("tiny-bert")
    tok = models.load_tokenizer(spec, train_texts=frame["text"].tolist())
    return tok, models.load_classifier(spec, ["neg", "pos"], layers=layers, seed=seed, vocab_size=len(tok))


def train_teacher(train: pd.DataFrame, seed: int = 0):
    tok, model = tiny(train, seed)
    enc = encode(tok, train, ["text"], 16)
    fit(model, enc, train["label"].to_numpy(), TrainConfig(epochs=4, lr=1e-3, batch_size=32), seed,
        device=CPU, dtype=None)
    return tok, model


def test_fine_tuning_learns_a_separable_task():
    train, test = toy_frame(600, 0), toy_frame(200, 1)
    tok, model = train_teacher(train)
    z = predict(model, encode(tok, test, ["text"], 16), device=CPU, dtype=None)
    assert (z.argmax(1) == test["label"].to_numpy()).mean() > 0.95


def test_student_distilled_from_a_fixed_teacher_agrees_with_it():
    train, test = toy_frame(600, 0), toy_frame(300, 2)
    tok, teacher = train_teacher(train)
    z_train = predict(teacher, encode(tok, train, ["text"], 16), device=CPU, dtype=None)
    z_test = predict(teacher, encode(tok, test, ["text"], 16), device=CPU, dtype=None)
    # the student never sees the gold labels (alpha=1): whatever it learns comes from the teacher
    stok, student = tiny(train, seed=1, layers=1)
    target = KDTarget(temperature=2.0, alpha=1.0, logits=torch.from_numpy(z_train))
    fit(student, encode(stok, train, ["text"], 16), train["label"].to_numpy(),
        TrainConfig(epochs=4, lr=1e-3, batch_size=32), 1, device=CPU, dtype=None, target=target)
    s_test = predict(student, encode(stok, test, ["text"], 16), device=CPU, dtype=None)
    assert (s_test.argmax(1) == z_test.argmax(1)).mean() > 0.90


def test_gating_student_trains_its_gate():
    train = toy_frame(200, 0)
    tok, student = tiny(train, seed=0, layers=1)
    z = torch.randn(len(train), 3, 2)
    gate = GatingFusion(student.config.hidden_size, 3, hidden=8)
    before = [p.detach().clone() for p in gate.parameters()]
    fit(student, encode(tok, train, ["text"], 16), train["label"].to_numpy(),
        TrainConfig(epochs=1, lr=1e-2, batch_size=32), 0, device=CPU, dtype=None,
        target=KDTarget(temperature=4.0, alpha=0.7, teacher_logits=z, gate=gate))
    assert any(not torch.equal(a, b) for a, b in zip(before, gate.parameters()))


def test_same_seed_same_predictions():
    train, test = toy_frame(300, 0), toy_frame(100, 3)

    def once():
        tok, model = tiny(train, seed=5)
        fit(model, encode(tok, train, ["text"], 16), train["label"].to_numpy(),
            TrainConfig(epochs=2, lr=1e-3, batch_size=16), 5, device=CPU, dtype=None)
        return predict(model, encode(tok, test, ["text"], 16), device=CPU, dtype=None)

    assert np.array_equal(once(), once())


def test_length_batches_cover_every_example_once_and_group_lengths():
    lengths = np.random.default_rng(0).integers(3, 60, 1000)
    for seed in (None, 1):
        batches = length_batches(lengths, 32, seed=seed)
        rows = np.concatenate(batches)
        assert sorted(rows.tolist()) == list(range(1000))
    sorted_batches = length_batches(lengths, 32)
    pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in sorted_batches)
    assert pad < 0.05 * lengths.sum()          # sorted batches waste (almost) no padding
    assert length_batches(lengths, 32, seed=1)[0].tolist() != length_batches(lengths, 32, seed=2)[0].tolist()


def test_epoch_checkpoint_resume_is_identical(tmp_path, monkeypatch):
    """A run that dies during epoch 2 and is resumed from its checkpoint ends exactly like an uninterrupted one."""
    import mtkd.kd.loop as train_mod
    train, test = toy_frame(200, 0), toy_frame(80, 4)
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=16)
    tok, model = tiny(train, seed=3)
    enc, y = encode(tok, train, ["text"], 16), train["label"].to_numpy()
    fit(model, enc, y, cfg, 3, device=CPU, dtype=None)
    reference = predict(model, encode(tok, test, ["text"], 16), device=CPU, dtype=None)

    real = train_mod.length_batches
    calls = []

    def dies_in_epoch_two(lengths, batch_size, seed=None):
        calls.append(seed)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(lengths, batch_size, seed)

    monkeypatch.setattr(train_mod, "length_batches", dies_in_epoch_two)
    _, first = tiny(train, seed=3)
    try:
        fit(first, enc, y, cfg, 3, device=CPU, dtype=None, checkpoint_dir=tmp_path)
    except RuntimeError as e:
        assert "killed" in str(e)
    assert (tmp_path / "last_epoch.pt").exists()
    monkeypatch.setattr(train_mod, "length_batches", real)
    _, resumed = tiny(train, seed=99)          # a different init: everything must come from the checkpoint
    fit(resumed, enc, y, cfg, 3, device=CPU, dtype=None, checkpoint_dir=tmp_path)
    assert not (tmp_path / "last_epoch.pt").exists()
    assert np.array_equal(predict(resumed, encode(tok, test, ["text"], 16), device=CPU, dtype=None), reference)


def test_linear_teachers_reload_exactly_for_many_classes(tmp_path):
    """TF-IDF teachers are saved (safetensors + vocabulary) and reloaded to the same probabilities as sklearn's."""
    from mtkd.data.tasks import Task
    from mtkd.study.teachers import Context, fit_teacher, teacher_logits
    rng = np.random.default_rng(0)
    words = {c: [f"w{c}a", f"w{c}b", f"w{c}c"] for c in range(4)}
    labels = rng.integers(0, 4, 240)
    texts = [" ".join(rng.choice(words[y], 3).tolist() + ["the", "a"]) for y in labels]
    frame = pd.DataFrame({"idx": np.arange(240), "label": labels, "text": texts})
    task = Task("toy4", ("text",), ("a", "b", "c", "d"), ("accuracy",),
                {"train": frame[:160], "selection": frame[160:200], "test": frame[200:]}, "toy", "none")
    spec = {"model": "tfidf", "mode": "tfidf", "C": 10.0}
    ctx = Context(device=CPU, dtype=None, max_length=16, seed=0)
    fit_teacher(task, "tfidf", spec, ctx, tmp_path)
    z = teacher_logits(task, spec, ctx, tmp_path, task.splits["test"])
    assert z.shape == (40, 4)
    assert (z.argmax(1) == task.splits["test"]["label"].to_numpy()).mean() > 0.9
    assert np.allclose(np.exp(z).sum(1), 1, atol=1e-4)        # log-probabilities of the logistic head


def test_gradient_accumulation_matches_one_large_batch():
    """Two micro-batches of 16 give the same update as one batch of 32 (up to float rounding; no dropout)."""
    train = toy_frame(64, 0)
    results = []
    for accum in (1, 2):
        tok, model = tiny(train, seed=7)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        fit(model, encode(tok, train, ["text"], 16), train["label"].to_numpy(),
            TrainConfig(epochs=1, lr=1e-3, batch_size=32, grad_accum=accum, warmup_ratio=0.0), 7,
            device=CPU, dtype=None)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_cpu_dropout_mask_has_the_bernoulli_rate_and_scale():
    """CpuDropout keeps an element with probability 1 - p (p rounded to 1/65536) and scales by 1/(1-p)."""
    torch.manual_seed(0)
    mask = keep_mask((1000, 1000), 0.1, torch.float32)
    keep_scale = 65536 / (65536 - 6554)
    assert torch.unique(mask).tolist() == [0.0, torch.tensor(keep_scale).item()]
    kept = (mask > 0).float().mean().item()
    assert abs(kept - (1 - 6554 / 65536)) < 0.002          # 1e6 draws: std of the rate is 0.0003
    assert abs(mask.mean().item() - 1.0) < 0.003            # unbiased: E[x * mask] = x
    # neighbouring elements are independent (the four 16-bit draws of one 64-bit number do not agree)
    flat = (mask.flatten() > 0).float()
    assert abs((flat[0::4] * flat[1::4]).mean().item() - kept ** 2) < 0.003
    torch.manual_seed(0)
    assert torch.equal(mask, keep_mask((1000, 1000), 0.1, torch.float32))   # seeded like torch's dropout
    drop = CpuDropout(0.1).eval()
    x = torch.randn(5, 7)
    assert drop(x) is x


def test_cpu_attention_is_transformers_attention_and_fit_swaps_it_back():
    train = toy_frame(64, 0)
    tok, model = tiny(train, seed=3)
    batch = {k: torch.from_numpy(v) for k, v in tok(train["text"].tolist()[:8], padding=True, return_tensors="np").items()}
    model.eval()
    with torch.no_grad():
        reference = model(**batch).logits
        with cpu_kernels(model):
            assert model.config._attn_implementation == "mtkd_cpu"
            assert any(isinstance(m, CpuDropout) for m in model.modules())
            swapped = model(**batch).logits                   # eval mode: no dropout anywhere
    assert torch.allclose(reference, swapped, atol=1e-5)
    before = model.config._attn_implementation
    fit(model, encode(tok, train, ["text"], 16), train["label"].to_numpy(),
        TrainConfig(epochs=1, lr=1e-3, batch_size=32), 0, device=CPU, dtype=None)
    assert model.config._attn_implementation == before
    assert not any(isinstance(m, CpuDropout) for m in model.modules())


def test_cpu_kernels_are_restored_when_training_raises():
    """A training that fails inside ``cpu_kernels`` leaves the model with its own dropout and attention."""
    train = toy_frame(32, 0)
    tok, model = tiny(train, seed=3)
    before = model.config._attn_implementation
    labels = train["label"].to_numpy()
    model.classifier.weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(RuntimeError, match="non-finite gradient"):
        fit(model, encode(tok, train, ["text"], 16), labels, TrainConfig(epochs=1, lr=1e-3, batch_size=8), 0,
            device=CPU, dtype=None)
    assert model.config._attn_implementation == before
    assert not any(isinstance(m, CpuDropout) for m in model.modules())


def test_mean_pooling_averages_the_real_tokens_only():
    """pooling: mean: the head sees the mean of the last layer over real tokens, so extra padding
    changes nothing; the gating fuser sees that same vector."""
    train = toy_frame(16, 0)
    spec = models.resolve("tiny-bert")
    tok = models.load_tokenizer(spec, train_texts=train["text"].tolist())
    model = models.load_classifier(spec, ["neg", "pos"], layers=1, seed=0, vocab_size=len(tok), pooling="mean").eval()
    assert isinstance(model.base_model.pooler, MeanPooler)
    texts = train["text"].tolist()[:4]
    short = {k: torch.from_numpy(v) for k, v in tok(texts, padding=True, return_tensors="np").items()}
    long = {k: torch.from_numpy(v) for k, v in tok(texts, padding="max_length", max_length=40,
                                                     return_tensors="np").items()}
    with torch.no_grad():
        a = model(**short, output_hidden_states=True)
        b = model(**long, output_hidden_states=True)
        hidden, mask = a.hidden_states[-1], short["attention_mask"]
        by_hand = torch.stack([hidden[i, mask[i] == 1].mean(0) for i in range(len(texts))])
        assert torch.allclose(sentence_features(model, a), by_hand, atol=1e-6)
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    with pytest.raises(ValueError, match="pooling: mean needs a BERT-family model with a pooler"):
        use_mean_pooling(SimpleNamespace(base_model=torch.nn.Linear(1, 1)))
