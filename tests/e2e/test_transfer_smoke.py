"""The smoke study with a transfer set (`--set distill.transfer_size=40`) end to end, notebooks included;
SNLI's students train for 2 epochs, the others' 1 (`student.task_epochs`).

curriculum (which needs labels at every step) leaves the students and the sweep: a transfer set refuses it.
"""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtkd.exec.runner import NOTEBOOKS, run_study
from mtkd.study import io
from mtkd.study.config import SCHEMA
from mtkd.study.pipeline import Run, plan

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "params" / "smoke.yaml")
METHODS = [m for m in SCHEMA["distill"]["methods"].default if m != "curriculum"]
OVERRIDES = ["distill.transfer_size=40", f"distill.methods=[{','.join(METHODS)}]", "sweep.methods=[single_best,average]",
             "student.task_epochs={snli: 2}"]
pytestmark = pytest.mark.slow


def test_smoke_study_with_a_transfer_set(tmp_path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    out = run_study(SMOKE, overrides=OVERRIDES, out=str(tmp_path / "run"))
    assert (out / ".complete").is_file()
    for nb in NOTEBOOKS:
        assert (out / "reports" / f"{nb}.html").is_file(), nb
    run = Run.open(out)
    for task in run.tasks:
        pool = pd.read_parquet(out / "data" / task / "transfer.parquet")
        examples = pd.read_parquet(out / "data" / task / "examples.parquet")
        assert len(pool) == 40 and "label" not in pool.columns
        assert not set(pool["idx"]) & set(examples["idx"])
        for teacher in run.teachers:
            with np.load(out / "logits" / task / teacher / "transfer.npz") as z:
                assert np.array_equal(z["idx"], pool["idx"].to_numpy()) and z["logits"].shape[0] == 40
    n_train = 240
    assert {t: run.student_params(t)["epochs"] for t in run.tasks} == {"rotten_tomatoes": 1, "snli": 2, "trec": 1}
    for stage in ("students", "sweep"):
        for unit in plan(run, stage):
            done = io.read_json(run.unit_dir(unit) / ".done")
            extra = 0 if unit.name == "baseline" else 40
            assert done.get("transfer_examples", 0) == extra, unit.label
            epochs = run.student_params(unit.task)["epochs"]
            assert done["steps"] == epochs * -(-(n_train + extra) // run.params.student.batch_size), unit.label
    master = pd.read_csv(out / "master_results.csv")
    assert set(master["kind"]) == {"teacher", "baseline", "single", "multi"}
