#!/usr/bin/env python
"""Speed of mtkd's distillation, side by side with the peers, in one process on real task data.

    python benchmarks/run.py --quick            # < 5 min on 2 cores -> benchmarks/results-quick.json
    python benchmarks/run.py --full             # the figures of record -> benchmarks/results.json
    python benchmarks/run.py --smoke --out X    # tiny models, a few steps: CI's check that nothing rotted

What is measured (benchmarks/README.md explains each figure):

* ``speedup_vs_textbrewer``: our cached-logit multi-teacher KD (mtkd.kd.loop.fit, teacher logits
  computed once and fused) vs TextBrewer's MultiTeacherDistiller with the same three teachers online;
* ``speedup_vs_hf_trainer``: mtkd.kd.loop.fit vs a Hugging Face Trainer subclass adding the same KD loss,
  DataCollatorWithPadding (dynamic padding), the library's default random batches;
* ``matmul_peak_fraction``: FLOP/s of our training step at sequence length 128 over the fastest large
  torch matmul (fp32 and bf16 measured, the larger is the peak; on a CPU that only emulates bf16, bf16 is
  timed at n <= 512 only, as its output line says);
* logit extraction (mtkd.kd.loop.predict) vs a bare forward loop; cost vs number of teachers K, cached vs
  online; the study's student grid projected from the measured per-step figures; peak RSS.

Every side runs on the same texts (Rotten Tomatoes training split from mtkd.data.tasks.load_task), the same
model, batch size, thread count and precision. Sides are interleaved round by round (one warm-up round
first, discarded) so that a busy machine slows all of them alike; wall and CPU seconds are both kept.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")        # nor from the peers
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import peers  # noqa: E402
from mtkd.data import models, tasks as data  # noqa: E402
from mtkd.kd import fusion  # noqa: E402
from mtkd.kd.devices import cpu_has_bf16, pick_precision, set_threads  # noqa: E402
from mtkd.kd.loop import Encoded, KDTarget, TrainConfig, collate, encode, fit, length_batches, predict  # noqa: E402
from mtkd.study import config  # noqa: E402

CPU = torch.device("cpu")
SCHEMA = 1
TASK = "rotten_tomatoes"
GOALS = {  # name: (direction, goal)
    "speedup_vs_textbrewer": (">=", 3.0),
    "speedup_vs_hf_trainer": (">=", 1.3),
    "matmul_peak_fraction": (">=", 0.5),
    "extraction_overhead": ("<=", 0.10),
    "peak_rss_gb": ("<=", 4.0),
    "study_cold_seconds": ("<=", 900.0),
    "study_warm_seconds": ("<=", 60.0),
}


@dataclass(frozen=True)
class Mode:
    name: str
    model: str                 # registry name of student and teachers
    student_layers: int        # 0 = the study's student (params/embedded.yaml: layers and pooling)
    teacher_layers: int        # 0 = the checkpoint's own depth
    n_train: int               # examples per epoch in the side-by-side rounds
    rounds: int                # timed rounds ...
    warmup_rounds: int         # ... after these warm-up rounds (discarded)
    l128_warmup: int           # training steps at length 128 discarded ...
    l128_steps: int            # ... and timed
    matmul_sizes: tuple
    matmul_reps: int
    extract_n: int             # examples for predict vs a bare loop
    k_n: int                   # examples per epoch in the K sweep
    k_rounds: int
    mpnet: str                 # "base": all-mpnet-base-v2's shapes; "tiny": a 2-layer stand-in (smoke)
    hf_fp32: bool              # also time the HF Trainer in fp32 (next to our fp32 loop)


MODES = {
    "smoke": Mode("smoke", "tiny-bert", 2, 2, 64, 1, 0, 1, 2, (256, 512), 2, 64, 32, 1, "tiny", False),
    "quick": Mode("quick", "minilm-l6", 0, 0, 320, 3, 1, 2, 4, (1024, 2048, 4096), 3, 512, 96, 1, "base", False),
    "full": Mode("full", "minilm-l6", 0, 0, 1200, 5, 1, 3, 10, (1024, 2048, 4096), 5, 1200, 320, 3, "base", True),
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- timing helpers

def summary(values: list[float]) -> dict:
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "median": statistics.median(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0, "min": min(v), "max": max(v), "n": len(v), "values": v}


@contextmanager
def step_clock():
    """Stands in for tqdm inside mtkd.kd.loop while a fit/predict runs: records when each batch is handed out.

    mtkd.kd.loop imports ``tqdm.auto.tqdm`` at call time and only iterates it, so the timing needs no change
    to the training code. ``marks[i]`` = (wall, cpu) when batch i starts; the last mark is the loop's end.
    """
    import tqdm.auto as ta
    rec = {"marks": [], "rows": []}

    def fake(iterable, *args, **kwargs):
        def gen():
            for item in iterable:
                rec["marks"].append((time.perf_counter(), time.process_time()))
                rec["rows"].append(item)
                yield item
            rec["marks"].append((time.perf_counter(), time.process_time()))
        return gen()

    old = ta.tqdm
    ta.tqdm = fake
    try:
        yield rec
    finally:
        ta.tqdm = old


def clock_result(rec: dict, enc: Encoded) -> dict:
    m = rec["marks"]
    lengths = enc.lengths
    shapes = [(len(r), int(lengths[r].max())) for r in rec["rows"]]
    return {"seconds": m[-1][0] - m[0][0], "cpu_seconds": m[-1][1] - m[0][1], "examples": len(enc),
            "shapes": shapes, "step_seconds": [b[0] - a[0] for a, b in zip(m, m[1:])],
            "threads": torch.get_num_threads()}


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2   # ru_maxrss is in KiB on Linux


def interleave(sides: dict, rounds: int, warmup: int = 1, warm_only: list | None = None) -> dict:
    """Run every side once per round, in an order rotated each round. The first `warmup` rounds are discarded
    (and run only the sides in `warm_only` when given: shapes already seen need no second warm-up)."""
    names = list(sides)
    out = {n: [] for n in names}
    for r in range(rounds + warmup):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            if r < warmup and warm_only is not None and n not in warm_only:
                continue
            res = sides[n](r)
            if r >= warmup:
                out[n].append(res)
            log(f"  round {r}{' (warm-up)' if r < warmup else ''} {n}: {res['examples'] / res['seconds']:.1f} ex/s")
    return out


def paired(a: list[dict], b: list[dict]) -> dict:
    """Per-round ratio of examples/s of side a over side b (the two ran next to each other in each round)."""
    return summary([(x["examples"] / x["seconds"]) / (y["examples"] / y["seconds"]) for x, y in zip(a, b)])


def side_figures(results: list[dict], **meta) -> dict:
    """Per-round examples/s (mean, spread), CPU seconds per example, and the padded shapes seen."""
    shapes = [s for r in results for s in r["shapes"]]
    tokens = [b * w for b, w in shapes]
    return {**meta,
            "examples_per_round": results[0]["examples"],
            "examples_per_s": summary([r["examples"] / r["seconds"] for r in results]),
            "cpu_ms_per_example": summary([1000 * r["cpu_seconds"] / r["examples"] for r in results]),
            "threads": results[0]["threads"],
            "steps_per_round": len(results[0]["shapes"]),
            "mean_batch_shape": [round(float(np.mean([b for b, _ in shapes])), 2),
                                 round(float(np.mean([w for _, w in shapes])), 2)],
            "padded_tokens_per_round": int(sum(tokens) / len(results)),
            **({k: results[0][k] for k in ("optimizer",) if k in results[0]})}


def ratio(a: dict, b: dict, key: str = "examples_per_s") -> float:
    return a[key]["mean"] / b[key]["mean"]


# ---------------------------------------------------------------- machine

def machine() -> dict:
    cpu_model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu_model:
                cpu_model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    cpu_model = cpu_model or platform.processor() or platform.machine()
    import transformers
    return {"cpu_model": cpu_model, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_bf16": cpu_has_bf16(),
            "cpu_amx": "amx_tile" in flags, "loadavg_start": list(os.getloadavg())}


# ---------------------------------------------------------------- setup

class Bench:
    def __init__(self, mode: Mode, workdir: Path):
        self.mode = mode
        self.work = workdir
        self.params = config.load_params(ROOT / "params" / "embedded.yaml")
        self.student_cfg = self.params.student
        self.T = float(self.params.distill.temperature)
        self.alpha = float(self.params.distill.alpha)
        self.bs = int(self.student_cfg.batch_size)
        self.max_length = int(self.params.data.max_length)
        self.dtype = pick_precision("auto", CPU)
        self.prec = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        self.task = data.load_task(TASK, self.params.data)
        train = self.task.splits["train"]
        self.spec = models.resolve(mode.model)
        texts = [x for f in self.task.text_fields for x in train[f].tolist()]
        self.tok = models.load_tokenizer(self.spec, train_texts=texts)
        self.labels_all = train["label"].to_numpy()
        self.enc_all = encode(self.tok, train, self.task.text_fields, self.max_length)
        self.label_names = list(self.task.label_names)

    def subset(self, n: int) -> tuple[Encoded, np.ndarray]:
        n = min(n, len(self.enc_all))
        e = self.enc_all
        sub = Encoded(e.input_ids[:n], e.token_type_ids[:n] if e.token_type_ids is not None else None, e.pad_id)
        return sub, self.labels_all[:n]

    def student(self, seed: int = 0):
        study = self.mode.student_layers == 0
        m = models.load_classifier(self.spec, self.label_names, seed=seed, vocab_size=len(self.tok),
                                   layers=self.student_cfg.layers if study else self.mode.student_layers,
                                   pooling=self.student_cfg.pooling if study else "cls")
        if self.student_cfg.freeze_embeddings:   # the study's student config; every side trains the same params
            m.get_input_embeddings().weight.requires_grad_(False)
        return m

    def teacher(self, seed: int):
        return models.load_classifier(self.spec, self.label_names, layers=self.mode.teacher_layers, seed=seed,
                                      vocab_size=len(self.tok)).eval()

    def train_cfg(self, epochs: int = 1) -> TrainConfig:
        return TrainConfig.from_params({**dict(self.student_cfg), "epochs": epochs})

    def describe_model(self, m) -> dict:
        c = m.config
        return {"type": type(m).__name__, "layers": c.num_hidden_layers, "hidden": c.hidden_size,
                "heads": c.num_attention_heads, "intermediate": c.intermediate_size,
                "params": sum(p.numel() for p in m.parameters()),
                "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad)}

    def ours_epoch(self, model, enc, labels, seed, dtype, target) -> dict:
        with step_clock() as rec:
            fit(model, enc, labels, self.train_cfg(), seed, device=CPU, dtype=dtype, target=target)
        return {**clock_result(rec, enc), "optimizer": "torch.optim.AdamW (fused)"}


# ---------------------------------------------------------------- sections

EMULATED_BF16_MAX_N = 512    # without avx512_bf16 / amx_bf16 a bf16 matmul is emulated: n=4096 takes minutes


def matmul_plan(mode: Mode) -> tuple[dict, str | None]:
    """The sizes to time per dtype, and a note when bf16 is not measured at the mode's sizes.

    bf16 at every size only where the CPU computes it natively (`mtkd.kd.devices.cpu_has_bf16`, the test
    ``precision: auto`` uses); where oneDNN only emulates it, at n <= EMULATED_BF16_MAX_N (where that is
    none of the mode's sizes, at n = EMULATED_BF16_MAX_N); without oneDNN not at all."""
    sizes = tuple(mode.matmul_sizes)
    plan = {"fp32": sizes}
    if cpu_has_bf16():
        return {**plan, "bf16": sizes}, None
    if not torch.backends.mkldnn.is_available():
        return plan, "bf16 skipped: no native bf16 and no oneDNN on this CPU"
    small = tuple(n for n in sizes if n <= EMULATED_BF16_MAX_N) or (EMULATED_BF16_MAX_N,)
    return {**plan, "bf16": small}, (f"bf16 emulated on this CPU: measured at n={'/'.join(map(str, small))} only "
                                     "(no avx512_bf16 / amx_bf16)")


def section_matmul(b: Bench) -> dict:
    """The fastest large matmul torch offers here, in fp32 and bf16 (C = A @ B, n x n; `matmul_plan`)."""
    out = {}
    plan, note = matmul_plan(b.mode)
    for name, sizes in plan.items():
        dt_ = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        per = {}
        for n in sizes:
            t_n = time.perf_counter()
            x = torch.randn(n, n).to(dt_)
            y = torch.randn(n, n).to(dt_)
            torch.matmul(x, y)                                        # warm-up
            ts, cs = [], []
            for _ in range(b.mode.matmul_reps):
                t0, c0 = time.perf_counter(), time.process_time()
                torch.matmul(x, y)
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
            per[str(n)] = summary([2 * n ** 3 / t / 1e9 for t in ts])
            per[str(n)]["gflops_per_cpu_second"] = 2 * n ** 3 * len(cs) / sum(cs) / 1e9
            log(f"  matmul {name} n={n}: {per[str(n)]['max']:.0f} GFLOP/s ({time.perf_counter() - t_n:.1f} s)")
        best = max(per, key=lambda k: per[k]["max"])
        # the peak is the best repetition of the best size: what the machine can do (a busy machine only
        # lowers a mean), and a higher peak makes our fraction smaller, never larger
        out[name] = {"gflops_by_size": per, "best_size": int(best), "gflops": per[best]["max"],
                     "gflops_per_cpu_second": per[best]["gflops_per_cpu_second"]}
        extra = f"; {note}" if name == "bf16" and note else ""
        log(f"matmul {name}: {out[name]['gflops']:.0f} GFLOP/s (n={best}){extra}")
    if note and "bf16" in out:
        out["bf16"]["note"] = note
    elif note:
        log(f"matmul {note}")                  # "matmul bf16 skipped: ..."
    out["bf16_note"] = note                    # None: bf16 measured at the mode's sizes (native bf16)
    out["peak_gflops"] = max(out[k]["gflops"] for k in plan)
    out["peak_dtype"] = max(plan, key=lambda k: out[k]["gflops"])
    return out


def train_flops(model, batch: int, seq: int) -> dict:
    """6 x non-embedding params x tokens (encoder) + 6 x head params x sequences + attention (x3 fwd)."""
    base = model.base_model
    enc_p = sum(p.numel() for p in base.encoder.parameters())
    emb_p = sum(p.numel() for p in base.embeddings.parameters())
    head_p = sum(p.numel() for p in model.parameters()) - enc_p - emb_p       # pooler + classifier
    c = model.config
    dense = 6 * enc_p * batch * seq + 6 * head_p * batch
    attention = 3 * c.num_hidden_layers * 4 * batch * seq * seq * c.hidden_size   # QK^T and AV, fwd + 2x bwd
    return {"flops": dense + attention, "dense": dense, "attention": attention,
            "encoder_params": enc_p, "head_params": head_p, "embedding_params": emb_p}


def fixed_length(b: Bench, n: int, seq: int = 128) -> Encoded:
    """n sequences of exactly `seq` tokens cut from the task's real text ([CLS] chunk [SEP])."""
    stream = np.concatenate([ids[1:-1] for ids in b.enc_all.input_ids])
    need = n * (seq - 2)
    stream = np.resize(stream, need)
    cls, sep = b.tok.cls_token_id, b.tok.sep_token_id
    ids = [np.concatenate([[cls], stream[i * (seq - 2):(i + 1) * (seq - 2)], [sep]]).astype(np.int64)
           for i in range(n)]
    tt = [np.zeros(seq, dtype=np.int64) for _ in range(n)] if b.enc_all.token_type_ids is not None else None
    return Encoded(ids, tt, b.enc_all.pad_id)


def section_l128(b: Bench, matmul: dict) -> dict:
    """Our training step (fit, cached KD target) at sequence length 128, batch 32: FLOP/s and peak fraction."""
    m = b.mode
    n = (m.l128_warmup + m.l128_steps) * b.bs
    enc = fixed_length(b, n)
    labels = np.resize(b.labels_all, n)
    z = torch.randn(n, len(b.label_names))
    out = {"batch": b.bs, "seq": 128, "warmup_steps": m.l128_warmup, "timed_steps": m.l128_steps}
    precisions = {"fp32": None}
    if b.dtype is not None:
        precisions[b.prec] = b.dtype
    for name, dtype in precisions.items():
        model = b.student()
        with step_clock() as rec:
            fit(model, enc, labels, b.train_cfg(), 0, device=CPU, dtype=dtype,
                target=KDTarget(b.T, b.alpha, logits=z))
        marks = rec["marks"][m.l128_warmup:]
        steps = [q[0] - p[0] for p, q in zip(marks, marks[1:])]
        cpu = marks[-1][1] - marks[0][1]
        fl = train_flops(model, b.bs, 128)
        gf = [fl["flops"] / t / 1e9 for t in steps]
        out[name] = {"step_seconds": summary(steps), "gflops": summary(gf),
                     "fraction_of_peak": statistics.fmean(gf) / matmul["peak_gflops"],
                     "fraction_of_same_dtype_matmul": statistics.fmean(gf) / matmul[name]["gflops"]
                     if name in matmul else None,
                     "examples_per_s": b.bs / statistics.fmean(steps),
                     # contention cross-check: FLOPs per CPU-second of the step over the matmul's (both with
                     # the same threads; a busy machine inflates the step's CPU time by spin-waits, so this is low)
                     "cpu_fraction_of_peak": fl["flops"] * len(steps) / cpu / 1e9 /
                     max(v["gflops_per_cpu_second"] for k, v in matmul.items() if isinstance(v, dict))}
        out["flops_per_step"] = fl
        out["model"] = b.describe_model(model)
        log(f"L128 step {name}: {statistics.fmean(steps):.3f} s, {statistics.fmean(gf):.0f} GFLOP/s, "
            f"{out[name]['fraction_of_peak']:.2f} of peak")
    default = b.prec if b.dtype is not None else "fp32"
    out["default_precision"] = default
    out["fraction"] = out[default]["fraction_of_peak"]
    return out


def section_extraction(b: Bench, teacher) -> dict:
    """mtkd.kd.loop.predict vs a bare loop over the same pre-collated, length-sorted batches of 256."""
    enc, _ = b.subset(b.mode.extract_n)
    bs = 256
    batches = [collate(enc, rows, CPU) for rows in length_batches(enc.lengths, bs)]

    def bare(_r):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode(), torch.autocast("cpu", dtype=b.dtype or torch.float32, enabled=b.dtype is not None):
            for batch in batches:
                teacher(**batch).logits
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                "examples": len(enc), "shapes": [tuple(x["input_ids"].shape) for x in batches],
                "threads": torch.get_num_threads()}

    def ours(_r):
        t0, c0 = time.perf_counter(), time.process_time()
        predict(teacher, enc, device=CPU, dtype=b.dtype, batch_size=bs)
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                "examples": len(enc), "shapes": [tuple(x["input_ids"].shape) for x in batches],
                "threads": torch.get_num_threads()}

    res = interleave({"predict": ours, "bare_forward": bare}, b.mode.rounds, b.mode.warmup_rounds)
    out = {"batch_size": bs, "precision": b.prec, "model": b.describe_model(teacher),
           "predict": side_figures(res["predict"]), "bare_forward": side_figures(res["bare_forward"])}
    out["overhead_per_round"] = summary([p["seconds"] / q["seconds"] - 1
                                         for p, q in zip(res["predict"], res["bare_forward"])])
    out["overhead_of_means"] = ratio(out["bare_forward"], out["predict"]) - 1
    out["overhead"] = out["overhead_per_round"]["median"]      # robust to one disturbed round
    return out


