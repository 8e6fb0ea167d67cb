"""The pictures each run logs: the gradient-flow heatmap and the loss curves.

The heatmap puts hidden layers on the vertical axis (input at the bottom, output at the
top) and optimizer steps on the horizontal, coloured by log10 of the gradient norm:
vanishing shows as a dark band toward the input, exploding as a bright one.
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
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("hidden layer (1 = input side)")
    ax.set_title(title or f"gradient flow: log10 {stat} per layer")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
    ax.legend()
    ax.set_title(title or "loss")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
