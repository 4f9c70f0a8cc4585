"""GPU check: the GLUE profile's code paths (GLUE parquet loading, fine-tuned teachers, logits, students, the
confirming stage, the results stage) on CUDA with bf16, on small GLUE-format fixtures and tiny models: what a
GPU box runs, in about a minute, without the hub. Run from the repository root:

    python scripts/gpu_check.py [cuda|cpu] [OUT_DIR]

Needs the study's dependencies except papermill and the notebooks' (no notebook is executed).
"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from glue_fixture import write_glue_fixture
from mtkd.study import config
from mtkd.study.pipeline import Run, active_stages, run_stage
from mtkd.study.results_stage import run_results_stage

device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/devcheck"
root = f"{out}/glue"
for name in ("sst2", "mnli", "mrpc"):
    write_glue_fixture(root, name, n_train=600, n_val=240)
tiny = lambda ep, lr: {"model": "tiny-bert", "mode": "finetune", "epochs": ep, "lr": lr, "batch_size": 32}
raw = config.apply_overrides(config.read_yaml("params/glue.yaml"), [
    f"data.glue_dir={root}", "data.tasks=[sst2,mnli,mrpc]", "data.selection_size=120", "data.max_length=48",
    f"device={device}", "seeds=[1,2,3]", "sweep.enabled=false", "stats.min_confirm_seeds=3",
    "stats.max_confirm_seeds=4", "student.model=tiny-bert", "student.layers=1", "student.epochs=2",
    "student.lr=3.0e-3", "distill.methods=[baseline,single,average,weighted,best_per_sample,gating]"])
raw["teachers"] = {"a": tiny(3, 3e-3), "b": tiny(2, 1e-3), "c": tiny(2, 2e-3)}
params = config.validate(raw)
run = Run(params, f"{out}/run")
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("device", run.device, "dtype", run.ctx.dtype)
t0 = time.time()
for stage in active_stages(run):
    t = time.time()
    info = run_stage(run, stage)
    print(f"stage {stage}: {info} in {time.time() - t:.1f} s", flush=True)
success = run_results_stage(run)
print(f"results in {time.time() - t0:.1f} s total")
for task, t in success["tasks"].items():
    a, d = t["multi_advantage_pp"], t["distillation_effect_pp"]
    print(task, t["best_single"]["method"], t["best_multi"]["method"], "seeds", a["seeds"],
          f"adv {a['diff_pp']:+.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}] mde {a['mde_pp']:.2f} {a['verdict']} {a['note']}",
          f"| distil {d['diff_pp']:+.2f} mde {d['mde_pp']:.2f} {d['verdict']} {d['note']}")
plan = json.load(open(f"{out}/run/confirm_plan.json"))
print({t: (v["seeds"], v["methods"], v["capped"]) for t, v in plan["tasks"].items()})
import pandas as pd
c = pd.read_csv(f"{out}/run/comparisons.csv")
print(c[["task", "comparison", "family", "seeds", "diff_pp", "verdict", "mde_pp", "note"]].to_string())
