"""Small offline GLUE fixtures in the hub's own parquet layout.

``write_glue_fixture(root, "mnli")`` writes ``root/mnli/<split>-00000-of-00001.parquet``
for every split the hub serves for that config (train, validation[_matched/_mismatched],
test[_matched/_mismatched]) with the hub's columns and dtypes: the text columns
(string), ``label`` (a ``datasets.ClassLabel`` with the task's label names, int64 on
disk) and ``idx`` (int32, restarting at 0 in every split); test splits carry
``label = -1`` as on the hub. Point ``data.glue_dir`` at ``root`` to load it through
mtkd's GLUE code path without the hub.

The texts are synthetic but learnable: every example carries one or two cue words
of its label among neutral filler words, so even a tiny model gets well above chance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# name -> (text columns, label names in the hub's order, splits: (name, kind))
GLUE_LAYOUT = {
    "sst2": (("sentence",), ("negative", "positive"),
             (("train", "train"), ("validation", "val"), ("test", "test"))),
    "mnli": (("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
             (("train", "train"), ("validation_matched", "val"), ("validation_mismatched", "val"),
              ("test_matched", "test"), ("test_mismatched", "test"))),
    "qqp": (("question1", "question2"), ("not_duplicate", "duplicate"),
            (("train", "train"), ("validation", "val"), ("test", "test"))),
    "mrpc": (("sentence1", "sentence2"), ("not_equivalent", "equivalent"),
             (("train", "train"), ("validation", "val"), ("test", "test"))),
}

CUES = {
    "negative": ["awful", "boring", "dull", "terrible", "bland"],
    "positive": ["great", "wonderful", "moving", "brilliant", "charming"],
    "entailment": ["indeed", "certainly", "surely", "definitely"],
    "neutral": ["maybe", "perhaps", "possibly", "probably"],
    "contradiction": ["never", "nobody", "nothing", "not"],
    "not_duplicate": ["different", "unrelated", "other", "separate"],
    "duplicate": ["same", "identical", "equal", "similar"],
    "not_equivalent": ["different", "unrelated", "other", "separate"],
    "equivalent": ["same", "identical", "equal", "similar"],
}
FILLER = ("the a film story man woman city day night dog child street park house music team "
          "game book water car people group picture place time world old new small big").split()


def _cue(name: str) -> list[str]:
    return CUES.get(name, [f"{name}", f"{name}s"])


def _sentence(rng: np.random.Generator, cues: list[str] | None) -> str:
    words = list(rng.choice(FILLER, size=int(rng.integers(4, 10))))
    if cues:
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cues)))
    return " ".join(words).capitalize() + "."


def write_glue_fixture(root: Path, name: str, n_train: int = 120, n_val: int = 40, n_test: int | None = None,
                       seed: int = 0, label_names=None, class_label: bool = True) -> Path:
    """Write a GLUE-layout fixture for `name` under `root`; returns ``root / name``.

    label_names: the ClassLabel names written (default: the hub's, in its order); pass
    another order to build a fixture the loader must refuse. class_label=False writes a
    plain int64 label column (no names on disk).
    """
    import datasets
    from datasets import ClassLabel, Dataset, Features, Value

    fields, hub_names, splits = GLUE_LAYOUT[name]
    names = tuple(label_names) if label_names is not None else hub_names
    n_test = n_val if n_test is None else n_test
    label_feature = ClassLabel(names=list(names)) if class_label else Value("int64")
    features = Features({**{f: Value("string") for f in fields}, "label": label_feature, "idx": Value("int32")})
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        for split, kind in splits:
            n = {"train": n_train, "val": n_val, "test": n_test}[kind]
            labels = rng.integers(0, len(names), size=n)
            columns = {f: [] for f in fields}
            for y in labels:
                cues = _cue(names[y])
                if len(fields) == 1:
                    columns[fields[0]].append(_sentence(rng, cues))
                else:
                    columns[fields[0]].append(_sentence(rng, None))
                    columns[fields[1]].append(_sentence(rng, cues))
            data = {**columns, "label": [-1] * n if kind == "test" else labels.tolist(),
                    "idx": list(range(n))}
            Dataset.from_dict(data, features=features).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    finally:
        if bars:
            datasets.enable_progress_bars()
    return folder
