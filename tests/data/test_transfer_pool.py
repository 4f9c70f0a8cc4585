"""mtkd.data.tasks.transfer_pool: the unlabeled transfer pool of every kind of task.

It must never hold a row (nor, for grouped tasks, a group) of selection or test, nor a train row; its order
is seeded and nested (the first n rows are the draw of size n); it has no label column and reads none.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glue_fixture import write_glue_fixture
from mtkd.data import tasks as data
from mtkd.data.tasks import load_task, transfer_pool

SIZES = {"train_size": 240, "selection_size": 120, "test_size": 120}      # params/smoke.yaml's


def params(**kw):
    base = {"tasks": ["rotten_tomatoes"], "train_size": 0, "selection_size": 0, "test_size": 0,
            "split_seed": 0, "max_length": 64, "custom": {}, "glue_dir": ""}
    base.update(kw)
    return base


@pytest.mark.parametrize("name", ["rotten_tomatoes", "snli", "trec"])
def test_embedded_pool_shares_no_row_or_group_with_the_splits(name):
    d = params(**SIZES)
    task, pool = load_task(name, d), transfer_pool(name, d)
    src = data._load_source(name).set_index("idx")
    assert list(pool.columns) == ["idx", *task.text_fields]                  # no label, no human counts
    assert pool["idx"].dtype == np.int64 and pool["idx"].is_unique
    # every train-side row is either in train or in the pool: the pool is all that train left unused
    groups = {s: set(src.loc[f["idx"], "group"]) for s, f in task.splits.items()}
    pool_groups = set(src.loc[pool["idx"], "group"])
    for split in ("selection", "test"):
        assert not set(pool["idx"]) & set(task.splits[split]["idx"]), split
        assert not pool_groups & groups[split], split                        # trec: each question its own group
    assert not set(pool["idx"]) & set(task.splits["train"]["idx"])
    held_out = groups["selection"] | groups["test"]
    train_side = src.index[~src["group"].isin(held_out)]
    if "official_test" in src:                                               # snli: a test group's other rows are
        train_side = train_side.difference(task.splits["test"]["idx"])       # unused, never in the pool
    assert set(pool["idx"]) == set(train_side) - set(task.splits["train"]["idx"])
    rows = src.loc[pool["idx"].to_numpy()]
    for field in task.text_fields:                                           # the texts are the source's
        assert pool[field].tolist() == rows[field].tolist()


def test_draws_are_nested_seeded_and_in_no_idx_order():
    d = params(**SIZES)
    pool = transfer_pool("trec", d)
    small, large = transfer_pool("trec", d, 40), transfer_pool("trec", d, 400)
    pd.testing.assert_frame_equal(small, large.iloc[:40])
    pd.testing.assert_frame_equal(large, pool.iloc[:400])
    pd.testing.assert_frame_equal(transfer_pool("trec", d, 40), small)           # deterministic
    assert not np.all(np.diff(pool["idx"].to_numpy()) > 0)                       # a random order, not sorted
    other = transfer_pool("trec", params(**SIZES, split_seed=1))
    assert not np.array_equal(other["idx"].to_numpy()[:40], small["idx"].to_numpy())


def test_too_large_a_draw_names_the_task_the_pool_size_and_the_key():
    d = params(**SIZES)
    n = len(transfer_pool("trec", d))
    with pytest.raises(ValueError, match=rf"distill.transfer_size={n + 1} but trec's transfer pool has only "
                                         rf"{n:,} examples .*set distill.transfer_size to at most {n} or lower "
                                         r"data.train_size"):
        transfer_pool("trec", d, n + 1)
    # train_size 0: train takes every train-side row, the pool is empty
    assert len(transfer_pool("trec", params(selection_size=100, test_size=100))) == 0
    with pytest.raises(ValueError, match="trec's transfer pool has only 0 examples"):
        transfer_pool("trec", params(selection_size=100, test_size=100), 1)


def test_scrambling_the_labels_of_pool_rows_changes_neither_the_splits_nor_the_pool(monkeypatch):
    """Swap the labels of pairs of pool rows that are neighbours on the train side and share a movie: the
    split (label-stratified by group, then within train) cannot see such a swap, so the splits stay the
    same; a pool that read its rows' labels (to order or filter them) would change."""
    name, d = "rotten_tomatoes", params(**SIZES)
    spec = data.TASKS[name]
    src = data._source_cached(name)
    _, positions, train_side = data._embedded_positions(name, spec, d)
    in_pool = np.zeros(len(src), dtype=bool)
    in_pool[np.setdiff1d(train_side, positions["train"])] = True
    y, g = src["label"].to_numpy(), src["group"].to_numpy()
    a, b = train_side[:-1], train_side[1:]
    pairs = np.flatnonzero(in_pool[a] & in_pool[b] & (g[a] == g[b]) & (y[a] != y[b]))
    pairs = pairs[np.concatenate([[True], np.diff(pairs) > 1])]           # disjoint pairs
    scrambled = src.copy()
    labels = y.copy()
    labels[a[pairs]], labels[b[pairs]] = y[b[pairs]], y[a[pairs]]
    scrambled["label"] = labels
    assert (labels != y).sum() > 2000                                      # thousands of pool labels changed
    before_task, before_pool = load_task(name, d), transfer_pool(name, d)
    monkeypatch.setattr(data, "_source_cached", lambda n: scrambled if n == name else src)
    after_task, after_pool = load_task(name, d), transfer_pool(name, d)
    for split in data.SPLITS:
        pd.testing.assert_frame_equal(before_task.splits[split], after_task.splits[split])
    pd.testing.assert_frame_equal(before_pool, after_pool)


