"""Notebook 09's figures, sentences and tables and notebook 08's fidelity table (`mtkd.report.conditions`) on a
fake run whose conditions files plant known verdicts and fused-target scores; expected values are read from the
CSVs with pandas, never from mtkd."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

try:
    from fake_run import FAKE_AXES, write_fake_conditions, write_fake_results, write_fake_run
except ImportError:  # tests/ as a package
    from tests.fake_run import FAKE_AXES, write_fake_conditions, write_fake_results, write_fake_run

from mtkd.report import conditions as C
from mtkd.report.figures import VERDICT_STYLE
from mtkd.study.results import load_run

PLANTED = {("toy3", "transfer", "120"): "better", ("toy2", "teachers", "a+b"): "worse",
           ("toy3", "teachers", "a+b"): "equivalent"}
ABOVE = {("toy2", "transfer", "0")}
BLANK = {("toy3", "teachers")}
POINT = re.compile(r"(toy\d), (\w+) = ([\w+]+)")
HEADLINE = "best multi vs best single"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = write_fake_run(tmp_path_factory.mktemp("conditions") / "fake")
    return write_fake_conditions(run, verdicts=PLANTED, above_teacher=ABOVE, no_fidelity=BLANK)


@pytest.fixture(scope="module")
def results(run_dir):
    return load_run(run_dir)


def _csv(run_dir, name) -> pd.DataFrame:
    return pd.read_csv(run_dir / name, dtype={"value": str})


def _traces(fig, **meta):
    return [t for t in fig.data if isinstance(t.meta, dict) and all(t.meta.get(k) == v for k, v in meta.items())]


def _points(sentence: str) -> set[tuple[str, str, str]]:
    return set(POINT.findall(sentence))


def test_rows_are_written_out_of_order(run_dir):
    """The fake files list each axis's values in reverse order, so the checks below see the readers sort."""
    raw = _csv(run_dir, "conditions.csv")
    first = raw[(raw.task == "toy3") & (raw.axis == "transfer")]["order"].tolist()
    assert first[0] > first[-1]


@pytest.mark.parametrize("task", ["toy3", "toy2"])
def test_advantage_figure_one_point_per_value_in_order_with_the_csv_intervals(results, run_dir, task):
    raw = _csv(run_dir, "conditions.csv")
    fig = C.advantage_figure(results.conditions, task)
    for axis, _, values, main in FAKE_AXES:
        for comparison in (HEADLINE, "best single vs baseline"):
            (trace,) = _traces(fig, axis=axis, comparison=comparison)
            want = raw[(raw.task == task) & (raw.axis == axis) & (raw.comparison == comparison)].sort_values("order")
            assert list(trace.x) == list(values) == want["value"].tolist()
            np.testing.assert_allclose(trace.y, want["diff_pp"])
            np.testing.assert_allclose(trace.error_y.array, want["ci_high"] - want["diff_pp"])
            np.testing.assert_allclose(trace.error_y.arrayminus, want["diff_pp"] - want["ci_low"])
            ringed = [w > 1 for w in trace.marker.line.width]
            assert ringed == [v == main for v in values]
            assert list(trace.marker.symbol) == [VERDICT_STYLE[v][1] for v in want["verdict"]]
    if task == "toy3":          # the planted verdicts are the markers
        (trace,) = _traces(fig, axis="transfer", comparison=HEADLINE)
        assert trace.marker.symbol[list(trace.x).index("120")] == "triangle-up"
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(bands) == 2 * len(FAKE_AXES) and {(s.y0, s.y1) for s in bands} == {(-1.0, 1.0)}


def test_fidelity_figure_follows_the_summary(results, run_dir):
    raw = _csv(run_dir, "conditions_summary.csv")
    fig = C.fidelity_figure(results.conditions_summary, "toy3")
    for axis, _, values, _ in FAKE_AXES:
        rows = raw[(raw.task == "toy3") & (raw.axis == axis)]
        for column, scale in (("gap_closed", 100), ("agreement_pct", 1), ("kl_target_student", 1),
                              ("target_score", 1)):
            for role in ("best single", "best multi"):
                (trace,) = _traces(fig, axis=axis, panel=column, role=role)
                want = rows[rows.role == role].sort_values("order")
                assert list(trace.x) == list(values)
                np.testing.assert_allclose(np.array(trace.y, dtype=float), scale * want[column], equal_nan=True)
        (teacher,) = _traces(fig, axis=axis, panel="target_score", role="best teacher")
        best = rows[rows.kind == "teacher"].groupby("order")["mean"].max().sort_index()
        assert list(teacher.x) == list(values)
        np.testing.assert_allclose(teacher.y, best.to_numpy())
    # the blanked axis: no number drawn, the reason said instead
    texts = [a.text for a in fig.layout.annotations]
    assert any("not defined" in t and "not above the no-KD baseline" in t for t in texts)
    assert sum(t == "not recorded in this run" for t in texts) == 2      # agreement and KL of that axis


