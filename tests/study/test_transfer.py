"""The transfer set in the study: keys, the logit cache, the students' targets, and labels never read.

One small custom task ('toy': train and test CSVs, an unlabeled file of texts) with two teachers (TF-IDF
and a tiny BERT) and a one-layer tiny student: every stage runs in seconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtkd.data import tasks as data
from mtkd.kd.losses import UNLABELED
from mtkd.study import config, io, pipeline
from mtkd.study.config import ParamsError
from mtkd.study.pipeline import Run, Unit

WORDS = {0: ["awful", "dull", "bland", "boring"], 1: ["great", "lovely", "fun", "moving"]}
FILLER = ["the", "film", "was", "quite", "a", "plot", "and", "it", "story", "cast"]
SEED = 1


def _texts(rng, y, name: str) -> list[str]:
    """Random filler and class words, then the file's name and the row number: no text repeats across files."""
    return [" ".join([*rng.choice(FILLER, 4), *rng.choice(WORDS[int(v)], 2), name, str(i)]) for i, v in enumerate(y)]


def write_toy(folder, unlabeled_label=None, n_unlabeled=80):
    """train (120), test (40) and an unlabeled file (texts; with a label column when ``unlabeled_label``
    gives a seed for its random values). The texts are the same whatever the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("test", 40)):
        y = rng.integers(0, 2, n)
        pd.DataFrame({"text": _texts(rng, y, split), "label": y}).to_csv(folder / f"{split}.csv", index=False)
    frame = pd.DataFrame({"text": _texts(rng, rng.integers(0, 2, n_unlabeled), "unlabeled")})
    if unlabeled_label is not None:
        frame["label"] = np.random.default_rng(unlabeled_label).integers(0, 2, n_unlabeled)
    frame.to_csv(folder / "unlabeled.csv", index=False)
    return {"train": str(folder / "train.csv"), "test": str(folder / "test.csv"),
            "unlabeled": str(folder / "unlabeled.csv")}


def raw_params(files, transfer_size=30, methods=("baseline", "single", "average", "ca_mkd", "gating"), **data_kw):
    return {"run_name": "toy", "seeds": [SEED], "device": "cpu", "precision": "fp32", "threads": 1,
            "data": {"tasks": ["toy"], "max_length": 16, "selection_size": 30, **data_kw,
                     "custom": {"toy": {"files": files, "text_fields": ["text"], "label_names": ["neg", "pos"]}}},
            "teachers": {"tfidf": {"model": "tfidf", "mode": "tfidf"},
                         "tiny": {"model": "tiny-bert", "epochs": 2, "lr": 3e-3, "batch_size": 16}},
            "student": {"model": "tiny-bert", "layers": 1, "epochs": 2, "lr": 3e-3, "batch_size": 16},
            "distill": {"methods": list(methods), "transfer_size": transfer_size}}


def make_run(folder, raw) -> Run:
    run = Run(config.validate(raw), folder)
    io.write_text(run.dir / "params.yaml", config.dump_params(run.params))
    return run


def train(run: Run, methods) -> dict[str, dict]:
    """Teachers, logits, then the students ``methods``: each one's predictions.npz arrays and .done."""
    for stage in ("teachers", "logits"):
        pipeline.run_stage(run, stage)
    pipeline.write_fusion_info(run)
    out = {}
    for m in methods:
        unit = Unit("students", "toy", m, SEED, run.params.distill.temperature, run.params.distill.alpha)
        pipeline.RUNNERS["students"](run, unit)
        folder = run.unit_dir(unit)
        with np.load(folder / "predictions.npz") as z:
            out[m] = {"arrays": {k: z[k] for k in z.files}, "done": io.read_json(folder / ".done")}
    return out


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    run = make_run(root / "run", raw_params(write_toy(root / "in")))
    results = train(run, ["baseline", "single:tiny", "multi:average", "multi:ca_mkd", "multi:gating"])
    return run, results


