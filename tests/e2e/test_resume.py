"""Issue 9, part two: faults lose nothing and runs resume; one run per folder at a time.

End to end (marked slow): a small smoke study is run once without interruption (the
reference, shared by the module); while it runs, a second `mtkd run` into its folder
must be refused. Then the same command is SIGKILLed during teacher training, re-run and
SIGKILLed during student training, re-run and SIGKILLed while the analysis notebooks
run, and re-run to the end: the results must be identical to the reference.

In-process: an epoch checkpoint resumes training bit for bit (fast), and a copy of the
reference whose logit cache lost pieces is recomputed to identical values.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SMOKE, mtkd_command, subprocess_env
from mtkd.study.io import run_status

# Small but complete: one task, two seeds, three teachers (one checkpoints at epoch boundaries),
# baseline + single + one fuser, no sweep, no HTML (the notebooks still execute).
# Epochs are raised so that each teacher and student takes a second or two: long enough to be killed mid-way.
SETS = ["data.tasks=[trec]", "seeds=[1,2]", "distill.methods=[baseline,single,average]", "sweep.enabled=false",
        "report.html=false", "teachers.tiny_a.epochs=12", "student.epochs=6"]
RUN_TIMEOUT = 600          # a whole study; generous because the CI machine may be shared


def command(out: Path) -> list[str]:
    return mtkd_command("run", str(SMOKE), *[a for s in SETS for a in ("--set", s)], "--out", str(out))


def start(out: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:       # the child keeps its own copy of the descriptor
        return subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=fh, env=subprocess_env())


def finish(out: Path, log: Path) -> subprocess.CompletedProcess:
    with open(log, "a") as fh:
        res = subprocess.run(command(out), stdout=subprocess.DEVNULL, stderr=fh, env=subprocess_env(),
                             timeout=RUN_TIMEOUT)
    assert res.returncode == 0, log.read_text()[-3000:]
    return res


def wait_for(proc: subprocess.Popen, condition, what: str, log: Path, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL the `mtkd run` process and its notebook kernel at once, as a crash or the OOM killer would:
    the kernel does the training, so it must not get the second it needs to notice its parent died."""
    import psutil
    kernels = psutil.Process(proc.pid).children(recursive=True)
    for p in kernels:
        p.kill()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(kernels, timeout=60)
    for p in alive:
        p.kill()
    assert not alive, f"orphaned kernel(s) {[p.pid for p in alive]} kept running after the runner was killed"