def test_a_task_with_a_single_axis(tmp_path):
    run = write_fake_conditions(write_fake_run(tmp_path / "one"), task_axes={"toy3": ["transfer", "teachers"],
                                                                             "toy2": ["transfer"]})
    res = load_run(run)
    fig = C.advantage_figure(res.conditions, "toy2")
    assert {t.meta["axis"] for t in _traces(fig, comparison=HEADLINE)} == {"transfer"}
    assert len(_traces(fig, axis="transfer")) == 2
    fid = C.fidelity_figure(res.conditions_summary, "toy2")
    assert {t.meta["axis"] for t in fid.data if "axis" in t.meta} == {"transfer"}
    assert C.axes(res.conditions, "toy2") == [("transfer", "distill.transfer_size")]


def test_sentences_name_exactly_the_planted_verdicts(results, run_dir):
    raw = _csv(run_dir, "conditions.csv")
    head = raw[raw.comparison == HEADLINE]
    verdicts, inconclusive, targets = C.conditions_in_words(results.conditions, results.conditions_summary)
    better, equivalent, worse = re.match(r"Of (\d+) .*\*\*better\*\*(.*)\*\*equivalent\*\*(.*)\*\*worse\*\*(.*)",
                                         verdicts).groups()[1:]
    assert verdicts.startswith(f"Of {len(head)} ")
    for text, verdict in ((better, "better"), (equivalent, "equivalent"), (worse, "worse")):
        assert _points(text) == {k for k, v in PLANTED.items() if v == verdict}, verdict

    undecided = head[head.verdict == "inconclusive"]
    widest = undecided.loc[(undecided.ci_high - undecided.ci_low).idxmax()]
    assert inconclusive.startswith(f"{len(undecided)} of {len(head)} are **inconclusive**")
    assert _points(inconclusive) == {(widest.task, widest.axis, widest.value)}
    assert f"[{widest.ci_low:.2f}, {widest.ci_high:.2f}]" in inconclusive

    summary = _csv(run_dir, "conditions_summary.csv")
    best = summary[summary.kind == "teacher"].groupby(["task", "axis", "value"])["mean"].max()
    multi = summary[(summary.kind == "multi") & summary.target_score.notna()]
    above = multi[multi.target_score.to_numpy() > best.loc[list(zip(multi.task, multi.axis, multi.value))].to_numpy()]
    assert {(r.task, r.axis, r.value) for r in above.itertuples()} == ABOVE
    assert targets.startswith(f"Fused targets that score above the best teacher on test: 1 of {len(multi)};")
    assert _points(targets) == ABOVE and f"{above.method.iloc[0]}'s target" in targets


def test_sentences_when_no_target_beats_the_best_teacher(tmp_path):
    run = write_fake_conditions(write_fake_run(tmp_path / "below"), rng=3)
    res = load_run(run)
    sentences = C.conditions_in_words(res.conditions, res.conditions_summary)
    assert "**better** than the best single-teacher one at none" in sentences[0]
    summary = _csv(run, "conditions_summary.csv")
    best = summary[summary.kind == "teacher"].groupby(["task", "axis", "value"])["mean"].max()
    multi = summary[summary.kind == "multi"].copy()
    multi["gap"] = multi.target_score.to_numpy() - best.loc[list(zip(multi.task, multi.axis, multi.value))].to_numpy()
    closest = multi.loc[multi.gap.idxmax()]
    assert closest.gap < 0
    assert sentences[2].startswith(f"No fused target of the {len(multi)} scores above the best teacher on test")
    assert _points(sentences[2]) == {(closest.task, closest.axis, closest.value)}
    assert f"{closest.target_score:.2f}" in sentences[2]


def test_one_task_s_sentences_name_only_that_task(results):
    c, s = results.conditions, results.conditions_summary
    words = " ".join(C.conditions_in_words(c[c.task == "toy2"], s[s.task == "toy2"]))
    assert {p[0] for p in _points(words)} == {"toy2"}
    assert "Of 4 (task, axis = value) points" in words


def test_empty_run_has_empty_frames_and_says_so(tmp_path):
    res = load_run(write_fake_run(tmp_path / "none"))
    assert len(res.conditions) == 0 and "verdict" in res.conditions.columns
    assert len(res.conditions_summary) == 0 and len(res.fidelity) == 0
    assert C.conditions_in_words(res.conditions, res.conditions_summary) == [
        "No condition of this run has a best-multi-vs-best-single comparison: nothing to say."]
    with pytest.raises(ValueError, match=r"conditions.csv has no rows for task 'toy3'"):
        C.advantage_figure(res.conditions, "toy3")
    assert C.tasks(res.conditions) == []


def test_conditions_table_reads_like_a_paper(results, run_dir):
    raw = _csv(run_dir, "conditions.csv")
    table = C.conditions_table(results.conditions).data
    assert list(table.columns) == ["task", "axis", "value", "main study's setting", "comparison", "method A",
                                   "method B", "difference (pp)", "95 % CI", "p (Holm)", "verdict",
                                   "equivalence margin (pp)", "detectable (pp)"]
    assert len(table) == len(raw)
    first = table[(table.task == "toy3") & (table.axis == "transfer")]
    assert first["value"].tolist()[0] == "0" and first["comparison"].tolist()[0] == HEADLINE
    assert first["main study's setting"].tolist()[0] == "yes"
    row = raw[(raw.task == "toy3") & (raw.axis == "transfer") & (raw.value == "120") & (raw.comparison == HEADLINE)]
    got = table[(table.task == "toy3") & (table.value == "120") & (table.comparison == HEADLINE)]
    assert got["95 % CI"].tolist() == [f"[{row.ci_low.iloc[0]:.2f}, {row.ci_high.iloc[0]:.2f}]"]
    assert got["difference (pp)"].tolist() == [f"{row.diff_pp.iloc[0]:.2f}"] and got.verdict.tolist() == ["better"]


