"""Teachers behind one interface: fine-tuned transformers, frozen-encoder probes, TF-IDF.

`fit_teacher` trains one teacher on a task's training split and saves it (safetensors
plus the params that made it) in its unit folder; `teacher_logits` reloads it and
scores any split. A frozen probe keeps its training features, so scoring the
training split does not embed it twice.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.numpy import load_file, save_file

from mtkd.study import io

from mtkd.data import models
from mtkd.kd.loop import TrainConfig, embed, encode, fit, predict


@dataclass
class Context:
    """Where and how models run, shared by every unit of a run."""
    device: torch.device
    dtype: torch.dtype | None
    max_length: int
    seed: int
    eval_batch_size: int = 32
    progress: bool = False       # tqdm bars (interactive); the batch runner logs one line per unit


def _max_length(spec: dict, ctx: Context) -> int:
    return spec.get("max_length") or ctx.max_length


# ---------------------------------------------------------------- fine-tuned transformer

def _fit_finetune(task, spec, ctx, unit_dir: Path) -> dict:
    mspec = models.resolve(spec["model"])
    train = task.splits["train"]
    tok = models.load_tokenizer(mspec, train_texts=_texts(train, task.text_fields))
    model = models.load_classifier(mspec, list(task.label_names), seed=ctx.seed, vocab_size=len(tok))
    enc = encode(tok, train, task.text_fields, _max_length(spec, ctx))
    info = fit(model, enc, train["label"].to_numpy(), TrainConfig.from_params(spec), ctx.seed,
               device=ctx.device, dtype=ctx.dtype, checkpoint_dir=unit_dir, desc=f"teacher {task.name}",
               progress=ctx.progress)
    _save_classifier(model, tok, unit_dir / "model")
    return info


def _save_classifier(model, tok, folder: Path) -> None:
    """What ``from_pretrained`` reads back: config, safetensors weights, tokenizer. Not ``save_pretrained``:
    under a multi-process launch it writes only on rank 0, and here every process saves its own units."""
    from safetensors.torch import save_model
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tok.save_pretrained(folder)


def _logits_finetune(task, spec, ctx, unit_dir: Path, frame) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(unit_dir / "model")
    with models.quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(unit_dir / "model")
    enc = encode(tok, frame, task.text_fields, _max_length(spec, ctx))
    return predict(model, enc, device=ctx.device, dtype=ctx.dtype, batch_size=ctx.eval_batch_size,
                   desc=f"logits {task.name}", progress=ctx.progress)


# ---------------------------------------------------------------- frozen encoder + logistic head

def _probe_features(task, spec, ctx, frame) -> np.ndarray:
    mspec = models.resolve(spec["model"])
    tok = models.load_tokenizer(mspec)
    encoder = models.load_encoder(mspec)
    parts = []
    for f in task.text_fields:     # each distinct text once: an SNLI premise comes with ~3 hypotheses
        unique, row_of = np.unique(frame[f].to_numpy(dtype=object), return_inverse=True)
        enc = encode(tok, pd.DataFrame({f: unique}), [f], _max_length(spec, ctx))
        parts.append(embed(encoder, enc, device=ctx.device, dtype=ctx.dtype, batch_size=ctx.eval_batch_size,
                           desc=f"embed {task.name}:{f}", progress=ctx.progress)[row_of.ravel()])
    if len(parts) == 1:
        return parts[0]
    u, v = parts
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


def _logistic(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


def _save_linear(unit_dir: Path, clf, extra: dict | None = None) -> None:
    # safetensors writes the raw buffer: sklearn's multiclass coef_ is Fortran-ordered, so make it C-ordered
    tensors = {"coef": clf.coef_.astype(np.float32), "intercept": clf.intercept_.astype(np.float32),
               "classes": clf.classes_.astype(np.int64), **(extra or {})}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(unit_dir / "head.safetensors"))


def _linear_log_probs(unit_dir: Path, X, num_labels: int) -> np.ndarray:
    """Log-probabilities of the saved logistic head: softmax of them gives its probabilities."""
    w = load_file(str(unit_dir / "head.safetensors"))
    scores = np.asarray(X @ w["coef"].T) + w["intercept"]
    if scores.shape[1] == 1:                       # binary: sklearn keeps one column
        scores = np.concatenate([np.zeros_like(scores), scores], axis=1)
    scores = scores - scores.max(axis=1, keepdims=True)
    logp = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    out = np.full((logp.shape[0], num_labels), -30.0, dtype=np.float32)   # classes absent from train
    out[:, w["classes"]] = logp
    return out


def _fit_probe(task, spec, ctx, unit_dir: Path) -> dict:
    t0 = time.time()
    train = task.splits["train"]
    X = _probe_features(task, spec, ctx, train)
    clf = _logistic(spec["C"], ctx.seed).fit(X, train["label"].to_numpy())
    _save_linear(unit_dir, clf)
    io.write_npz(unit_dir / "train_features.npz", X=X, idx=train["idx"].to_numpy())
    return {"seconds": round(time.time() - t0, 2)}


def _logits_probe(task, spec, ctx, unit_dir: Path, frame) -> np.ndarray:
    cached = np.load(unit_dir / "train_features.npz")
    if len(cached["idx"]) == len(frame) and (cached["idx"] == frame["idx"].to_numpy()).all():
        X = cached["X"]
    else:
        X = _probe_features(task, spec, ctx, frame)
    return _linear_log_probs(unit_dir, X, task.num_labels)


# ---------------------------------------------------------------- TF-IDF + logistic regression

def tfidf_vectorizers():
    from sklearn.feature_extraction.text import TfidfVectorizer
    return {"word": TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
            "char": TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                    lowercase=True, max_features=100_000)}


def tfidf_features(vecs: dict, frame, text_fields):
    """One text: its n-grams. A pair: each side's n-grams and their overlap (what NLI needs)."""
    from scipy import sparse
    blocks = []
    sides = [sparse.hstack([v.transform(frame[f].tolist()) for v in vecs.values()]).tocsr() for f in text_fields]
    blocks += sides
    if len(sides) == 2:
        blocks.append(sides[0].multiply(sides[1]))
    return sparse.hstack(blocks).tocsr()


