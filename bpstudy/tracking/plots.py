"""The pictures each run logs: the gradient-flow heatmap, the loss curves and, for a
learning rule other than backprop, the alignment angles.

The heatmap puts hidden layers on the vertical axis (input at the bottom, output at the
top) and optimizer steps on the horizontal, coloured by log10 of the gradient norm:
vanishing shows as a dark band toward the input, exploding as a bright one.

The alignment plot is its companion: one line per hidden layer over steps (colour from
input to output side), the angle between the rule's update and the true gradient, with
90 degrees (no better than a random direction) dashed; feedback alignment adds a panel
with the angle between each feedback matrix B and the W it replaces.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# Fixed margins instead of tight_layout, which measures every label and costs as much as
# the drawing: a sweep draws these for every trial (figure fractions; the labels fit).
HEATMAP_SIZE = (8, 4.5)  # inches, at 100 dpi
HEATMAP_MARGINS = {"left": 0.08, "right": 0.99, "bottom": 0.11, "top": 0.92}
LOSS_MARGINS = {"left": 0.11, "right": 0.98, "bottom": 0.12, "top": 0.91}
# A title at a fixed height: matplotlib otherwise measures every tick label to place it
TITLE_Y = 1.02
LOG_SCALE_ABOVE = 10.0  # loss curves on a log axis when they span more than a decade
# zlib level 1, not Pillow's 6: a fifth of the drawing time at 10% more bytes (~60 KB)
PNG = {"pil_kwargs": {"compress_level": 1}}


def _figure(figsize: tuple[float, float]):
    """A bare Agg figure: no pyplot state to keep or close (a sweep draws many)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100)


_kept = threading.local()


def _kept_figure(kind: str, build: Callable[[], Any]) -> Any:
    """The figure of this kind this thread drew last, built on first use. A run's
    pictures differ only in their data and words, and building the axes, ticks and colour
    bar of a fresh figure costs about as much as drawing it: a sweep draws two per trial.
    Per thread, as matplotlib figures are not thread-safe."""
    figures = _kept.__dict__.setdefault("figures", {})
    if kind not in figures:
        figures[kind] = build()
    return figures[kind]


def save(fig, path: Path | BinaryIO, margins: dict[str, float]) -> Path | BinaryIO:
    fig.subplots_adjust(**margins)
    fig.savefig(path, **PNG)
    return path


def warm_up(draw: bool = False) -> None:
    """Import matplotlib ahead of time (it takes a good part of a second); with `draw`,
    also draw both pictures once, small, in memory: the first drawing in a process loads
    fonts and colour maps and builds the figures this thread keeps."""
    _pyplot()
    if draw:
        import io

        layers = pd.DataFrame({"step": [0, 0, 1, 1], "layer": [1, 2, 1, 2], "grad_norm": 1.0})
        grad_flow_png(layers, io.BytesIO())
        history = pd.DataFrame({"step": [0, 1], "train/loss": [2.0, 1.0], "val/loss": [2.0, 1.0]})
        loss_png(history, io.BytesIO())


@dataclass
class _Heatmap:
    fig: Any
    ax: Any
    image: Any
    bar: Any


def _build_heatmap() -> _Heatmap:
    from matplotlib.ticker import MaxNLocator

    fig = _figure(HEATMAP_SIZE)
    ax = fig.add_subplot()
    image = ax.imshow(
        np.zeros((1, 1)), aspect="auto", origin="lower", cmap="magma", interpolation="nearest"
    )
    bar = fig.colorbar(image, ax=ax)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("hidden layer (1 = input side)")
    return _Heatmap(fig, ax, image, bar)


def grad_flow_png(
    layer_stats: pd.DataFrame, path: Path | BinaryIO, title: str = "", stat: str = "grad_norm"
) -> Path | BinaryIO:
    title = title or f"gradient flow: log10 {stat} per layer"
    if layer_stats.empty:
        fig = _figure(HEATMAP_SIZE)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no logged steps", ha="center", va="center")
        ax.set_title(title, y=TITLE_Y)
        return save(fig, path, HEATMAP_MARGINS)
    grid = layer_stats.pivot(index="layer", columns="step", values=stat)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log10(grid.to_numpy(dtype=float))
    values[~np.isfinite(values)] = np.nan
    steps, layers = grid.columns.to_numpy(), grid.index.to_numpy()
    left, right = steps[0], steps[-1] if len(steps) > 1 else steps[0] + 1
    bottom, top = layers[0] - 0.5, layers[-1] + 0.5
    h = _kept_figure("grad_flow", _build_heatmap)
    h.image.set_data(values)
    h.image.set_extent((left, right, bottom, top))  # and the axes' limits
    h.image.autoscale()  # colour range of this run's values
    h.bar.set_label(f"log10 {stat}")
    h.ax.set_title(title, y=TITLE_Y)
    return save(h.fig, path, HEATMAP_MARGINS)


