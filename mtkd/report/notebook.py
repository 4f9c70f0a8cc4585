"""What the numbered notebooks share: opening the run, and the tables of their first stages.

A notebook runs the same in JupyterLab and under the batch runner: in batch the
runner passes ``run_dir`` (with the resolved ``params.yaml`` inside); interactively
``params_file`` decides and results go to ``outputs/<run_name>/``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtkd.study import config, io
from mtkd.study.pipeline import Run

ROOT = Path(__file__).resolve().parents[2]         # the repository: notebooks/, outputs/


def setup_plotly() -> None:
    """Figures carry plotly.js inline (no CDN): the HTML reports work offline, JupyterLab renders natively."""
    import plotly.io as pio
    pio.renderers.default = "plotly_mimetype+notebook"


def open_run(params_file: str | None, run_dir: str | None = None) -> Run:
    """The finished run a notebook reads: ``run_dir`` under the batch runner, else ``outputs/<run_name>``
    of ``params_file``. Notebooks compute nothing: `mtkd run PARAMS` makes the run first."""
    setup_plotly()
    if not run_dir:
        params = config.load_params(params_file)
        run_dir = ROOT / "outputs" / params.run_name
        if not (Path(run_dir) / "params.yaml").exists():
            raise FileNotFoundError(f"{run_dir} holds no run yet: the notebooks read a finished run; make it with "
                                    f"`mtkd run {params_file}` (or `make study`), then run this notebook again")
    return Run.open(run_dir)


def data_overview(run: Run) -> pd.DataFrame:
    """Per task and split: examples and the share of each label."""
    rows = []
    for name in run.tasks:
        task = run.task(name)
        for split, frame in task.splits.items():
            counts = frame["label"].value_counts(normalize=True).reindex(range(task.num_labels), fill_value=0)
            rows.append({"task": name, "split": split, "examples": len(frame),
                         **{f"% {task.label_names[i]}": round(100 * counts[i], 1) for i in range(task.num_labels)}})
    return pd.DataFrame(rows)


def teacher_training(run: Run) -> pd.DataFrame:
    """What each teacher's training recorded: mode, seconds, final loss."""
    from mtkd.study.pipeline import Unit
    rows = []
    for task in run.tasks:
        for t in run.teachers:
            folder = run.unit_dir(Unit("teachers", task, t, run.params.seeds[0]))
            info = io.read_json(folder / "teacher.json")
            hist = info.get("history") or [{}]
            rows.append({"task": task, "teacher": t, "model": info["params"]["model"], "mode": info["params"]["mode"],
                         "seconds": info.get("seconds"), "final train loss": hist[-1].get("loss")})
    return pd.DataFrame(rows)


def teacher_scores(run: Run) -> pd.DataFrame:
    """Each teacher's headline metric on every split, from its cached logits."""
    from mtkd.data.metrics import score
    from mtkd.study.pipeline import SPLITS, read_logits
    rows = []
    for task in run.tasks:
        t = run.task(task)
        for name in run.teachers:
            for split in SPLITS:
                _, z = read_logits(run, task, name, split)
                rows.append({"task": task, "teacher": name, "split": split, "metric": t.metrics[0],
                             "score": score(t.metrics[0], z.argmax(1), t.splits[split]["label"].to_numpy())})
    return pd.DataFrame(rows)


def fusion_table(run: Run) -> pd.DataFrame:
    """The selection-split choices that fusers use: scores (weights), calibration temperatures, best teacher."""
    from mtkd.study.pipeline import read_fusion_info
    rows = []
    for task in run.tasks:
        info = read_fusion_info(run, task)
        for t in info["teachers"]:
            rows.append({"task": task, "teacher": t, "selection score": info["selection_scores"][t],
                         "weight": info["weights"][t] / sum(info["weights"].values()),
                         "calibration T": info["temperatures"][t], "best": t == info["best_teacher"]})
    return pd.DataFrame(rows)


def load_summary(run: Run) -> pd.DataFrame:
    return pd.read_csv(run.dir / "summary.csv")
