"""`workers: 2`: a stage's units shared by local processes give the units of one process, bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtkd.study import config, io, pipeline
from mtkd.study.pipeline import Run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
# One task, a few methods and both seeds: teachers, logits and students each have several units.
SMALL = ["data.tasks=[trec]", "sweep.enabled=false", "distill.methods=[baseline,single,average,gating]",
         "report.html=false"]

pytestmark = pytest.mark.slow


def _run(out: Path, workers: int) -> Run:
    run = Run(config.load_params(SMOKE, SMALL + [f"workers={workers}"]), out)
    io.write_text(run.dir / "params.yaml", config.dump_params(run.params))
    return run


def _done_units(run: Run) -> list[str]:
    return sorted(str(p.parent.relative_to(run.dir)) for p in (run.dir / "cache").rglob(".done"))


def test_two_workers_compute_the_units_of_one_process(tmp_path):
    one, two = _run(tmp_path / "one", 1), _run(tmp_path / "two", 2)
    for stage in ("teachers", "logits", "students"):
        pipeline.run_stage(one, stage)
        info = pipeline.run_stage(two, stage)
        assert info["computed"] == len(pipeline.plan(two, stage)), stage
    assert _done_units(two) == _done_units(one)              # the same units under the same cache keys
    for unit in pipeline.plan(one, "students"):
        a = np.load(one.unit_dir(unit) / "predictions.npz")
        b = np.load(two.unit_dir(unit) / "predictions.npz")
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{unit.label}: {key}")
    # a second pass finds every unit done and starts no worker
    assert pipeline.run_stage(two, "students")["computed"] == 0


def test_a_failing_unit_stops_the_stage_with_its_own_error(tmp_path):
    run = _run(tmp_path / "run", 2)
    for stage in ("teachers", "logits"):
        pipeline.run_stage(run, stage)
    (run.dir / "logits" / "trec" / "tiny_a" / "train.npz").write_bytes(b"not an npz file")
    with pytest.raises(Exception) as err:
        pipeline.run_stage(run, "students")
    assert "train.npz" in str(err.value) or "tiny_a" in str(err.value), str(err.value)
    for unit in pipeline.plan(run, "students"):
        folder = run.unit_dir(unit)
        assert run.is_done(unit) or not (folder / "predictions.npz").exists(), unit.label   # nothing half-written


def test_workers_is_checked_like_every_param():
    with pytest.raises(ValueError, match="workers"):
        config.load_params(SMOKE, ["workers=0"])
