"""Local workers and the inference batch, measured on the study's own student (the figures behind
`workers` and `eval_batch_size`; benchmarks/README.md has the results).

    python benchmarks/workers.py RUN_DIR [--task rotten_tomatoes]

RUN_DIR is a run whose data stage has finished (any `mtkd run` of the embedded study). It times one
student (baseline, 2 epochs, the run's student params) in one process with every core, then one per core
in that many processes at once, and inference on the test split at several batch sizes. Writes
benchmarks/workers.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_student(run_dir: str, task: str, threads: int, batches: list[int]) -> dict:
    import torch
    from mtkd.data import models
    from mtkd.kd.loop import TrainConfig, fit, predict
    from mtkd.study.pipeline import Run
    torch.set_num_threads(threads)
    run = Run.open(run_dir)
    t = run.task(task)
    spec, vocab, enc = run.student_inputs(task)
    model = models.load_classifier(spec, list(t.label_names), layers=run.params.student.layers, seed=42,
                                   vocab_size=vocab, pooling=run.params.student.pooling)
    t0 = time.perf_counter()
    fit(model, enc["train"], t.splits["train"]["label"].to_numpy(), TrainConfig.from_params(run.params.student), 42,
        device=run.ctx.device, dtype=run.ctx.dtype)
    out = {"threads": threads, "train_s": round(time.perf_counter() - t0, 2), "test_examples": len(enc["test"])}
    for b in batches:
        t0 = time.perf_counter()
        predict(model, enc["test"], device=run.ctx.device, dtype=run.ctx.dtype, batch_size=b)
        out[f"predict_batch{b}_s"] = round(time.perf_counter() - t0, 2)
    return out


def spawn(args, threads: int, batches: list[int]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, args.run_dir, "--task", args.task, "--child", str(threads),
                             "--batches", ",".join(map(str, batches))], stdout=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--batches", default="32,256")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        print(json.dumps(one_student(args.run_dir, args.task, args.child, batches)))
        return
    import os
    cores = len(os.sched_getaffinity(0))
    alone = json.loads(spawn(args, cores, [16, 32, 64, 128, 256]).communicate()[0])
    procs = [spawn(args, 1, [32]) for _ in range(cores)]
    together = [json.loads(p.communicate()[0]) for p in procs]
    per_student = max(r["train_s"] for r in together) / cores
    result = {"cores": cores, "one_process": alone, "one_per_core": together,
              "train_throughput_gain": round(alone["train_s"] / per_student, 2),
              "predict_gain_batch32_vs_256": round(alone["predict_batch256_s"] / alone["predict_batch32_s"], 2)}
    (HERE / "workers.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
