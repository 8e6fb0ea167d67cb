"""The depth of each trial's network, and the rule that a gradient-flow profile reads one
depth at a time.

A median over trials of layer i's gradient norm is a median over the nets that have a
layer i: across depths, the deep nets alone make up its right-hand end, and the profile
shows a cliff that no network has (sigmoid "fell" from 1e-1 to 1e-8 between layers 5 and
6 where the depth-5 nets stopped). So the profile draws one panel per depth, and the
reading names the depth of each profile it reads. Grouped by the depth itself
(`--group model.depth`), one panel holds them all: each line is one depth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bpstudy.errors import BpstudyError
from bpstudy.report.table import PARAM_PREFIX, grad_columns, layer_index

DEPTH = "model.depth"
MAX_PANELS = 12  # smaller panels than a 3 x 4 grid's are too small to read


def depths(table: pd.DataFrame) -> pd.Series:
    """Each trial's number of hidden layers: its sampled `model.depth`; where the study
    does not sample it (a fixed depth, or one a sampled config group sets), the deepest
    layer its run logged a gradient norm for. NaN where neither is known."""
    grads = grad_columns(table)
    logged = pd.Series(np.nan, index=table.index)
    if grads:
        deepest = table[grads].notna().mul([layer_index(c) for c in grads]).max(axis=1)
        logged = deepest.where(deepest > 0)
    if PARAM_PREFIX + DEPTH in table:
        return pd.to_numeric(table[PARAM_PREFIX + DEPTH], errors="coerce").fillna(logged)
    return logged


def drawn(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a profile has values from: a finite final gradient norm at some layer."""
    grads = grad_columns(table)
    if not grads:
        return table.iloc[:0]
    return table[np.isfinite(table[grads].to_numpy(dtype=float)).any(axis=1)]


def panel_depths(table: pd.DataFrame, group: str | None) -> list[int | None]:
    """The depths the profile draws a panel for, shallowest first; [None] for a single
    panel of every row (grouped by the depth, or no depth known); [] for no values."""
    rows = drawn(table)
    if rows.empty:
        return []
    found = depths(rows).dropna()
    if group == DEPTH or found.empty:
        return [None]
    return sorted(int(d) for d in found.unique())


def check_sampled(table: pd.DataFrame, group: str | None) -> None:
    """Before any MLflow run is read (seconds, and a progress line): refuse the trials of
    more sampled depths than MAX_PANELS that have a run, unless `--group model.depth`
    draws them as lines of one panel. `table`: the trials without their runs."""
    column = PARAM_PREFIX + DEPTH
    if group == DEPTH or column not in table:
        return
    with_runs = table.loc[table["mlflow_run_id"].notna(), column].dropna()
    _refuse_past_max(sorted(int(d) for d in with_runs.unique()), sampled=True)


def check_panels(table: pd.DataFrame, group: str | None) -> None:
    """Refuse a profile of more panels than MAX_PANELS, before anything is written: for a
    study that does not sample the depth, only its runs tell."""
    _refuse_past_max(panel_depths(table, group), sampled=PARAM_PREFIX + DEPTH in table)


def _refuse_past_max(panels: list, sampled: bool) -> None:
    if len(panels) <= MAX_PANELS:
        return
    if sampled:
        how = f"--where {DEPTH}=D (or one line per depth: --group {DEPTH})"
    else:
        how = "--where on the parameter that sets the depth"
    raise BpstudyError(
        f"the gradient-flow profile would need {len(panels)} panels, one per depth "
        f"({panels[0]} to {panels[-1]}), and draws at most {MAX_PANELS}: report one depth at "
        f"a time with {how}"
    )


def depth_of_rows(table: pd.DataFrame, depth: int | None) -> pd.DataFrame:
    """The rows of one panel (all of them for None)."""
    return table if depth is None else table[depths(table).eq(depth)]


def describe_panels(panels: list[int | None]) -> str:
    """For a caption: 'one panel per depth (2, 4)', 'depth 20', or '' (one panel of all)."""
    known = [str(d) for d in panels if d is not None]
    if len(known) > 1:
        return f"one panel per depth ({', '.join(known)})"
    return f"depth {known[0]}" if known else ""
