"""Several processes of one launch (`accelerate launch` / `torchrun`) share the units of a study.

On this CPU-only machine `accelerate launch --multi_gpu --num_processes 2` (the documented command)
starts two processes as on a GPU box; `accelerate.PartialState` joins them in a gloo group instead of
NCCL. The failure test launches a script with `torchrun`, which sets the same environment.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conftest import subprocess_env
from mtkd.study import collect, config, io, pipeline
from mtkd.study.pipeline import Run
from mtkd.exec.runner import NOTEBOOKS, RunError, run_study

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
SAME = ["data.tasks=[trec]", "report.html=false"]
SMALL = ["data.tasks=[trec]", "sweep.enabled=false", "distill.methods=[baseline,single,average]", "seeds=[1]"]
FLAKY = "students trec/single:tiny_a seed 1"


def _launch(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=900)


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args], cwd)


def accelerate_launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    with socket.socket() as s:                      # a free port for the group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _launch([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    "--main_process_port", str(port), *args], cwd)


def test_two_processes_give_the_same_results_as_sequential(tmp_path):
    seq = Run(config.load_params(SMOKE, SAME), tmp_path / "seq")
    io.write_text(seq.dir / "params.yaml", config.dump_params(seq.params))
    for stage in pipeline.STAGES:
        pipeline.run_stage(seq, stage)
    collect.write_results(seq)
    collect.write_sweep_results(seq)

    sets = [a for s in SAME for a in ("--set", s)]
    done = accelerate_launch("-m", "mtkd.cli", "run", str(SMOKE), *sets, "--out", str(tmp_path / "par"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    par = Run.open(tmp_path / "par")
    assert (par.dir / ".complete").exists()
    assert sorted(p.name for p in (par.dir / "reports").glob("*.ipynb")) == [f"{n}.ipynb" for n in NOTEBOOKS]
    # both processes computed units (every other one of each stage's plan)
    for rank in (0, 1):
        assert f"students: process {rank} of 2 has" in done.stderr
    assert "on process 1 in" in done.stderr and "on process 0 in" in done.stderr
    for stage in pipeline.STAGES:
        assert all(par.is_done(u) for u in pipeline.plan(par, stage)), stage
    for name in ("master_results.csv", "sweep_results.csv", "summary.csv", "comparisons.csv"):
        a, b = pd.read_csv(seq.dir / name), pd.read_csv(par.dir / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    pa, pb = pd.read_parquet(seq.dir / "predictions.parquet"), pd.read_parquet(par.dir / "predictions.parquet")
    assert all((x == y).all() for x, y in zip(pa["probs"], pb["probs"]))       # bit for bit


FAILING_SCRIPT = """
import sys
from mtkd.study import config, pipeline
from mtkd.exec.accelerate_executor import run_all
from mtkd.study.pipeline import Run

def always_fails(run_dir, unit):
    if unit.label == {flaky!r}:
        raise ValueError("simulated bug in this unit")
    return pipeline.run_unit(run_dir, unit)

run = Run(config.load_params({smoke!r}, {small!r}), {out!r})
try:
    run_all(run, max_retries=1, unit_fn=always_fails)
except Exception as e:
    print(f"RAISED {{type(e).__name__}}: {{e}}", file=sys.stderr)
    sys.exit(3)
"""


def test_a_unit_that_always_fails_stops_every_process_and_keeps_the_rest(tmp_path):
    script = tmp_path / "failing.py"
    out = tmp_path / "run"
    script.write_text(textwrap.dedent(FAILING_SCRIPT.format(flaky=FLAKY, smoke=str(SMOKE), small=SMALL, out=str(out))))
    io.write_text(out / "params.yaml", config.dump_params(config.load_params(SMOKE, SMALL)))
    done = torchrun(str(script), cwd=tmp_path)
    assert done.returncode != 0
    # both processes stop with the same error, naming the unit, its process and its attempts
    raised = [line for line in done.stderr.splitlines() if "RAISED UnitFailed" in line]
    assert len(raised) == 2, done.stderr[-4000:]
    assert all(FLAKY in line and "after 2 attempts" in line and "simulated bug" in line for line in raised)
    assert "run the same command again to resume" in raised[0]
    run = Run.open(out)
    for stage in ("teachers", "logits"):
        assert all(run.is_done(u) for u in pipeline.plan(run, stage)), stage
    for unit in pipeline.plan(run, "students"):
        assert run.is_done(unit) == (unit.label != FLAKY), unit.label
    assert not io.stage_done(run.dir, "students")


def test_retries_then_completes_in_one_process(tmp_path):
    """Without a launcher the accelerate executor is one process doing every unit; a transient failure is retried."""
    from mtkd.exec.accelerate_executor import run_all
    run = Run(config.load_params(SMOKE, SMALL), tmp_path / "run")
    io.write_text(run.dir / "params.yaml", config.dump_params(run.params))
    calls = []

    def fails_once(run_dir, unit):
        calls.append(unit.label)
        if unit.label == FLAKY and calls.count(FLAKY) == 1:
            raise OSError("simulated transient failure")
        return pipeline.run_unit(run_dir, unit)

    summaries = run_all(run, max_retries=1, unit_fn=fails_once)
    assert calls.count(FLAKY) == 2
    # smoke's conditions (transfer 0/40, two teacher sets; fusers average, gating) add 6 units beside these
    # students: gating at the main settings, single/average/gating with 40 transfer rows, average/gating of the
    # two-teacher subset; the rest are the main study's own units, reused. The confirming stage trains best
    # single, best multi and the baseline on smoke's two fresh seeds (2 and 3 after the one choosing seed)
    assert {s["stage"]: s["computed"] for s in summaries} == {"teachers": 3, "logits": 3, "students": 5,
                                                              "confirm": 6, "conditions": 6}
    assert all(io.stage_done(run.dir, s) for s in ("teachers", "logits", "students", "confirm", "conditions"))


def test_ray_is_refused_under_a_multi_process_launch(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RunError, match="--executor ray under a multi-process launch"):
        run_study(str(SMOKE), SMALL, out=str(tmp_path / "x"), executor="ray")
    assert not (tmp_path / "x").exists()