def section_vs_peers(b: Bench, teachers: list) -> dict:
    """Side by side: ours (bf16, fp32), HF Trainer (default and length-grouped), TextBrewer (3 teachers online)."""
    enc, labels = b.subset(b.mode.n_train)
    cfg = b.train_cfg()
    # Our cached multi-teacher target: each teacher's logits once (predict), fused by the average.
    t0 = time.perf_counter()
    z = np.stack([predict(t, enc, device=CPU, dtype=b.dtype, batch_size=256) for t in teachers], axis=1)
    extraction_s = time.perf_counter() - t0
    fused = fusion.fuse("average", torch.from_numpy(z)).detach().float()
    target = KDTarget(b.T, b.alpha, logits=fused)
    feats_kd = peers.features(enc, labels, np.arange(len(enc)), fused.numpy())
    feats = peers.features(enc, labels, np.arange(len(enc)))
    hp = dict(batch_size=b.bs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
              grad_clip=cfg.grad_clip, temperature=b.T, alpha=b.alpha)
    bf16 = b.dtype == torch.bfloat16
    students = {}

    def st(name):
        if name not in students:
            students[name] = b.student()
        return students[name]

    sides = {
        f"ours_{b.prec}": lambda r: b.ours_epoch(st("ours"), enc, labels, 100 + r, b.dtype, target),
        f"hf_trainer_{b.prec}": lambda r: peers.hf_epoch(st("hf"), feats_kd, b.tok, bf16=bf16, seed=r,
                                                         out_dir=b.work / "hf", **hp),
        f"hf_trainer_grouped_{b.prec}": lambda r: peers.hf_epoch(st("hfg"), feats_kd, b.tok, bf16=bf16, seed=r,
                                                                 out_dir=b.work / "hfg",
                                                                 sampling="group_by_length", **hp),
        f"textbrewer_{b.prec}": lambda r: peers.textbrewer_epoch(st("tb"), teachers, feats, b.tok, dtype=b.dtype,
                                                                 seed=r, out_dir=b.work / "tb", **hp),
    }
    if b.dtype is not None:
        sides["ours_fp32"] = lambda r: b.ours_epoch(st("ours32"), enc, labels, 100 + r, None, target)
        if b.mode.hf_fp32:
            sides["hf_trainer_fp32"] = lambda r: peers.hf_epoch(st("hf32"), feats_kd, b.tok, bf16=False, seed=r,
                                                                out_dir=b.work / "hf32", **hp)
    res = interleave(sides, b.mode.rounds, b.mode.warmup_rounds)
    smodel = b.describe_model(st("ours"))
    tmodel = b.describe_model(teachers[0])
    loops = {
        "ours": "mtkd.kd.loop.fit: cached tokens, length-grouped batches (pools of 50 batches, shuffled order), "
                "dynamic padding, KD target = average of the 3 teachers' cached logits",
        "hf_trainer": "transformers.Trainer subclass, compute_loss = mtkd.kd.losses.kd_loss on the same fused "
                      "logits (a dataset column), DataCollatorWithPadding, random batches (default sampler)",
        "hf_trainer_grouped": "the same with train_sampling_strategy='group_by_length' (HF's own length grouping)",
        "textbrewer": "textbrewer.MultiTeacherDistiller, 3 teachers online every step, DataLoader(shuffle=True) + "
                      "DataCollatorWithPadding, kd_loss_type='ce' (T=6, weight 0.7) + hard-label loss (0.3)",
    }
    out = {"task": TASK, "examples": len(enc), "batch_size": b.bs, "max_length": b.max_length,
           "student": smodel, "teachers": {"count": len(teachers), **tmodel},
           "teacher_logit_extraction_seconds": extraction_s, "sides": {}}
    for name, rs in res.items():
        kind = name.rsplit("_", 1)[0]
        out["sides"][name] = side_figures(rs, precision=name.rsplit("_", 1)[1], loop=loops[kind],
                                          teachers_online=len(teachers) if kind == "textbrewer" else 0)
    ours = f"ours_{b.prec}"
    out["paired_ratios"] = {f"{ours}/{n}": paired(res[ours], res[n]) for n in res if n != ours}
    out["textbrewer_shims"] = peers.TEXTBREWER_SHIMS
    return out


