"""Human label counts as data: SNLI's annotator labels, custom label_counts_fields and their refusals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtkd.data import tasks as data
from mtkd.data.tasks import describe, describe_tasks, load_task

FIELDS = ["n_neg", "n_pos"]


def params(**kw):
    base = {"tasks": ["snli"], "train_size": 0, "selection_size": 0, "test_size": 0,
            "split_seed": 0, "max_length": 64, "custom": {}, "glue_dir": ""}
    base.update(kw)
    return base


def test_snli_counts_are_the_annotator_labels():
    src = data._load_source("snli")
    fields = list(data.TASKS["snli"].label_counts_fields)
    counts = src[fields].to_numpy()
    test = src["official_test"].to_numpy()
    with_counts = counts.sum(1) > 0
    # the test file: 9,824 labelled pairs, every one with 4 or 5 annotator labels (10 of 10,000 have 4)
    assert with_counts[test].all() and set(counts[test].sum(1)) <= {4, 5}
    # the train subset: about 6.5 k of its rows have five labels; single-label rows carry none
    assert 6_000 < int(with_counts[~test].sum()) < 7_000
    # the gold label is the annotators' majority class
    assert (counts[with_counts].argmax(1) == src["label"].to_numpy()[with_counts]).mean() > 0.99
    # 46 % of the test pairs are not unanimous (the count: 2,868 at 4/5 and 1,579 at 3/5 of 9,990)
    top = counts[test].max(1)
    assert 0.40 < float((top < counts[test].sum(1)).mean()) < 0.50


def test_snli_test_split_carries_counts_and_describe_reports_them():
    task = load_task("snli", params(train_size=300, selection_size=200, test_size=300))
    assert task.label_counts_fields == ("human_entailment", "human_neutral", "human_contradiction")
    test = task.splits["test"][list(task.label_counts_fields)].to_numpy()
    assert (test.sum(1) > 0).all() and test.dtype == np.int64
    table = describe(task)
    assert table.loc["test", "with_human_counts"] == len(task.splits["test"])      # every test row
    assert table.loc["train", "with_human_counts"] == int((task.splits["train"][list(task.label_counts_fields)]
                                                           .to_numpy().sum(1) > 0).sum())
    assert "human counts" in describe_tasks(params(train_size=300, selection_size=200, test_size=300))


def _files(tmp_path, train: pd.DataFrame, test: pd.DataFrame):
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}


def _frame(n, start=0):
    y = np.arange(n) % 2
    return pd.DataFrame({"text": [f"item {start + i} {'good' if v else 'bad'}" for i, v in enumerate(y)],
                         "label": y, "n_neg": 5 - 2 * y - 1, "n_pos": 2 * y + 1})


def load(tmp_path, train, test, **cfg):
    entry = {"files": _files(tmp_path, train, test), "text_fields": ["text"], "label_names": ["neg", "pos"],
             "label_counts_fields": FIELDS, **cfg}
    return load_task("mine", params(tasks=["mine"], custom={"mine": entry}))


def test_custom_counts_are_kept(tmp_path):
    train, test = _frame(40), _frame(10, 100)
    task = load(tmp_path, train, test)
    assert task.label_counts_fields == tuple(FIELDS)
    got = task.splits["test"][FIELDS].to_numpy()
    np.testing.assert_array_equal(got, test[FIELDS].to_numpy())
    assert describe(task).loc["test", "with_human_counts"] == 10


def test_custom_count_row_summing_to_zero_is_refused(tmp_path):
    test = _frame(10, 100)
    test.loc[3, FIELDS] = 0
    with pytest.raises(ValueError, match=r"files.test .*count columns \['n_neg', 'n_pos'\] sum to zero at row 3 "):
        load(tmp_path, _frame(40), test)


def test_custom_missing_count_column_is_refused(tmp_path):
    train = _frame(40).drop(columns="n_pos")
    with pytest.raises(ValueError, match=r"files.train .*missing column \['n_pos'\] \(data.custom.mine."
                                         r"label_counts_fields names them\)"):
        load(tmp_path, train, _frame(10, 100))


def test_custom_bad_count_values_are_refused(tmp_path):
    train = _frame(40).astype({"n_neg": float})
    train.loc[5, "n_neg"] = 1.5
    with pytest.raises(ValueError, match=r"count column 'n_neg' has values 1.5 at row 5 .*non-negative whole"):
        load(tmp_path, train, _frame(10, 100))
    train.loc[5, "n_neg"] = -1
    with pytest.raises(ValueError, match=r"count column 'n_neg' has values -1.0 at row 5"):
        load(tmp_path, train, _frame(10, 100))


def test_custom_counts_fields_must_match_the_labels(tmp_path):
    with pytest.raises(ValueError, match=r"label_counts_fields: one count column per class .* 2 needed"):
        load(tmp_path, _frame(40), _frame(10, 100), label_counts_fields=["n_neg"])
    with pytest.raises(ValueError, match=r"label_counts_fields: .* must be distinct and differ"):
        load(tmp_path, _frame(40), _frame(10, 100), label_counts_fields=["n_neg", "label"])
