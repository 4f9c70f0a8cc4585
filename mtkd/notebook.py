"""What the numbered notebooks share: opening the run, and the tables of their first stages.

A notebook runs the same in JupyterLab and under the batch runner: in batch the
runner passes ``run_dir`` (with the resolved ``params.yaml`` inside); interactively
``params_file`` decides and results go to ``outputs/<run_name>/``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from . import config, io, tables
from .pipeline import Run

ROOT = Path(__file__).resolve().parent.parent


def setup_plotly() -> None:
    """JupyterLab renders plotly's JSON natively; the batch runner's pages draw the same JSON with one shared
    plotly.js (`mtkd.pages`), so batch outputs skip the 4 MB inline copy the "notebook" renderer adds."""
    import plotly.io as pio
    pio.renderers.default = "plotly_mimetype" if os.environ.get("MTKD_BATCH") else "plotly_mimetype+notebook"


def open_run(params_file: str | None, run_dir: str | None = None) -> Run:
    """The run of a notebook; also makes every displayed table read like a paper (`mtkd.tables.paper`)."""
    setup_plotly()
    tables.use_for_dataframes()
    if run_dir:
        return Run.open(run_dir)
    params = config.load_params(params_file)
    run = Run(params, ROOT / "outputs" / params.run_name)
    text = config.dump_params(params)
    path = run.dir / "params.yaml"
    if not path.exists() or path.read_text() != text:
        io.write_text(path, text)
    return run


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
    from .pipeline import Unit
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
    from .metrics import score
    from .pipeline import SPLITS, read_logits
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
    from .pipeline import read_fusion_info
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


def explorer(run_dir, task: str | None = None):
    """The disagreement explorer: the ipywidgets one in JupyterLab; under the batch runner, whose pages have no
    kernel, a link to the run's static ``explorer.html`` beside the pages."""
    if os.environ.get("MTKD_BATCH"):
        from IPython.display import HTML
        return HTML('<p class="mtkd-explorer-link"><a href="explorer.html"><b>Open the disagreement explorer</b></a> '
                    "(every test and selection example of this run: filter by task, agreement region, student, "
                    "right / wrong and error cause; sort by teacher disagreement; no kernel needed).</p>")
    from .explorer import explore
    return explore(run_dir, task=task)
