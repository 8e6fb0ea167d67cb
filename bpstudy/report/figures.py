"""Pictures drawn from the study table (matplotlib, Agg): the gradient-flow profile and the
final-loss heatmap over two parameters. Optuna's own plots are in `optuna_plots.py`.

Gradient-flow profile: one panel per network depth (a median across depths would mix
nets that have a layer i with nets that do not: `depths.py`), in each the hidden layer
index (1 = input side) on the horizontal axis, the median over trials of each run's final
gradient norm on a log vertical axis, one line per value of one categorical parameter
(the activation, when the study samples it). Solid lines are runs that trained to the
end; dotted lines are diverged runs, whose final norms are those of the last step before
the NaN. A median of exactly zero (dead relu layers) cannot sit on a log axis: it is drawn
as a triangle on the bottom edge. Dashed, in the line's colour: the mean-field prediction
at initialisation (`theory.py`), drawn through the line's last layer, where every run of
the line shares one prediction.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bpstudy.report.depths import depth_of_rows, panel_depths
from bpstudy.report.levels import format_value, levels, sort_key
from bpstudy.report.table import PARAM_PREFIX, grad_columns, layer_index
from bpstudy.report.theory import RunTheory, anchored, line_prediction

LOG_COLOURS_ABOVE = 100.0  # heatmap colours on a log scale when max / min exceeds this
PANEL_COLUMNS = 3  # the profile's panels per row


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _median_profile(rows: pd.DataFrame, grads: list[str]) -> tuple[np.ndarray, int]:
    values = np.array(rows[grads], dtype=float)  # a copy: pandas may hand out a read-only view
    values[~np.isfinite(values)] = np.nan
    used = int(np.isfinite(values).any(axis=1).sum())
    with warnings.catch_warnings():  # a layer no trial of the group has: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0) if used else np.full(len(grads), np.nan), used


@dataclass(frozen=True)
class _Line:
    group: str  # the parameter value (colour)
    diverged: bool  # dotted
    n: int  # trials behind the median
    medians: np.ndarray  # (layers,)

    @property
    def label(self) -> str:
        return f"{self.group}{', diverged' if self.diverged else ''} (n={self.n})"


def _groups(table: pd.DataFrame, group: str | None) -> list[tuple[str, pd.DataFrame]]:
    if group is None:
        return [("all trials", table)]
    keyed = table.groupby(PARAM_PREFIX + group, dropna=False, sort=False)
    return [(format_value(v), rows) for v, rows in sorted(keyed, key=lambda kv: sort_key(kv[0]))]


@dataclass(frozen=True)
class _Panel:
    depth: int | None  # None: one panel of every depth (grouped by the depth itself)
    layers: np.ndarray  # (layers,) hidden layer indices, 1 = input side
    lines: list[_Line]
    predicted: list[tuple[str, np.ndarray]]  # (group value, norms at `layers`): dashed
    not_predicted: list[tuple[str, str]]  # (group value, why its line has no prediction)

    @property
    def title(self) -> str:
        return "" if self.depth is None else f"depth {self.depth}"


def _panels(
    table: pd.DataFrame, group: str | None, theory: Mapping[Hashable, RunTheory] | None = None
) -> list[_Panel]:
    """One panel per depth (`depths.panel_depths`), its layers up to that depth, and in it
    one line per value of `group` (solid) and per diverged value (dotted); with `theory`,
    each value's predicted line, through its solid (else dotted) line's last layer."""
    panels = []
    for depth in panel_depths(table, group):
        rows = depth_of_rows(table, depth)
        grads = [c for c in grad_columns(table) if depth is None or layer_index(c) <= depth]
        layers = np.array([layer_index(c) for c in grads])
        diverged = rows["outcome"].eq("diverged")
        lines, predicted, not_predicted = [], [], []
        for name, members in _groups(rows, group):
            drawn = []
            for is_diverged in (False, True):
                picked = members[diverged.loc[members.index] == is_diverged]
                medians, used = _median_profile(picked, grads)
                if used:
                    drawn.append(_Line(name, is_diverged, used, medians))
            lines += drawn
            if theory is None or not drawn:
                continue
            line = line_prediction([theory[i] for i in members.index if i in theory])
            values = None
            if line.profile is not None:
                values = anchored(line.profile, layers, drawn[0].medians)
            if values is not None:
                predicted.append((name, values))
            else:
                not_predicted.append(
                    (name, line.why_not or "its last layer's median is 0 or missing: "
                     "nothing to draw the line through")
                )  # fmt: skip
        if lines:
            panels.append(_Panel(depth, layers, lines, predicted, not_predicted))
    return panels


def theory_notes(
    table: pd.DataFrame, group: str | None, theory: Mapping[Hashable, RunTheory]
) -> tuple[int, list[str]]:
    """(lines with a predicted line, why the others have none): for the report's text,
    one sentence per reason."""
    panels = _panels(table, group, theory)
    by_reason: dict[str, list[str]] = {}
    for panel in panels:
        where = f" ({panel.title})" if panel.title else ""
        for name, why in panel.not_predicted:
            label = f"{group}={name}" if group else name
            by_reason.setdefault(why, []).append(label + where)
    notes = [
        f"no mean-field line for {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}: {why}"
        for why, names in by_reason.items()
    ]
    return sum(len(p.predicted) for p in panels), notes


def _draw_panel(ax, panel: _Panel, names: list[str], floor: float, group: str | None) -> None:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    colors = plt.get_cmap("tab10")
    any_zero = False
    for name, values in panel.predicted:  # under the measured lines
        color = colors(names.index(name) % 10)
        ax.plot(panel.layers, values, "--", color=color, linewidth=1.3, alpha=0.85)
    if panel.predicted:
        ax.plot([], [], "--", color="grey", label="mean field at init")
    for ln in panel.lines:
        color = colors(names.index(ln.group) % 10)  # one colour per value in every panel
        shown = np.where(ln.medians > 0, ln.medians, np.nan)
        style = ":" if ln.diverged else "-"
        ax.plot(panel.layers, shown, style, marker="o", markersize=3, color=color, label=ln.label)
        zero = ln.medians == 0
        if zero.any():  # log axis: draw exact zeros on the bottom edge
            any_zero = True
            ax.plot(panel.layers[zero], np.full(zero.sum(), floor), "v", color=color, clip_on=False)
    ax.set_yscale("log")
    if any_zero:
        ax.set_ylim(bottom=floor)
        ax.plot([], [], "v", color="grey", label="median exactly 0 (dead layer)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, title=group, title_fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(panel.title, fontsize=10)


def grad_flow_profile_figure(
    table: pd.DataFrame,
    group: str | None = None,
    title: str = "",
    theory: Mapping[Hashable, RunTheory] | None = None,
):
    """The profile as a matplotlib Figure (close it when done): one panel per depth, in
    each the median final grad norm by layer index, one line per value of param `group`,
    and with `theory` (rows' predictions by index) each line's predicted one, dashed.
    The panels share the log vertical axis, so their levels compare."""
    plt = pyplot()
    panels = _panels(table, group, theory)
    if not panels:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100, layout="constrained")
        ax.text(0.5, 0.5, "no per-layer gradient norms in the runs", ha="center", va="center")
        ax.set_axis_off()
        fig.suptitle(title or "gradient-flow profile")
        return fig
    columns = min(len(panels), PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    size = (8, 4.5) if len(panels) == 1 else (4.4 * columns + 0.6, 3.4 * rows + 0.8)
    fig, axes = plt.subplots(
        rows, columns, figsize=size, dpi=100, sharey=True, squeeze=False, layout="constrained"
    )
    lines = [ln for panel in panels for ln in panel.lines]
    positive = np.concatenate([ln.medians[ln.medians > 0] for ln in lines])
    floor = positive.min() / 10 if positive.size else 1e-12
    names = list(dict.fromkeys(ln.group for ln in lines))
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(ax, panel, names, floor, group)
    for ax in axes.flat[len(panels) :]:  # the grid's empty cells
        fig.delaxes(ax)
    fig.supxlabel("hidden layer (1 = input side)")
    fig.supylabel("final grad norm (median over trials)")
    fig.suptitle(title or "gradient-flow profile")
    return fig


def grad_flow_profile_png(
    table: pd.DataFrame,
    path: Path,
    group: str | None = None,
    title: str = "",
    theory: Mapping[Hashable, RunTheory] | None = None,
) -> Path:
    """`grad_flow_profile_figure`, saved as a PNG."""
    fig = grad_flow_profile_figure(table, group, title, theory)
    fig.savefig(path)
    pyplot().close(fig)
    return path


def heatmap_cells(
    table: pd.DataFrame,
    value: str,
    x: str,
    y: str | None = None,
    log_params: frozenset[str] = frozenset(),
) -> tuple[np.ndarray, list[list[str]], list[str], list[str]]:
    """(grid, notes, x labels, y labels): the median of column `value` over the completed
    trials in each (x, y) cell of two parameters, and each cell's caption. A pruned
    trial's last value is of the epoch it was stopped at, not the end: cells count those
    (and diverged ones) instead; a cell without a value is NaN."""
    x_level, x_labels = levels(table[PARAM_PREFIX + x], x in log_params)
    if y is None:
        y_level, y_labels = pd.Series("all trials", index=table.index), ["all trials"]
    else:
        y_level, y_labels = levels(table[PARAM_PREFIX + y], y in log_params)
    grid = np.full((len(y_labels), len(x_labels)), np.nan)
    notes = [["" for _ in x_labels] for _ in y_labels]
    values = table[value].astype(float)
    values = values.where(np.isfinite(values) & table["state"].eq("COMPLETE"))
    diverged = table["outcome"].eq("diverged")
    pruned = table["state"].eq("PRUNED") & ~diverged
    for i, ylab in enumerate(y_labels):
        for j, xlab in enumerate(x_labels):
            cell = (y_level == ylab) & (x_level == xlab)
            if not cell.any():
                continue
            finite = values[cell].dropna()
            n_div, n_pruned = int(diverged[cell].sum()), int(pruned[cell].sum())
            others = [f"{n_div} diverged"] * bool(n_div) + [f"{n_pruned} pruned"] * bool(n_pruned)
            if len(finite):
                grid[i, j] = finite.median()
                notes[i][j] = "\n".join([f"{grid[i, j]:.3g}", f"n={len(finite)}", *others])
            else:
                notes[i][j] = "\n".join(others) or "no value"
    return grid, notes, x_labels, y_labels


def loss_heatmap_png(
    table: pd.DataFrame,
    path: Path,
    value: str,
    x: str,
    y: str | None = None,
    log_params: frozenset[str] = frozenset(),
    title: str = "",
) -> Path:
    """The cells of `heatmap_cells`, drawn; cells without a value stay grey."""
    plt = pyplot()
    from matplotlib.colors import LogNorm

    grid, notes, x_labels, y_labels = heatmap_cells(table, value, x, y, log_params)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    fig, ax = plt.subplots(
        figsize=(max(5.0, 1.1 * len(x_labels) + 2.5), max(3.0, 0.7 * len(y_labels) + 1.8)),
        dpi=100,
    )
    finite = grid[np.isfinite(grid)]
    # a loss that blew up to 1e5 beside ones near 1 would paint every other cell alike
    log = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > LOG_COLOURS_ABOVE
    norm = LogNorm(finite.min(), finite.max()) if log else None
    image = ax.imshow(
        np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto", origin="lower"
    )
    if not finite.size:
        mid = 0.0
    elif log:
        mid = float(np.sqrt(finite.min() * finite.max()))
    else:
        mid = (finite.min() + finite.max()) / 2
    for i in range(len(y_labels)):
        for j in range(len(x_labels)):
            dark = np.isfinite(grid[i, j]) and grid[i, j] < mid
            ax.text(
                j,
                i,
                notes[i][j],
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(len(x_labels)), x_labels, rotation=30 if len(x_labels) > 4 else 0)
    ax.set_yticks(range(len(y_labels)), y_labels)
    ax.set_xlabel(x)
    ax.set_ylabel(y or "")
    fig.colorbar(image, ax=ax).set_label(f"{value} (median{', log scale' if log else ''})")
    ax.set_title(title or f"final {value} by {x}" + (f" and {y}" if y else ""))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
