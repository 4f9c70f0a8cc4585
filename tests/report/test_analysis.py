"""mtkd.study.analysis on hand-built inputs with known answers, mtkd.figures, and mtkd.study.results on a fake run."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from mtkd.study import analysis as A
from mtkd.report import figures as F
from mtkd.study.results import load_run

try:
    from fake_run import write_fake_run
except ImportError:  # tests/ as a package
    from tests.fake_run import write_fake_run

LN2 = math.log(2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_fake_run(tmp_path_factory.mktemp("runs") / "fake")


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


# --------------------------------------------------------------------------- basics

def test_softmax_and_entropy():
    p = A.softmax([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(p, [[0.25, 0.75]])
    np.testing.assert_allclose(A.softmax([[0.0, 2 * math.log(3.0)]], T=2.0), [[0.25, 0.75]])
    np.testing.assert_allclose(A.softmax(np.array([[0.0, -np.inf, 0.0]])), [[0.5, 0.0, 0.5]])
    assert A.entropy([0.25] * 4) == pytest.approx(math.log(4))
    assert A.entropy([1.0, 0.0, 0.0]) == 0.0
    np.testing.assert_allclose(A.sharpen(A.softmax([[1.0, 3.0]]), 2.0), A.softmax([[1.0, 3.0]], 2.0))
    with pytest.raises(ValueError):
        A.softmax([1.0], T=0)


def test_js_divergence_bounds():
    p = np.array([[0.2, 0.3, 0.5]])
    assert A.js_divergence(p, p)[0] == pytest.approx(0.0, abs=1e-12)
    assert A.js_divergence([[1.0, 0.0]], [[0.0, 1.0]])[0] == pytest.approx(LN2)
    probs = np.array([[[1, 0], [0, 1], [1, 0]]], dtype=float)        # pairs: ln2, 0, ln2
    assert A.mean_pairwise_js(probs)[0] == pytest.approx(2 * LN2 / 3)
    assert A.mean_pairwise_js(probs[:, :1])[0] == 0.0


# --------------------------------------------------------------------------- confidence

def test_teacher_confidence_by_hand():
    conf = A.teacher_confidence({"x": np.array([[0.99, 0.01], [0.6, 0.4]]), "y": np.array([[0.5, 0.5], [0.5, 0.5]])})
    x = conf.set_index("teacher").loc["x"]
    assert x["mean_max_prob"] == pytest.approx(0.795)
    assert x["pct_high_conf"] == pytest.approx(50.0)
    h = (-(0.99 * math.log(0.99) + 0.01 * math.log(0.01)) - (0.6 * math.log(0.6) + 0.4 * math.log(0.4))) / 2
    assert x["mean_entropy"] == pytest.approx(h)
    assert x["n"] == 2
    assert conf.set_index("teacher").loc["y", "mean_entropy"] == pytest.approx(LN2)
    hist = A.confidence_histogram({"x": np.array([[0.99, 0.01], [0.6, 0.4], [0.5, 0.5]])}, n_bins=5)
    assert hist["count"].sum() == 3 and hist["bin_low"].min() == pytest.approx(0.5)
    assert hist["share"].sum() == pytest.approx(100.0)
    assert hist.iloc[-1]["count"] == 1           # 0.99 in the last bin (0.9, 1]


# --------------------------------------------------------------------------- agreement

def test_agreement_regions_k3_c3():
    t = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 2], [2, 1, 1], [2, 2, 2]])
    assert list(A.agreement_regions(t)) == ["all_agree", "partial", "full_disagree", "partial", "all_agree"]


def test_agreement_regions_other_k():
    assert list(A.agreement_regions(np.array([[0, 1], [1, 1]]))) == ["partial", "all_agree"]   # K=2: never full
    assert list(A.agreement_regions(np.array([[0], [1]]))) == ["all_agree", "all_agree"]       # K=1
    assert list(A.agreement_regions(np.array([[0, 1, 2, 0], [0, 1, 2, 3]]))) == ["partial", "full_disagree"]
    with pytest.raises(ValueError):
        A.agreement_regions(np.array([0, 1]))


def test_accuracy_by_region_by_hand():
    regions = np.array(["all_agree", "all_agree", "partial", "full_disagree"])
    labels = np.array([0, 1, 2, 0])
    out = A.accuracy_by_region(regions, labels, {"m": np.array([0, 0, 2, 1]),
                                                 "s": np.array([[0, 1, 2, 0], [1, 1, 0, 0]])})
    m = out[out["method"] == "m"].set_index("region")
    assert m.loc["all_agree", "accuracy"] == pytest.approx(50.0)
    assert m.loc["partial", "accuracy"] == 100.0 and m.loc["full_disagree", "accuracy"] == 0.0
    assert m.loc["all_agree", "share"] == 50.0 and m.loc["all_agree", "n"] == 2
    s = out[out["method"] == "s"].set_index("region")
    assert s.loc["all_agree", "accuracy"] == pytest.approx(75.0)       # seed 1: 100, seed 2: 50
    assert s.loc["partial", "accuracy"] == pytest.approx(50.0) and s.loc["partial", "n_seeds"] == 2
    assert list(out["region"].unique()) == list(A.REGIONS)
    empty = A.accuracy_by_region(np.array(["all_agree"]), np.array([0]), {"m": np.array([0])})
    assert np.isnan(empty.set_index("region").loc["partial", "accuracy"])
    assert len(A.accuracy_by_region(np.array(["all_agree"]), np.array([0]), {"m": np.array([0])}, drop_empty=True)) == 1


# --------------------------------------------------------------------------- failures

def test_error_categories_each_kind():
    teachers = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0], [1, 2, 2]])
    labels = np.array([0, 0, 0, 0, 0])
    student = np.array([1, 1, 1, 0, 1])
    cats = A.error_categories(student, labels, teachers)
    assert list(cats) == ["teacher_right", "all_teachers_wrong", "teachers_disagreed", "correct",
                          "teachers_disagreed"]   # disagreement takes precedence over "all wrong"
    # K = 1: never a disagreement
    assert list(A.error_categories(np.array([1, 1]), np.array([0, 0]), np.array([0, 1]))) == \
        ["teacher_right", "all_teachers_wrong"]


def test_failure_categories_counts():
    teachers = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0]])
    labels = np.array([0, 0, 0, 0])
    f = A.failure_categories(np.array([1, 1, 1, 0]), labels, teachers).set_index("category")
    assert list(f.index) == list(A.FAILURE_CATEGORIES)
    assert f["n"].tolist() == [1, 1, 1] and f["share"].sum() == pytest.approx(100.0)
    assert f.loc["teacher_right", "pct_of_examples"] == pytest.approx(25.0)
    two = A.failure_categories(np.array([[1, 1, 1, 0], [0, 1, 0, 0]]), labels, teachers).set_index("category")
    assert two.loc["all_teachers_wrong", "n"] == 2 and two.loc["all_teachers_wrong", "n_per_seed"] == 1.0
    assert two["n_errors"].iloc[0] == 4 and two["n_seeds"].iloc[0] == 2
    none = A.failure_categories(np.array([0, 0]), np.array([0, 0]), np.array([[0, 0], [0, 0]]))
    assert none["n"].sum() == 0 and none["share"].isna().all()


# --------------------------------------------------------------------------- summary analyses

def _summary():
    rows = [("t1", "teacher:a", "teacher", 90.0), ("t1", "teacher:b", "teacher", 86.0),
            ("t1", "baseline", "baseline", 80.0), ("t1", "single:a", "single", 85.0),
            ("t1", "single:b", "single", 84.0), ("t1", "multi:average", "multi", 85.0),
            ("t1", "multi:gating", "multi", 82.0),
            ("t2", "teacher:a", "teacher", 70.0), ("t2", "teacher:b", "teacher", 70.0),
            ("t2", "baseline", "baseline", 70.0), ("t2", "single:a", "single", 71.0),
            ("t2", "single:b", "single", 72.0), ("t2", "multi:average", "multi", 70.5),
            ("t2", "multi:gating", "multi", 73.0)]
    return pd.DataFrame(rows, columns=["task", "method", "kind", "mean"])


def test_gap_closed_by_hand():
    assert A.gap_closed(85, 80, 90) == pytest.approx(0.5)
    assert A.gap_closed(78, 80, 90) == pytest.approx(-0.2)
    assert math.isnan(A.gap_closed(85, 80, 80))
    np.testing.assert_allclose(A.gap_closed(np.array([85, 90]), 80, 90), [0.5, 1.0])
    g = A.gap_closed_table(_summary()).set_index(["task", "method"])
    assert g.loc[("t1", "single:a"), "gap_closed_best"] == pytest.approx(0.5)          # (85-80)/(90-80)
    assert g.loc[("t1", "single:a"), "gap_closed_mean"] == pytest.approx(5 / 8)        # mean teacher 88
    assert g.loc[("t1", "single:a"), "best_teacher"] == "teacher:a"
    assert math.isnan(g.loc[("t2", "single:a"), "gap_closed_best"])                  # teacher == no KD
    assert set(g["kind"]) == {"single", "multi"}
    with pytest.raises(ValueError, match="teacher rows"):
        A.gap_closed_table(_summary()[lambda d: d["kind"] != "teacher"])


def test_method_ranking_ties():
    r = A.method_ranking(_summary()).set_index("method")
    # t1: 85 (single:a), 85 (multi:average) tie for 1; 84 -> 3; 82 -> 4; 80 -> 5 (competition ranking)
    assert r.loc["single:a", "t1"] == 1 and r.loc["multi:average", "t1"] == 1
    assert r.loc["single:b", "t1"] == 3 and r.loc["baseline", "t1"] == 5
    assert r.loc["multi:gating", "t2"] == 1
    assert r.loc["single:a", "mean_rank"] == pytest.approx((1 + 3) / 2)
    assert "teacher:a" not in r.index
    assert list(r["mean_rank"]) == sorted(r["mean_rank"])


def test_multi_vs_single_choices():
    s = _summary()
    same = A.multi_vs_single(s).set_index("task")
    assert same.loc["t1", "advantage_pp"] == pytest.approx(0.0)      # 85 - 85
    assert same.loc["t2", "advantage_pp"] == pytest.approx(1.0)      # 73 - 72
    assert same.loc["t1", "chosen_on"].startswith("same split")
    sel = s.copy()
    sel.loc[sel["method"] == "single:b", "mean"] = 99.0              # selection picks single:b everywhere
    sel.loc[sel["method"] == "multi:gating", "mean"] = 99.0
    chosen = A.multi_vs_single(s, sel).set_index("task")
    assert chosen.loc["t1", "best_single"] == "single:b" and chosen.loc["t1", "best_multi"] == "multi:gating"
    assert chosen.loc["t1", "advantage_pp"] == pytest.approx(82 - 84)
    d = A.multi_vs_single(s, {"t1": {"single": "single:a", "multi": "multi:gating"},
                              "t2": {"single": "single:a", "multi": "multi:average"}}).set_index("task")
    assert d.loc["t2", "advantage_pp"] == pytest.approx(-0.5)
    c = A.multi_vs_single(s, {t: {"best_single": "single:a", "best_multi": "multi:gating"} for t in ("t1", "t2")})
    assert c.set_index("task").loc["t2", "advantage_pp"] == pytest.approx(2.0)


def test_summarize_scores():
    master = pd.DataFrame({"task": "t", "method": "m", "kind": "single", "seed": [1, 2, 1], "split": ["test"] * 2 + ["selection"],
                           "metric": "accuracy", "score": [80.0, 90.0, 10.0]})
    s = A.summarize_scores(master)
    assert s["mean"].iloc[0] == 85.0 and s["n_seeds"].iloc[0] == 2


# --------------------------------------------------------------------------- diversity, calibration

def test_soft_label_diversity():
    same = np.tile(np.array([[2.0, 0.0, -1.0]]), (4, 3, 1))
    d = A.soft_label_diversity(same, {"average": A.softmax(same.mean(1))}, ["a", "b", "c"])
    assert d["mean_js"] == pytest.approx(0.0, abs=1e-12) and d["disagreement_rate"] == 0.0
    assert len(d["pairwise_js"]) == 3
    z = np.array([[[10.0, -10.0], [-10.0, 10.0]]] * 2)            # confident, opposite teachers
    one_hot = np.array([[1.0, 0.0], [1.0, 0.0]])
    d = A.soft_label_diversity(z, {"vote": one_hot, "avg": A.softmax(z.mean(1))})
    assert d["mean_js"] == pytest.approx(LN2, abs=1e-6) and d["disagreement_rate"] == 1.0
    t = d["targets"].set_index("target")
    assert t.loc["vote", "mean_one_minus_max"] == 0.0 and t.loc["vote", "mean_entropy"] == 0.0
    assert t.loc["avg", "mean_entropy"] == pytest.approx(LN2) and t.loc["avg", "kind"] == "fuser"
    assert t.loc["teacher0", "mean_one_minus_max"] < 1e-6
    soft = A.soft_label_diversity(z, None, temperature=20.0)
    assert soft["targets"]["mean_entropy"].iloc[0] > 0.5


def test_ece_and_reliability():
    # one bin, confidence 0.8 and 80% right: perfectly calibrated
    probs = np.array([[0.8, 0.2]] * 10)
    labels = np.array([0] * 8 + [1] * 2)
    assert A.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    # two bins: conf 0.9 with 1/2 right (gap 0.4), conf 0.6 with 2/2 right (gap 0.4) -> ECE 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    assert A.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4)
    curve = A.reliability_curve(probs, labels, n_bins=10)
    assert curve["count"].sum() == 4 and len(curve) == 10
    b = curve[curve["count"] > 0].set_index("bin")
    assert b.loc[8, "accuracy"] == 0.5 and b.loc[8, "confidence"] == pytest.approx(0.9)   # (0.8, 0.9]
    assert b.loc[5, "accuracy"] == 1.0


def test_diversity_vs_advantage():
    few = A.diversity_vs_advantage(pd.DataFrame({"task": ["a", "b"], "diversity": [0.1, 0.2], "advantage": [0, 1]}))
    assert few["n"] == 2 and np.isnan(few["spearman_rho"]) and "at least 3" in few["note"]
    df = pd.DataFrame({"task": list("abcd"), "diversity": [0.1, 0.2, 0.3, 0.4], "advantage": [-1.0, 0.0, 0.5, 3.0]})
    r = A.diversity_vs_advantage(df)
    assert r["spearman_rho"] == pytest.approx(1.0) and r["n"] == 4 and 0 < r["pearson_r"] < 1
    const = A.diversity_vs_advantage(df.assign(advantage=1.0))
    assert np.isnan(const["pearson_r"]) and "constant" in const["note"]


# --------------------------------------------------------------------------- figures

def _hover_ok(fig):
    for tr in fig.data:
        if getattr(tr, "hoverinfo", None) == "skip":
            continue
        assert tr.hovertemplate and "%{" in tr.hovertemplate


def test_figures_carry_numbers(run):
    s = run.summary
    fig = F.score_bars(s)
    tr = {t.name: t for t in fig.data}
    row = s[(s["task"] == "toy3") & (s["method"] == "multi:average")].iloc[0]
    i = list(tr["multi:average"].x).index("toy3")
    assert tr["multi:average"].y[i] == pytest.approx(row["mean"])
    assert tr["multi:average"].customdata[i][0] == pytest.approx(row["ci_low"])
    assert tr["multi:average"].marker.color != tr["single:a"].marker.color
    _hover_ok(fig)

    rank = A.method_ranking(s)
    hm = F.ranking_heatmap(rank)
    np.testing.assert_allclose(np.asarray(hm.data[0].z, dtype=float), rank[["toy3", "toy2", "mean_rank"]].to_numpy())
    _hover_ok(hm)

    comp = pd.DataFrame({"task": ["x", "y"], "a": ["multi:average"] * 2, "b": ["single:a"] * 2,
                         "diff_pp": [1.0, -0.5], "ci_low": [0.2, -2.0], "ci_high": [1.5, 1.0],
                         "p_adjusted": [0.01, 0.6], "significant": [True, False]})
    adv = F.advantage_bars(comp)
    sig = [t for t in adv.data if t.name == "significant"][0]
    assert list(sig.y) == [1.0] and sig.error_y.array[0] == pytest.approx(0.5)
    assert sig.error_y.arrayminus[0] == pytest.approx(0.8)
    _hover_ok(adv)
    with_verdicts = comp.assign(verdict=["better", "inconclusive"], margin_pp=1.0,
                                task=["x", "x"], b=["single:a", "single:b"])
    adv = F.advantage_bars(with_verdicts)
    by_name = {t.name: t for t in adv.data}
    assert set(by_name) == {"better", "inconclusive"}              # one bar group per verdict present
    assert list(by_name["inconclusive"].x) == ["x: multi:average - single:b"]
    assert by_name["better"].marker.color == F.VERDICT_STYLE["better"][0]
    band = [s for s in adv.layout.shapes if s.type == "rect"]
    assert len(band) == 1 and (band[0].y0, band[0].y1) == (-1.0, 1.0)
    assert "+-1 pp equivalence margin" in adv.layout.title.text
    assert [a.text for a in adv.layout.annotations] == ["better", "inconclusive"]   # no mde_pp: no MDE line
    adv = F.advantage_bars(with_verdicts.assign(mde_pp=[0.8, 2.25]))
    assert adv.layout.annotations[1].text == "inconclusive<br>MDE 2.25 pp"
    assert adv.layout.annotations[1].y == pytest.approx(1.0)                       # above the interval's top
    _hover_ok(adv)

    gap = F.gap_closed_bars(A.gap_closed_table(s))
    g = A.gap_closed_table(s)
    t0 = gap.data[0]
    assert t0.y[0] == pytest.approx(100 * g[g["method"] == t0.name]["gap_closed_best"].iloc[0])
    _hover_ok(gap)

    sweep = pd.DataFrame([dict(method=m, temperature=T, alpha=a, seed=sd, score=T + a + sd)
                          for m in ("single:a", "multi:average") for T in (3, 6) for a in (0.3, 0.7) for sd in (0, 1)])
    sh = F.sweep_heatmap(sweep)
    assert len(sh.data) == 2
    assert sh.data[0].z[1][1] == pytest.approx(6 + 0.7 + 0.5)        # mean over the two seeds
    assert "★" in sh.data[0].text[1][1]
    _hover_ok(sh)

    div = F.diversity_scatter(pd.DataFrame({"task": list("abc"), "diversity": [0.1, 0.2, 0.3],
                                            "advantage": [0.0, 1.0, 2.0]}))
    assert "Spearman" in div.layout.title.text and list(div.data[0].y) == [0.0, 1.0, 2.0]


def test_analysis_figures_on_run(run):
    conf, hist, regions, fails, curves = [], [], [], [], {}
    for task in run.tasks:
        tp = run.teacher_probs(task)
        c = A.teacher_confidence(tp)
        conf.append(c.assign(task=task))
        hist.append(A.confidence_histogram(tp).assign(task=task))
        idx, z = run.teacher_logits(task)
        y = run.examples(task, "test").set_index("idx").loc[idx, "label"].to_numpy()
        tpred = z.argmax(-1)
        sp = run.student_predictions(task)
        preds = {m: np.stack([g.set_index("idx").loc[idx, "pred"].to_numpy() for _, g in gm.groupby("seed")])
                 for m, gm in sp.groupby("method", sort=False)}
        regions.append(A.accuracy_by_region(A.agreement_regions(tpred), y, preds).assign(task=task))
        for m, p in preds.items():
            fails.append(A.failure_categories(p, y, tpred).assign(task=task, method=m))
        if task == "toy3":
            curves = {t: A.reliability_curve(p, y, 10) for t, p in tp.items()}
    conf = pd.concat(conf)
    fc = F.confidence_bars(conf)
    a = [t for t in fc.data if t.name == "a"][0]                      # first panel: mean max prob
    assert a.y[0] == pytest.approx(conf[(conf["task"] == "toy3") & (conf["teacher"] == "a")]["mean_max_prob"].iloc[0])
    figs = [fc, F.max_prob_histogram(pd.concat(hist)), F.agreement_bars(pd.concat(regions)),
            F.failure_bars(pd.concat(fails)), F.failure_bars(pd.concat(fails), value="n"),
            F.reliability_diagram(curves, ece={"a": 0.1})]
    for f in figs:
        assert isinstance(f, go.Figure) and f.layout.title.text
        _hover_ok(f)
    fb = figs[3]
    assert {t.name for t in fb.data} == set(A.FAILURE_LABELS.values())
    total = np.nansum([np.asarray(t.y, dtype=float) for t in fb.data], axis=0)
    np.testing.assert_allclose(total[total > 0], 100.0)
    assert "ECE 10.0%" in " ".join(t.name for t in figs[5].data)


def test_method_colors_consistent():
    c = F.method_colors(["multi:average", "single:a", "baseline", "single:b", "teacher:x"])
    assert c["baseline"] == F.KIND_COLORS["baseline"] and c["teacher:x"] == F.KIND_COLORS["teacher"]
    assert c["single:a"] != c["single:b"]
    assert F.kind_of("multi:gating") == "multi" and F.kind_of("single:a") == "single"


# --------------------------------------------------------------------------- results

def test_load_run_basics(run, run_dir):
    assert run.tasks == ["toy3", "toy2"]
    assert run.teachers("toy3") == ["a", "b", "c"]
    assert run.task_info("toy3")["text_fields"] == ["premise", "hypothesis"]
    assert set(run.examples("toy2")["split"]) == {"train", "selection", "test"}
    assert run.params["seeds"] == [42, 43] and run.seeds == [42, 43]
    assert run.predictions is run.predictions                        # cached
    assert {"baseline", "single:a", "multi:gating"} <= set(run.student_methods("toy3"))
    assert run.fusers("toy3") == ["average", "weighted", "gating"]
    adv = A.multi_vs_single(run.summary, run.choices)
    assert adv["best_multi"].str.startswith("multi:").all() and adv["advantage_pp"].notna().all()
    g = run.gates("toy3", "test")
    assert set(g["method"]) == {"multi:gating"} and len(g["weights"].iloc[0]) == 3
    # master_results is recomputable from predictions
    m = run.master_results
    row = m[(m["task"] == "toy3") & (m["method"] == "single:b") & (m["seed"] == 43) & (m["split"] == "test")].iloc[0]
    p = run.predictions
    p = p[(p["task"] == "toy3") & (p["method"] == "single:b") & (p["seed"] == 43) & (p["split"] == "test")]
    assert row["score"] == pytest.approx(100 * (p["pred"] == p["label"]).mean())


def test_teacher_logits_alignment(run, run_dir):
    idx, z = run.teacher_logits("toy3", "test")
    assert z.shape == (60, 3, 3) and idx.shape == (60,)
    np.testing.assert_array_equal(idx, run.examples("toy3", "test")["idx"].to_numpy())
    with np.load(run_dir / "logits" / "toy3" / "b" / "test.npz") as f:
        np.testing.assert_allclose(z[:, 1], f["logits"])
    probs = run.teacher_probs("toy3", "test")
    np.testing.assert_allclose(probs["c"], A.softmax(z[:, 2]))


def test_fused_targets(run):
    _, z = run.teacher_logits("toy3", "test")
    fused = run.fused_targets("toy3", "test")
    assert set(fused) == {"average", "weighted"}                       # gating is student-dependent
    for p in fused.values():
        assert p.shape == (60, 3)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(fused["average"], A.softmax(z.astype(np.float64).mean(axis=1)), atol=1e-5)
    w = np.array([run.fusion_info("toy3")["weights"][t] for t in "abc"])
    w = w / w.sum()
    np.testing.assert_allclose(fused["weighted"], A.softmax(np.einsum("nkc,k->nc", z.astype(np.float64), w)), atol=1e-5)


def test_missing_and_partial_files(tmp_path, run_dir):
    with pytest.raises(FileNotFoundError, match="mtkd run"):
        load_run(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "fusion" / "toy2.json").unlink()
    (broken / "gates.parquet").unlink()
    (broken / "logits" / "toy3" / "c" / "selection.npz").unlink()
    r = load_run(broken)
    with pytest.raises(FileNotFoundError, match=r"fusion.toy2\.json.*unfinished"):
        r.teachers("toy2")
    with pytest.raises(FileNotFoundError, match=r"logits.toy3.c.selection\.npz"):
        r.teacher_logits("toy3", "selection")
    assert r.gates("toy3").empty
    with pytest.raises(ValueError, match="unknown task"):
        r.examples("nope")
    # teachers whose idx orders differ do not align
    f = broken / "logits" / "toy3" / "b" / "test.npz"
    with np.load(f) as z:
        logits, idx = z["logits"], z["idx"]
    np.savez(f, logits=logits[::-1], idx=idx[::-1])
    with pytest.raises(ValueError, match="different order"):
        load_run(broken).teacher_logits("toy3", "test")
    (broken / "params.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        load_run(broken)


def test_markdown_table_of_a_frame():
    import pandas as pd
    from mtkd.report.tables import markdown
    text = markdown(pd.DataFrame({"task": ["a", "b"], "score": [1.0, 2.345]}))
    assert text.splitlines() == ["| task | score |", "|---|---|", "| a | 1.00 |", "| b | 2.35 |"]
