"""Conditions (issue 17): each value changes exactly the param it names; units are shared where nothing differs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtkd.study import config
from mtkd.study.config import ParamsError
from mtkd.study.pipeline import Run, Unit, condition_units, plan

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "params" / "embedded.yaml"
GRID = ["conditions.axes.layers={param: student.layers, values: [1, 3]}",
        "conditions.axes.transfer={param: distill.transfer_size, values: [0, 2400]}",
        "conditions.axes.T={param: distill.temperature, values: [3.0, 6.0]}",
        "conditions.axes.teachers={param: teachers, values: subsets}"]


@pytest.fixture(scope="module")
def params():
    return config.load_params(EMBEDDED, GRID)


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and k not in ("teachers", "axes"):
            out.update(flat(v, path))
        else:
            out[path] = v
    return out


def test_the_grid_expands_in_order_with_the_main_value_marked(params):
    labels = [(c.label, c.order, c.is_main) for c in config.expand_conditions(params)]
    assert labels == [("layers=1", 0, False), ("layers=3", 1, True), ("transfer=0", 0, True),
                      ("transfer=2400", 1, False), ("T=3.0", 0, False), ("T=6.0", 1, True),
                      ("teachers=minilm+mpnet", 0, False), ("teachers=minilm+tfidf", 1, False),
                      ("teachers=mpnet+tfidf", 2, False), ("teachers=minilm+mpnet+tfidf", 3, True)]


def test_a_condition_changes_exactly_the_param_it_names(params):
    main = flat(config.to_plain(params))
    for c in config.expand_conditions(params):
        at = flat(config.to_plain(config.condition_params(params, c)))
        changed = {k for k in main if main[k] != at.get(k)} - {"distill.methods", "sweep.enabled", "conditions.axes"}
        expected = set() if c.is_main else {c.param}
        assert changed == expected, c.label
        assert at["distill.methods"] == ["baseline", "single", "average", "weighted", "gating"]
        assert at["conditions.axes"] == {} and at["sweep.enabled"] is False


def dirs(run: Run, task: str = "snli", best: str = "mpnet") -> dict[str, dict[str, Path]]:
    """condition label -> method -> unit folder (seed 42)."""
    out = {}
    for u in condition_units(run, best=lambda r, t: best if best in r.teachers else r.teachers[0]):
        if u.task == task and u.seed == 42:
            out.setdefault(u.condition, {})[u.name] = run.unit_dir(u)
    return out


def test_units_are_the_main_studys_exactly_where_nothing_differs(params, tmp_path):
    run = Run(params, tmp_path)
    main = {u.name: run.unit_dir(u) for u in plan(run, "students") if u.task == "snli" and u.seed == 42}
    found = dirs(run)
    # each unit is planned once: a later condition naming the same folder does not list it again
    every = [run.unit_dir(u) for u in condition_units(run, best=lambda r, t: "mpnet" if "mpnet" in r.teachers
                                                       else r.teachers[0])]
    assert len(every) == len(set(every))
    layers1 = run.at("layers=1")
    assert layers1.params.student.layers == 1
    # layers=1: every student differs from the main study's, the baseline too
    one = {m: layers1.unit_dir(Unit("students", "snli", m, 42, 6.0, 0.7)) for m in
           ("baseline", "single:mpnet", "multi:average", "multi:gating")}
    assert all(one[m] != main[m] for m in one)
    # the main study's own values reuse its units: only the first condition naming a folder lists it
    assert found["layers=3"] == {m: main[m] for m in ("baseline", "single:mpnet", "multi:average",
                                                      "multi:weighted", "multi:gating")}
    assert "transfer=0" not in found and "T=6.0" not in found        # all theirs were listed by layers=3
    # a transfer set: the baseline (no KD) is the main study's; every distilled student differs
    tr = found["transfer=2400"]
    assert "baseline" not in tr and all(tr[m] != main[m] for m in tr)
    # T: the baseline learns from no teacher, so it is the main study's whatever T is
    assert "baseline" not in found["T=3.0"] and found["T=3.0"]["multi:average"] != main["multi:average"]
    # a teacher subset: baseline and single are the main study's, the fusers are new
    sub = found["teachers=minilm+mpnet"]
    assert set(sub) == {"multi:average", "multi:weighted", "multi:gating"}
    assert all(sub[m] != main[m] for m in sub)


def test_a_teacher_subset_has_its_own_fusion_info_and_the_full_set_the_main_one(params, tmp_path):
    run = Run(params, tmp_path)
    assert run.at("teachers=minilm+tfidf").fusion_path("trec") == tmp_path.resolve() / "fusion" / \
        "teachers=minilm+tfidf" / "trec.json"
    assert run.at("teachers=minilm+mpnet+tfidf").fusion_path("trec") == run.fusion_path("trec")
    assert run.at("layers=1").fusion_path("trec") == run.fusion_path("trec")
    assert run.at("teachers=minilm+tfidf").teachers == ["minilm", "tfidf"]


def test_the_transfer_pool_scored_is_the_largest_any_condition_uses(params, tmp_path):
    run = Run(params, tmp_path)
    assert run.transfer_rows == 2400 and run.at("layers=1").transfer_rows == 2400
    assert run.transfer_examples("multi:average") == 0
    assert run.at("transfer=2400").transfer_examples("multi:average") == 2400
    assert run.at("transfer=2400").transfer_examples("baseline") == 0


@pytest.mark.parametrize("override, message", [
    ("conditions.axes.x={param: data.train_size, values: [100]}", "not a param a condition may change"),
    ("conditions.axes.x={param: student.layers, values: [1, 1]}", "has duplicates"),
    ("conditions.axes.x={param: student.layers, values: [200]}", "conditions.axes.x: the value 200"),
    ("conditions.axes.x={param: student.epochs, values: []}", "non-empty list"),
    ("conditions.axes.x={param: teachers, values: [[minilm]]}", "two or more teacher names"),
    ("conditions.axes.x={param: teachers, values: [[minilm, bert]]}", "'bert' is not a teacher"),
    ("conditions.fusers=[average, nope]", "'nope' is not one of"),
    ("conditions.axes.x={param: distill.transfer_size, values: [0, 100]}", None),
])
def test_bad_axes_are_refused_naming_the_axis(override, message):
    extra = ["conditions.fusers=[average, curriculum]"] if message is None else []
    with pytest.raises(ParamsError) as e:
        config.load_params(EMBEDDED, [override, *extra])
    if message is None:        # a transfer set and a scheduled label-aware fuser: refused for that value
        assert "conditions.axes.x: the value 100" in str(e.value) and "curriculum" in str(e.value)
    else:
        assert message in str(e.value)


def test_no_conditions_means_no_stage():
    from mtkd.study.pipeline import active_stages
    run = Run(config.load_params(EMBEDDED), "/tmp/unused-mtkd-run")
    assert "conditions" not in active_stages(run) and run.conditions == []
    assert np.all([s in active_stages(Run(config.load_params(EMBEDDED, GRID[:1]), "/tmp/x"))
                   for s in ("teachers", "logits", "students", "conditions")])


def test_glue_profile_takes_its_commented_conditions_section(tmp_path):
    """The block commented in params/glue.yaml validates and plans condition units like the embedded one."""
    text = (ROOT / "params" / "glue.yaml").read_text()
    block = text[text.index("# conditions:"):text.index("\nstats:")]
    uncommented = "\n".join(line[2:] for line in block.splitlines())
    raw = config.read_yaml(ROOT / "params" / "glue.yaml")
    import yaml
    raw.update(yaml.safe_load(uncommented))
    p = config.validate(raw)
    labels = [c.label for c in config.expand_conditions(p)]
    assert "transfer=80000" in labels and "layers=6" in labels and "teachers=bert_large+roberta_large" in labels
    run = Run(p, tmp_path)
    units = condition_units(run, best=lambda r, t: r.teachers[0])
    assert {u.condition for u in units} <= set(labels) and len(units) > 0
