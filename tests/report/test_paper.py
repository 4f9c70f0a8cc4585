"""Tables that read like a paper: `mtkd.report.paper.formatted` / `paper` on frames with known values."""
import numpy as np
import pandas as pd
import pytest

from mtkd.report.paper import formatted, paper, words


def test_scores_intervals_and_names():
    df = pd.DataFrame({"task": ["sst2", "trec"], "method": ["baseline", "multi:average"], "mean": [81.23456, 9.5],
                       "ci_low": [80.004, 8.996], "ci_high": [82.5, 10.0], "n_seeds": [3, 3]})
    out = formatted(df)
    assert list(out.columns) == ["task", "method", "mean (%)", "95 % CI", "seeds"]
    assert out["mean (%)"].tolist() == ["81.23", "9.50"]
    assert out["95 % CI"].tolist() == ["[80.00, 82.50]", "[9.00, 10.00]"]
    assert out["seeds"].tolist() == ["3", "3"]


def test_p_values_booleans_counts_and_small_quantities():
    df = pd.DataFrame({"p_adjusted": [0.0004, 0.04567], "significant": [True, False], "examples": [1000, 52],
                       "mean_js": [0.012345, 0.5], "gap_closed": [0.185053, 1.5]})
    out = formatted(df)
    assert out["p (Holm)"].tolist() == ["< 0.001", "0.046"]
    assert out["significant"].tolist() == ["yes", "no"]
    assert out["examples"].tolist() == ["1,000", "52"]
    assert out["mean JS divergence (nats)"].tolist() == ["0.0123", "0.5000"]
    assert out["gap closed (%)"].tolist() == ["18.5", "150.0"]     # in percent, as the gap-closed chart
    assert "gap closed" not in out.columns


def test_index_that_carries_data_becomes_columns():
    long = pd.DataFrame({"task": ["a", "a", "b"], "method": ["m1", "m2", "m1"], "category": ["x", "y", "x"],
                         "n_per_seed": [1.25, 2.0, 3.0]})
    wide = long.pivot_table(index=["task", "method"], columns="category", values="n_per_seed")
    out = formatted(wide)
    assert list(out.columns) == ["task", "method", "x", "y"]
    assert out.iloc[1].tolist() == ["a", "m2", "", "2.00"]         # a missing cell stays empty, not "nan"


def test_paper_html_has_no_index_column():
    df = pd.DataFrame({"task": ["a"], "score": [12.3456]}, index=[7])
    html = paper(df).to_html()
    assert "12.35" in html and "score (%)" in html
    assert ">7<" not in html                                       # the index is gone
    assert 'class="mtkd-table"' in html


@pytest.mark.parametrize("name,expected", [("diff_pp", "difference (pp)"), ("some_new_col", "some new col"),
                                           ("mean_max_prob", "mean max probability")])
def test_words(name, expected):
    assert words(name) == expected


def test_nan_interval_is_blank():
    out = formatted(pd.DataFrame({"mean": [1.0], "ci_low": [np.nan], "ci_high": [2.0]}))
    assert out["95 % CI"].tolist() == [""]


def test_unknown_columns_two_decimals_unless_all_tiny_and_p_named_in_words():
    out = formatted(pd.DataFrame({"advantage (pp)": [-0.57, 0.0], "drift": [0.0123, 0.004],
                                  "p (Holm)": [0.0002, 1.0]}))
    assert out["advantage (pp)"].tolist() == ["-0.57", "0.00"]
    assert out["drift"].tolist() == ["0.0123", "0.0040"]
    assert out["p (Holm)"].tolist() == ["< 0.001", "1.000"]


def test_two_columns_with_the_same_words_are_both_kept():
    out = formatted(pd.DataFrame({"entropy": [0.5], "mean_entropy": [0.25]}))
    assert len(out.columns) == 2 and out.iloc[0].tolist() == ["0.5000", "0.250"]
