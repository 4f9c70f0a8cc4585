"""The smoke study end to end through papermill: SPEC's outputs, recomputable scores, caching, offline HTML."""
import itertools
import math
import json
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from mtkd.exec.runner import NOTEBOOKS, run_study

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "params" / "smoke.yaml")
pytestmark = pytest.mark.slow


def remote_resources(html: str) -> list[str]:
    """src/href of script, link and img tags that point off the page (plotly.js's own source mentions URLs)."""
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            for key, value in attrs:
                if tag in ("script", "link", "img") and key in ("src", "href") and value and \
                        value.startswith(("http:", "https:", "//")):
                    self.found.append(value)

    parser = Tags()
    parser.found = []
    parser.feed(html)
    return parser.found


def done_markers(run_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.glob("cache/**/.done")}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    out = tmp_path_factory.mktemp("smoke") / "run"
    run_study(SMOKE, out=str(out))
    return out


def test_every_spec_output_exists(smoke):
    for name in ("params.yaml", "master_results.csv", "predictions.parquet", "success_metrics.json",
                 "summary.csv", "comparisons.csv", "confirm_plan.json", "confirm_summary.csv", ".complete"):
        assert (smoke / name).is_file(), name
    for nb in NOTEBOOKS:
        assert (smoke / "reports" / f"{nb}.ipynb").is_file()
        assert (smoke / "reports" / f"{nb}.html").is_file()


def test_smoke_nli_carries_human_counts_and_notebook_10_answers(smoke):
    info = json.loads((smoke / "data" / "snli" / "task.json").read_text())
    fields = info["label_counts_fields"]
    assert fields == ["human_entailment", "human_neutral", "human_contradiction"]
    ex = pd.read_parquet(smoke / "data" / "snli" / "examples.parquet")
    test = ex[ex["split"] == "test"][fields].to_numpy()
    assert (test.sum(1) >= 4).all()                       # the official test file: 4 or 5 labels per pair
    page = (smoke / "reports" / "10_humans.html").read_text()
    assert "Does fusing move the target toward human uncertainty?" in page
    assert "Tasks without human label counts (skipped here): rotten_tomatoes, trec." in page


def test_master_results_schema(smoke):
    master = pd.read_csv(smoke / "master_results.csv")
    assert {"task", "method", "kind", "seed", "split", "metric", "score"} <= set(master.columns)
    assert set(master["kind"]) == {"teacher", "baseline", "single", "multi"}
    assert not master.duplicated(["task", "method", "seed", "split"]).any()
    assert set(master["stage"]) == {"choosing", "confirming"}
    for method, kind in master[["method", "kind"]].drop_duplicates().itertuples(index=False):
        prefix = {"teacher": "teacher:", "single": "single:", "multi": "multi:"}.get(kind)
        assert method == "baseline" if kind == "baseline" else method.startswith(prefix)
    assert master["score"].between(0, 100).all()
    students = master[(master.kind != "teacher") & (master.stage == "choosing")]
    assert set(students["seed"]) == {1, 2}
    assert {"average", "weighted", "best_per_sample", "gating", "calibrated_average", "entropy_weighted",
            "majority_vote", "average_probs", "ca_mkd", "ebkd", "curriculum", "region_weighted"} == {
        m.split(":")[1] for m in students.method if m.startswith("multi:")}
    assert set(master[master.task == "trec"]["metric"]) == {"macro_f1"}


def test_every_score_is_recomputed_from_predictions(smoke):
    """Scores recomputed here with scikit-learn, independently of mtkd.data.metrics."""
    master = pd.read_csv(smoke / "master_results.csv")
    preds = pd.read_parquet(smoke / "predictions.parquet")
    assert {"task", "method", "seed", "split", "idx", "label", "pred"} <= set(preds.columns)
    metric_fn = {"accuracy": lambda y, p: accuracy_score(y, p),
                 "macro_f1": lambda y, p: f1_score(y, p, average="macro", zero_division=0),
                 "f1": lambda y, p: f1_score(y, p, zero_division=0)}
    groups = preds.groupby(["task", "method", "seed", "split", "stage"])
    assert len(groups) == len(master)
    for row in master.itertuples(index=False):
        g = groups.get_group((row.task, row.method, row.seed, row.split, row.stage))
        assert row.score == pytest.approx(100 * metric_fn[row.metric](g["label"], g["pred"]), abs=1e-9)
    for _, g in preds.groupby("task"):
        probs = np.stack(g["probs"].to_numpy())
        assert np.allclose(probs.sum(1), 1, atol=1e-4)
        # pred is the argmax of the logits; probs are stored in float32, where the tiny smoke models' nearly
        # equal top classes can round to a tie: the predicted class's probability is then still the largest
        pred = g["pred"].to_numpy()
        assert (probs[np.arange(len(pred)), pred] == probs.max(1)).all()
        assert (probs.argmax(1) == pred).mean() > 0.99


