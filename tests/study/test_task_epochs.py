"""student.task_epochs: one task's student trains longer; every other task's units keep their keys."""
from pathlib import Path

from mtkd.study import config
from mtkd.study.pipeline import Run, Unit

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "params" / "embedded.yaml"


def run_with(tmp_path, task_epochs: str) -> Run:
    return Run(config.load_params(EMBEDDED, [f"student.task_epochs={task_epochs}"]), tmp_path)


def test_a_task_entry_sets_that_tasks_epochs_only(tmp_path):
    run = run_with(tmp_path, "{snli: 5}")
    assert run.params.student.epochs == 2
    assert run.student_params("snli")["epochs"] == 5
    assert run.student_params("rotten_tomatoes")["epochs"] == 2
    assert "task_epochs" not in run.student_params("snli")


def test_only_the_tasks_with_an_entry_get_new_student_keys(tmp_path):
    plain, longer = run_with(tmp_path, "{}"), run_with(tmp_path, "{snli: 5}")
    for task in ("rotten_tomatoes", "trec"):
        unit = Unit("students", task, "multi:average", 42, 6.0, 0.7)
        assert longer.student_key(unit) == plain.student_key(unit)
        # the key of the code before task_epochs: the student params without it, written out
        student = {k: v for k, v in plain.params.student.items() if k != "task_epochs"}
        want = config.params_hash(plain.data_key(task), student, "multi:average", 42, 6.0, 0.7,
                                  plain.params.distill.gate_hidden,
                                  [plain.teacher_key(task, t) for t in plain.teachers],
                                  {"precision": "auto", "device": plain.device.type})
        assert plain.student_key(unit) == want
    unit = Unit("students", "snli", "baseline", 42, 6.0, 0.7)
    assert longer.student_key(unit) != plain.student_key(unit)
    assert run_with(tmp_path, "{snli: 2}").student_key(unit) == plain.student_key(unit)   # 2 = the default


def test_an_epochs_condition_sets_every_tasks_epochs(tmp_path):
    p = config.load_params(EMBEDDED, ["student.task_epochs={snli: 5}",
                                      "conditions.axes.e={param: student.epochs, values: [1, 3]}",
                                      "conditions.axes.T={param: distill.temperature, values: [3.0]}"])
    conds = {c.label: c for c in config.expand_conditions(p)}
    for label, epochs in (("e=1", 1), ("e=3", 3)):
        at = Run(config.condition_params(p, conds[label]), tmp_path)
        assert {at.student_params(t)["epochs"] for t in at.tasks} == {epochs}
    at = Run(config.condition_params(p, conds["T=3.0"]), tmp_path)
    assert at.student_params("snli")["epochs"] == 5 and at.student_params("trec")["epochs"] == 2


def test_the_estimate_trains_each_task_for_its_own_epochs(tmp_path):
    from mtkd.exec import estimate
    hw = estimate.cpu_hardware(1, bf16=False)

    def student_seconds(run: Run) -> dict[str, float]:
        plan_ = {s.name: s for s in estimate.stage_plans(run, hw, half=False)}["students"].durations
        per_task = len(plan_) // len(run.tasks)
        return {t: sum(plan_[i * per_task:(i + 1) * per_task]) for i, t in enumerate(run.tasks)}

    plain, longer = student_seconds(run_with(tmp_path, "{}")), student_seconds(run_with(tmp_path, "{trec: 6}"))
    assert longer["rotten_tomatoes"] == plain["rotten_tomatoes"] and longer["snli"] == plain["snli"]
    assert longer["trec"] > 2 * plain["trec"]