class OnlineTeachers:
    """Looks like a cached (N, C) logits tensor to mtkd.kd.loop.fit, but runs the teachers on each batch.

    fit reads ``target.logits[rows]``, so online KD goes through exactly the same loop as cached KD:
    the only difference in time is the teachers' forward passes.
    """

    def __init__(self, teachers: list, enc: Encoded, dtype):
        self.teachers, self.enc, self.dtype = teachers, enc, dtype

    def __getitem__(self, rows):
        batch = collate(self.enc, np.asarray(rows), CPU)
        with torch.no_grad(), torch.autocast("cpu", dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return torch.stack([t(**batch).logits.float() for t in self.teachers]).mean(0)


def section_teachers_k(b: Bench, teachers: list) -> dict:
    """Seconds per epoch vs number of teachers K, cached logits vs teachers online, same loop (fit)."""
    enc, labels = b.subset(b.mode.k_n)
    student = b.student()
    ks = [k for k in (1, 2, 4, 8) if k <= len(teachers)]

    def cached(k):
        def run(r):
            t0 = time.perf_counter()
            z = np.stack([predict(t, enc, device=CPU, dtype=b.dtype, batch_size=256) for t in teachers[:k]], axis=1)
            fused = fusion.fuse("average", torch.from_numpy(z)).detach().float()
            extract = time.perf_counter() - t0
            res = b.ours_epoch(student, enc, labels, 200 + r, b.dtype, KDTarget(b.T, b.alpha, logits=fused))
            res["extraction_seconds"] = extract
            return res
        return run

    def online(k):
        return lambda r: b.ours_epoch(student, enc, labels, 200 + r, b.dtype,
                                      KDTarget(b.T, b.alpha, logits=OnlineTeachers(teachers[:k], enc, b.dtype)))

    sides = {}
    for k in ks:
        sides[f"cached_k{k}"] = cached(k)
        sides[f"online_k{k}"] = online(k)
    res = interleave(sides, b.mode.k_rounds, b.mode.warmup_rounds, warm_only=["cached_k1", "online_k1"])
    epochs = int(b.student_cfg.epochs)
    out = {"examples": len(enc), "precision": b.prec, "student_epochs_per_training": epochs, "by_k": {}}
    for k in ks:
        c, o = res[f"cached_k{k}"], res[f"online_k{k}"]
        c_ep = statistics.fmean(r["seconds"] for r in c)
        ext = statistics.fmean(r["extraction_seconds"] for r in c)
        o_ep = statistics.fmean(r["seconds"] for r in o)
        out["by_k"][str(k)] = {
            "cached_epoch_seconds": summary([r["seconds"] for r in c]),
            "cached_extraction_seconds": summary([r["extraction_seconds"] for r in c]),
            "online_epoch_seconds": summary([r["seconds"] for r in o]),
            "online_over_cached_per_epoch": o_ep / c_ep,
            # one student training (the study's epochs) paying for the extraction alone, no reuse at all:
            "online_over_cached_one_training": (epochs * o_ep) / (epochs * c_ep + ext),
            "padded_tokens_per_epoch": sum(bb * w for bb, w in c[0]["shapes"]),
            "steps_per_epoch": len(c[0]["shapes"]),
        }
    return out


def _task_tokens(b: Bench, name: str, seeds: list[int], epochs: int) -> dict:
    task = b.task if name == TASK else data.load_task(name, b.params.data)
    enc = encode(b.tok, task.splits["train"], task.text_fields, b.max_length)
    per_epoch = []
    for s in seeds:
        for e in range(epochs):
            batches = length_batches(enc.lengths, b.bs, seed=s * 1000 + e)
            per_epoch.append([int(len(r) * enc.lengths[r].max()) for r in batches])
    sorted_batches = length_batches(enc.lengths, 256)
    return {"examples": len(enc), "steps_per_epoch": len(per_epoch[0]),
            "padded_tokens_per_epoch": float(np.mean([sum(x) for x in per_epoch])),
            "inference_padded_tokens": int(sum(len(r) * enc.lengths[r].max() for r in sorted_batches)),
            "text_fields": len(task.text_fields), "texts": task.splits["train"]}


def _mpnet_cost(b: Bench, enc: Encoded) -> dict:
    """Forward seconds per padded token of an encoder with all-mpnet-base-v2's shapes (random weights:
    speed does not depend on them; no 800 MB download for a benchmark). Smoke mode uses a 2-layer stand-in."""
    from transformers import MPNetConfig, MPNetModel
    cfg = MPNetConfig() if b.mode.mpnet == "base" else MPNetConfig(hidden_size=32, num_hidden_layers=2,
                                                                  num_attention_heads=2, intermediate_size=64)
    model = MPNetModel(cfg).eval()
    batches = [collate(enc, rows, CPU) for rows in length_batches(enc.lengths, b.bs, seed=7)][:6]
    for x in batches:
        x.pop("token_type_ids", None)
    ts, toks = [], []
    with torch.inference_mode(), torch.autocast("cpu", dtype=b.dtype or torch.float32, enabled=b.dtype is not None):
        model(**batches[0])                          # warm-up
        for x in batches[1:] or batches:
            t0 = time.perf_counter()
            model(**x)
            ts.append(time.perf_counter() - t0)
            toks.append(x["input_ids"].numel())
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"seconds_per_token": sum(ts) / sum(toks), "shape": f"MPNet {cfg.num_hidden_layers} layers, hidden "
            f"{cfg.hidden_size}, {params / 1e6:.1f} M params (random weights)", "batches_timed": len(ts)}


