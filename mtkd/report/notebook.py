"""What the numbered notebooks share: opening the run, and the tables of their first stages.

A notebook runs the same in JupyterLab and under the batch runner: in batch the
runner passes ``run_dir`` (with the resolved ``params.yaml`` inside); interactively
``params_file`` decides and results go to ``outputs/<run_name>/``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtkd.report import paper
from mtkd.study import config, io
from mtkd.study.pipeline import Run

ROOT = Path(__file__).resolve().parents[2]         # the repository: notebooks/, outputs/


def setup_plotly(batch: bool = False) -> None:
    """JupyterLab renders plotly's JSON natively; the batch runner's pages draw the same JSON with one shared
    plotly.js (`mtkd.report.pages`), so batch outputs skip the 4 MB inline copy the "notebook" renderer adds."""
    import plotly.io as pio
    pio.renderers.default = "plotly_mimetype" if batch else "plotly_mimetype+notebook"


def open_run(params_file: str | None, run_dir: str | None = None) -> Run:
    """The finished run a notebook reads: ``run_dir`` under the batch runner, else ``outputs/<run_name>``
    of ``params_file``. Notebooks compute nothing: `mtkd run PARAMS` makes the run first. Every table a
    notebook displays then reads like a paper (`mtkd.report.paper`)."""
    setup_plotly(batch=bool(run_dir))          # the batch runner passes run_dir; JupyterLab users params_file
    paper.use_for_dataframes()
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


def explorer(run_dir, task: str | None = None, static: bool = False):
    """The disagreement explorer: the ipywidgets one in JupyterLab; ``static`` (the batch runner, whose pages
    have no kernel): a link to the run's static ``explorer.html`` beside the pages."""
    if static:
        from IPython.display import HTML
        return HTML('<p class="mtkd-explorer-link"><a href="explorer.html"><b>Open the disagreement explorer</b></a> '
                    "(every test and selection example of this run: filter by task, agreement region, student, "
                    "right / wrong and error cause; sort by teacher disagreement; no kernel needed).</p>")
    from mtkd.report.explorer import explore
    return explore(run_dir, task=task)