def test_glue_pool_is_train_minus_selection_minus_the_train_subsample(tmp_path):
    write_glue_fixture(tmp_path, "mnli", n_train=300, n_val=60)
    d = params(glue_dir=str(tmp_path), selection_size=50, test_size=40, train_size=200)
    task, pool = load_task("mnli", d), transfer_pool("mnli", d)
    assert list(pool.columns) == ["idx", "premise", "hypothesis"]
    assert len(pool) == 300 - 50 - 200
    used = set(task.splits["train"]["idx"]) | set(task.splits["selection"]["idx"])
    assert set(pool["idx"]) == set(range(300)) - used
    assert pool["idx"].max() < data.GLUE_TEST_IDX_OFFSET                   # never a GLUE validation (test) row


# ---------------------------------------------------------------------------------------------
# custom tasks

def _rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pd.DataFrame({"text": [f"text {seed}-{i} is {'good' if v else 'bad'}" for i, v in enumerate(y)],
                         "label": y})


def _custom(tmp_path, unlabeled: pd.DataFrame | None = None, suffix: str = "csv", **kw):
    _rows(60).to_csv(tmp_path / "train.csv", index=False)
    _rows(20, seed=1).to_csv(tmp_path / "test.csv", index=False)
    files = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}
    if unlabeled is not None:
        path = tmp_path / f"unlabeled.{suffix}"
        if suffix == "jsonl":
            unlabeled.to_json(path, orient="records", lines=True)
        elif suffix == "parquet":
            unlabeled.to_parquet(path)
        else:
            unlabeled.to_csv(path, index=False, sep="\t" if suffix == "tsv" else ",")
        files["unlabeled"] = str(path)
    cfg = {"files": files, "text_fields": ["text"], "label_field": "label", "label_names": ["neg", "pos"],
           "metric": "accuracy"}
    return params(tasks=["mine"], custom={"mine": cfg}, **kw)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_custom_unlabeled_file_text_only_gets_fresh_idx(tmp_path, suffix):
    texts = pd.DataFrame({"text": [f"unlabeled {i}" for i in range(30)]})
    d = _custom(tmp_path, texts, suffix)
    task, pool = load_task("mine", d), transfer_pool("mine", d)
    assert list(pool.columns) == ["idx", "text"] and len(pool) == 30
    assert sorted(pool["idx"]) == list(range(80, 110))                     # after train (0-59) and test (60-79)
    assert dict(zip(pool["idx"], pool["text"])) == {80 + i: t for i, t in enumerate(texts["text"])}
    assert [len(task.splits[s]) for s in data.SPLITS] == [54, 6, 20]      # the labeled splits are unchanged


def test_custom_unlabeled_label_column_is_dropped_unread(tmp_path):
    texts = pd.DataFrame({"text": [f"unlabeled {i}" for i in range(12)]})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = transfer_pool("mine", _custom(tmp_path / "a", texts))
    junk = texts.assign(label=["not a label", None, 7, "pos"] * 3, other=range(12))   # invalid as labels
    pd.testing.assert_frame_equal(transfer_pool("mine", _custom(tmp_path / "b", junk)), plain)


def test_custom_unlabeled_idx_column_is_kept_and_checked(tmp_path):
    texts = pd.DataFrame({"idx": [500 + 3 * i for i in range(10)], "text": [f"u {i}" for i in range(10)]})
    pool = transfer_pool("mine", _custom(tmp_path, texts))
    assert sorted(pool["idx"]) == texts["idx"].tolist()
    clash = texts.assign(idx=[5, *range(501, 510)])                          # 5 is a train row's idx
    with pytest.raises(ValueError, match=r"files.unlabeled .*idx values \[5\] also appear in the train file"):
        transfer_pool("mine", _custom(tmp_path, clash))


@pytest.mark.parametrize("frame, suffix, message", [
    (pd.DataFrame({"sentence": ["a", "b"]}), "csv", r"files.unlabeled .*missing column \['text'\]"),
    (pd.DataFrame({"text": ["a", "  ", "c"]}), "jsonl", r"files.unlabeled .*column 'text' has 1 empty texts at row 1"),
    (pd.DataFrame({"text": ["a", None]}), "parquet", r"files.unlabeled .*column 'text' has 1 empty texts at row 1"),
    (pd.DataFrame({"text": []}, dtype=str), "csv", r"files.unlabeled .*is empty"),
])
def test_custom_unlabeled_bad_files_are_refused(tmp_path, frame, suffix, message):
    with pytest.raises(ValueError, match=message):
        transfer_pool("mine", _custom(tmp_path, frame, suffix))


def test_custom_without_unlabeled_file_pools_the_unused_train_rows(tmp_path):
    d = _custom(tmp_path, train_size=30)
    task, pool = load_task("mine", d), transfer_pool("mine", d)
    used = set(task.splits["train"]["idx"]) | set(task.splits["selection"]["idx"])
    assert list(pool.columns) == ["idx", "text"]
    assert set(pool["idx"]) == set(range(60)) - used and len(pool) == 60 - 30 - 6
    with pytest.raises(ValueError, match=r"files: unknown split 'extra'"):
        d["custom"]["mine"]["files"]["extra"] = "x.csv"
        load_task("mine", d)


def test_an_unlabeled_file_is_read_only_for_the_pool(tmp_path):
    """load_task never opens files.unlabeled: a study without a transfer set does not depend on it."""
    d = _custom(tmp_path, pd.DataFrame({"text": ["u"]}))
    (tmp_path / "unlabeled.csv").unlink()
    assert len(load_task("mine", d).splits["train"]) == 54
    with pytest.raises(ValueError, match="files.unlabeled: file not found"):
        transfer_pool("mine", d)