def test_summary_and_comparisons_agree_with_master(smoke):
    master = pd.read_csv(smoke / "master_results.csv")
    summary = pd.read_csv(smoke / "summary.csv")
    comparisons = pd.read_csv(smoke / "comparisons.csv")
    assert {"task", "method", "kind", "metric", "mean", "ci_low", "ci_high", "n_seeds"} <= set(summary.columns)
    assert {"task", "a", "b", "diff_pp", "ci_low", "ci_high", "p_value", "p_adjusted",
            "significant"} <= set(comparisons.columns)
    test = master[master.split == "test"]
    confirm_summary = pd.read_csv(smoke / "confirm_summary.csv")
    for stage, table in (("choosing", summary), ("confirming", confirm_summary)):
        means = test[test.stage == stage].groupby(["task", "method"])["score"].mean()
        assert len(table) == len(means)
        for row in table.itertuples(index=False):
            assert row.mean == pytest.approx(means[(row.task, row.method)], abs=1e-9)
            assert row.ci_low <= row.mean + 1e-9 and row.mean <= row.ci_high + 1e-9
    per_seed = test.set_index(["task", "method", "seed"])["score"].sort_index()      # sorted: fast, no lexsort warning
    for row in comparisons.itertuples(index=False):
        seeds = [int(x) for x in row.seeds.split()]
        # primary rows on the confirming stage's fresh seeds alone, secondary ones on the choosing seeds
        assert seeds == ([3, 4] if row.family == "primary" else [1, 2])
        diff = (per_seed[row.task, row.a][seeds] - per_seed[row.task, row.b][seeds]).mean()
        assert row.diff_pp == pytest.approx(diff, abs=1e-9)
        assert row.p_value <= row.p_adjusted <= 1
    assert set(comparisons[comparisons.family == "primary"]["comparison"]) == {"best multi vs best single",
                                                                                "best single vs baseline"}
    choices = json.loads((smoke / "choices.json").read_text())
    for task, choice in choices.items():
        hit = comparisons[(comparisons.task == task) & (comparisons.a == choice["best_multi"])
                          & (comparisons.b == choice["best_single"])]
        assert len(hit) == 1, f"{task}: best multi vs best single is missing"
        # the choice was made on the selection split, never on test
        sel = master[(master.task == task) & (master.split == "selection") & (master.kind == "single")]
        assert choice["best_single"] == sel.groupby("method")["score"].mean().idxmax()


def test_success_metrics_are_taken_from_summary_and_comparisons(smoke):
    sm = json.loads((smoke / "success_metrics.json").read_text())
    summary = pd.read_csv(smoke / "summary.csv").set_index(["task", "method"])
    assert "selection split" in sm["protocol"] and sm["design"] == "two stages"
    for task, t in sm["tasks"].items():
        for key in ("best_single", "best_multi", "best_teacher"):
            assert t[key]["mean"] == pytest.approx(summary.loc[(task, t[key]["method"]), "mean"])
        c = t["multi_advantage_pp"]
        assert t["verdict"] == c["verdict"] in {"better", "worse", "equivalent", "inconclusive"}
        assert c["family"] == "primary" and c["seeds"] == [3, 4] and "design" in c
        if c["note"]:                                  # identical predictions / nothing detectable: words only
            assert t["verdict_in_words"].startswith("no verdict:") and "[" not in t["verdict_in_words"]
        else:
            assert t["verdict_in_words"].startswith(t["verdict"] + ":")
            assert f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}]" in t["verdict_in_words"]
        parts = c["variance_components"]
        if parts["var_seeds"] + parts["var_examples"] + parts["var_interaction"] > 0:   # 0: identical predictions
            assert parts["share_seeds"] + parts["share_examples"] + parts["share_interaction"] == pytest.approx(1)
        gap = t["gap_closed"]
        assert (gap["best_multi"] is None) == bool(gap["undefined_reason"])
    assert sm["overall"]["avg_best_single"] == pytest.approx(
        np.mean([t["best_single"]["mean"] for t in sm["tasks"].values()]))


