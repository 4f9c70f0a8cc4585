#!/usr/bin/env python
"""Measure candidate changes to mtkd.kd.loop.fit without editing it: same loop, one change at a time.

    python benchmarks/train_variants.py rt   --steps 10 --threads 1   # Rotten Tomatoes batches (the study)
    python benchmarks/train_variants.py l128 --steps 3  --threads 1   # the matmul_peak_fraction step

Variants (comma-separated with --variants):

* ``base``: fit as it is (bf16 autocast where the CPU has it, fused AdamW, cached KD target, and on a
  CPU its ``CpuDropout`` masks and ``mtkd_cpu`` attention).
* ``native``: fit with torch's own dropout and transformers' eager attention (what fit did before
  ``CpuDropout``: SDPA with dropout > 0 takes the CPU math path, which upcasts bf16 to fp32).
* ``sdpa``: torch's own dropout and the model's SDPA attention (no kernel swap at all).
* ``nodrop``: every dropout off (a modelling change, shown for scale only).

Reports wall and process CPU seconds per step, interleaved over rounds (the first is warm-up). On a busy
machine use one thread: CPU seconds then measure the work without the spin-waits of a second thread.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import run as R  # noqa: E402


@contextlib.contextmanager
def attention(model, variant: str):
    """``native`` / ``sdpa``: the model's own dropout and this attention while fit trains with
    ``cheap_cpu_kernels=False``; ``base`` and the rest leave the model as it is."""
    attn = {"native": "eager", "sdpa": "sdpa"}.get(variant)
    old = model.config._attn_implementation
    if attn is not None:
        model.set_attn_implementation(attn)
    try:
        yield attn is None
    finally:
        model.set_attn_implementation(old)


def make(b, variant: str):
    m = b.student()
    if "nodrop" in variant:
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", choices=["rt", "l128"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="native,base")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import tempfile
    b = R.Bench(R.MODES["quick"], Path(tempfile.mkdtemp()))
    n = args.steps * b.bs
    if args.data == "l128":
        enc, labels = R.fixed_length(b, n), np.resize(b.labels_all, n)
    else:
        enc, labels = b.subset(n)
    target = R.KDTarget(b.T, b.alpha, logits=torch.randn(len(enc), len(b.label_names)))
    variants = args.variants.split(",")
    models = {v: make(b, v) for v in variants}
    res = {v: [] for v in variants}
    for r in range(args.rounds + 1):
        for v in variants:
            with attention(models[v], v) as cheap:
                w0, c0 = time.perf_counter(), time.process_time()
                R.fit(models[v], enc, labels, b.train_cfg(), r, device=R.CPU, dtype=b.dtype, target=target,
                      cheap_cpu_kernels=cheap)
                w, c = time.perf_counter() - w0, time.process_time() - c0
            steps = -(-len(enc) // b.bs)
            if r:
                res[v].append((w / steps, c / steps))
            print(f"round {r}{' (warm-up)' if not r else ''} {v}: {w / steps:.3f} s/step wall, "
                  f"{c / steps:.3f} CPU s/step", file=sys.stderr)
    base = statistics.median(c for _, c in res[variants[0]])
    print(f"{args.data}, {args.threads} thread(s), {b.prec}, {args.steps} steps x {args.rounds} rounds")
    for v in variants:
        w = statistics.median(x for x, _ in res[v])
        c = statistics.median(x for _, x in res[v])
        print(f"  {v:14s} wall {w:.3f} s/step   CPU {c:.3f} s/step   CPU gain vs {variants[0]}: {base / c:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
