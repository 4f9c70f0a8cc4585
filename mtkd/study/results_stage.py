"""The results stage, after every unit: the result files of the students (`mtkd.study.collect`), of the
sweep and of the conditions (`mtkd.study.condition_results`), which the notebooks then only read."""
from __future__ import annotations

from mtkd.study import io
from mtkd.study.collect import CONFIRM_FILES, RESULT_FILES, write_results, write_sweep_results
from mtkd.study.condition_results import CONDITION_FILES, write_condition_results
from mtkd.study.pipeline import Run, active_stages


def run_results_stage(run: Run) -> dict:
    """Write every result file of the run; refuses to finish when one is missing. Returns the success metrics."""
    io.clear_stage(run.dir, "results")
    success = write_results(run)
    write_sweep_results(run)
    write_condition_results(run)
    expected = [*RESULT_FILES, *(CONFIRM_FILES if "confirm" in active_stages(run) else ()),
                *(CONDITION_FILES if run.conditions else ())]
    missing = [f for f in expected if not (run.dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"the results stage finished but {', '.join(missing)} were not written in {run.dir}")
    io.mark_stage(run.dir, "results", {"files": expected})
    return success