def test_comparison_verdicts_are_consistent_with_their_intervals(smoke):
    from scipy.stats import t as student_t
    comparisons = pd.read_csv(smoke / "comparisons.csv")
    params = yaml.safe_load((smoke / "params.yaml").read_text())["stats"]
    alpha, margin = params["significance"], params["equivalence_margin"]
    assert (comparisons["margin_pp"] == margin).all()
    from mtkd.study import power
    for r in comparisons.itertuples(index=False):
        if isinstance(r.note, str) and r.note:                     # identical predictions / nothing detectable
            assert r.verdict == "inconclusive" and not r.significant
        elif r.p_adjusted <= alpha:
            assert r.verdict == ("better" if r.diff_pp > 0 else "worse")
            assert not r.ci_low <= 0 <= r.ci_high                  # significant after Holm: 0 is outside the 95% CI
        elif r.equivalence_p_adjusted <= alpha:
            assert r.verdict == "equivalent"
            assert abs(r.diff_pp) < margin
        else:
            assert r.verdict == "inconclusive"
        assert r.equivalence_p <= r.equivalence_p_adjusted <= 1
        assert r.df == len(r.seeds.split()) - 1                     # what the seeds can support
        family = int((comparisons["family"] == r.family).sum())  # Holm's first level is alpha / family rows
        expected = power.mde(r.se_pp, alpha, params["power"], family, r.df)
        assert (math.isnan(r.mde_pp) and r.note == "identical predictions") or r.mde_pp == pytest.approx(expected)
    df = comparisons["df"]
    assert (comparisons["var_seeds"] >= 0).all() and (comparisons["var_examples"] >= 0).all()
    # the interval is diff +- t_df se, and se^2 is the sum of the three variance parts
    half = student_t.ppf(0.975, df) * comparisons["se_pp"]
    np.testing.assert_allclose(comparisons["ci_high"] - comparisons["diff_pp"], half, atol=1e-9)
    np.testing.assert_allclose(comparisons["diff_pp"] - comparisons["ci_low"], half, atol=1e-9)
    np.testing.assert_allclose(comparisons["se_pp"] ** 2, comparisons[["var_seeds", "var_examples",
                                                                        "var_interaction"]].sum(axis=1))


def test_gates_are_saved_for_the_gating_student(smoke):
    gates = pd.read_parquet(smoke / "gates.parquet")
    assert set(gates["method"]) == {"multi:gating"}
    w = np.stack(gates["weights"].to_numpy())
    assert w.shape[1] == 3 and np.allclose(w.sum(1), 1, atol=1e-5)


def test_fusion_weights_are_saved_for_the_weighted_sum_fusers(smoke):
    fw = pd.read_parquet(smoke / "fusion_weights.parquet")
    assert set(fw["method"]) == {f"multi:{f}" for f in ("average", "weighted", "best_per_sample", "entropy_weighted",
                                                         "ca_mkd", "ebkd", "curriculum", "region_weighted")}
    w = np.stack(fw["weights"].to_numpy())
    assert w.shape[1] == 3 and np.allclose(w.sum(1), 1, atol=1e-5) and (w >= 0).all()
    # label-aware fusers use gold labels on train only; elsewhere their label-free fallback (ebkd)
    aware = fw[fw["method"].isin(["multi:ca_mkd", "multi:curriculum"])]
    assert set(aware[aware.split == "train"]["applied"]) == {"ca_mkd", "curriculum"}
    assert set(aware[aware.split != "train"]["applied"]) == {"ebkd"}
    ebkd = fw[(fw.method == "multi:ebkd") & (fw.split == "test")].set_index(["task", "idx"])["weights"]
    ca = fw[(fw.method == "multi:ca_mkd") & (fw.split == "test")].set_index(["task", "idx"])["weights"]
    assert np.allclose(np.stack(ca.loc[ebkd.index].to_numpy()), np.stack(ebkd.to_numpy()))


def test_region_weights_are_in_the_fusion_info(smoke):
    import json
    info = json.loads((smoke / "fusion" / "trec.json").read_text())
    w = info["region_weights"]
    assert set(w) == set(info["teachers"])
    for r in ("all_agree", "partial", "full_disagree"):
        assert sum(w[t][r] for t in info["teachers"]) == pytest.approx(1.0)
    assert sum(info["region_counts"].values()) == 120          # every selection example is in one region


