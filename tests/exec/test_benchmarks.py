"""benchmarks/run.py in its smallest form (--smoke: tiny models, a few steps), so the benchmarks cannot rot.

Not a timed test: nothing here asserts a speed. It checks that every side ran (our loop, the Hugging Face
Trainer and TextBrewer) and that the JSON has the schema the README and `make bench` promise.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RATIOS = ["speedup_vs_textbrewer", "speedup_vs_hf_trainer", "matmul_peak_fraction", "extraction_overhead",
          "speedup_vs_textbrewer_incl_extraction", "speedup_vs_hf_trainer_grouped", "speedup_vs_textbrewer_cpu_time",
          "speedup_vs_hf_trainer_cpu_time", "study_grid_online_over_cached", "ours_bf16_over_fp32",
          "online_over_cached_k1", "online_over_cached_k2", "online_over_cached_k4", "online_over_cached_k8"]
GOALS = ["speedup_vs_textbrewer", "speedup_vs_hf_trainer", "matmul_peak_fraction", "extraction_overhead",
         "peak_rss_gb", "study_cold_seconds", "study_warm_seconds"]
MACHINE = ["cpu_model", "cores", "cores_usable", "torch_threads", "torch", "transformers", "textbrewer", "python",
           "cpu_bf16", "loadavg_start", "loadavg_end", "cpu_share", "busy"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results-smoke.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_every_ratio_present_and_finite(smoke):
    res, _ = smoke
    # without bf16 every side runs fp32, and the bf16/fp32 ratio of our loop does not exist
    names = RATIOS if res["precision"] == "bf16" else [n for n in RATIOS if n != "ours_bf16_over_fp32"]
    for name in names:
        assert name in res["ratios"], name
        assert _finite(res["ratios"][name]), (name, res["ratios"][name])
    assert all(_finite(v) for v in res["ratios"].values())


def test_goals_record_value_goal_and_verdict(smoke):
    res, _ = smoke
    assert set(GOALS) <= set(res["goals"])
    for name, g in res["goals"].items():
        assert set(g) >= {"value", "goal", "direction", "met"}, name
        assert _finite(g["goal"]) and g["direction"] in (">=", "<=")
        if g["value"] is None:                       # only the study times may be absent (measured by `make study`)
            assert name.startswith("study_") and g["met"] is None
        else:
            assert _finite(g["value"]) and g["met"] == (g["value"] >= g["goal"] if g["direction"] == ">="
                                                        else g["value"] <= g["goal"])


def test_machine_and_settings_recorded(smoke):
    res, _ = smoke
    for key in MACHINE:
        assert key in res["machine"], key
    assert res["machine"]["cores"] >= 1 and res["machine"]["torch_threads"] >= 1
    assert res["machine"]["textbrewer"] == "0.2.1.post1"
    assert res["mode"] == "smoke" and res["schema"] == 1 and res["precision"] in ("bf16", "fp32")
    assert res["settings"]["model"] == "tiny-bert"


def test_every_side_ran_on_the_same_data_batch_and_threads(smoke):
    res, _ = smoke
    peers = res["figures"]["vs_peers"]
    p = res["precision"]
    sides = peers["sides"]
    for name in (f"ours_{p}", f"hf_trainer_{p}", f"hf_trainer_grouped_{p}", f"textbrewer_{p}"):
        assert name in sides, name
    threads = {s["threads"] for s in sides.values()}
    assert threads == {res["machine"]["torch_threads"]}
    for name, s in sides.items():
        assert s["examples_per_round"] == peers["examples"], name
        assert s["precision"] in ("bf16", "fp32") and s["loop"]
        assert _finite(s["examples_per_s"]["mean"]) and s["examples_per_s"]["mean"] > 0
        assert s["mean_batch_shape"][0] <= peers["batch_size"]
    assert sides[f"textbrewer_{p}"]["teachers_online"] == 3 and sides[f"ours_{p}"]["teachers_online"] == 0
    assert peers["student"]["layers"] >= 1 and peers["teachers"]["count"] == 3


def test_other_figures_have_their_shapes(smoke):
    res, table = smoke
    f = res["figures"]
    assert {"fp32", "peak_gflops"} <= set(f["matmul"])
    assert f["train_step_l128"]["seq"] == 128 and f["train_step_l128"]["flops_per_step"]["flops"] > 0
    assert set(f["teachers_k"]["by_k"]) == {"1", "2", "4", "8"}
    assert f["study_grid"]["units"] > 0 and f["study_grid"]["cached_seconds"] > 0
    assert f["memory"]["peak_rss_gb"] > 0
    assert "study_cold_seconds" in f["study_times"]
    assert "speedup_vs_textbrewer" in table and "goal" in table


def _bench_module():
    """benchmarks/run.py imported (not run): its plan and sections, without a subprocess."""
    import importlib.util
    if "mtkd_bench_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mtkd_bench_run", ROOT / "benchmarks" / "run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module                 # its dataclasses look their module up while defined
        environ, path = dict(os.environ), list(sys.path)
        try:
            spec.loader.exec_module(module)
        finally:                                        # its env defaults and sys.path entry stay out of other tests
            os.environ.clear()
            os.environ.update(environ)
            sys.path[:] = path
    return sys.modules["mtkd_bench_run"]


@pytest.mark.parametrize("mode", ["quick", "full", "smoke"])
def test_matmul_times_bf16_small_or_not_at_all_where_the_cpu_only_emulates_it(monkeypatch, mode):
    """Without avx512_bf16 / amx_bf16 a bf16 matmul at n=4096 takes minutes: bf16 is timed at n <= 512 only
    (or skipped without oneDNN), and the output says so. Only the plan is checked: no matmul runs here."""
    bench = _bench_module()
    m = bench.MODES[mode]
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(bench.torch.backends.mkldnn, "is_available", lambda: True)
    plan, note = bench.matmul_plan(m)
    assert plan["fp32"] == tuple(m.matmul_sizes)
    assert plan["bf16"] and max(plan["bf16"]) <= 512
    assert note.startswith("bf16 emulated on this CPU: measured at n=") and "only" in note
    monkeypatch.setattr(bench.torch.backends.mkldnn, "is_available", lambda: False)
    plan, note = bench.matmul_plan(m)
    assert "bf16" not in plan and "skipped" in note
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: True)              # native bf16: every size, no note
    assert bench.matmul_plan(m) == ({"fp32": tuple(m.matmul_sizes), "bf16": tuple(m.matmul_sizes)}, None)


def test_section_matmul_reports_emulated_bf16_per_size(monkeypatch, capsys):
    """section_matmul follows the plan, prints a line per size and puts the note in its bf16 line and figure."""
    bench = _bench_module()
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(bench.torch.backends.mkldnn, "is_available", lambda: True)
    tiny = bench.MODES["smoke"].__class__(**{**bench.asdict(bench.MODES["smoke"]), "matmul_sizes": (16, 1024),
                                             "matmul_reps": 1})
    sizes = []
    real = bench.torch.randn
    monkeypatch.setattr(bench.torch, "randn", lambda n, _m: sizes.append(n) or real(min(n, 16), min(n, 16)))
    out = bench.section_matmul(type("B", (), {"mode": tiny})())
    assert sizes == [16, 16, 1024, 1024, 16, 16]                 # bf16: n <= 512 only, never 1024
    assert set(out["bf16"]["gflops_by_size"]) == {"16"} and "emulated" in out["bf16_note"]
    err = capsys.readouterr().err
    assert "matmul fp32 n=1024" in err and "matmul bf16 n=16" in err and "bf16 n=1024" not in err
    assert "measured at n=16 only" in next(l for l in err.splitlines() if l.startswith("bench: matmul bf16:"))
