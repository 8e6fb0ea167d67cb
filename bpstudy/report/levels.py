"""How parameter values become labels and levels for tables and pictures.

Up to MAX_LEVELS distinct values of a parameter are each their own level (sorted: numbers
by value, then text); a numeric parameter with more is cut into BINS equal bins, in log10
when its distribution is on a log scale.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

MAX_LEVELS = 8
BINS = 6


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def format_value(value) -> str:
    """Compact labels: 0.001 -> 0.001, 6.0 -> 6, 'relu' -> relu, NaN -> n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if _is_number(value):
        return f"{float(value):.4g}"
    return str(value)


def sort_key(value):
    return (0, float(value), "") if _is_number(value) else (1, 0.0, str(value))


def levels(values: pd.Series, log: bool = False) -> tuple[pd.Series, list[str]]:
    """Each value's level label, and the labels in order. Up to MAX_LEVELS distinct values
    are their own levels; more are cut into BINS equal bins (in log10 when `log`)."""
    present = values.dropna()
    distinct = sorted(present.unique().tolist(), key=sort_key)
    numeric = all(_is_number(v) for v in distinct)
    if len(distinct) <= MAX_LEVELS or not numeric:
        labels = [format_value(v) for v in distinct]
        return values.map(lambda v: None if pd.isna(v) else format_value(v)), labels
    x = present.astype(float)
    if log and (x > 0).all():
        edges = np.logspace(np.log10(x.min()), np.log10(x.max()), BINS + 1)
    else:
        edges = np.linspace(x.min(), x.max(), BINS + 1)
    labels = [f"{edges[i]:.3g}-{edges[i + 1]:.3g}" for i in range(BINS)]
    codes = np.clip(np.searchsorted(edges, values.astype(float), side="right") - 1, 0, BINS - 1)
    out = pd.Series([labels[c] for c in codes], index=values.index, dtype=object)
    out[values.isna()] = None
    return out, labels
