"""The Ray executor: same results as the sequential executor, bounded retries, failures that keep the rest.

A local Ray with 2 CPUs is started once for the module (run_all reuses it and leaves it running).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

import ray  # (the optional extra: `pip install mtkd[ray]`, installed by `make test`)

from mtkd.study import collect, config, io, pipeline
from mtkd.study.pipeline import Run, Unit
from mtkd.exec.ray_executor import UnitFailed, resources, run_all
from mtkd.exec.runner import NOTEBOOKS, run_study

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
# One task, every method, both seeds and a 2-point sweep: every stage and every fuser runs.
SAME = ["data.tasks=[trec]", "report.html=false"]
# The retry and failure tests need only a few units.
SMALL = ["data.tasks=[trec]", "sweep.enabled=false", "distill.methods=[baseline,single,average]", "seeds=[1]"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    # The test functions below are handed to the workers by value (the tests folder is not importable there).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    yield
    ray.shutdown()


def _run(out: Path, overrides: list[str]) -> Run:
    return Run(config.load_params(SMOKE, overrides), out)


def _sequential(run: Run) -> None:
    io.write_text(run.dir / "params.yaml", config.dump_params(run.params))
    for stage in pipeline.STAGES:
        pipeline.run_stage(run, stage)


def _done_markers(run: Run) -> list[str]:
    return sorted(str(p.relative_to(run.dir)) for p in (run.dir / "cache").rglob(".done"))


def test_ray_gives_the_same_results_as_sequential(tmp_path):
    """`mtkd run --executor ray` end to end (units on Ray, then the results stage and the notebooks) against
    the sequential executor's units (the runner's own calls: run_stage per stage, then the results)."""
    seq = _run(tmp_path / "seq", SAME)
    _sequential(seq)
    collect.write_results(seq)
    collect.write_sweep_results(seq)

    out = run_study(str(SMOKE), overrides=SAME, out=str(tmp_path / "ray"), executor="ray")
    par = Run.open(out)
    assert (par.dir / ".complete").exists()
    assert sorted(p.name for p in (par.dir / "reports").glob("*.ipynb")) == [f"{n}.ipynb" for n in NOTEBOOKS]
    # Ray computed every unit (its stage markers say so); the results stage and the notebooks only read them
    for stage in pipeline.STAGES:
        units = pipeline.plan(par, stage)
        assert all(par.is_done(u) for u in units), stage
        marker = io.read_json(io.stage_marker(par.dir, stage))
        assert marker["executor"] == "ray" and marker["computed"] + marker["reused"] == len(units), stage
    assert _done_markers(par) == _done_markers(seq)           # the same units under the same cache keys

    for name in ("master_results.csv", "sweep_results.csv", "summary.csv", "comparisons.csv"):
        a, b = pd.read_csv(seq.dir / name), pd.read_csv(par.dir / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    pa = pd.read_parquet(seq.dir / "predictions.parquet")
    pb = pd.read_parquet(par.dir / "predictions.parquet")
    pd.testing.assert_frame_equal(pa.drop(columns="probs"), pb.drop(columns="probs"), check_exact=True)
    assert all((x == y).all() for x, y in zip(pa["probs"], pb["probs"]))       # bit for bit
    assert set(pd.read_csv(par.dir / "master_results.csv").kind) == {"teacher", "baseline", "single", "multi"}

    # a second Ray pass finds everything done and computes nothing
    again = run_all(Run.open(out))
    assert all(s["computed"] == 0 for s in again)


# ---------------------------------------------------------------- retries and failures

FLAKY = "students trec/single:tiny_a seed 1"


def fails_once(run_dir: str, unit: Unit) -> str:
    """Fails the first attempt of one unit (a marker file remembers it across worker processes)."""
    marker = Path(run_dir) / f"failed-once-{unit.stage}-{unit.name.replace(':', '-')}"
    if unit.label == FLAKY and not marker.exists():
        marker.write_text("x")
        raise OSError("simulated transient failure (a lost file handle)")
    return pipeline.run_unit(run_dir, unit)


def always_fails(run_dir: str, unit: Unit) -> str:
    if unit.label == FLAKY:
        raise ValueError("simulated bug in this unit")
    return pipeline.run_unit(run_dir, unit)


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A run whose student FLAKY always fails (retried once): the error, and the run left behind."""
    run = _run(tmp_path_factory.mktemp("failed") / "run", SMALL)
    with pytest.raises(RuntimeError) as info:
        run_all(run, max_retries=1, unit_fn=always_fails)
    return run, info.value


