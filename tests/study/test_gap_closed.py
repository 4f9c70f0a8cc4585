"""Gap closed is not defined when the best teacher is not above the no-KD baseline: said, never a number."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mtkd.study import analysis as A
from mtkd.report import figures as F


def _summary():
    # "sms": the students beat the teachers (the custom-data case); (94.3 - 95) / (93.99 - 95) would print 0.69
    rows = [("sms", "teacher:a", "teacher", 93.99), ("sms", "baseline", "baseline", 95.0),
            ("sms", "single:a", "single", 94.3),
            ("t", "teacher:a", "teacher", 90.0), ("t", "baseline", "baseline", 80.0), ("t", "single:a", "single", 85.0)]
    return pd.DataFrame(rows, columns=["task", "method", "kind", "mean"])


def test_gap_closed_is_nan_unless_the_teacher_beats_no_kd():
    assert math.isnan(A.gap_closed(94.3, 95.0, 93.99))
    assert math.isnan(A.gap_closed(85, 80, 80))
    assert A.gap_closed(85, 80, 90) == 0.5
    np.testing.assert_array_equal(np.isnan(A.gap_closed(np.array([1.0, 2.0]), 80, np.array([79.0, 81.0]))),
                                  [True, False])


def test_the_reason_is_given():
    assert A.gap_closed_undefined(80, 90) is None
    reason = A.gap_closed_undefined(95.0, 93.99)
    assert reason.startswith("not defined:") and "93.99" in reason and "95.00" in reason
    assert A.gap_closed_undefined(float("nan"), 90).startswith("not defined:")


def test_table_and_figure_say_not_defined():
    g = A.gap_closed_table(_summary()).set_index("task")
    assert math.isnan(g.loc["sms", "gap_closed_best"]) and g.loc["sms", "gap_closed_note"].startswith("not defined")
    assert g.loc["t", "gap_closed_best"] == 0.5 and g.loc["t", "gap_closed_note"] == ""
    fig = F.gap_closed_bars(A.gap_closed_table(_summary()))
    notes = [a for a in fig.layout.annotations if a.text == "not defined"]
    assert len(notes) == 1 and notes[0].x == "sms" and "not above the no-KD baseline" in notes[0].hovertext
    bars = {tr.name: dict(zip(tr.x, tr.y)) for tr in fig.data}
    assert math.isnan(bars["single:a"]["sms"]) and bars["single:a"]["t"] == 50.0