def test_fidelity_table_shows_the_distilled_students(results, run_dir):
    raw = _csv(run_dir, "fidelity.csv")
    students = raw[raw.kind.isin(["single", "multi"])].reset_index(drop=True)
    table = C.fidelity_table(results.fidelity).data
    assert len(table) == len(students) and set(table["method"]) == set(students.method)
    assert {"top-1 agreement with target (%)", "KL(target || student) (nats)", "target's own score (%)",
            "gap closed (%)", "95 % CI"} <= set(table.columns)
    assert table["gap closed (%)"].tolist() == [f"{100 * g:.1f}" for g in students.gap_closed]
    assert table["KL(target || student) (nats)"].tolist() == [f"{k:.4f}" for k in students.kl_target_student]


def test_value_labels():
    assert [C.value_label(v) for v in (2400.0, 2400, "minilm+mpnet", 0.5, "1")] == ["2400", "2400", "minilm+mpnet",
                                                                                   "0.5", "1"]


def _outputs(notebook):
    nb = json.loads(notebook.read_text())
    outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outs if o.get("output_type") == "error"]
    text = lambda kind: "".join("".join(o.get("data", {}).get(kind, "")) for o in outs)
    printed = "".join("".join(o.get("text", "")) for o in outs)
    figures = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outs)
    return text("text/markdown"), text("text/html"), printed, figures


@pytest.mark.slow
def test_notebooks_09_and_08_execute_on_the_fake_run(tmp_path):
    from mtkd.exec.runner import execute_notebook
    from mtkd.study.pipeline import Run
    run_dir = write_fake_results(write_fake_run(tmp_path / "run"))
    write_fake_conditions(run_dir, verdicts=PLANTED, above_teacher=ABOVE, no_fidelity=BLANK,
                          task_axes={"toy3": ["transfer", "teachers"], "toy2": ["transfer"]})
    run = Run.open(run_dir)
    markdown, html, _, figures = _outputs(execute_notebook("09_conditions", run))
    assert figures == 4                                    # two tasks, two figures each
    assert "**Across every task and axis.**" in markdown and "## toy2" in markdown
    assert "better** than the best single-teacher one at toy3, transfer = 120;" in markdown
    assert html.count("95 % CI") >= 2 and "main study" in html      # the per-task tables

    _, html, _, _ = _outputs(execute_notebook("08_summary", run))
    assert "Fidelity beside accuracy" in html and "top-1 agreement with target" in html

    empty = Run.open(write_fake_run(tmp_path / "empty"))
    markdown, _, printed, figures = _outputs(execute_notebook("09_conditions", empty))
    assert figures == 0 and "This run's params have no conditions section" in printed


def test_overview_has_one_row_per_point_with_the_csv_numbers(results, run_dir):
    """`mtkd summary`'s conditions table: per (task, axis, value) the headline and distillation rows of
    conditions.csv and the best multi student's score and fidelity from conditions_summary.csv."""
    raw, summ = _csv(run_dir, "conditions.csv"), _csv(run_dir, "conditions_summary.csv")
    table = C.conditions_overview(results.conditions, results.conditions_summary)
    assert list(table.columns) == list(C.OVERVIEW_COLUMNS)
    head = raw[raw.comparison == HEADLINE]
    assert len(table) == len(head)
    for r in head.itertuples():
        (row,) = table[(table.task == r.task) & (table.axis == r.axis)
                       & (table.value.str.split(" ").str[0] == r.value)].itertuples(index=False)
        row = dict(zip(table.columns, row))
        assert row["verdict"] == r.verdict
        assert row["multi - single (pp)"] == f"{r.diff_pp:+.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
        dist = raw[(raw.task == r.task) & (raw.axis == r.axis) & (raw.value == r.value)
                   & (raw.comparison == "best single vs baseline")].iloc[0]
        assert row["distillation verdict"] == dist.verdict
        multi = summ[(summ.task == r.task) & (summ.axis == r.axis) & (summ.value == r.value) & (summ.method == r.a)]
        assert row["best multi"] == f"{r.a} {multi['mean'].iloc[0]:.2f}"
        gap = multi["gap_closed"].iloc[0]
        assert row["gap closed (best multi)"] == ("not defined" if pd.isna(gap) else f"{gap:.2f}")
        assert row["value"].endswith("(main)") == (str(r.is_main).lower() == "true")
    planted = table[(table.task == "toy3") & (table.axis == "transfer") & (table.value.str.startswith("120"))]
    assert planted["verdict"].tolist() == ["better"]
