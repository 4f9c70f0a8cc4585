"""The teacher logit cache: computed once, refused when it no longer fits.

Each (task, teacher, split) is an ``.npz`` (logits float32 (N, C), idx int64 (N,)) with a
``.json`` of metadata beside it: model id, params hash, label names, dtype, shape.
Reading checks all of it against what the run expects, so a cache made with other
params, another label order or other examples is never used by mistake.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mtkd.study import io


def write_cached(stem: Path, logits: np.ndarray, idx: np.ndarray, meta: dict) -> None:
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != len(idx):
        raise ValueError(f"{stem}: logits of shape {logits.shape} do not match {len(idx)} examples")
    if not np.isfinite(logits).all():
        raise ValueError(f"{stem}: logits contain NaN or Inf; the teacher is broken (retrain it)")
    io.write_npz(stem.with_suffix(".npz"), logits=logits, idx=np.asarray(idx, dtype=np.int64))
    io.write_json(stem.with_suffix(".json"), meta)   # written last: its presence means the pair is complete


def read_cached(stem: Path, expected: dict, idx: np.ndarray, prefix: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(idx, logits) from the cache, after checking metadata, shape, idx order and finiteness.

    With ``prefix`` the cache may hold more rows than ``idx`` (a transfer set is the first n rows of
    its pool, and a larger one scored before serves a smaller one): its first ``len(idx)`` rows must be
    ``idx`` in that order, and only they are returned."""
    meta_path, data_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not meta_path.exists() or not data_path.exists():
        raise FileNotFoundError(f"{stem}: no cached logits (the logits stage computes them)")
    try:
        meta = io.read_json(meta_path)
    except ValueError as e:
        raise ValueError(f"{meta_path}: unreadable cache metadata ({e}); recompute with --force logits") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: cache metadata is not a mapping; recompute with --force logits")
    for key in ("task", "teacher", "split", "model", "label_names"):
        if meta.get(key) != expected[key]:
            raise ValueError(f"{stem}: cached logits are for {key}={meta.get(key)!r}, expected "
                             f"{expected[key]!r}; delete them or run with --force logits")
    if meta.get("params_hash") != expected["params_hash"]:
        raise ValueError(f"{stem}: stale cache: made with params hash {meta.get('params_hash')}, the current "
                         f"params give {expected['params_hash']}; it will be recomputed (or --force logits)")
    try:
        with np.load(data_path, allow_pickle=False) as data:
            missing = [k for k in ("logits", "idx") if k not in data.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            logits, cached_idx = data["logits"], data["idx"]
    except Exception as e:   # a truncated or foreign file: zipfile, pickle and OS errors alike
        raise ValueError(f"{data_path}: corrupt logit cache ({type(e).__name__}: {e}); recompute it with "
                         "--force logits") from None
    if prefix and list(meta.get("shape", [])) == list(logits.shape) and logits.shape[0] >= len(idx):
        logits, cached_idx = logits[:len(idx)], cached_idx[:len(idx)]     # the file matched its metadata whole
        meta = {**meta, "shape": list(logits.shape)}
    if list(logits.shape) != list(expected["shape"]) or list(meta.get("shape", [])) != list(logits.shape):
        raise ValueError(f"{stem}: cached logits have shape {tuple(logits.shape)}, expected "
                         f"{tuple(expected['shape'])}")
    if logits.dtype != np.float32:
        raise ValueError(f"{stem}: cached logits are {logits.dtype}, expected float32")
    if cached_idx.ndim != 1 or len(cached_idx) != len(idx) or not np.array_equal(cached_idx, idx):
        raise ValueError(f"{stem}: cached logits are in another idx order than the split's examples; "
                         "recompute them with --force logits")
    if not np.isfinite(logits).all():
        raise ValueError(f"{stem}: cached logits contain NaN or Inf; recompute them with --force logits")
    return cached_idx, logits
