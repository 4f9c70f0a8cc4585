"""Per-notebook keys (`mtkd.exec.freshness`): what changes a key, what does not, and the quiet kernel stderr."""
import io as _io
import json
import shutil
from pathlib import Path

import pytest

from mtkd.study import config

from mtkd.exec import freshness
from mtkd.exec.quiet import KernelStderr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path):
    run = tmp_path / "run"
    (run / "data" / "t").mkdir(parents=True)
    (run / "data" / "t" / "examples.parquet").write_bytes(b"abc")
    (run / "summary.csv").write_text("task,mean\nt,1\n")
    (run / "cache" / "teachers" / "t" / "a-1").mkdir(parents=True)
    (run / "cache" / "teachers" / "t" / "a-1" / ".done").write_text("{}")
    (run / "cache" / "teachers" / "t" / "a-1" / "model.bin").write_bytes(b"weights")
    nb = tmp_path / "01_x.ipynb"
    shutil.copyfile(ROOT / "notebooks" / "04_confidence.ipynb", nb)
    params = config.load_params(ROOT / "params" / "smoke.yaml")
    return run, nb, params


def key(run, nb, params, code="c0"):
    return freshness.keys(nb, params, freshness.inputs_digest(run), code)


def test_same_inputs_same_key_and_outputs_do_not_count(setup):
    run, nb, params = setup
    k = key(run, nb, params)
    (run / "reports").mkdir()
    (run / "reports" / "01_x.html").write_text("page")               # pages are outputs, not inputs
    (run / "summary.csv").write_text("task,mean\nt,1\n")              # rewritten with the same bytes
    (run / "cache" / "teachers" / "t" / "a-1" / "model.bin").write_bytes(b"other")   # only markers count
    assert key(run, nb, params) == k


def test_input_content_unit_markers_code_and_params_change_the_key(setup):
    run, nb, params = setup
    k = key(run, nb, params)["execute"]
    (run / "summary.csv").write_text("task,mean\nt,2\n")
    k2 = key(run, nb, params)["execute"]
    assert k2 != k
    (run / "cache" / "teachers" / "t" / "a-1" / ".done").unlink()     # a forgotten unit (--force)
    k3 = key(run, nb, params)["execute"]
    assert k3 != k2
    assert key(run, nb, params, code="c1")["execute"] != k3
    other = config.load_params(ROOT / "params" / "smoke.yaml", ["stats.bootstrap=300"])
    assert key(run, nb, other)["execute"] != k3


def test_a_stray_file_in_the_run_changes_no_key(setup):
    """Only the files notebooks read count: a user's notes or a Finder .DS_Store re-executes nothing."""
    run, nb, params = setup
    k = key(run, nb, params)
    (run / "notes.txt").write_text("look at task t again")
    (run / ".DS_Store").write_bytes(b"\0\1")
    (run / "data" / ".DS_Store").write_bytes(b"\0\1")
    (run / "scratch").mkdir()
    (run / "scratch" / "plot.png").write_bytes(b"png")
    (run / "data" / "t" / ".examples.parquet.x1y2.tmp").write_bytes(b"partial")   # a killed writer's temporary
    assert key(run, nb, params) == k


@pytest.mark.parametrize("name", [*freshness.INPUT_FILES, "data/t/task.json", "logits/t/a/test.npz",
                                  "fusion/t.json"])
def test_every_file_notebooks_read_changes_the_key(setup, name):
    run, nb, params = setup
    k = key(run, nb, params)["execute"]
    (run / name).parent.mkdir(parents=True, exist_ok=True)
    (run / name).write_bytes(b"v1")
    k1 = key(run, nb, params)["execute"]
    (run / name).write_bytes(b"v2")
    assert len({k, k1, key(run, nb, params)["execute"]}) == 3


def test_input_files_name_the_results_stage_files():
    from mtkd.study.collect import RESULT_FILES
    from mtkd.study.condition_results import CONDITION_FILES
    assert set(RESULT_FILES) | set(CONDITION_FILES) | {"sweep_results.csv"} <= set(freshness.INPUT_FILES)
    assert "params.yaml" not in freshness.INPUT_FILES        # params count through keys(), less RENDER_ONLY


def test_notebook_source_counts_its_outputs_do_not(setup):
    run, nb, params = setup
    k = key(run, nb, params)["execute"]
    node = json.loads(nb.read_text())
    node["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    node["cells"][2]["execution_count"] = 5
    nb.write_text(json.dumps(node))
    assert key(run, nb, params)["execute"] == k
    node["cells"][-1]["source"] = "A changed sentence."
    nb.write_text(json.dumps(node))
    assert key(run, nb, params)["execute"] != k


def test_show_code_changes_only_the_render_key(setup):
    run, nb, params = setup
    shown = config.load_params(ROOT / "params" / "smoke.yaml", ["report.show_code=true"])
    a, b = key(run, nb, params), key(run, nb, shown)
    assert a["execute"] == b["execute"] and a["render"] != b["render"]


def test_how_units_ran_changes_no_key(setup):
    """workers and threads change how the units ran; what they change reaches a notebook as files."""
    run, nb, params = setup
    other = config.load_params(ROOT / "params" / "smoke.yaml", ["workers=3", "threads=1"])
    assert key(run, nb, params) == key(run, nb, other)
    assert key(run, nb, config.load_params(ROOT / "params" / "smoke.yaml", ["eval_batch_size=7"])) != key(run, nb, params)


def test_status_record_and_stale(setup):
    run, nb, params = setup
    now = key(run, nb, params)
    assert freshness.status(run, "01_x", now, html=True) == "execute"          # never ran
    (run / "reports").mkdir()
    (run / "reports" / "01_x.ipynb").write_text("{}")
    freshness.record(run, "01_x", now, 12.5)
    assert freshness.status(run, "01_x", now, html=True) == "render"           # no page yet
    (run / "reports" / "01_x.html").write_text("page")
    assert freshness.status(run, "01_x", now, html=True) == "fresh"
    assert freshness.status(run, "01_x", {**now, "render": "x"}, html=True) == "render"
    assert freshness.status(run, "01_x", {**now, "render": "x"}, html=False) == "fresh"
    assert freshness.status(run, "01_x", {**now, "execute": "x"}, html=True) == "execute"
    freshness.record(run, "01_x", now, None)                                   # a reuse keeps the last time
    assert freshness.last_seconds(run, "01_x") == 12.5
    target = run / "reports" / "explorer.html"
    assert freshness.stale(run, "explorer", now, target)
    target.write_text("x")
    freshness.record(run, "explorer", now, 1.0)
    assert not freshness.stale(run, "explorer", now, target)
    assert freshness.stale(run, "explorer", {**now, "execute": "y"}, target)


def test_kernel_stderr_shows_mtkd_lines_and_errors_only(tmp_path):
    term = _io.StringIO()
    sink = KernelStderr(tmp_path / "nb.stderr.log", terminal=term)
    sink.write("mtkd: teacher trained in 3 s\n/x.py:3: UserWarning: something noisy\n  warnings.warn(x)\n")
    sink.write("ValueError: bad input\nprogress 10%\rprogress 100%\nmtkd: par")
    sink.write("tial line\n")
    sink.close()
    assert term.getvalue().splitlines() == ["mtkd: teacher trained in 3 s", "ValueError: bad input",
                                            "mtkd: partial line"]
    assert (tmp_path / "nb.stderr.log").read_text().splitlines() == [
        "/x.py:3: UserWarning: something noisy", "  warnings.warn(x)", "progress 100%"]
    assert sink.hidden == 3