def results(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    master = pd.read_csv(run_dir / "master_results.csv")
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    return master, preds


def assert_same_results(run_dir: Path, reference: Path) -> None:
    assert (run_dir / ".complete").exists()
    got, want = results(run_dir), results(reference)
    pd.testing.assert_frame_equal(got[0], want[0], check_exact=True)
    pd.testing.assert_frame_equal(got[1], want[1], check_exact=True)
    for name in ("summary.csv", "comparisons.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / name), pd.read_csv(reference / name), check_exact=True)


def units(run_dir: Path, stage: str, teacher: str = "*") -> list[Path]:
    pattern = f"{teacher}-*" if stage == "teachers" else "*/*"
    return sorted((run_dir / "cache" / stage / "trec").glob(pattern))


def done(folders: list[Path]) -> list[Path]:
    return [f for f in folders if (f / ".done").exists()]


# ---------------------------------------------------------------------------------------------- the reference

@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted run; while it holds its folder, a second run into the same folder is attempted."""
    base = tmp_path_factory.mktemp("reference")
    out, log = base / "run", base / "first.log"
    first = start(out, log)
    try:
        wait_for(first, lambda: (out / "params.yaml").exists(), "the first run took the lock", log)
        second = subprocess.run(command(out), capture_output=True, text=True, env=subprocess_env(), timeout=300)
        still_running = first.poll() is None
        rc = first.wait(timeout=RUN_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
    assert rc == 0, log.read_text()[-3000:]
    return {"dir": out, "second": second, "first_running_when_refused": still_running, "log": log}


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused_while_the_first_completes(reference):
    second = reference["second"]
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another mtkd run is writing to" in second.stderr and "--out" in second.stderr
    assert "Traceback" not in second.stderr
    assert reference["first_running_when_refused"]
    assert (reference["dir"] / ".complete").exists()
    status = run_status(reference["dir"])
    assert {"teachers", "logits", "students", "report-08_summary"} <= set(status["stages"]) and status["complete"]


# ---------------------------------------------------------------------------------------------- kill and resume

@pytest.mark.slow
def test_killed_at_three_stages_then_resumed_gives_identical_results(reference, tmp_path):
    """SIGKILL during teacher training, then during student training, then while the analysis notebooks
    run; each re-run of the same command picks up where the last one died, and the final one finishes
    with results identical to the uninterrupted reference.

    The three kills share one folder (each re-run is the next kill's victim): every resume path is
    exercised, and a wrong one would show in the final comparison, at a third of the cost of three
    separate studies.
    """
    out = tmp_path / "run"
    logs = [tmp_path / f"run{i}.log" for i in range(1, 5)]
    n_students = 10            # (baseline + 3 single + average) x 2 seeds

    # 1. teacher training: tiny_a trains 3 epochs and checkpoints after the first two; kill in between
    proc = start(out, logs[0])
    wait_for(proc, lambda: any((u / "last_epoch.pt").exists() for u in units(out, "teachers", "tiny_a")),
             "tiny_a's first epoch checkpoint", logs[0])
    sigkill(proc)
    (tiny_a,) = units(out, "teachers", "tiny_a")
    assert not (tiny_a / ".done").exists(), "killed too late: the teacher had finished"
    assert not (out / ".complete").exists() and not (out / "master_results.csv").exists()
    assert not (out / "stages" / "teachers.done").exists()

    # 2. student training: the re-run resumes tiny_a from its checkpoint; kill after three students
    proc = start(out, logs[1])
    wait_for(proc, lambda: len(done(units(out, "students"))) >= 3, "three finished students", logs[1])
    sigkill(proc)
    assert "teachers trec/tiny_a seed 1: resuming from its last epoch checkpoint" in logs[1].read_text()
    assert {"teachers", "logits"} <= set(run_status(out)["stages"])
    n_done = len(done(units(out, "students")))
    assert 3 <= n_done < n_students, "killed too late: every student had finished"
    assert not (out / ".complete").exists()

    # 3. the analysis notebooks: the re-run trains only the missing students; kill while notebook 05 runs
    proc = start(out, logs[2])
    wait_for(proc, lambda: (out / "stages" / "report-04_confidence.done").exists(), "notebook 05 to start",
             logs[2])
    sigkill(proc)
    text = logs[2].read_text()
    assert f"students: {n_students - n_done} of {n_students} units to compute" in text
    assert "mtkd: teachers:" not in text and "mtkd: logits:" not in text     # nothing finished is redone
    # results exist, but the run is visibly unfinished: no .complete, no marker for the later notebooks
    assert (out / "master_results.csv").exists() and not (out / ".complete").exists()
    assert not (out / "stages" / "report-05_agreement.done").exists()

    # 4. the same command once more finishes, retraining nothing
    finish(out, logs[3])
    assert "units to compute" not in logs[3].read_text()
    assert_same_results(out, reference["dir"])
    assert sorted(p.name for p in (out / "reports").glob("*.ipynb")) == \
        sorted(p.name for p in (reference["dir"] / "reports").glob("*.ipynb"))
    assert not list(out.rglob(".*.tmp")), "temporaries of the killed runs are left behind"


# ---------------------------------------------------------------------------------------------- in-process

@pytest.mark.slow
def test_logits_resume_after_a_partial_cache(reference, tmp_path):
    """Logit extraction killed half-way (one split missing, one torn file, a temp left): recomputed identically."""
    from mtkd.study import io, pipeline
    src = reference["dir"]
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir, ignore=shutil.ignore_patterns("reports"))
    folder = run_dir / "logits" / "trec" / "tiny_b"
    (folder / "test.npz").unlink()                                   # killed before this split
    (folder / "selection.npz").write_bytes((folder / "selection.npz").read_bytes()[:100])   # torn (no atomic write)
    (folder / ".train.npz.x1y2.tmp").write_bytes(b"partial")         # a temp a killed writer left
    assert io.remove_stale_temps(run_dir) == 1
    run = pipeline.Run.open(run_dir)
    assert not run.is_done(pipeline.Unit("logits", "trec", "tiny_b", 1))
    info = pipeline.run_stage(run, "logits")
    assert info["computed"] == 1
    for split in pipeline.SPLITS:
        for teacher in run.teachers:
            got = np.load(run_dir / "logits" / "trec" / teacher / f"{split}.npz")["logits"]
            want = np.load(src / "logits" / "trec" / teacher / f"{split}.npz")["logits"]
            np.testing.assert_array_equal(got, want)


def _train(tmp: Path | None, interrupt_at_epoch: int | None = None, gating: bool = False):
    from mtkd.data import models
    from mtkd.kd import loop as train
    from mtkd.kd.fusion import GatingFusion
    from mtkd.kd.loop import Encoded, KDTarget, TrainConfig, fit
    rng = np.random.default_rng(0)
    enc = Encoded([rng.integers(5, 60, size=int(rng.integers(3, 12))) for _ in range(48)], None, 0)
    labels = rng.integers(0, 3, size=48)
    model = models.load_classifier(models.MODELS["tiny-bert"], ["a", "b", "c"], seed=3, vocab_size=60)
    target = None
    if gating:
        torch.manual_seed(3)
        z = torch.from_numpy(rng.normal(size=(48, 2, 3)).astype(np.float32))
        target = KDTarget(4.0, 0.5, teacher_logits=z, gate=GatingFusion(model.config.hidden_size, 2, hidden=8))
    real = train.length_batches

    def batches(lengths, batch_size, seed=None):
        if interrupt_at_epoch is not None and seed == 3 * 1000 + interrupt_at_epoch:
            raise KeyboardInterrupt("killed")
        return real(lengths, batch_size, seed)

    train.length_batches = batches
    try:
        info = fit(model, enc, labels, TrainConfig(epochs=3, lr=5e-3, batch_size=8), seed=3,
                   device=torch.device("cpu"), dtype=None, target=target, checkpoint_dir=tmp)
    finally:
        train.length_batches = real
    return model, target, info


@pytest.mark.parametrize("gating", [False, True], ids=["student", "gated-student"])
def test_epoch_checkpoint_resume_is_bit_identical(tmp_path, gating):
    ref_model, ref_target, ref_info = _train(tmp_path / "a", gating=gating)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", interrupt_at_epoch=2, gating=gating)       # dies after two epochs
    assert (tmp_path / "b" / "last_epoch.pt").exists()
    state = torch.load(tmp_path / "b" / "last_epoch.pt", weights_only=True)
    assert state["epoch"] == 1 and state["rng"].device.type == "cpu"
    model, target, info = _train(tmp_path / "b", gating=gating)           # the same call again resumes
    for (k, a), (_, b) in zip(ref_model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k
    if gating:
        for a, b in zip(ref_target.gate.state_dict().values(), target.gate.state_dict().values()):
            assert torch.equal(a, b)
    assert [h["loss"] for h in info["history"]] == [h["loss"] for h in ref_info["history"]]
    assert info["steps"] == ref_info["steps"] and not (tmp_path / "b" / "last_epoch.pt").exists()
