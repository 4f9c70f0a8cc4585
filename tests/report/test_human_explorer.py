"""The explorers show the human label distribution and filter by human agreement level."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtkd.report import static_explorer as S
from mtkd.report.explorer import Explorer, explore

try:
    from fake_run import write_fake_run
except ImportError:  # pragma: no cover
    from tests.fake_run import write_fake_run

FIELDS = ["h0", "h1", "h2"]
PATTERNS = np.array([[5, 0, 0], [1, 4, 0], [2, 0, 3], [0, 0, 0]])     # 5/5, 4/5, 3/5, no counts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = write_fake_run(tmp_path_factory.mktemp("runs") / "fake", tasks=("toy3",), n=40)
    d = run / "data" / "toy3"
    ex = pd.read_parquet(d / "examples.parquet")
    counts = PATTERNS[np.arange(len(ex)) % 4]
    for j, f in enumerate(FIELDS):
        ex[f] = counts[:, j].astype("int64")
    ex.to_parquet(d / "examples.parquet", index=False)
    info = json.loads((d / "task.json").read_text())
    (d / "task.json").write_text(json.dumps({**info, "label_counts_fields": FIELDS}))
    return run


def test_filter_by_agreement_level(run_dir):
    ex = Explorer(run_dir)
    t = ex.table("toy3")
    assert t.human_levels == ["5/5", "4/5", "3/5"]
    examples = pd.read_parquet(run_dir / "data" / "toy3" / "examples.parquet").set_index("idx")
    for level, pattern in zip(("5/5", "4/5", "3/5"), PATTERNS):
        rows = ex.filtered("toy3", human=level)
        want = examples.loc[rows["idx"], FIELDS].to_numpy()
        assert len(rows) == 10 and (want == pattern).all()
    with pytest.raises(ValueError, match="agreement level"):
        ex.filtered("toy3", human="2/5")


def test_example_shows_the_human_distribution(run_dir):
    ex = Explorer(run_dir)
    row = ex.filtered("toy3", human="4/5").iloc[0]
    html = ex.render_example(row)
    assert "humans (4/5 agree)" in html and "0.800" in html and "0.200" in html
    no_counts = ex.table("toy3").frame[ex.table("toy3").frame["human"] == ""].iloc[0]
    assert "humans (" not in ex.render_example(no_counts)


def test_widget_has_the_human_filter(run_dir):
    w = explore(run_dir, task="toy3")
    assert [v for _, v in w.controls["human"].options] == ["any", "5/5", "4/5", "3/5"]
    w.controls["human"].value = "3/5"
    assert len(w.rows) == 10


def test_static_explorer_carries_levels_and_shares(run_dir):
    data = S.explorer_data(run_dir)
    t = next(t for t in data["tables"] if t["split"] == "test")
    human = next(f for f in t["extra_filters"] if f["name"] == "human")
    assert human["options"] == ["5/5", "4/5", "3/5", "no counts"]
    assert human["values"][:4] == ["5/5", "4/5", "3/5", "no counts"]
    assert t["human_probs"][:12] == [100, 0, 0, 20, 80, 0, 40, 0, 60, -1, -1, -1]