def test_a_text_only_unlabeled_file_trains_students_end_to_end(toy_run):
    run, results = toy_run
    recorded = pd.read_parquet(run.dir / "data" / "toy" / "transfer.parquet")
    assert list(recorded.columns) == ["idx", "text"] and len(recorded) == 30
    assert sorted(recorded["idx"]) == sorted(data.transfer_pool("toy", run.params.data)["idx"][:30])
    assert recorded["idx"].min() >= 160                             # fresh ids after train (0-119), test (120-159)
    for teacher in run.teachers:
        with np.load(run.dir / "logits" / "toy" / teacher / "transfer.npz") as z:
            assert z["logits"].shape == (30, 2) and np.array_equal(z["idx"], recorded["idx"].to_numpy())
        assert pipeline.logits_fresh(run, "toy", teacher)
    for method, r in results.items():
        steps = int(np.ceil((run.task("toy").splits["train"].shape[0] + (0 if method == "baseline" else 30)) / 16)) * 2
        assert r["done"]["steps"] == steps, method                   # the distilled students saw 30 more rows
        assert r["done"].get("transfer_examples", 0) == (0 if method == "baseline" else 30)
        assert set(r["arrays"]) >= {"logits_selection", "logits_test", "idx_test"}


def test_the_students_targets_are_train_rows_then_transfer_rows(toy_run):
    """single: the teacher's cached logits on both; ca_mkd: CA-MKD weights with the gold labels on train, the
    ebkd fallback on the transfer rows (both written out in NumPy); gating: the stacked teacher logits."""
    run, _ = toy_run
    train_labels = run.task("toy").splits["train"]["label"].to_numpy()
    n_train = len(train_labels)
    stack = np.concatenate([pipeline.teacher_stack(run, "toy", "train"), pipeline.transfer_stack(run, "toy", 30)])
    unit = Unit("students", "toy", "single:tiny", SEED, 6.0, 0.7)
    np.testing.assert_array_equal(pipeline._kd_target(run, unit, 32).logits.numpy(), stack[:, 1])

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))
    z = stack.astype(np.float64)
    k = z.shape[1]
    ce = -log_softmax(z[:n_train])[np.arange(n_train), :, train_labels]            # (N, K) at T = 1
    w_train = (1 - np.exp(ce) / np.exp(ce).sum(1, keepdims=True)) / (k - 1)
    logp = log_softmax(z[n_train:])
    h = -(np.exp(logp) * logp).sum(-1)                                            # (n, K) entropies
    w_pool = (1 - h / h.sum(1, keepdims=True)) / (k - 1)
    want = np.concatenate([(w_train[:, :, None] * z[:n_train]).sum(1), (w_pool[:, :, None] * z[n_train:]).sum(1)])
    got = pipeline._kd_target(run, Unit("students", "toy", "multi:ca_mkd", SEED, 6.0, 0.7), 32).logits.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got[n_train:], z[n_train:].mean(1), atol=1e-3)      # not the plain average either
    gate = pipeline._kd_target(run, Unit("students", "toy", "multi:gating", SEED, 6.0, 0.7), 32)
    np.testing.assert_array_equal(gate.teacher_logits.numpy(), stack)
    assert pipeline._kd_target(run, Unit("students", "toy", "baseline", SEED, 6.0, 0.7), 32) is None


def test_labels_in_the_unlabeled_file_are_never_read(tmp_path, toy_run):
    """The same task whose unlabeled file carries a label column of random values, and again of other
    random values: bit-identical students, and identical to the text-only file's."""
    _, text_only = toy_run
    methods = ["single:tiny", "multi:ca_mkd", "multi:gating"]
    runs = [train(make_run(tmp_path / f"run{s}", raw_params(write_toy(tmp_path / f"in{s}", unlabeled_label=s))),
                  methods) for s in (7, 8)]
    labels = [pd.read_csv(tmp_path / f"in{s}" / "unlabeled.csv")["label"].to_numpy() for s in (7, 8)]
    assert (labels[0] != labels[1]).mean() > 0.3                     # the two files' labels really differ
    for m in methods:
        for r in runs:
            for key, array in text_only[m]["arrays"].items():
                assert np.array_equal(r[m]["arrays"][key], array), (m, key)


def test_the_transfer_set_changes_the_distilled_students_only(tmp_path, toy_run):
    """The same run folder without a transfer set: the baseline is the very same unit, the others retrain
    (and differ: the test above could not pass by a transfer set that does nothing)."""
    run, with_pool = toy_run
    raw = raw_params(run.params.data.custom["toy"]["files"], transfer_size=0)
    plain = Run(config.validate(raw), run.dir)
    for m in ("baseline", "single:tiny", "multi:ca_mkd"):
        unit = Unit("students", "toy", m, SEED, 6.0, 0.7)
        same_folder = plain.unit_dir(unit) == run.unit_dir(unit)
        assert same_folder == (m == "baseline"), m
    results = train(plain, ["single:tiny", "multi:ca_mkd"])
    for m, r in results.items():
        assert not np.array_equal(r["arrays"]["logits_test"], with_pool[m]["arrays"]["logits_test"]), m


