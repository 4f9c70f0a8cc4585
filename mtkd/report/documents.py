"""Tables in the project's documents (README, docs/findings.md) written from a run's files, never by hand.

A document marks each generated table with a pair of comments::

    <!-- mtkd:table verdicts -->
    | task | ... |
    <!-- /mtkd:table -->

``render(text, run)`` rewrites every marked block from the run (``TABLES``: name -> the table function of
`mtkd.report.tables`); ``keep(run_dir, folder)`` copies the small result files the tables read (CSV/JSON,
no predictions) into the repository, so that a test can render the documents again from them and fail
when a number was typed by hand (`mtkd docs RUN_DIR`, `make docs`).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from mtkd.report import tables
from mtkd.study.results import RunResults

TABLES = {
    "main": tables.main_table,
    "verdicts": lambda run: tables.verdicts(run).drop(columns=["in words", "metric"]),
    "in_words": lambda run: tables.verdicts(run)[["task", "in words"]],
    "design": tables.design,
    "confirming": tables.confirming_table,
    "variance": tables.variance_components,
}
KEPT_FILES = ("params.yaml", "summary.csv", "confirm_summary.csv", "comparisons.csv", "success_metrics.json",
              "confirm_plan.json")
BLOCK = re.compile(r"(<!-- mtkd:table (\w+) -->\n)(.*?)(<!-- /mtkd:table -->)", re.S)


def table(name: str, run: RunResults) -> str:
    """One named table of the run as a markdown pipe table."""
    if name not in TABLES:
        raise ValueError(f"unknown document table {name!r}; known: {', '.join(TABLES)}")
    return tables.markdown(TABLES[name](run))


def render(text: str, run: RunResults) -> str:
    """``text`` with every marked table rewritten from ``run``."""
    return BLOCK.sub(lambda m: f"{m.group(1)}{table(m.group(2), run)}\n{m.group(4)}", text)


def keep(run_dir: str | Path, folder: str | Path) -> Path:
    """Copy the run's small result files that the tables read (and each task's ``task.json``) into ``folder``,
    replacing what was there."""
    run_dir, folder = Path(run_dir), Path(folder)
    missing = [f for f in KEPT_FILES if not (run_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks {', '.join(missing)}: run the study to the end first "
                                "(a run with two stages writes every one of them)")
    if folder.exists():
        shutil.rmtree(folder)
    for name in KEPT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / name, folder / name)
    for info in run_dir.glob("data/*/task.json"):          # the run's tasks, their names and metrics
        target = folder / info.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info, target)
    return folder


def write(documents, run_dir: str | Path, folder: str | Path) -> list[Path]:
    """Keep the run's result files in ``folder`` and rewrite every document's tables from them."""
    run = RunResults(keep(run_dir, folder))
    changed = []
    for doc in map(Path, documents):
        text = doc.read_text()
        new = render(text, run)
        if new != text:
            doc.write_text(new)
            changed.append(doc)
    return changed
