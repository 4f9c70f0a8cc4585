"""The checks a custom task's files pass when the task is loaded: no text in two files, two classes or
more per split, no class that train lacks, distinct label names; a small test file is used whole."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from mtkd.data.tasks import load_task, transfer_pool
from test_data import custom, load_custom

TRAIN = [("a good film", "pos"), ("a bad film", "neg"), ("great cast", "pos"), ("dull plot", "neg"),
         ("fine score", "pos"), ("weak ending", "neg"), ("lovely light", "pos"), ("slow start", "neg"),
         ("warm humour", "pos"), ("thin script", "neg")]
TEST = [("sharp dialogue", "pos"), ("flat acting", "neg"), ("bright colours", "pos"), ("tired jokes", "neg")]


def write(tmp_path, rows, name: str) -> str:
    """A CSV of (text, label) rows; returns its path."""
    path = tmp_path / name
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return str(path)


def files(tmp_path, train=TRAIN, test=TEST, **more) -> dict:
    out = {"train": write(tmp_path, train, "train.csv"), "test": write(tmp_path, test, "test.csv")}
    out.update({split: write(tmp_path, rows, f"{split}.csv") for split, rows in more.items()})
    return out


def where(tmp_path, split: str) -> str:
    return f"data.custom.mine.files.{split} ({tmp_path / f'{split}.csv'})"


def test_exact_duplicate_of_a_training_text_in_test_is_refused(tmp_path):
    test = [TRAIN[2], *TEST, TRAIN[7]]
    with pytest.raises(ValueError, match=re.escape(
            "data.custom.mine: 2 rows repeat a text of another file (exactly, or after case folding and whitespace "
            f"normalisation), a leak between splits: {where(tmp_path, 'train')} and {where(tmp_path, 'test')}: "
            "2 rows of test (2 exact), e.g. test row 0 = train row 2 'great cast', test row 5 = train row 7 "
            "'slow start'; remove them from one of the files, or set data.allow_duplicates: true to accept them")):
        load_custom(custom(files(tmp_path, test=test)))


def test_duplicate_after_case_folding_and_whitespace_is_refused(tmp_path):
    test = [*TEST, ("  A  GOOD\tfilm ", "pos")]
    with pytest.raises(ValueError, match=re.escape(
            f"{where(tmp_path, 'train')} and {where(tmp_path, 'test')}: 1 row of test (0 exact), e.g. test row 4 = "
            "train row 0 '  A  GOOD\\tfilm '; remove them")):
        load_custom(custom(files(tmp_path, test=test)))


def test_duplicates_counted_per_pair_of_files(tmp_path):
    selection = [TRAIN[0], TEST[1], ("crisp editing", "pos"), ("clumsy pacing", "neg")]
    with pytest.raises(ValueError, match=re.escape(
            f"3 rows repeat a text of another file (exactly, or after case folding and whitespace normalisation), "
            f"a leak between splits: {where(tmp_path, 'train')} and {where(tmp_path, 'selection')}: 1 row of "
            f"selection (1 exact), e.g. selection row 0 = train row 0 'a good film'; {where(tmp_path, 'train')} "
            f"and {where(tmp_path, 'test')}: 1 row of test (1 exact), e.g. test row 4 = train row 3 'dull plot'; "
            f"{where(tmp_path, 'selection')} and {where(tmp_path, 'test')}: 1 row of test (1 exact), e.g. test "
            "row 1 = selection row 1 'flat acting'; remove")):
        load_custom(custom(files(tmp_path, test=[*TEST, TRAIN[3]], selection=selection)))


def test_sentence_pairs_compare_all_their_text_fields(tmp_path):
    def pairs(rows, second):
        return pd.DataFrame([(t, second(i), y) for i, (t, y) in enumerate(rows)], columns=["text", "other", "label"])
    pairs(TRAIN, lambda i: f"train {i}").to_csv(tmp_path / "train.csv", index=False)
    test = pairs(TRAIN[:4], lambda i: f"test {i}")                 # same first text, another second: no duplicate
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = custom({"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"}, text_fields=["text", "other"])
    assert len(load_custom(cfg).splits["test"]) == 4
    test.loc[2, "other"] = "TRAIN 2"
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ValueError, match=re.escape("1 row of test (0 exact), e.g. test row 2 = train row 2 "
                                                   "'great cast / TRAIN 2'")):
        load_custom(cfg)


def test_allow_duplicates_accepts_them_with_one_line_in_the_log(tmp_path, capfd):
    task = load_custom(custom(files(tmp_path, test=[*TEST, ("GREAT CAST", "pos")])), allow_duplicates=True)
    assert len(task.splits["test"]) == 5
    assert capfd.readouterr().err.splitlines() == [
        "mtkd: data.custom.mine: 1 row repeats a text of another file (exactly, or after case folding and whitespace "
        "normalisation); accepted (data.allow_duplicates: true)"]


def test_duplicates_within_one_file_are_no_error(tmp_path):
    task = load_custom(custom(files(tmp_path, train=[*TRAIN, TRAIN[0]], test=[*TEST, TEST[0]])))
    assert len(task.splits["test"]) == 5


def test_unlabeled_file_repeating_a_test_text_is_refused_when_the_pool_is_read(tmp_path):
    unlabeled = tmp_path / "unlabeled.csv"
    pd.DataFrame({"text": ["brand new text", "Sharp dialogue"]}).to_csv(unlabeled, index=False)
    cfg = custom({**files(tmp_path), "unlabeled": unlabeled})
    data = {"test_size": 0, "selection_size": 0, "split_seed": 0, "custom": {"mine": cfg}}
    assert len(load_task("mine", data).splits["test"]) == 4       # a study without a transfer set never opens it
    with pytest.raises(ValueError, match=re.escape(
            f"1 row repeats a text of another file (exactly, or after case folding and whitespace normalisation), "
            f"a leak between splits: {where(tmp_path, 'test')} and {where(tmp_path, 'unlabeled')}: 1 row of "
            "unlabeled (0 exact), e.g. unlabeled row 1 = test row 0 'Sharp dialogue'; remove")):
        transfer_pool("mine", data)
    assert len(transfer_pool("mine", {**data, "allow_duplicates": True})) == 2


def test_single_class_train_is_refused(tmp_path):
    train = [(t, "pos") for t, _ in TRAIN]
    with pytest.raises(ValueError, match=re.escape(
            f"{where(tmp_path, 'train')}: all 10 rows are of class 'pos'; a split needs at least two of the classes "
            "['neg', 'pos']: add rows of the other classes")):
        load_custom(custom(files(tmp_path, train=train)))


def test_single_class_test_is_refused(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"{where(tmp_path, 'test')}: all 2 rows are of class 'neg'")):
        load_custom(custom(files(tmp_path, test=[TEST[1], TEST[3]])))


def test_class_in_test_absent_from_train_is_refused(tmp_path):
    test = [*TEST, ("so-so", "meh"), ("middling", "meh"), ("fair enough", "meh"), ("passable", "meh")]
    cfg = custom(files(tmp_path, test=test), label_names=["neg", "pos", "meh"])
    with pytest.raises(ValueError, match=re.escape(
            f"{where(tmp_path, 'test')}: class 'meh' (4 rows, at rows 4, 5, 6, ... (0-based)) never appears in "
            f"{where(tmp_path, 'train')}, so no model can learn it: add training rows of that class, or drop those "
            "rows")):
        load_custom(cfg)


def test_class_in_selection_absent_from_train_is_refused(tmp_path):
    selection = [("crisp editing", "pos"), ("so-so", "meh"), ("clumsy pacing", "neg")]
    cfg = custom(files(tmp_path, selection=selection), label_names=["neg", "pos", "meh"])
    with pytest.raises(ValueError, match=re.escape(f"{where(tmp_path, 'selection')}: class 'meh' (1 row, at row 1 "
                                                   "(0-based)) never appears in")):
        load_custom(cfg)


def test_repeated_label_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            "data.custom.mine.label_names: 'neg' repeated in ['neg', 'pos', 'neg']; label id i is the i-th name, "
            "so each class needs a name of its own: remove the repeat")):
        load_custom(custom(files(tmp_path), label_names=["neg", "pos", "neg"]))


def test_small_test_file_is_used_whole(tmp_path, capfd):
    task = load_custom(custom(files(tmp_path)), test_size=120)
    assert len(task.splits["test"]) == len(TEST)
    assert capfd.readouterr().err.splitlines() == [
        f"mtkd: data.test_size=120 but {where(tmp_path, 'test')} has only 4 rows: the test split is the whole file"]
    task = load_custom(custom(files(tmp_path)), test_size=3, test_sizes={"mine": 50})
    assert len(task.splits["test"]) == len(TEST)
    assert "data.test_sizes.mine=50 but" in capfd.readouterr().err
    assert len(load_custom(custom(files(tmp_path)), test_size=2).splits["test"]) == 2      # smaller: a sample


def test_small_selection_file_is_used_whole(tmp_path, capfd):
    selection = [("crisp editing", "pos"), ("clumsy pacing", "neg")]
    task = load_custom(custom(files(tmp_path, selection=selection)), selection_size=30)
    assert [len(task.splits[s]) for s in ("train", "selection", "test")] == [10, 2, 4]
    assert capfd.readouterr().err.splitlines() == [
        f"mtkd: data.selection_size=30 but {where(tmp_path, 'selection')} has only 2 rows: the selection split is the "
        "whole file"]


def test_selection_carved_from_train_still_needs_room(tmp_path):
    with pytest.raises(ValueError, match=r"data\.selection_size=30: mine has no selection file and only 10 training"):
        load_custom(custom(files(tmp_path)), selection_size=30)