def test_reports_are_executed_and_offline(smoke):
    for nb in NOTEBOOKS:
        node = nbformat.read(smoke / "reports" / f"{nb}.ipynb", as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in node.cells)
        assert all(c.get("execution_count") for c in node.cells if c.cell_type == "code")
        html = (smoke / "reports" / f"{nb}.html").read_text()
        assert not remote_resources(html), f"{nb}.html loads {remote_resources(html)}"
    figures = (smoke / "reports" / "08_summary.html").read_text().count('class="plotly-graph-div"')
    assert figures >= 4


# ---------------------------------------------------------------- conditions (issue 17)

def test_conditions_are_studies_of_their_own_in_one_holm_family(smoke):
    from mtkd.study.results import CONDITIONS_COLUMNS
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    st = params["stats"]
    table = pd.read_csv(smoke / "conditions.csv", dtype={"value": str})
    assert list(table.columns) == list(CONDITIONS_COLUMNS)
    axes = params["conditions"]["axes"]
    n_values = sum(len(a["values"]) for a in axes.values())
    fusers = params["conditions"]["fusers"]
    # per task and value: best multi vs best single, the other fuser vs best single, best single vs baseline
    assert len(table) == len(params["data"]["tasks"]) * n_values * (len(fusers) + 1)
    assert set(table["axis"]) == set(axes)
    assert (table.groupby(["task", "axis", "value"])["comparison"].apply(sorted).map(tuple) ==
            ("best multi vs best single", "best single vs baseline", "multi vs best single")).all()
    # Holm over every row at once, by hand
    p = table["p_value"].to_numpy()
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    expected = np.empty_like(adjusted)
    expected[order] = adjusted
    np.testing.assert_allclose(table["p_adjusted"], expected)
    from mtkd.study import power
    for r in table.itertuples(index=False):
        expected = power.mde(r.se_pp, st["significance"], st["power"], len(table), r.df)
        assert (math.isnan(r.mde_pp) and r.se_pp == 0) or r.mde_pp == pytest.approx(expected)
    for r in table.itertuples(index=False):
        if r.se_pp == 0 or r.mde_pp > 100:                           # no verdict read from these numbers
            assert r.verdict == "inconclusive"
        elif r.p_adjusted <= st["significance"]:
            assert r.verdict == ("better" if r.diff_pp > 0 else "worse")
        elif r.equivalence_p_adjusted <= st["significance"]:
            assert r.verdict == "equivalent" and abs(r.diff_pp) < st["equivalence_margin"]
        else:
            assert r.verdict == "inconclusive"
    main = table[table.is_main]
    assert set(main["axis"]) == set(axes)                # each axis holds the main study's own value
    page = (smoke / "reports" / "09_conditions.html").read_text()
    assert page.count('class="plotly-graph-div"') >= 2 * len(params["data"]["tasks"])


def test_condition_units_are_trained_once_and_shared_with_the_main_study(smoke):
    from mtkd.study.pipeline import Run, plan
    run = Run.open(smoke)
    main = {run.unit_dir(u) for stage in ("students", "confirm") for u in plan(run, stage)}
    conditions = [run.unit_dir(u) for u in plan(run, "conditions")]
    assert len(conditions) == len(set(conditions))
    assert all((d / ".done").is_file() for d in conditions)
    on_disk = {p.parent for p in (smoke / "cache" / "students").glob("**/.done")}
    assert on_disk == main | set(conditions)          # no unit folder beyond these: nothing trained twice
    shared = [d for d in conditions if d in main]
    assert shared and len(shared) < len(conditions)
    for c in run.conditions:                          # the main study's own values: all of their units shared
        if c.is_main:
            assert all(d in main for u in plan(run, "conditions") if u.condition == c.label
                       for d in [run.unit_dir(u)])


def test_condition_scores_are_recomputed_from_their_units(smoke):
    from mtkd.study.pipeline import Run, condition_unit_dirs
    run = Run.open(smoke)
    summary = pd.read_csv(smoke / "conditions_summary.csv", dtype={"value": str})
    c = next(c for c in run.conditions if c.param == "distill.transfer_size" and not c.is_main)
    examples = pd.read_parquet(smoke / "data" / "snli" / "examples.parquet").query("split == 'test'")
    labels = examples.set_index("idx")["label"]
    for method, seeds in condition_unit_dirs(run, c, "snli").items():
        scores = []
        for _, folder in seeds:
            with np.load(folder / "predictions.npz") as arr:
                scores.append(100 * accuracy_score(labels.loc[arr["idx_test"]], arr["logits_test"].argmax(1)))
        row = summary[(summary.task == "snli") & (summary.axis == c.axis) & (summary.value == c.value_label)
                      & (summary.method == method)]
        assert len(row) == 1 and row["mean"].iloc[0] == pytest.approx(np.mean(scores)), method