def _tfidf_cost(b: Bench) -> dict:
    """Seconds per example of the TF-IDF teacher online (transform + logistic head), from mtkd.study.teachers."""
    from sklearn.linear_model import LogisticRegression

    from mtkd.study.teachers import tfidf_features, tfidf_vectorizers
    train = b.task.splits["train"]
    vecs = tfidf_vectorizers()
    for v in vecs.values():
        v.fit([t for f in b.task.text_fields for t in train[f].tolist()])
    X = tfidf_features(vecs, train, b.task.text_fields)
    clf = LogisticRegression(max_iter=200).fit(X, train["label"].to_numpy())
    t0 = time.perf_counter()
    n = 0
    for start in range(0, min(len(train), 320), b.bs):
        part = train.iloc[start:start + b.bs]
        clf.predict_log_proba(tfidf_features(vecs, part, b.task.text_fields))
        n += len(part)
    return {"seconds_per_example": (time.perf_counter() - t0) / n}


def section_study_grid(b: Bench, peers_fig: dict, l128: dict, kfig: dict, extraction: dict) -> dict:
    """The study's student grid (tasks x methods x seeds x epochs, params/embedded.yaml), cached logits vs
    teachers recomputed online at every step, projected from the per-step figures measured above."""
    from mtkd.study.pipeline import Run, plan
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(b.params, tmp)
        units = plan(run, "students")
    seeds = list(b.params.seeds)
    epochs = int(b.student_cfg.epochs)
    # student step cost proportional to padded tokens, from our default loop on Rotten Tomatoes (the three
    # tasks' texts are all short, <= 64 tokens; the L128 step is not used: its attention share is larger)
    ours = peers_fig["sides"][f"ours_{b.prec}"]
    seconds = ours["examples_per_round"] / ours["examples_per_s"]["mean"]
    a, c = 0.0, seconds / ours["padded_tokens_per_round"]
    model_note = "seconds per padded token of our loop on Rotten Tomatoes, times each task's padded tokens"
    # teacher costs
    byk = kfig["by_k"]
    minilm_tok = statistics.fmean(
        (v["online_epoch_seconds"]["mean"] - v["cached_epoch_seconds"]["mean"]) / (int(k) * v["padded_tokens_per_epoch"])
        for k, v in byk.items())
    minilm_tok = max(minilm_tok, 0.0)
    ex = extraction["predict"]
    minilm_inf_tok = ex["examples_per_round"] / ex["examples_per_s"]["mean"] / ex["padded_tokens_per_round"]
    mp = _mpnet_cost(b, b.subset(8 * b.bs)[0])
    tf = _tfidf_cost(b)
    teacher_names = list(b.params.teachers)
    kinds = {n: b.params.teachers[n]["mode"] for n in teacher_names}

    def teacher_cost(name, tokens, n_ex, finetune_per_token):
        """Seconds for one teacher over ``tokens`` / ``n_ex``: online in a KD step, or once for extraction."""
        k = kinds[name]
        if k == "finetune":
            return finetune_per_token * tokens
        if k == "probe":
            return mp["seconds_per_token"] * tokens
        return tf["seconds_per_example"] * n_ex

    tasks = {}
    for name in b.params.data.tasks:
        tt = _task_tokens(b, name, seeds, epochs)
        tt.pop("texts")
        tasks[name] = tt
    totals = {"cached": 0.0, "online": 0.0, "extraction": 0.0}
    per_task = {}
    for name, tt in tasks.items():
        step_tok = tt["padded_tokens_per_epoch"] / tt["steps_per_epoch"]
        epoch_student = tt["steps_per_epoch"] * a + c * tt["padded_tokens_per_epoch"]
        ext = sum(teacher_cost(t, tt["inference_padded_tokens"], tt["examples"], minilm_inf_tok) for t in teacher_names)
        cached = online = 0.0
        for u in units:
            if u.task != name:
                continue
            used = run.teachers_of(u.name)
            per_epoch_teachers = sum(teacher_cost(t, tt["padded_tokens_per_epoch"], tt["examples"], minilm_tok) for t in used)
            cached += epochs * epoch_student
            online += epochs * (epoch_student + per_epoch_teachers)
        per_task[name] = {**tt, "step_tokens_mean": step_tok, "student_epoch_seconds": epoch_student,
                          "cached_students_seconds": cached, "extraction_seconds": ext,
                          "online_students_seconds": online}
        totals["cached"] += cached
        totals["extraction"] += ext
        totals["online"] += online
    cached_total = totals["cached"] + totals["extraction"]
    return {"units": len(units), "epochs": epochs, "seeds": seeds, "methods": sorted({u.name for u in units}),
            "student_step_model": {"a_seconds": a, "c_seconds_per_token": c, "how": model_note},
            "teacher_costs": {"minilm_online_seconds_per_token": minilm_tok,
                              "minilm_extraction_seconds_per_token": minilm_inf_tok,
                              "mpnet": mp, "tfidf": tf, "kinds": kinds},
            "per_task": per_task,
            "cached_seconds": cached_total, "cached_students_seconds": totals["cached"],
            "cached_extraction_seconds": totals["extraction"], "online_seconds": totals["online"],
            "online_over_cached": totals["online"] / cached_total,
            "note": "student trainings only (teachers are trained once in both cases); cached includes one "
                    "inference pass per teacher over each task's training split"}