def test_keys_depend_on_the_pool_only_when_a_student_uses_it(tmp_path):
    files = write_toy(tmp_path / "in")
    other = dict(files, unlabeled=str(tmp_path / "in" / "train.csv"))       # another unlabeled file
    runs = {(n, f): Run(config.validate(raw_params(fs, transfer_size=n)), tmp_path / "run")
            for n in (0, 30, 60) for f, fs in (("a", files), ("b", other))}
    base = runs[0, "a"]
    no_file = Run(config.validate(raw_params({k: v for k, v in files.items() if k != "unlabeled"}, 0)),
                  tmp_path / "run")
    for run in [*runs.values(), no_file]:                             # data and teachers never see the pool
        assert run.data_key("toy") == base.data_key("toy")
        assert run.teacher_key("toy", "tiny") == base.teacher_key("toy", "tiny")
    unit = {m: Unit("students", "toy", m, SEED, 6.0, 0.7) for m in ("baseline", "single:tiny", "multi:average")}
    for m, u in unit.items():
        keys = {k: r.student_key(u) for k, r in runs.items()}
        assert keys[0, "a"] == keys[0, "b"] == no_file.student_key(u)   # n = 0: the unlabeled file plays no part
        if m == "baseline":
            assert len(set(keys.values())) == 1
        else:
            assert len({keys[n, f] for n in (30, 60) for f in "ab"} | {keys[0, "a"]}) == 5
    # n = 0 gives the key of the code before transfer sets (its formula, written out; student.task_epochs,
    # newer, joins a key only as a task's epochs)
    student = {k: v for k, v in base.params.student.items() if k != "task_epochs"}
    want = config.params_hash(base.data_key("toy"), student, "single:tiny", SEED, 6.0, 0.7,
                              base.params.distill.gate_hidden, [base.teacher_key("toy", "tiny")],
                              {"precision": "fp32", "device": "cpu"})
    assert base.student_key(unit["single:tiny"]) == want


def test_a_smaller_transfer_set_reuses_a_larger_ones_logits(toy_run):
    run, _ = toy_run
    smaller = Run(config.validate(raw_params(run.params.data.custom["toy"]["files"], transfer_size=12)), run.dir)
    stamp = {t: (run.dir / "logits" / "toy" / t / "transfer.npz").stat().st_mtime_ns for t in run.teachers}
    assert all(pipeline.logits_fresh(smaller, "toy", t) for t in run.teachers)
    idx, z = pipeline.read_transfer_logits(smaller, "toy", "tiny", 12)
    full_idx, full = pipeline.read_transfer_logits(run, "toy", "tiny", 30)
    assert np.array_equal(idx, full_idx[:12]) and np.array_equal(z, full[:12])
    pipeline.run_stage(smaller, "logits")
    assert stamp == {t: (run.dir / "logits" / "toy" / t / "transfer.npz").stat().st_mtime_ns for t in run.teachers}
    assert len(smaller.transfer_set("toy")) == 12


def test_scrambled_source_labels_of_unused_rows_change_no_student(tmp_path, monkeypatch):
    """An embedded task (Rotten Tomatoes): swap the labels of pairs of pool rows that are neighbours on the
    train side and share a movie (a swap the split cannot see): the same pool, the same students."""
    name = "rotten_tomatoes"
    raw = raw_params({}, transfer_size=40, methods=("single",), train_size=120, test_size=60)
    raw["data"].update(tasks=[name], custom={})
    raw["teachers"] = {"tfidf": {"model": "tfidf", "mode": "tfidf"}}
    src = data._source_cached(name)
    params = config.validate(raw)
    _, positions, train_side = data._embedded_positions(name, data.TASKS[name], params.data)
    in_pool = np.zeros(len(src), dtype=bool)
    in_pool[np.setdiff1d(train_side, positions["train"])] = True
    y, g = src["label"].to_numpy(), src["group"].to_numpy()
    a, b = train_side[:-1], train_side[1:]
    pairs = np.flatnonzero(in_pool[a] & in_pool[b] & (g[a] == g[b]) & (y[a] != y[b]))
    pairs = pairs[np.concatenate([[True], np.diff(pairs) > 1])]
    labels = y.copy()
    labels[a[pairs]], labels[b[pairs]] = y[b[pairs]], y[a[pairs]]
    scrambled = src.assign(label=labels)

    def student(folder):
        run = Run(config.validate(raw), folder)
        io.write_text(run.dir / "params.yaml", config.dump_params(run.params))
        for stage in ("teachers", "logits", "students"):
            pipeline.run_stage(run, stage)
        unit = pipeline.plan(run, "students")[0]
        assert unit.name == "single:tfidf"
        with np.load(run.unit_dir(unit) / "predictions.npz") as z:
            return run.transfer_set(name), {k: z[k] for k in z.files}
    pool, before = student(tmp_path / "a")
    monkeypatch.setattr(data, "_source_cached", lambda n: scrambled if n == name else src)
    pool_after, after = student(tmp_path / "b")
    assert (scrambled.set_index("idx").loc[pool["idx"], "label"].to_numpy()
            != src.set_index("idx").loc[pool["idx"], "label"].to_numpy()).any()    # the draw holds swapped rows
    pd.testing.assert_frame_equal(pool, pool_after)
    for key in before:
        assert np.array_equal(before[key], after[key]), key


