"""The default study's splits: SNLI tests on its official test file, per-task test and train sizes
(data.test_sizes, data.train_sizes)."""
from __future__ import annotations

import numpy as np
import pytest

from mtkd.data import tasks as data
from mtkd.study.config import ParamsError, load_params
from mtkd.data.tasks import load_task


def params(**kw):
    base = {"tasks": ["rotten_tomatoes", "snli", "trec"], "train_size": 1200, "selection_size": 400,
            "test_size": 500, "split_seed": 0, "max_length": 64, "custom": {}, "glue_dir": ""}
    base.update(kw)
    return base


def test_snli_tests_on_the_official_test_file_only_and_shares_no_image():
    task = load_task("snli", params(test_sizes={"snli": 6000}))
    src = data._load_source("snli").set_index("idx")
    test = task.splits["test"]
    assert abs(len(test) - 6000) <= src.groupby("group").size().max()
    assert src.loc[test["idx"], "official_test"].all()
    # the official file holds 9,824 labelled pairs; the train subset supplies train and selection
    assert int(src["official_test"].sum()) == pytest.approx(9_824, abs=30)         # minus exact duplicates
    groups = {s: set(src.loc[df["idx"], "group"]) for s, df in task.splits.items()}
    assert not groups["test"] & (groups["train"] | groups["selection"])
    shares = np.bincount(test["label"], minlength=3) / len(test)
    assert np.abs(shares - 1 / 3).max() < 0.02


def test_snli_can_test_on_the_whole_official_file_but_not_more():
    src = data._load_source("snli")
    n_official = int(src["official_test"].sum())
    task = load_task("snli", params(test_sizes={"snli": n_official}))
    assert len(task.splits["test"]) == n_official
    with pytest.raises(ValueError, match=r"only [\d,]+ examples it can test on \(its official test file\)"):
        load_task("snli", params(test_sizes={"snli": n_official + 1}))


def test_test_sizes_override_test_size_per_task():
    trec = load_task("trec", params(test_sizes={"trec": 2000}))
    rt = load_task("rotten_tomatoes", params(test_sizes={"trec": 2000}))
    assert len(trec.splits["test"]) == 2000
    assert int((trec.splits["test"]["label"] == 0).sum()) == round(2000 * 86 / 5381)   # ABBR, stratified
    assert abs(len(rt.splits["test"]) - 500) <= 60                  # the shared test_size, whole movies


def test_test_sizes_are_checked(tmp_path):
    base = "params/smoke.yaml"
    with pytest.raises(ParamsError, match=r"data\.test_sizes\.sst3: not a known task"):
        load_params(base, ["data.test_sizes={sst3: 100}"])
    with pytest.raises(ParamsError, match=r"data\.test_sizes\.trec: expected an integer >= 0"):
        load_params(base, ["data.test_sizes={trec: -3}"])
    assert load_params(base, ["data.test_sizes={trec: 300}"]).data.test_sizes == {"trec": 300}


def test_train_sizes_override_train_size_per_task_and_zero_takes_all_that_remain():
    trec = load_task("trec", params(test_sizes={"trec": 2000}, train_sizes={"trec": 0}))
    # 5,381 questions after dedup: 2,000 test, 400 selection, every other one trains
    assert len(trec.splits["train"]) == 5381 - 2000 - 400
    abbr = int((trec.splits["train"]["label"] == 0).sum())
    assert abbr == 86 - int((trec.splits["test"]["label"] == 0).sum()) - int((trec.splits["selection"]["label"] == 0).sum())
    # test and selection do not depend on the train size; the other tasks keep data.train_size
    same = load_task("trec", params(test_sizes={"trec": 2000}))
    for split in ("test", "selection"):
        assert trec.splits[split]["idx"].tolist() == same.splits[split]["idx"].tolist()
    assert len(same.splits["train"]) == 1200
    assert len(load_task("rotten_tomatoes", params(train_sizes={"trec": 0})).splits["train"]) == 1200
    assert len(load_task("trec", params(train_sizes={"trec": 700})).splits["train"]) == 700


def test_train_sizes_are_checked_and_named_in_errors():
    base = "params/smoke.yaml"
    with pytest.raises(ParamsError, match=r"data\.train_sizes\.sst3: not a known task"):
        load_params(base, ["data.train_sizes={sst3: 100}"])
    with pytest.raises(ParamsError, match=r"data\.train_sizes\.trec: expected an integer >= 0 \(0 = all that remain\)"):
        load_params(base, ["data.train_sizes={trec: 2.5}"])
    with pytest.raises(ValueError, match=r"data\.train_sizes\.trec=9000 but trec has only 4,481 training"):
        load_task("trec", params(train_sizes={"trec": 9000}))
