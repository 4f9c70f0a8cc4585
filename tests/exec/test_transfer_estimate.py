"""`--dry-run` with a transfer set: the preflight checks the pool, the estimate counts its rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from mtkd.exec import estimate
from mtkd.exec.cli import main
from mtkd.study import config
from mtkd.study.pipeline import Run, student_methods


def _params_file(tmp_path, transfer_size: int):
    rng = np.random.default_rng(0)
    for split, n in (("train", 100), ("test", 40), ("unlabeled", 70)):
        frame = pd.DataFrame({"text": [f"a {split} review {i} that is {rng.choice(['good', 'bad'])}"
                                       for i in range(n)]})
        if split != "unlabeled":
            frame["label"] = rng.integers(0, 2, n)
        frame.to_csv(tmp_path / f"{split}.csv", index=False)
    raw = {"run_name": "toy", "seeds": [1, 2], "device": "cpu", "precision": "fp32", "threads": 1,
           "data": {"tasks": ["toy"], "max_length": 16, "selection_size": 20,
                    "custom": {"toy": {"files": {s: str(tmp_path / f"{s}.csv") for s in ("train", "test", "unlabeled")},
                                       "text_fields": ["text"], "label_names": ["neg", "pos"]}}},
           "teachers": {"tfidf": {"model": "tfidf", "mode": "tfidf"}, "tiny": {"model": "tiny-bert"}},
           "student": {"model": "tiny-bert", "layers": 1},
           "distill": {"methods": ["baseline", "single", "average"], "transfer_size": transfer_size}}
    path = tmp_path / f"toy-{transfer_size}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_student_estimates_count_the_transfer_rows_of_distilled_students_only(tmp_path):
    runs = {n: Run(config.load_params(_params_file(tmp_path, n)), tmp_path / f"run{n}") for n in (0, 60)}
    hw = estimate.cpu_hardware(1, bf16=False)
    plans = {n: {s.name: s for s in estimate.stage_plans(r, hw, half=False)} for n, r in runs.items()}
    methods = student_methods(runs[60])
    assert methods == ["baseline", "single:tfidf", "single:tiny", "multi:average"]
    arch, _ = estimate.arch_of("tiny-bert", 1)
    task = runs[0].task("toy")
    tokens = estimate.mean_tokens(task.splits["train"], ["text"], 16)
    evaluation = estimate.infer_seconds(arch, hw, 20 + 40, tokens)
    for n, plan in plans.items():
        want = [estimate.train_seconds(arch, hw, 80 + (0 if m == "baseline" else n), 2, 32, tokens) + evaluation
                for m in methods] * 2                                # two seeds
        assert plan["students"].durations == want
    assert plans[60]["logits"].durations > plans[0]["logits"].durations      # the teachers score 60 more rows
    assert "+ 60 transfer examples per distilled student" in plans[60]["students"].per_task["toy"]


def test_dry_run_notes_the_transfer_set_and_refuses_one_too_large(tmp_path, capsys):
    assert main(["run", str(_params_file(tmp_path, 60)), "--dry-run", "--out", str(tmp_path / "a")]) == 0
    assert "task toy: train 80, selection 20, test 40; labels neg, pos; metric accuracy; transfer set 60" in \
        capsys.readouterr().out
    assert main(["run", str(_params_file(tmp_path, 71)), "--dry-run", "--out", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "distill.transfer_size=71 but toy's transfer pool has only 70 examples" in err
    assert not (tmp_path / "b").exists()
