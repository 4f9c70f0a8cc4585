"""`mtkd run params/glue.yaml --dry-run` offline, on GLUE fixtures in the hub's parquet layout.

The dry run validates what can be validated without training (params, every task's data and
label order, models, the output folder and disk), prints the plan and the time / memory
estimates, and writes nothing. The hub models are not reachable offline: the dry run reports
them as downloads to come instead of failing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from glue_fixture import GLUE_LAYOUT, write_glue_fixture
from mtkd.exec import estimate
from mtkd.exec.cli import main

ROOT = Path(__file__).resolve().parents[2]
GLUE = str(ROOT / "params" / "glue.yaml")
TASKS = ("sst2", "mnli", "qqp", "mrpc")


def _fixtures(root: Path, **special) -> Path:
    for name in TASKS:
        write_glue_fixture(root, name, n_train=60, n_val=30, **special.get(name, {}))
    return root


def _dry_run(capsys, glue_dir: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["run", GLUE, "--dry-run", "--set", f"data.glue_dir={glue_dir}", "--set", "data.selection_size=20",
                 "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


def test_dry_run_on_glue_fixtures_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    glue = _fixtures(tmp_path / "glue")
    out = tmp_path / "run"
    code, text, err = _dry_run(capsys, glue, out)
    assert code == 0, err
    # the data was loaded and checked, task by task, with the registry's label order
    # (glue.yaml caps the selection at 10 % of a task's train: 6 of the fixture's 60, not the 20 asked for)
    assert "task mnli: train 54, selection 6, test 30; labels entailment, neutral, contradiction" in text
    assert "task qqp:" in text and "metric f1" in text
    # the hub models cannot be had offline: notes, not failures
    for model in ("bert-large-uncased", "roberta-large", "microsoft/deberta-base", "distilbert-base-uncased"):
        assert f"note: {model} will be downloaded from the hub at run time" in text
    # the plan: units per stage and per task (3 teachers x 4 tasks; 12 methods x 5 seeds; 2 x 9 x 5 sweep)
    assert "units: teachers 12 (3 per task), logits 12, students 240 (12 methods x 5 seeds = 60 per task)" in text
    assert "sweep: 360 units" in text
    assert "students mnli: 60 x" in text and "sweep mrpc: 90 x" in text
    # estimates per stage, with memory, for this machine and for a GPU; rough and said so
    assert "rough" in text and "memory/unit" in text and "GiB" in text
    assert "on one CUDA GPU" in text or "on this GPU" in text
    for stage in ("teachers", "logits", "students", "sweep"):
        assert any(line.strip().startswith(stage) for line in text.splitlines()), stage
    # how the work divides across Ray workers
    assert "--executor ray" in text and "4 workers: ~" in text and "critical path" in text
    assert "disk:" in text
    assert _nothing_written(out)


@pytest.mark.parametrize("broken, expected", [
    ("missing_column", ["mnli", "missing columns ['hypothesis']"]),
    ("label_order", ["sst2", "label names ['positive', 'negative']", "refusing to misalign"]),
    ("missing_task", ["qqp", "no train-*.parquet"]),
])
def test_dry_run_fails_clearly_on_a_broken_fixture(tmp_path, capsys, broken, expected):
    glue = tmp_path / "glue"
    if broken == "label_order":
        _fixtures(glue, sst2={"label_names": ("positive", "negative")})
    else:
        _fixtures(glue)
    if broken == "missing_column":
        for path in (glue / "mnli").glob("*.parquet"):
            pd.read_parquet(path).drop(columns="hypothesis").to_parquet(path)
    elif broken == "missing_task":
        for f in (glue / "qqp").glob("train-*.parquet"):
            f.unlink()
    out = tmp_path / "run"
    code, text, err = _dry_run(capsys, glue, out)
    assert code != 0
    message = err.lower()
    for part in expected:
        assert part.lower() in message, (part, err)
    assert "plan (" not in text                     # no plan printed for a broken study
    assert _nothing_written(out)


def test_the_layout_covers_the_study_tasks():
    assert set(TASKS) <= set(GLUE_LAYOUT)


# ---------------------------------------------------------------- the estimate model itself

def test_estimates_match_the_original_study_figures():
    """About 1-2 h per large teacher on MNLI-sized data on one GPU; 10-20 min per DistilBERT student."""
    gpu = estimate.gpu_hardware(half=True)
    bert_large, _ = estimate.arch_of("bert-large-uncased")
    teacher = estimate.train_seconds(bert_large, gpu, 390_702, 3, 32, tokens=42)
    assert 0.8 * 3600 < teacher < 2.2 * 3600
    student_arch, _ = estimate.arch_of("distilbert-base-uncased")
    student = estimate.train_seconds(student_arch, gpu, 390_702, 3, 32, tokens=42)
    assert 8 * 60 < student < 20 * 60
    # a large model's training state and activations need a big GPU; a student fits easily
    mem = estimate.train_memory(bert_large, gpu, 32, 128, half=True, frozen_embeddings=False)
    assert 8 * estimate.GiB < mem < 20 * estimate.GiB
    assert estimate.train_memory(student_arch, gpu, 32, 128, True, False) < mem / 3


def test_arch_and_makespan():
    arch, known = estimate.arch_of("minilm-l6", layers=3)
    assert known and arch.layers == 3 and arch.hidden == 384
    arch, known = estimate.arch_of("no-such-model-anywhere")
    assert not known and arch == estimate.ASSUMED
    assert 20e6 < estimate.arch_of("minilm-l6")[0].params < 25e6          # all-MiniLM-L6-v2: 22.7 M
    assert 320e6 < estimate.arch_of("bert-large-uncased")[0].params < 345e6   # BERT-large: 335 M
    assert estimate.makespan([6, 5, 4, 3], 2) == 9
    assert estimate.makespan([5, 4, 3], 1) == 12
    assert estimate.makespan([5, 4, 3], 10) == 5