def test_fidelity_is_recomputed_from_the_saved_predictions(smoke):
    fid = pd.read_csv(smoke / "fidelity.csv").set_index(["task", "method"])
    preds = pd.read_parquet(smoke / "predictions.parquet").query("split == 'test'")
    with np.load(smoke / "logits" / "trec" / "tfidf" / "test.npz") as arr:
        target = pd.Series(arr["logits"].argmax(1), index=arr["idx"])
    st = preds[(preds.task == "trec") & (preds.method == "single:tfidf")]
    agree = [100 * np.mean(g["pred"].to_numpy() == target.loc[g["idx"]].to_numpy()) for _, g in st.groupby("seed")]
    assert fid.loc[("trec", "single:tfidf"), "agreement_pct"] == pytest.approx(np.mean(agree))
    summary = pd.read_csv(smoke / "summary.csv").set_index(["task", "method"])
    assert fid.loc[("trec", "single:tfidf"), "target_score"] == pytest.approx(summary.loc[("trec", "teacher:tfidf"),
                                                                                           "mean"])


def test_warm_rerun_reuses_every_unit(smoke):
    before = done_markers(smoke)
    master = (smoke / "master_results.csv").read_text()
    run_study(SMOKE, out=str(smoke))
    assert done_markers(smoke) == before          # nothing recomputed
    assert (smoke / "master_results.csv").read_text() == master


def report_states(run_dir: Path) -> dict[str, str]:
    """What the last invocation did with each notebook: execute, render or fresh (its stage markers)."""
    return {nb: json.loads((run_dir / "stages" / f"report-{nb}.done").read_text())["state"] for nb in NOTEBOOKS}


def test_shared_pages_and_their_budget(smoke):
    reports = smoke / "reports"
    for name in ("index.html", "explorer.html", "plotly.min.js"):
        assert (reports / name).is_file(), name
    n_examples = sum(len(pd.read_parquet(p).query("split in ['test', 'selection']"))
                     for p in smoke.glob("data/*/examples.parquet"))
    explorer = (reports / "explorer.html").stat().st_size
    assert explorer <= 100_000 + 1_000 * n_examples, f"explorer.html: {explorer:,} bytes for {n_examples} examples"
    for nb in NOTEBOOKS:
        page = reports / f"{nb}.html"
        text = page.read_text()
        assert page.stat().st_size < 1_500_000, f"{page.name}: {page.stat().st_size:,} bytes"
        assert "window.PlotlyConfig" not in text and text.count("plotly.js v") == 0   # plotly.js is not inline
        if 'class="plotly-graph-div"' in text:
            assert '<script src="plotly.min.js"' in text
        assert "params_file" not in text and "injected-parameters" not in text      # no parameters cells
        assert "mtkd.report.notebook" not in text and "open_run" not in text        # code hidden by default
        for table in re.findall(r"<table.*?</table>", text, flags=re.S):
            assert not re.search(r"\d\.\d{5,}", table), f"{nb}: a raw float in a table"
            assert "ci_low" not in table and "diff_pp" not in table                 # column names in words
    assert "95 % CI" in (reports / "03_distillation.html").read_text()
    for nb in ("05_agreement", "06_failures"):
        assert 'href="explorer.html"' in (reports / f"{nb}.html").read_text()
    index = (reports / "index.html").read_text()
    for nb in NOTEBOOKS:
        assert f'href="{nb}.html"' in index
    assert 'href="explorer.html"' in index and "run_name: smoke" in index


def test_no_change_rerun_executes_no_notebook(smoke):
    stamps = {nb: (smoke / "reports" / f"{nb}.ipynb").stat().st_mtime_ns for nb in NOTEBOOKS}
    run_study(SMOKE, out=str(smoke))
    assert set(report_states(smoke).values()) == {"fresh"}
    assert {nb: (smoke / "reports" / f"{nb}.ipynb").stat().st_mtime_ns for nb in NOTEBOOKS} == stamps
    assert (smoke / ".complete").is_file()


def test_two_workers_run_two_notebooks_at_a_time_and_change_no_key(smoke):
    run_study(SMOKE, ["workers=2"], out=str(smoke), force_stages=["reports"])
    assert set(report_states(smoke).values()) == {"execute"}
    spans = []
    for nb in NOTEBOOKS:
        marker = smoke / "stages" / f"report-{nb}.done"
        end = marker.stat().st_mtime
        spans.append((end - json.loads(marker.read_text())["seconds"], end))
    assert any(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in itertools.combinations(spans, 2))
    run_study(SMOKE, out=str(smoke))                       # workers is how the run ran, not what it shows
    assert set(report_states(smoke).values()) == {"fresh"}