def study_times() -> dict:
    path = HERE / "study-times.json"
    if path.exists():
        d = json.loads(path.read_text())
        return {"study_cold_seconds": d.get("study_cold_seconds"), "study_warm_seconds": d.get("study_warm_seconds"),
                "source": str(path.relative_to(ROOT)), **{k: v for k, v in d.items() if k not in
                                                          ("study_cold_seconds", "study_warm_seconds")}}
    return {"study_cold_seconds": None, "study_warm_seconds": None,
            "source": None, "note": "measured by the lead with `make study` (cold cache, then warm); put them in "
                                    "benchmarks/study-times.json to have them here"}


# ---------------------------------------------------------------- report

def goals_of(ratios: dict) -> dict:
    out = {}
    for name, (direction, goal) in GOALS.items():
        v = ratios.get(name)
        met = None if v is None else (v >= goal if direction == ">=" else v <= goal)
        out[name] = {"value": v, "goal": goal, "direction": direction, "met": met}
    return out


def table(res: dict) -> str:
    f = res["figures"]
    m = res["machine"]
    lines = [f"mtkd benchmarks ({res['mode']}) on {m['cpu_model']}, {m['cores_usable']} cores, torch {m['torch']}, "
             f"{m['torch_threads']} threads, precision {res['precision']}; load average {m['loadavg_start'][0]:.1f} -> "
             f"{m['loadavg_end'][0]:.1f}, CPU share {m['cpu_share']}" + ("  [BUSY MACHINE: noisy]" if m["busy"] else ""),
             "", f"side by side, {f['vs_peers']['task']}, {f['vs_peers']['examples']} examples/round, "
             f"batch {f['vs_peers']['batch_size']}, rounds {res['settings']['rounds']}:",
             f"  {'side':28s} {'ex/s':>8s} {'+-':>6s} {'cpu ms/ex':>10s} {'mean batch':>11s}  teachers online"]
    for name, s in f["vs_peers"]["sides"].items():
        e = s["examples_per_s"]
        lines.append(f"  {name:28s} {e['mean']:8.1f} {e['std']:6.1f} {s['cpu_ms_per_example']['mean']:10.1f} "
                     f"{'x'.join(str(round(x)) for x in s['mean_batch_shape']):>11s}  {s['teachers_online']}")
    mm, l1 = f["matmul"], f["train_step_l128"]
    lines += ["", f"matmul peak: fp32 {mm['fp32']['gflops']:.0f} GFLOP/s, "
              + (f"bf16 {mm['bf16']['gflops']:.0f} GFLOP/s" if "bf16" in mm else "bf16 n/a")
              + (f" ({mm['bf16_note']})" if mm.get("bf16_note") else "")
              + f"; our training step at L128 x {l1['batch']}: "
              + ", ".join(f"{k} {l1[k]['gflops']['mean']:.0f} GFLOP/s ({l1[k]['step_seconds']['mean']:.2f} s/step)"
                          for k in ("fp32", "bf16") if k in l1)]
    ex = f["extraction"]
    lines.append(f"logit extraction (batch {ex['batch_size']}): predict {ex['predict']['examples_per_s']['mean']:.0f} "
                 f"ex/s, bare forward {ex['bare_forward']['examples_per_s']['mean']:.0f} ex/s")
    lines.append("teachers K: " + "; ".join(
        f"K={k} cached {v['cached_epoch_seconds']['mean']:.1f} s (+{v['cached_extraction_seconds']['mean']:.1f} s "
        f"extraction) vs online {v['online_epoch_seconds']['mean']:.1f} s"
        for k, v in f["teachers_k"]["by_k"].items()) + f" per epoch of {f['teachers_k']['examples']} examples")
    sg = f["study_grid"]
    lines.append(f"study student grid ({sg['units']} trainings x {sg['epochs']} epochs, projected): cached "
                 f"{sg['cached_seconds'] / 60:.1f} min (incl. {sg['cached_extraction_seconds']:.0f} s extraction) "
                 f"vs online {sg['online_seconds'] / 60:.1f} min")
    lines += ["", f"  {'goal':30s} {'value':>10s} {'goal':>8s}  met"]
    for name, g in res["goals"].items():
        v = "n/a" if g["value"] is None else f"{g['value']:.3g}"
        met = {True: "yes", False: "NO", None: "-"}[g["met"]]
        lines.append(f"  {name:30s} {v:>10s} {g['direction'] + format(g['goal'], 'g'):>8s}  {met}")
    lines += ["", "other ratios (> 1: mtkd faster)"]
    for name, v in res["ratios"].items():
        if name not in res["goals"]:
            lines.append(f"  {name:40s} {format(v, '.3g')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--full", action="store_const", const="full", dest="mode")
    g.add_argument("--quick", action="store_const", const="quick", dest="mode")
    g.add_argument("--smoke", action="store_const", const="smoke", dest="mode",
                   help="tiny models and a few steps (for the test suite; the figures mean nothing)")
    ap.add_argument("--out", help="JSON path (default benchmarks/results.json, results-quick.json, results-smoke.json)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores, as the study)")
    args = ap.parse_args(argv)
    mode = MODES[args.mode]
    out_path = Path(args.out) if args.out else HERE / {"full": "results.json", "quick": "results-quick.json",
                                                      "smoke": "results-smoke.json"}[mode.name]
    t_start, c_start = time.perf_counter(), time.process_time()
    set_threads(args.threads)
    log(f"mode {mode.name}: installing / importing TextBrewer")
    tb_version = peers.ensure_textbrewer()
    import warnings
    warnings.filterwarnings("ignore")
    mach = machine()
    with tempfile.TemporaryDirectory(prefix="mtkd-bench-") as tmp:
        b = Bench(mode, Path(tmp))
        log(f"precision {b.prec}, threads {torch.get_num_threads()}, task {TASK}")
        figures, took = {}, {}

        def timed(name, fn, *a):
            log(f"{name} ...")
            t0 = time.perf_counter()
            figures[name] = fn(*a)
            took[name] = round(time.perf_counter() - t0, 1)
            log(f"{name}: done in {took[name]:.0f} s")

        timed("matmul", section_matmul, b)
        timed("train_step_l128", section_l128, b, figures["matmul"])
        rss_ours = rss_gb()
        teachers = [b.teacher(seed=i) for i in range(8)]
        timed("extraction", section_extraction, b, teachers[0])
        timed("vs_peers", section_vs_peers, b, teachers[:3])
        timed("teachers_k", section_teachers_k, b, teachers)
        timed("study_grid", section_study_grid, b, figures["vs_peers"], figures["train_step_l128"],
              figures["teachers_k"], figures["extraction"])
        figures["memory"] = {"peak_rss_gb_after_our_training_only": rss_ours, "peak_rss_gb": rss_gb(),
                             "note": "ru_maxrss of this process: everything above, incl. 8 teachers, HF and TextBrewer"}
        figures["section_seconds"] = took
        figures["study_times"] = study_times()
    mach["loadavg_end"] = list(os.getloadavg())
    # CPU seconds this process got per wall second: about the thread count on an idle machine
    mach["cpu_share"] = round((time.process_time() - c_start) / (time.perf_counter() - t_start), 2)
    mach["busy"] = max(mach["loadavg_start"][0], mach["loadavg_end"][0]) > (mach["cores_usable"] or 1) + 0.5
    mach["textbrewer"] = tb_version
    sides = figures["vs_peers"]["sides"]
    pr = figures["vs_peers"]["paired_ratios"]      # per round, the two sides next to each other in time
    p = b.prec
    ours = sides[f"ours_{p}"]
    tb = sides[f"textbrewer_{p}"]
    ext_s = figures["vs_peers"]["teacher_logit_extraction_seconds"]
    ours_s = ours["examples_per_round"] / ours["examples_per_s"]["mean"]
    tb_s = tb["examples_per_round"] / tb["examples_per_s"]["mean"]
    epochs = int(b.student_cfg.epochs)
    ratios = {
        "speedup_vs_textbrewer": pr[f"ours_{p}/textbrewer_{p}"]["median"],
        "speedup_vs_hf_trainer": pr[f"ours_{p}/hf_trainer_{p}"]["median"],
        "matmul_peak_fraction": figures["train_step_l128"]["fraction"],
        "extraction_overhead": figures["extraction"]["overhead"],
        "speedup_vs_textbrewer_incl_extraction": (epochs * tb_s) / (epochs * ours_s + ext_s),
        "speedup_vs_hf_trainer_grouped": pr[f"ours_{p}/hf_trainer_grouped_{p}"]["median"],
        "speedup_vs_textbrewer_cpu_time": ratio(tb, ours, "cpu_ms_per_example"),
        "speedup_vs_hf_trainer_cpu_time": ratio(sides[f"hf_trainer_{p}"], ours, "cpu_ms_per_example"),
        "study_grid_online_over_cached": figures["study_grid"]["online_over_cached"],
    }
    if "ours_fp32" in sides and p != "fp32":
        ratios[f"ours_{p}_over_fp32"] = pr[f"ours_{p}/ours_fp32"]["median"]
    if "hf_trainer_fp32" in sides and p != "fp32":
        ratios["speedup_vs_hf_trainer_fp32"] = ratio(sides["ours_fp32"], sides["hf_trainer_fp32"])
    for k, v in figures["teachers_k"]["by_k"].items():
        ratios[f"online_over_cached_k{k}"] = v["online_over_cached_per_epoch"]
    res = {"schema": SCHEMA, "mode": mode.name, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "seconds": None, "machine": mach, "precision": p, "settings": asdict(mode), "task": TASK,
           "ratios": ratios, "figures": figures,
           "goals": goals_of({**ratios, "peak_rss_gb": figures["memory"]["peak_rss_gb"],
                              "study_cold_seconds": figures["study_times"]["study_cold_seconds"],
                              "study_warm_seconds": figures["study_times"]["study_warm_seconds"]}),
           "notes": [
               "ratios > 1 mean mtkd is faster; every side ran in this process on the same texts, model, batch "
               "size, threads and precision, interleaved round by round after a discarded warm-up round",
               "side-by-side ratios are the median over rounds of the per-round ratio (figures.vs_peers.paired_ratios "
               "has every round); extraction_overhead likewise; the matmul peak is its best repetition",
               "*_cpu_time ratios use process CPU seconds per example: a cross-check when the machine is busy",
               "study_cold_seconds / study_warm_seconds come from benchmarks/study-times.json when present "
               "(measured by `make study`), else null",
           ]}
    if mach["busy"]:
        res["notes"].append(f"the machine was busy (load average {mach['loadavg_start'][0]:.1f} -> "
                            f"{mach['loadavg_end'][0]:.1f} on {mach['cores_usable']} cores): wall figures are noisy")
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(table(res))
    print(f"\nwritten {out_path} in {res['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
