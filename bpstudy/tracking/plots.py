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

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Lay out, write and close a figure (closing frees it: runs draw many)."""
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def warm_up() -> None:
    """Import matplotlib ahead of time (it takes a good part of a second)."""
    _pyplot()


def grad_flow_png(
    layer_stats: pd.DataFrame, path: Path, title: str = "", stat: str = "grad_norm"
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if layer_stats.empty:
        ax.text(0.5, 0.5, "no logged steps", ha="center", va="center")
    else:
        grid = layer_stats.pivot(index="layer", columns="step", values=stat)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log10(grid.to_numpy(dtype=float))
        values[~np.isfinite(values)] = np.nan
        steps, layers = grid.columns.to_numpy(), grid.index.to_numpy()
        extent = (
            steps[0],
            steps[-1] if len(steps) > 1 else steps[0] + 1,
            layers[0] - 0.5,
            layers[-1] + 0.5,
        )
        image = ax.imshow(
            values,
            aspect="auto",
            origin="lower",
            extent=extent,
            cmap="magma",
            interpolation="nearest",
        )
        bar = fig.colorbar(image, ax=ax)
        bar.set_label(f"log10 {stat}")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("hidden layer (1 = input side)")
    ax.set_title(title or f"gradient flow: log10 {stat} per layer")
    return save(fig, path)


def loss_png(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in ("train/loss", "val/loss"):
        if key in history:
            ax.plot(history["step"], history[key], marker="o", markersize=3, label=key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if (
        not history.empty
        and (history[[c for c in ("train/loss", "val/loss") if c in history]] > 0).all().all()
    ):
        ax.set_yscale("log")
    if ax.get_lines():  # a run that diverged at once has no epoch to plot
        ax.legend()
    ax.set_title(title or "loss")
    return save(fig, path)


def alignment_png(layer_stats: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Angle per hidden layer over steps: `alignment`, and `feedback_angle` when logged."""
    plt = _pyplot()
    stats = [c for c in ("alignment", "feedback_angle") if c in layer_stats]
    labels = {
        "alignment": "update vs true gradient (deg)",
        "feedback_angle": "feedback B vs forward W (deg)",
    }
    panels = max(len(stats), 1)
    fig, axes = plt.subplots(
        1, panels, figsize=(5 * panels + 1.5, 4), dpi=100, squeeze=False, layout="constrained"
    )
    axes = axes[0]
    if layer_stats.empty or not stats:
        axes[0].text(0.5, 0.5, "no alignment logged", ha="center", va="center")
    else:
        layers = np.sort(layer_stats["layer"].unique())
        cmap = plt.get_cmap("viridis")
        norm = plt.Normalize(layers[0], max(layers[-1], layers[0] + 1))
        top = float(np.nanmax(layer_stats[stats].to_numpy(dtype=float), initial=90.0))
        top = min(180.0, 10.0 * np.ceil(max(top, 95.0) / 10.0))
        for ax, stat in zip(axes, stats, strict=True):
            for layer, rows in layer_stats.groupby("layer", sort=True):
                ax.plot(rows["step"], rows[stat], color=cmap(norm(layer)), linewidth=1.2)
            ax.axhline(90.0, color="grey", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, top)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(labels[stat])
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes))
        bar.set_label("hidden layer (1 = input side)")
    fig.suptitle(title or "alignment with the true gradient")
    fig.savefig(path)
    plt.close(fig)
    return path
