"""The disagreement explorer on a fake run, without a browser: filters, sorting, paging, the widget."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from mtkd.study import analysis as A
from mtkd.report.explorer import EMPTY_MESSAGE, MAJORITY, Explorer, explore

try:
    from fake_run import write_fake_run
except ImportError:  # tests/ as a package
    from tests.fake_run import write_fake_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_fake_run(tmp_path_factory.mktemp("runs") / "fake")


@pytest.fixture(scope="module")
def ex(run_dir):
    return Explorer(run_dir)


def shown(widget) -> str:
    m = re.search(r'data-idx="([^"]*)"', widget.example_html.value)
    assert m, widget.example_html.value[:200]
    return m.group(1)


def test_table_built_once(ex):
    t = ex.table("toy3")
    assert ex.table("toy3") is t
    assert len(t.frame) == 60 and t.teacher_probs.shape == (60, 3, 3)
    assert set(t.fused) == {"average", "weighted"} and t.seeds == [42, 43]
    assert {"baseline", "single:a", "multi:gating"} <= set(t.methods)
    assert set(t.frame["region"]) == set(A.REGIONS)


def test_region_filter(ex):
    for region in A.REGIONS:
        rows = ex.filtered("toy3", region=region)
        assert len(rows) > 0 and set(rows["region"]) == {region}
    dis = ex.filtered("toy3", region="disagree")
    assert "all_agree" not in set(dis["region"])
    assert len(dis) == len(ex.filtered("toy3", region="partial")) + len(ex.filtered("toy3", region="full_disagree"))


def test_correctness_and_category(ex):
    wrong = ex.filtered("toy3", method="single:a", correctness="wrong")
    right = ex.filtered("toy3", method="single:a", correctness="right")
    assert len(wrong) > 0 and (wrong["pred"] != wrong["label"]).all()
    assert (right["pred"] == right["label"]).all()
    assert len(wrong) + len(right) == 60
    # check against the raw predictions of the first seed
    p = ex.run.student_predictions("toy3", "test", "single:a")
    p = p[p["seed"] == 42]
    assert set(wrong["idx"]) == set(p.loc[p["pred"] != p["label"], "idx"])
    total = 0
    for cat in A.FAILURE_CATEGORIES:
        rows = ex.filtered("toy3", method="single:a", category=cat)
        assert (rows["category"] == cat).all() and (rows["pred"] != rows["label"]).all()
        total += len(rows)
    assert total == len(wrong)
    assert ex.filtered("toy3", method="single:a", category="teacher_right", correctness="right").empty
    dis = ex.filtered("toy3", method="multi:average", category="teachers_disagreed")
    assert (dis["region"] != "all_agree").all()


def test_seed_choice(ex):
    t = ex.table("toy3")
    s2 = ex.filtered("toy3", method="baseline", seed=43, sort="idx")
    p = ex.run.student_predictions("toy3", "test", "baseline")
    p = p[p["seed"] == 43].sort_values("idx")
    np.testing.assert_array_equal(s2["pred"].to_numpy(), p["pred"].to_numpy())
    maj = ex.student_pred(t, "baseline", MAJORITY)
    arr = t.preds["baseline"]
    agree = arr[0] == arr[1]
    np.testing.assert_array_equal(maj[agree], arr[0][agree])
    np.testing.assert_array_equal(maj[~agree], np.minimum(arr[0], arr[1])[~agree])     # ties -> lowest class


def test_sorting(ex):
    rows = ex.filtered("toy3", sort="disagreement")
    d = rows["disagreement"].to_numpy()
    assert (np.diff(d) <= 1e-15).all() and d[0] > d[-1]
    assert rows["region"].iloc[0] != "all_agree"
    assert (np.diff(ex.filtered("toy3", sort="idx")["idx"].to_numpy()) > 0).all()
    assert (np.diff(ex.filtered("toy3", sort="teacher_entropy")["teacher_entropy"].to_numpy()) <= 1e-15).all()
    with pytest.raises(ValueError, match="sort"):
        ex.filtered("toy3", sort="random")


def test_render_example(ex):
    row = ex.filtered("toy3", region="full_disagree", sort="idx").iloc[0]
    h = ex.render_example(row, method="multi:gating")
    assert f'data-idx="{int(row["idx"])}"' in h and 'class="mtkd-explorer-example"' in h
    for name in ("teacher a", "teacher b", "teacher c", "fused: average", "fused: weighted", "student baseline",
                 "student multi:gating", "gate weights", "class0 (gold)", "seed 42"):
        assert name in h, name
    assert "&lt;test" in h and "<test" not in h                        # texts are escaped
    assert "majority over seeds" in ex.render_example(row, seed=MAJORITY)


def test_fusion_weights_are_shown_per_example(tmp_path):
    import pandas as pd
    run_dir = write_fake_run(tmp_path / "fake")
    ex0 = Explorer(run_dir)
    frame = ex0.table("toy3").frame
    n = len(frame)
    w = np.tile([0.125, 0.25, 0.625], (n, 1))
    pd.DataFrame({"task": "toy3", "method": "multi:ca_mkd", "split": "test", "idx": frame["idx"].to_numpy(),
                  "weights": [list(r) for r in w], "applied": "ebkd"}).to_parquet(run_dir / "fusion_weights.parquet")
    ex = Explorer(run_dir)
    h = ex.render_example(ex.filtered("toy3", sort="idx").iloc[0])
    assert "multi:ca_mkd fuser (ebkd weights: no labels used here)" in h
    assert "0.125" in h and "0.625" in h


def test_widget_filter_changes_shown_example(run_dir):
    w = explore(run_dir)
    assert w.explorer.table("toy3") is not None and "example_html" in dir(w)
    assert "mtkd-explorer-example" in w.example_html._dom_classes
    first = shown(w)
    assert int(first) == w.shown_idx == int(w.rows.iloc[0]["idx"])
    assert w.rows.iloc[0]["region"] != "all_agree"                  # sorted by disagreement
    w.controls["region"].value = "all_agree"
    assert shown(w) != first and set(w.rows["region"]) == {"all_agree"}
    assert int(shown(w)) == int(w.rows.iloc[0]["idx"])
    w.controls["method"].value = "single:b"
    w.controls["correctness"].value = "wrong"
    assert (w.rows["method"] == "single:b").all() and (w.rows["pred"] != w.rows["label"]).all()
    w.controls["task"].value = "toy2"
    assert 'data-task="toy2"' in w.example_html.value and w.controls["method"].value == "single:b"


def test_widget_paging(run_dir):
    w = explore(run_dir, task="toy3")
    rows = w.rows
    assert len(rows) == 60 and w.controls["prev"].disabled
    w.controls["next"].click()
    assert shown(w) == str(int(rows.iloc[1]["idx"])) and "2 / 60" in w.page_label.value
    w.go(+100)
    assert shown(w) == str(int(rows.iloc[-1]["idx"])) and w.controls["next"].disabled
    w.controls["prev"].click()
    assert shown(w) == str(int(rows.iloc[-2]["idx"]))
    w.controls["position"].value = 5
    assert shown(w) == str(int(rows.iloc[4]["idx"]))
    w.controls["sort"].value = "idx"                                   # a filter change goes back to the first
    assert w.controls["position"].value == 1 and shown(w) == str(int(w.rows["idx"].min()))


def test_widget_empty_result(run_dir):
    w = explore(run_dir, task="toy2")
    w.controls["region"].value = "full_disagree"                      # impossible with 2 classes
    assert w.rows.empty and w.shown_idx is None
    assert EMPTY_MESSAGE in w.example_html.value and shown(w) == ""
    assert w.controls["next"].disabled and w.controls["prev"].disabled
    w.controls["region"].value = "any"
    assert shown(w) != ""


def test_widget_splits_and_seed(run_dir):
    w = explore(run_dir, task="toy3")
    assert list(w.controls["split"].options) == ["test", "selection", "train"]
    w.controls["split"].value = "selection"
    assert 'data-split="selection"' in w.example_html.value
    w.controls["seed"].value = MAJORITY
    assert "majority over seeds" in w.example_html.value
    w.controls["split"].value = "train"                                 # teachers only: no students there
    assert w.controls["method"].value is None and len(w.rows) == 60
    w.controls["correctness"].value = "wrong"
    assert w.rows.empty


def test_large_split_stays_responsive(tmp_path):
    big = write_fake_run(tmp_path / "big", tasks=("toy3",), n=3000, seeds=(1, 2, 3))
    ex = Explorer(big)
    t0 = time.perf_counter()
    ex.table("toy3")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    for region in ("any", "partial", "disagree"):
        rows = ex.filtered("toy3", region=region, method="multi:average", correctness="wrong")
        ex.render_example(rows.iloc[0])
    step = (time.perf_counter() - t0) / 3
    assert build < 10 and step < 0.5, (build, step)
