"""Strict params: every kind of mistake stops before any work, naming the dotted key."""
from pathlib import Path

import pytest
import yaml

from mtkd.study.config import ParamsError, apply_overrides, load_params, params_hash, validate

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict:
    return yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())


@pytest.mark.parametrize("profile", ["embedded", "smoke", "glue", "fusers"])
def test_profiles_validate(profile):
    p = load_params(ROOT / "params" / f"{profile}.yaml")
    assert p.run_name == profile
    assert p.student.lr > 0 and p.distill.temperature > 0


def test_glue_profile_is_the_original_study():
    p = load_params(ROOT / "params" / "glue.yaml")
    assert [t["model"] for t in p.teachers.values()] == ["bert-large-uncased", "roberta-large",
                                                         "microsoft/deberta-base"]
    assert p.student.model == "distilbert-base-uncased"
    assert p.data.tasks == ["sst2", "mnli", "qqp", "mrpc"]
    assert (p.distill.temperature, p.distill.alpha) == (6.0, 0.7)
    assert p.sweep.temperatures == [3.0, 6.0, 9.0] and p.sweep.alphas == [0.3, 0.5, 0.7]
    assert p.seeds[0] == 42 and len(p.seeds) == 5


def test_fusers_profile_is_the_default_study_with_every_fuser():
    """params/fusers.yaml promises the default study's data, teachers, student and seeds: it cannot drift."""
    from mtkd.kd.fusion import FUSERS
    from mtkd.study.config import to_plain
    default, fusers = (to_plain(load_params(ROOT / "params" / f"{p}.yaml")) for p in ("embedded", "fusers"))
    assert fusers["distill"]["methods"] == ["baseline", "single", *FUSERS]
    assert set(default["distill"]["methods"]) < set(fusers["distill"]["methods"])
    for d in (default, fusers):
        d.pop("run_name"), d["distill"].pop("methods")
    assert fusers == default


def test_defaults_are_filled():
    raw = base()
    del raw["student"]["lr"]
    assert validate(raw).student.lr == 1e-4


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(colour="red"), r"colour: unknown parameter"),
    (lambda r: r["student"].update(lrr=1), r"student\.lrr: unknown parameter"),
    (lambda r: r["teachers"]["tiny_a"].update(epoch=1), r"teachers\.tiny_a\.epoch: unknown parameter"),
    (lambda r: r["student"].update(epochs="two"), r"student\.epochs: expected an integer, got 'two'"),
    (lambda r: r["student"].update(epochs=1.5), r"student\.epochs: expected an integer"),
    (lambda r: r["student"].update(epochs=True), r"student\.epochs: expected an integer"),
    (lambda r: r["student"].update(lr=-1.0), r"student\.lr: -1\.0 is below the minimum"),
    (lambda r: r["distill"].update(alpha=1.5), r"distill\.alpha: 1\.5 is above the maximum 1\.0"),
    (lambda r: r["distill"].update(temperature=float("nan")), r"distill\.temperature: expected a finite number"),
    (lambda r: r["distill"].update(methods=["baseline", "bogus"]), r"distill\.methods\[1\]: 'bogus' is not one of"),
    (lambda r: r["distill"].update(methods=[]), r"distill\.methods: must not be empty"),
    (lambda r: r.update(seeds=[1, 1]), r"seeds: has duplicates"),
    (lambda r: r.update(seeds=5), r"seeds: expected a list of int"),
    (lambda r: r.update(device="tpu"), r"device: 'tpu' is not one of auto, cpu, cuda"),
    (lambda r: r.pop("run_name"), r"run_name: required parameter is missing"),
    (lambda r: r["student"].pop("model"), r"student\.model: required parameter is missing"),
    (lambda r: r.update(run_name="../escape"), r"run_name: '\.\./escape' is not allowed"),
    (lambda r: r.update(run_name="a/b"), r"run_name: 'a/b' is not allowed"),
    (lambda r: r.update(teachers={}), r"teachers: at least one entry is required"),
    (lambda r: r["teachers"]["tiny_a"].update(mode="tfidf"), r"teachers\.tiny_a: mode 'tfidf' goes with model"),
    (lambda r: r["teachers"]["tiny_a"].update(mode="distil"), r"teachers\.tiny_a\.mode: 'distil' is not one of"),
    (lambda r: r.update(teachers={"only": {"model": "tfidf", "mode": "tfidf"}}), r"fusers .* need at least two"),
    (lambda r: r["data"].update(tasks=["snli", "snli"]), r"data\.tasks: has duplicates"),
    (lambda r: r.update(data=[1]), r"data: expected a mapping"),
    (lambda r: r["sweep"].update(enabled="yes"), r"sweep\.enabled: expected true or false"),
    (lambda r: r["student"].update(task_epochs={"snil": 3}), r"student\.task_epochs\.snil: not a known task"),
    (lambda r: r["data"].update(test_sizes={"tre": 10}), r"data\.test_sizes\.tre: not a known task .*all known: .*trec"),
    (lambda r: r["student"].update(task_epochs={"snli": 0}), r"student\.task_epochs\.snli: expected an integer from 1"),
    (lambda r: r["student"].update(task_epochs={"snli": 2.5}), r"student\.task_epochs\.snli: expected an integer"),
    (lambda r: r["student"].update(task_epochs={"snli": True}), r"student\.task_epochs\.snli: expected an integer"),
    (lambda r: r["student"].update(task_epochs=[4]), r"student\.task_epochs: expected a mapping"),
])
def test_bad_params_are_refused(change, message):
    raw = base()
    change(raw)
    with pytest.raises(ParamsError, match=message):
        validate(raw)


def test_per_task_maps_may_name_known_tasks_outside_data_tasks():
    """A params file's per-task settings stay valid when --set data.tasks picks a subset of its tasks."""
    raw = base()
    raw["student"]["task_epochs"] = {"sst2": 3}                   # a GLUE task, not in the base's tasks
    raw["data"]["test_sizes"] = {"trec": 50}
    p = validate(raw)
    assert "sst2" not in p.data.tasks and p.student.task_epochs == {"sst2": 3}


def test_overrides_are_validated_like_the_file():
    raw = base()
    assert validate(apply_overrides(raw, ["student.epochs=3", "seeds=[7, 8]"])).student.epochs == 3
    with pytest.raises(ParamsError, match=r"student\.epochs: expected an integer, got 'x'"):
        validate(apply_overrides(raw, ["student.epochs=x"]))
    with pytest.raises(ParamsError, match=r"student\.nope: unknown parameter"):
        validate(apply_overrides(raw, ["student.nope=1"]))
    with pytest.raises(ParamsError, match=r"expected key=value"):
        apply_overrides(raw, ["student.epochs"])
    with pytest.raises(ParamsError, match=r"run_name is not a mapping"):
        apply_overrides(raw, ["run_name.x=1"])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(tmp_path / "list.yaml")


def test_params_hash_is_stable_and_sensitive():
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