@dataclass
class _LossPlot:
    fig: Any
    ax: Any
    lines: dict[str, Any]
    legend_keys: tuple[str, ...] = ()


LOSS_KEYS = ("train/loss", "val/loss")


def _build_loss() -> _LossPlot:
    fig = _figure((7, 4))
    ax = fig.add_subplot()
    lines = {key: ax.plot([], [], marker="o", markersize=3, label=key)[0] for key in LOSS_KEYS}
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    return _LossPlot(fig, ax, lines)


def loss_png(history: pd.DataFrame, path: Path | BinaryIO, title: str = "") -> Path | BinaryIO:
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    p = _kept_figure("loss", _build_loss)
    ax = p.ax
    keys = [k for k in LOSS_KEYS if k in history and len(history)]
    for key, line in p.lines.items():
        line.set_visible(key in keys)
        if key in keys:
            line.set_data(history["step"], history[key])
        else:
            line.set_data([], [])
    values = history[keys].to_numpy(dtype=float) if keys else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() / values.min() > LOG_SCALE_ABOVE:
        ax.set_yscale("log")  # plain labels (1, 2, 5 per decade): no mathtext to typeset
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_yscale("linear")
    ax.relim(visible_only=True)
    ax.autoscale_view()
    if tuple(keys) != p.legend_keys:  # a run that diverged at once has no epoch to plot
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        if keys:
            ax.legend(handles=[p.lines[k] for k in keys])
        p.legend_keys = tuple(keys)
    ax.set_title(title or "loss", y=TITLE_Y)
    return save(p.fig, path, LOSS_MARGINS)


def alignment_png(layer_stats: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Angle per hidden layer over steps: `alignment`, and `feedback_angle` when logged."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    stats = [c for c in ("alignment", "feedback_angle") if c in layer_stats]
    labels = {
        "alignment": "update vs true gradient (deg)",
        "feedback_angle": "feedback B vs forward W (deg)",
    }
    panels = max(len(stats), 1)
    fig = _figure((5 * panels + 1.5, 4))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if layer_stats.empty or not stats:
        axes[0].text(0.5, 0.5, "no alignment logged", ha="center", va="center")
    else:
        layers = np.sort(layer_stats["layer"].unique())
        cmap = colormaps["viridis"]
        norm = Normalize(layers[0], max(layers[-1], layers[0] + 1))
        top = float(np.nanmax(layer_stats[stats].to_numpy(dtype=float), initial=90.0))
        top = min(180.0, 10.0 * np.ceil(max(top, 95.0) / 10.0))
        for ax, stat in zip(axes, stats, strict=True):
            for layer, rows in layer_stats.groupby("layer", sort=True):
                ax.plot(rows["step"], rows[stat], color=cmap(norm(layer)), linewidth=1.2)
            ax.axhline(90.0, color="grey", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, top)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(labels[stat])
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes))
        bar.set_label("hidden layer (1 = input side)")
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # no layer 1.25
    fig.suptitle(title or "alignment with the true gradient")
    fig.savefig(path, **PNG)
    return path


def grad_profile_png(
    layer_stats: pd.DataFrame, predicted: np.ndarray | None, path: Path, title: str = ""
) -> Path:
    """log10 grad_norm by hidden layer at the first and the last logged step, and the
    mean-field prediction (`predicted`: log10 ‖dW_l‖ − log10 ‖dW_L‖, l = 1 … L; None where
    the theory does not apply) drawn through the first step's last layer."""
    fig = _figure((6, 4))
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    if layer_stats.empty:
        ax.text(0.5, 0.5, "no step logged", ha="center", va="center")
    else:
        for step, style in ((layer_stats["step"].min(), "-o"), (layer_stats["step"].max(), "-s")):
            rows = layer_stats[layer_stats["step"] == step].sort_values("layer")
            with np.errstate(divide="ignore"):
                ax.plot(rows["layer"], np.log10(rows["grad_norm"]), style, markersize=3,
                        label=f"measured, step {int(step)}")  # fmt: skip
        first = layer_stats[layer_stats["step"] == layer_stats["step"].min()]
        top = float(first.loc[first["layer"] == first["layer"].max(), "grad_norm"].iloc[0])
        if predicted is not None and top > 0 and len(predicted) == len(first):
            layers = np.arange(1, len(predicted) + 1)
            ax.plot(layers, np.log10(top) + np.asarray(predicted), "k--",
                    label="mean-field prediction")  # fmt: skip
        ax.set_xlabel("hidden layer (1 = input side)")
        ax.set_ylabel("log10 gradient norm")
        ax.legend()
    ax.set_title(title or "gradient profile")
    fig.savefig(path, **PNG)
    return path