def _fit_tfidf(task, spec, ctx, unit_dir: Path) -> dict:
    t0 = time.time()
    train = task.splits["train"]
    vecs = tfidf_vectorizers()
    corpus = [t for f in task.text_fields for t in train[f].tolist()]
    for v in vecs.values():
        v.fit(corpus)
    X = tfidf_features(vecs, train, task.text_fields)
    clf = _logistic(spec["C"], ctx.seed).fit(X, train["label"].to_numpy())
    extra = {f"idf_{k}": v.idf_.astype(np.float32) for k, v in vecs.items()}
    _save_linear(unit_dir, clf, extra)
    io.write_json(unit_dir / "vocabulary.json", {k: {t: int(i) for t, i in v.vocabulary_.items()}
                                                 for k, v in vecs.items()})
    return {"seconds": round(time.time() - t0, 2), "features": int(X.shape[1])}


def _load_tfidf(unit_dir: Path) -> dict:
    vocab = json.loads((unit_dir / "vocabulary.json").read_text())
    w = load_file(str(unit_dir / "head.safetensors"))
    vecs = tfidf_vectorizers()
    for k, v in vecs.items():
        v.set_params(vocabulary=vocab[k])
        v.idf_ = w[f"idf_{k}"].astype(np.float64)
    return vecs


def _logits_tfidf(task, spec, ctx, unit_dir: Path, frame) -> np.ndarray:
    X = tfidf_features(_load_tfidf(unit_dir), frame, task.text_fields)
    return _linear_log_probs(unit_dir, X, task.num_labels)


# ---------------------------------------------------------------- the human label distribution

HUMAN_SMOOTHING = 0.5        # add-0.5 (Jeffreys): a class no annotator chose keeps a little mass


def check_human_teacher(task, who: str = "a human teacher") -> None:
    """A `human` teacher needs label counts on every row of every split: say how many rows have them."""
    fields = list(task.label_counts_fields)
    if not fields:
        raise ValueError(f"{who} (mode human) on task {task.name}: the task carries no human label counts "
                         "(label_counts_fields); use it on snli or a custom task with count columns")
    short = {s: (int((f[fields].to_numpy().sum(1) > 0).sum()), len(f)) for s, f in task.splits.items()}
    short = {s: v for s, v in short.items() if v[0] < v[1]}
    if short:
        have = ", ".join(f"{s} {k:,} of {n:,}" for s, (k, n) in short.items())
        raise ValueError(f"{who} (mode human) on task {task.name}: only part of the rows carry human label "
                         f"counts ({have}); set data.counts_rows_only: true to draw every split from the rows "
                         "that have them")


def _fit_human(task, spec, ctx, unit_dir: Path) -> dict:
    check_human_teacher(task)
    return {"seconds": 0.0, "smoothing": HUMAN_SMOOTHING}


def _logits_human(task, spec, ctx, unit_dir: Path, frame) -> np.ndarray:
    """log((n_c + s) / (sum n + C s)): log-probabilities of the smoothed human distribution."""
    counts = frame[list(task.label_counts_fields)].to_numpy(dtype=np.float64) + HUMAN_SMOOTHING
    return np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- the interface

MODES = {
    "finetune": (_fit_finetune, _logits_finetune),
    "probe": (_fit_probe, _logits_probe),
    "tfidf": (_fit_tfidf, _logits_tfidf),
    "human": (_fit_human, _logits_human),
}


def _texts(frame, fields) -> list[str]:
    return [t for f in fields for t in frame[f].tolist()]


def fit_teacher(task, name: str, spec: dict, ctx: Context, unit_dir: Path) -> dict:
    """Train teacher ``name`` on the task's training split; save it with its params in ``unit_dir``."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    info = MODES[spec["mode"]][0](task, spec, ctx, unit_dir)
    io.write_json(unit_dir / "teacher.json", {"task": task.name, "teacher": name, "params": dict(spec),
                                              "label_names": list(task.label_names), "seed": ctx.seed, **info})
    return info


def teacher_logits(task, spec: dict, ctx: Context, unit_dir: Path, frame) -> np.ndarray:
    """Logits (N, C) of a trained teacher on ``frame``, in the task's label order."""
    return MODES[spec["mode"]][1](task, spec, ctx, unit_dir, frame)
