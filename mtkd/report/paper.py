"""Tables that read like a paper: one formatting function for every table a notebook shows.

:func:`paper` turns a tidy frame into a styled table: no index column (an index that
carries data becomes columns), column names in words, scores to two decimals and small
quantities (probabilities, entropies, divergences) to three or four, p-values to three
(``< 0.001`` below), counts with thousands separators, booleans as yes / no, and every
``ci_low``/``ci_high`` pair merged into one ``95 % CI`` column written ``[lo, hi]``;
fractions the figures show in percent (gap closed) are shown in percent too.

:func:`use_for_dataframes` makes it the HTML view of every DataFrame a notebook displays
(`mtkd.report.notebook.open_run` calls it), so notebooks need no per-table code; ``text/plain``
and the frames themselves are untouched.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# column -> (words, decimals); decimals None = the default rule in _decimals
WORDS: dict[str, tuple[str, int | None]] = {
    "task": ("task", None), "method": ("method", None), "kind": ("kind", None), "type": ("type", None),
    "split": ("split", None), "metric": ("metric", None), "seed": ("seed", None), "teacher": ("teacher", None),
    "model": ("model", None), "mode": ("mode", None), "score": ("score (%)", 2), "mean": ("mean (%)", 2),
    "n_seeds": ("seeds", None), "n": ("examples", None), "examples": ("examples", None),
    "diff_pp": ("difference (pp)", 2), "margin_pp": ("equivalence margin (pp)", 2), "mde_pp": ("detectable (pp)", 2),
    "p_value": ("p", 3), "p_adjusted": ("p (Holm)", 3), "significant": ("significant", None),
    "verdict": ("verdict", None), "comparison": ("comparison", None), "a": ("method A", None), "b": ("method B", None),
    "mean_max_prob": ("mean max probability", 3), "mean_entropy": ("mean entropy (nats)", 3),
    "pct_high_conf": ("% with max probability > 0.95", 1), "ece": ("calibration error (ECE)", 4),
    "accuracy": ("accuracy (%)", 2), "mean_js": ("mean JS divergence (nats)", 4),
    "mean_js_norm": ("mean JS divergence / ln 2", 4), "disagreement_rate": ("disagreement rate", 3),
    "mean_one_minus_max": ("mean 1 - max probability", 4), "entropy": ("entropy (nats)", 4),
    "n_per_seed": ("errors per seed", 1), "share": ("share (%)", 1), "advantage": ("advantage (pp)", 2),
    "diversity": ("diversity (mean JS)", 4), "temperature": ("temperature T", None), "alpha": ("alpha", None),
    "seconds": ("seconds", 0), "final train loss": ("final train loss", 3), "selection score": ("selection score (%)", 2),
    "weight": ("weight", 3), "calibration T": ("calibration T", 2), "over": ("averaged over", None),
    "name": ("name", None), "region": ("agreement region", None), "category": ("cause", None),
    "axis": ("axis", None), "param": ("param", None), "value": ("value", None),
    "is_main": ("main study's setting", None), "role": ("role", None),
    "target_score": ("target's own score (%)", 2), "agreement_pct": ("top-1 agreement with target (%)", 2),
    "kl_target_student": ("KL(target || student) (nats)", 4),
    "gap_closed_undefined": ("gap closed undefined because", None),
}
IDENTIFIERS = ("seed", "idx")              # integers that name something: no thousands separator
INTERVAL = ("ci_low", "ci_high")
INTERVAL_NAME = "95 % CI"


def words(column) -> str:
    """A column name in words: the registry's wording, else underscores as spaces."""
    if isinstance(column, tuple):
        return " ".join(words(c) for c in column if str(c))
    key = str(column)
    if key in WORDS:
        return WORDS[key][0]
    return key.replace("_", " ")


PERCENT_OF_ONE = {"gap_closed": "gap closed (%)", "gap closed (multi)": "gap closed by multi (%)",
                  "gap closed (single)": "gap closed by single (%)"}   # fractions shown in percent, like the charts
