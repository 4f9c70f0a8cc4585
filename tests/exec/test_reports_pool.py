"""The notebooks of a run, `workers` at a time (`runner._reports`): all of them run, in parallel, and a
failing one stops the queue with its own error while the finished ones keep their keys."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mtkd.exec import freshness, runner
from mtkd.study import config
from mtkd.study.pipeline import Run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_notebooks(tmp_path, monkeypatch):
    """execute_notebook replaced by a 0.2 s sleep that writes the output notebook; who ran when is logged."""
    spans: dict[str, tuple[float, float]] = {}
    running, peak, lock = [0], [0], threading.Lock()
    fail = set()

    def execute(name, run):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        t0 = time.time()
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        spans[name] = (t0, time.time())
        if name in fail:
            raise runner.RunError(f"{name}.ipynb failed in cell 3 (ValueError: boom)")
        out = run.dir / "reports" / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        return out

    monkeypatch.setattr(runner, "execute_notebook", execute)
    monkeypatch.setattr(runner.pages, "notebook_title", lambda nb: nb.stem)
    return spans, peak, fail


def _run(tmp_path, workers: int) -> tuple[Run, config.Params]:
    params = config.load_params(ROOT / "params" / "smoke.yaml", [f"workers={workers}", "report.html=false"])
    run = Run(params, tmp_path / "run")
    run.dir.mkdir(parents=True, exist_ok=True)
    return run, params


def test_two_workers_run_every_notebook_two_at_a_time(tmp_path, fake_notebooks):
    spans, peak, _ = fake_notebooks
    run, params = _run(tmp_path, 2)
    runner._reports(run, params, time.time())
    assert sorted(spans) == sorted(runner.NOTEBOOKS) and peak[0] == 2
    assert (run.dir / ".complete").is_file()
    for name in runner.NOTEBOOKS:                        # each one's keys recorded: a re-run reuses it
        assert (freshness.keys_dir(run.dir) / f"{name}.json").is_file()
    spans.clear()
    runner._reports(run, params, time.time())
    assert spans == {}


def test_one_worker_runs_them_one_after_another(tmp_path, fake_notebooks):
    spans, peak, _ = fake_notebooks
    run, params = _run(tmp_path, 1)
    runner._reports(run, params, time.time())
    assert peak[0] == 1 and [n for n, _ in sorted(spans.items(), key=lambda kv: kv[1][0])] == list(runner.NOTEBOOKS)


def test_a_failing_notebook_stops_the_queue_with_its_error(tmp_path, fake_notebooks):
    spans, _, fail = fake_notebooks
    fail.add("03_distillation")
    run, params = _run(tmp_path, 2)
    with pytest.raises(runner.RunError, match=r"03_distillation\.ipynb failed in cell 3"):
        runner._reports(run, params, time.time())
    assert not (run.dir / ".complete").exists()
    assert "10_humans" not in spans                      # queued behind the failure: never started
    assert (freshness.keys_dir(run.dir) / "01_teachers.json").is_file()           # finished: kept
    assert not (freshness.keys_dir(run.dir) / "03_distillation.json").exists()


def test_a_log_line_is_one_write_so_threads_cannot_run_lines_together(monkeypatch):
    from mtkd.study import pipeline

    class Recorder:
        def __init__(self):
            self.writes: list[str] = []

        def write(self, s: str) -> int:
            self.writes.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    err = Recorder()
    monkeypatch.setattr(pipeline.sys, "stderr", err)
    threads = [threading.Thread(target=pipeline.log, args=(f"line {i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(err.writes) == sorted(f"mtkd: line {i}\n" for i in range(8))
