"""Human label counts end to end: a custom CSV with count columns through the stages, the results stage
and notebook 10 (papermill), and the prepared splits keeping the counts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mtkd.exec.runner import execute_notebook
from mtkd.study import config, io
from mtkd.study.results_stage import run_results_stage
from mtkd.study.pipeline import STAGES, Run, run_stage
from mtkd.study.prepared import prepared_task

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["yes", "maybe", "no"]
WORDS = ["certainly", "perhaps", "never"]
pytestmark = pytest.mark.slow


def counts_frame(n: int, start: int, seed: int) -> pd.DataFrame:
    """Texts whose word names the class; five votes per row, the gold label holding a majority."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        y = i % 3
        votes = np.bincount(rng.choice(3, size=5 - (k := int(rng.integers(3, 6))), replace=True), minlength=3)
        votes[y] += k
        rows.append({"idx": start + i, "text": f"{WORDS[y]} item {start + i} {WORDS[int(rng.integers(3))]}",
                     "label": NAMES[y], "v_yes": votes[0], "v_maybe": votes[1], "v_no": votes[2]})
    return pd.DataFrame(rows)


def test_custom_csv_with_counts_runs_end_to_end(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    counts_frame(90, 0, 1).to_csv(folder / "train.csv", index=False)
    test = counts_frame(45, 1000, 2)
    test.to_csv(folder / "test.csv", index=False)
    raw = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    raw["seeds"] = [1]
    raw["data"].update(tasks=["votes"], train_size=0, selection_size=0, test_size=0, custom={"votes": {
        "files": {"train": str(folder / "train.csv"), "test": str(folder / "test.csv")},
        "text_fields": ["text"], "label_names": NAMES, "label_counts_fields": ["v_yes", "v_maybe", "v_no"]}})
    raw["teachers"] = {"tf_a": {"model": "tfidf", "mode": "tfidf", "C": 10.0},
                       "tf_b": {"model": "tfidf", "mode": "tfidf", "C": 0.1},
                       "people": {"model": "human", "mode": "human"}}       # the reference teacher
    raw["distill"] = {**raw["distill"], "methods": ["baseline", "single", "average"]}
    raw["sweep"] = {"enabled": False}
    raw.pop("conditions")          # smoke's grid names smoke's teachers
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    params = config.load_params(folder / "params.yaml")
    run = Run(params, tmp_path / "run")
    run.dir.mkdir()
    io.write_text(run.dir / "params.yaml", config.dump_params(params))
    for stage in STAGES:
        run_stage(run, stage)
    run_results_stage(run)

    info = json.loads((run.dir / "data" / "votes" / "task.json").read_text())
    assert info["label_counts_fields"] == ["v_yes", "v_maybe", "v_no"]
    back = prepared_task(run.dir, "votes", run.data_key("votes"))
    assert back.label_counts_fields == ("v_yes", "v_maybe", "v_no")
    got = back.splits["test"].set_index("idx")[["v_yes", "v_maybe", "v_no"]]
    want = test.set_index("idx")[["v_yes", "v_maybe", "v_no"]]
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), check_dtype=False)

    # the human teacher's logits: log of the add-0.5 smoothed counts, by hand
    with np.load(run.dir / "logits" / "votes" / "people" / "test.npz") as z:
        order = pd.Series(range(len(want)), index=want.index.sort_values())
        counts = want.sort_index().to_numpy(dtype=float) + 0.5
        np.testing.assert_allclose(z["logits"], np.log(counts / counts.sum(1, keepdims=True)), rtol=1e-6)
        assert (z["idx"] == order.index.to_numpy()).all()
    assert "single:people" in set(pd.read_parquet(run.dir / "predictions.parquet")["method"])

    out = execute_notebook("10_humans", run)
    nb = json.loads(out.read_text())
    text = "".join("".join(o.get("data", {}).get("text/markdown", ""))
                   for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Does fusing move the target toward human uncertainty?" in text
    assert "teacher:" in text
    assert "concentrated in the low-agreement items" in text


def test_human_teacher_needs_counts_on_every_row():
    from mtkd.data.tasks import load_task
    from mtkd.study.teachers import check_human_teacher
    data = {"tasks": ["snli"], "train_size": 300, "selection_size": 100, "test_size": 200, "split_seed": 0,
            "max_length": 64, "custom": {}, "glue_dir": ""}
    with pytest.raises(ValueError, match=r"only part of the rows carry human label counts \(train \d+ of 300"
                                         r".*data.counts_rows_only: true"):
        check_human_teacher(load_task("snli", data))
    task = load_task("snli", {**data, "counts_rows_only": True})
    check_human_teacher(task)
    for frame in task.splits.values():
        assert (frame[list(task.label_counts_fields)].to_numpy().sum(1) > 0).all()
    with pytest.raises(ValueError, match="carries no human label counts"):
        check_human_teacher(load_task("trec", {**data, "tasks": ["trec"]}))