def test_a_report_only_param_re_renders_without_executing(smoke):
    run_study(SMOKE, ["report.show_code=true"], out=str(smoke))
    assert set(report_states(smoke).values()) == {"render"}
    assert "open_run" in (smoke / "reports" / "04_confidence.html").read_text()          # the code is shown
    run_study(SMOKE, out=str(smoke))
    assert set(report_states(smoke).values()) == {"render"}
    assert "open_run" not in (smoke / "reports" / "04_confidence.html").read_text()


def test_an_edited_notebook_alone_re_executes_and_the_terminal_stays_quiet(smoke, tmp_path, monkeypatch, capfd):
    import shutil
    from mtkd.exec import runner
    nbdir = tmp_path / "notebooks"
    shutil.copytree(runner.NOTEBOOK_DIR, nbdir)
    node = nbformat.read(nbdir / "08_summary.ipynb", as_version=4)
    node.cells.append(nbformat.v4.new_markdown_cell("A sentence added by the test."))
    nbformat.write(node, nbdir / "08_summary.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nbdir)
    capfd.readouterr()
    run_study(SMOKE, out=str(smoke))
    err = capfd.readouterr().err
    states = report_states(smoke)
    assert states.pop("08_summary") == "execute" and set(states.values()) == {"fresh"}
    assert "A sentence added by the test." in (smoke / "reports" / "08_summary.html").read_text()
    noise = [line for line in err.splitlines() if line.strip() and not line.startswith("mtkd: ")]
    assert not noise, f"library noise between mtkd's lines: {noise[:5]}"


def test_a_changed_param_recomputes_only_what_depends_on_it(smoke):
    before = done_markers(smoke)
    run_study(SMOKE, ["distill.alpha=0.5", "sweep.enabled=false", "data.tasks=[trec]"], out=str(smoke))
    after = done_markers(smoke)
    teachers = {k for k in before if k.startswith("cache/teachers/")}
    assert teachers and all(after[k] == before[k] for k in teachers)      # teachers reused
    new = set(after) - set(before)
    assert new and all(k.startswith("cache/students/trec/") for k in new)  # only trec students retrained


def test_mtkd_plan_and_summary_on_the_smoke_run(smoke, capsys):
    from mtkd.cli import main
    from mtkd.study import power
    assert main(["plan", str(smoke), "--mde", "2.0"]) == 0
    out = capsys.readouterr().out
    comparisons = pd.read_csv(smoke / "comparisons.csv")
    params = yaml.safe_load((smoke / "params.yaml").read_text())["stats"]
    primary = comparisons[comparisons["family"] == "primary"]
    target = {"target_mde_pp": 2.0, "margin": params["equivalence_margin"], "significance": params["significance"],
              "power": params["power"], "family_size": len(primary)}
    header = next(ln for ln in out.splitlines() if ln.startswith("| task | comparison"))
    column = header.split(" | ").index("5 seeds")
    for r in primary[primary["comparison"] == "best multi vs best single"].itertuples(index=False):
        if r.se_pp == 0:
            continue
        parts = {"var_seeds": r.var_seeds, "var_examples": r.var_examples, "var_interaction": r.var_interaction}

        def reaches(n):                                             # the plan's rule, by brute force at the edge
            return power.design(parts, r.n_seeds, r.n_examples, 5, n, **target)["reaches"]
        line = next(ln for ln in out.splitlines() if ln.startswith(f"| {r.task} | best multi vs best single"))
        got = line.split(" | ")[column].strip()
        if got == "unreachable":
            assert not reaches(10_000_000)
        else:
            assert reaches(int(got)) and (int(got) == 2 or not reaches(int(got) - 1))
    assert main(["summary", str(smoke)]) == 0
    out = capsys.readouterr().out
    assert "in words" in out and "share seeds" in out and "F1 ABBR" in out
    conditions = pd.read_csv(smoke / "conditions.csv", dtype={"value": str})        # the smoke grid's map
    head = conditions[conditions["comparison"] == "best multi vs best single"]
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "distillation verdict" not in ln
            and ln.count(" | ") == 10]
    assert len(rows) == len(head) > 0
    assert sum("(main)" in ln for ln in rows) == int(head["is_main"].astype(str).str.lower().eq("true").sum())