@pytest.mark.parametrize("change, message", [
    ({"distill": {"methods": ["baseline", "curriculum"]}}, r"curriculum \(curriculum\) needs gold labels"),
    ({"sweep": {"enabled": True, "methods": ["single_best", "curriculum"]}},
     r"curriculum \(sweep.methods curriculum\) needs gold labels"),
    ({"distill": {"alpha": 0.0}}, r"distill.alpha holds alpha = 0 \(no KD term\)"),
    ({"sweep": {"enabled": True, "alphas": [0.0, 0.5]}}, r"sweep.alphas holds alpha = 0"),
    ({"teachers": {"h": {"model": "human", "mode": "human"}}}, r"teacher 'h' \(mode human\)"),
])
def test_params_that_cannot_use_a_transfer_set_are_refused_at_load_time(tmp_path, change, message):
    raw = raw_params(write_toy(tmp_path), transfer_size=10)
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    with pytest.raises(ParamsError, match=rf"distill.transfer_size=10: .*{message}"):
        config.validate(raw)
    for section, values in change.items():                            # the same params without a transfer set: fine
        raw["distill"]["transfer_size"] = 0
    config.validate(raw)


def test_schema_declares_transfer_size():
    field = config.SCHEMA["distill"]["transfer_size"]
    assert field.kind == "int" and field.default == 0 and field.min == 0
    assert "labels never read" in field.help
    assert config.validate(raw_params({"train": "a", "test": "b"}, transfer_size=0)).distill.transfer_size == 0
    with pytest.raises(ParamsError, match=r"distill.transfer_size: -1 is below the minimum 0"):
        config.validate(raw_params({"train": "a", "test": "b"}, transfer_size=-1))


def test_the_run_stops_before_any_work_when_the_pool_is_too_small(tmp_path):
    run = make_run(tmp_path / "run", raw_params(write_toy(tmp_path / "in", n_unlabeled=20), transfer_size=21))
    with pytest.raises(ValueError, match=r"distill.transfer_size=21 but toy's transfer pool has only 20 examples "
                                         r"\(data.custom.toy.files.unlabeled"):
        pipeline.run_stage(run, "teachers")
    assert not (run.dir / "cache").exists()


def test_fit_gets_unlabeled_rows_after_the_train_rows(toy_run, monkeypatch):
    """What the loop receives: the train split's encodings and labels, then the transfer rows as UNLABELED."""
    run, _ = toy_run
    seen = {}

    def fake_fit(model, enc, labels, *a, **kw):
        seen.update(n=len(enc), labels=np.asarray(labels))
        raise RuntimeError("stop")
    monkeypatch.setattr("mtkd.kd.loop.fit", fake_fit)
    unit = Unit("students", "toy", "single:tfidf", 99, 6.0, 0.7)
    with pytest.raises(RuntimeError, match="stop"):
        pipeline.RUNNERS["students"](run, unit)
    train_labels = run.task("toy").splits["train"]["label"].to_numpy()
    assert seen["n"] == len(train_labels) + 30
    assert np.array_equal(seen["labels"][:len(train_labels)], train_labels)
    assert (seen["labels"][len(train_labels):] == UNLABELED).all()
    _, _, enc = run.student_inputs("toy")
    assert len(enc["transfer"]) == 30
    assert torch.tensor(seen["labels"]).dtype == torch.long