def test_a_unit_that_always_fails_stops_the_run_and_keeps_the_rest(failed_run):
    run, error = failed_run
    msg = str(error)
    assert isinstance(error, UnitFailed)
    assert FLAKY in msg and "after 2 attempts" in msg and "ValueError: simulated bug in this unit" in msg
    assert "run the same command again to resume" in msg
    assert isinstance(error.__cause__, ValueError)
    # the earlier stages and every other unit of the failing stage are finished and kept
    for stage in ("teachers", "logits"):
        assert all(run.is_done(u) for u in pipeline.plan(run, stage)), stage
        assert io.stage_done(run.dir, stage)
    students = pipeline.plan(run, "students")
    assert len(students) == 5
    for unit in students:
        assert run.is_done(unit) == (unit.label != FLAKY), unit.label
    assert not io.stage_done(run.dir, "students")


def test_a_unit_that_fails_once_is_retried_and_the_run_completes(failed_run, capfd):
    """Resuming the failed run: only the failed unit is computed; it fails once, is retried and succeeds."""
    run, _ = failed_run
    capfd.readouterr()
    summaries = run_all(run, max_retries=1, unit_fn=fails_once)
    n_conditions = len(pipeline.plan(run, "conditions"))       # smoke's grid: 6 units of its own (see test_accelerate)
    assert {s["stage"]: (s["computed"], s["reused"]) for s in summaries} == {
        "teachers": (0, 3), "logits": (0, 3), "students": (1, 4), "confirm": (6, 0),    # 3 methods x 2 fresh seeds
        "conditions": (6, n_conditions - 6)}
    assert (run.dir / "failed-once-students-single-tiny_a").exists()
    assert all(run.is_done(u) for u in pipeline.plan(run, "students"))
    assert io.stage_done(run.dir, "students")
    err = capfd.readouterr().err
    assert f"{FLAKY} failed (attempt 1 of 2: OSError: simulated transient failure" in err and "retrying" in err
    assert f"{FLAKY}: done in" in err and "(attempt 2)" in err
    collect.write_results(run)
    assert set(pd.read_csv(run.dir / "master_results.csv").method) >= {"baseline", "single:tiny_a", "multi:average"}


def test_resource_requests(tmp_path):
    run = _run(tmp_path / "run", SMALL + ["threads=0"])      # smoke.yaml pins one thread; 0 = every core
    teacher = Unit("teachers", "trec", "tiny_a", 1)
    tfidf = Unit("teachers", "trec", "tfidf", 1)
    student = Unit("students", "trec", "baseline", 1, 6.0, 0.7)
    assert resources(run, student, "cuda", 16) == {"num_gpus": 1, "num_cpus": 1}
    assert resources(run, teacher, "cuda", 16) == {"num_gpus": 1, "num_cpus": 1}
    assert resources(run, student, "cpu", 16) == {"num_cpus": 1}
    assert resources(run, teacher, "cpu", 16) == {"num_cpus": 4}
    assert resources(run, teacher, "cpu", 2) == {"num_cpus": 2}
    assert resources(run, tfidf, "cpu", 16) == {"num_cpus": 1}
    threaded = _run(tmp_path / "run2", [*SMALL, "threads=3"])
    assert resources(threaded, student, "cpu", 16) == {"num_cpus": 3}


def test_importing_mtkd_does_not_import_ray():
    import subprocess
    code = "import sys, mtkd, mtkd.study.pipeline, mtkd.exec.runner, mtkd.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