P_VALUES = ("p", "p (Holm)")


def _decimals(column, values: pd.Series) -> int:
    """Registry decimals, else two; four when every value is small (|x| < 0.05) so it does not read as 0.00."""
    spec = WORDS.get(str(column), (None, None))[1]
    if spec is not None:
        return spec
    finite = values[np.isfinite(values.astype(float))].abs()
    return 4 if len(finite) and 0 < finite.max() < 0.05 else 2


def _number(v, decimals: int, p_value: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if p_value and v < 0.001:
        return "< 0.001"
    return f"{v:,.{decimals}f}"


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Index levels that carry data become ordinary columns; multi-level column names are joined."""
    df = frame.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [" ".join(str(c) for c in col if str(c)) for col in df.columns]
    df.columns.name = None
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index(drop=all(n is None for n in df.index.names) and not isinstance(df.index, pd.MultiIndex))
    return df


class _Columns(dict):
    """Output columns: a second column that would get the same words keeps its own name instead."""

    def __setitem__(self, key, value):
        super().__setitem__(f"{key} ({len(self)})" if key in self else key, value)


def formatted(frame: pd.DataFrame, interval_decimals: int = 2) -> pd.DataFrame:
    """The frame as strings, columns in words, intervals merged: what :func:`paper` shows."""
    df = _flatten(frame)
    out = _Columns()
    for col in df.columns:
        if col == INTERVAL[1] and INTERVAL[0] in df.columns:
            continue
        if col == INTERVAL[0] and INTERVAL[1] in df.columns:
            lo, hi = df[INTERVAL[0]], df[INTERVAL[1]]
            out[INTERVAL_NAME] = [f"[{_number(a, interval_decimals)}, {_number(b, interval_decimals)}]"
                                  if np.isfinite(a) and np.isfinite(b) else "" for a, b in zip(lo, hi)]
            continue
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            out[words(col)] = s.map({True: "yes", False: "no"})
        elif pd.api.types.is_integer_dtype(s):
            out[words(col)] = s.map(lambda v: str(v) if str(col) in IDENTIFIERS else f"{v:,}")
        elif pd.api.types.is_float_dtype(s) and str(col) in PERCENT_OF_ONE:
            out[PERCENT_OF_ONE[str(col)]] = (100 * s).map(lambda v: _number(v, 1))
        elif pd.api.types.is_float_dtype(s):
            p = words(col) in P_VALUES
            d = 3 if p else _decimals(col, s)
            out[words(col)] = s.map(lambda v, d=d, p=p: _number(v, d, p))
        else:
            out[words(col)] = s.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return pd.DataFrame(out)


def paper(frame: pd.DataFrame, caption: str | None = None):
    """A pandas Styler of :func:`formatted`: no index, words for names, numbers right-aligned."""
    text = formatted(frame)
    flat = _flatten(frame)
    numeric = [PERCENT_OF_ONE.get(str(c), words(c)) for c in flat.columns
               if pd.api.types.is_numeric_dtype(flat[c]) and not pd.api.types.is_bool_dtype(flat[c])]
    styler = text.style.hide(axis="index")
    styler = styler.set_table_attributes('class="mtkd-table"')
    styler = styler.set_properties(subset=[c for c in numeric if c in text.columns],
                                   **{"text-align": "right", "font-variant-numeric": "tabular-nums"})
    styler = styler.set_table_styles([{"selector": "th", "props": [("text-align", "left")]},
                                      {"selector": "td", "props": [("text-align", "left")]},
                                      {"selector": "caption", "props": [("caption-side", "top"), ("text-align", "left"),
                                                                        ("font-weight", "600")]}])
    if caption:
        styler = styler.set_caption(caption)
    return styler


def use_for_dataframes() -> bool:
    """Show every DataFrame the IPython kernel displays as :func:`paper` HTML; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, lambda df: paper(df).to_html())
    return True
