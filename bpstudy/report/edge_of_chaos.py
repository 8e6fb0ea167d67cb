"""The edge-of-chaos picture, after Schoenholz et al. 2017 ("Deep information
propagation", arXiv:1611.01232, Fig. 5): a study's final validation accuracy over
(σw², depth) as a heatmap, with the mean-field depth scale ξ_c drawn over it.

Schoenholz et al. find random tanh nets trainable up to a depth of about 6 ξ_c, where
ξ_c = −1/ln χ_c is the depth over which two inputs' correlation relaxes to its fixed
point (bpstudy.theory.mean_field): deep on both sides of the edge of chaos (χ1 = 1),
where ξ_c diverges, and shallow away from it. The picture draws TRAINABLE_XI · ξ_c
(dashed) and ξ_c (dotted) from bpstudy.theory over the study's σw² range, and the
edge χ1 = 1 (vertical).

It is drawn for a study that varies model.init.sigma_w and model.depth, with init
`normal`, and no other setting the theory reads varying (the activation, σb, width,
data): one curve then describes every cell. σw² is sigma_w², the config's value squared.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bpstudy.config.schema import Config
from bpstudy.report.table import PARAM_PREFIX
from bpstudy.report.theory import RunTheory, differing
from bpstudy.theory import predict_config

SIGMA_W, DEPTH = "model.init.sigma_w", "model.depth"
VALUE = "val/accuracy"
FILE = "edge_of_chaos.png"
TRAINABLE_XI = 6.0  # Schoenholz et al. 2017: trainable up to about 6 ξ_c
CURVE_POINTS = 241


def varied(table: pd.DataFrame) -> list[str]:
    """Which of sigma_w and depth the study's trials take more than one value of."""
    return [
        k
        for k in (SIGMA_W, DEPTH)
        if PARAM_PREFIX + k in table and table[PARAM_PREFIX + k].dropna().nunique() > 1
    ]


def why_not(table: pd.DataFrame, theories: Mapping[Hashable, RunTheory]) -> str | None:
    """Why the study gets no edge-of-chaos picture (None: it does)."""
    varied_ = varied(table)
    if len(varied_) < 2:
        only = f" (it varies only {varied_[0]})" if varied_ else ""
        return f"the study does not vary both {SIGMA_W} and {DEPTH}{only}"
    if VALUE not in table or not table[VALUE].notna().any():
        return f"no run logged {VALUE} (a classification data set's)"
    runs = [theories[i] for i in table.index if i in theories and theories[i].config is not None]
    if not runs:
        return "no trial's MLflow run holds its config"
    schemes = {t.config.model.init.scheme for t in runs}
    if schemes != {"normal"}:
        return f"its runs' init is {', '.join(sorted(schemes))}, not model.init.scheme=normal"
    others = [k for k in differing(runs) if k not in (SIGMA_W, DEPTH)]
    if others:
        return f"besides sigma_w and depth, its runs differ in {', '.join(others[:3])}"
    if not runs[0].prediction or not runs[0].prediction.applicable:
        reason = runs[0].prediction.reason if runs[0].prediction else runs[0].why_not
        return f"mean field does not apply: {reason}"
    return None


def base_config(table: pd.DataFrame, theories: Mapping[Hashable, RunTheory]) -> Config:
    """One run's config: every run shares all but sigma_w and depth (see why_not)."""
    return next(theories[i].config for i in table.index if i in theories and theories[i].config)


def depth_scales(config: Config, sw2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ξ_c, χ1) at each σw² of `sw2`, the rest of `config` kept (its σb², activation)."""
    model = config.model
    shallow = dataclasses.replace(model, depth=1)  # ξ_c and χ1 are of q*, not of the depth
    xi, chi1 = np.empty_like(sw2), np.empty_like(sw2)
    for i, s2 in enumerate(sw2):
        init = dataclasses.replace(model.init, sigma_w=float(math.sqrt(s2)))
        p = predict_config(
            dataclasses.replace(config, model=dataclasses.replace(shallow, init=init))
        )
        xi[i], chi1[i] = p.xi_c, p.chi1
    return xi, chi1


def cells(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """(σw² values, depths, grid (depths x σw²), captions): the median VALUE of the
    completed trials of each cell; a cell of diverged or pruned trials only is NaN and
    says so."""
    sw2 = (table[PARAM_PREFIX + SIGMA_W].astype(float) ** 2).round(6)
    depth = table[PARAM_PREFIX + DEPTH].astype(float)
    xs, ys = np.array(sorted(sw2.dropna().unique())), np.array(sorted(depth.dropna().unique()))
    grid = np.full((len(ys), len(xs)), np.nan)
    notes = [["" for _ in xs] for _ in ys]
    done = table["state"].eq("COMPLETE")
    diverged = table["outcome"].eq("diverged")
    for i, d in enumerate(ys):
        for j, s in enumerate(xs):
            cell = sw2.eq(s) & depth.eq(d)
            values = table.loc[cell & done, VALUE].dropna()
            if len(values):
                grid[i, j] = values.median()
                notes[i][j] = f"{grid[i, j]:.2f}"
            elif (cell & diverged).any():
                notes[i][j] = "diverged"
            elif cell.any():
                notes[i][j] = "no value"
    return xs, ys, grid, notes


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between centres, the outer ones half a step out."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def edge_of_chaos_png(
    table: pd.DataFrame, theories: Mapping[Hashable, RunTheory], path: Path, title: str = ""
) -> tuple[Path, str]:
    """Draw the picture; returns the path and the caption's theory part (σb², the edge)."""
    from bpstudy.report.figures import pyplot

    plt = pyplot()
    config = base_config(table, theories)
    xs, ys, grid, notes = cells(table)
    x_edges, y_edges = _edges(xs), _edges(ys)
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=100, layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    mesh = ax.pcolormesh(
        x_edges, y_edges, np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0
    )
    for i, d in enumerate(ys):
        for j, s in enumerate(xs):
            dark = np.isfinite(grid[i, j]) and grid[i, j] < 0.5
            ax.text(s, d, notes[i][j], ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
    sw2 = np.linspace(x_edges[0], x_edges[-1], CURVE_POINTS)
    sw2 = sw2[sw2 > 0]
    xi, chi1 = depth_scales(config, sw2)
    ax.plot(sw2, TRAINABLE_XI * xi, "--", color="white", linewidth=2,
            label=f"{TRAINABLE_XI:g} ξ_c (Schoenholz et al. 2017)")  # fmt: skip
    ax.plot(sw2, xi, ":", color="white", linewidth=1.5, label="ξ_c")
    edge = _crossing(sw2, chi1)
    if edge is not None:
        ax.axvline(edge, color="red", linewidth=1, alpha=0.8, label=f"χ1 = 1 at σw² = {edge:.3g}")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xticks(xs, [f"{s:.3g}" for s in xs])
    ax.set_yticks(ys, [f"{d:.0f}" for d in ys])
    ax.set_xlabel("σw² (model.init.sigma_w squared)")
    ax.set_ylabel("depth (hidden layers)")
    sb2 = config.model.init.sigma_b**2
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, facecolor="lightgrey",
               title=f"mean field: {config.model.activation}, σb² = {sb2:.3g}",
               title_fontsize=8)  # fmt: skip
    fig.colorbar(mesh, ax=ax).set_label(f"final {VALUE} (median over completed trials)")
    ax.set_title(title or f"final {VALUE} over σw² and depth")
    fig.savefig(path)
    plt.close(fig)
    where = f"; χ1 = 1 at σw² = {edge:.3g}" if edge is not None else ""
    return path, f"{config.model.activation}, σb² = {sb2:.3g}{where}"


def _crossing(sw2: np.ndarray, chi1: np.ndarray) -> float | None:
    """The σw² where χ1 crosses 1 (linear between grid points), if it does."""
    above = chi1 >= 1.0
    flips = np.nonzero(above[1:] != above[:-1])[0]
    if not flips.size:
        return None
    i = flips[0]
    return float(sw2[i] + (1.0 - chi1[i]) * (sw2[i + 1] - sw2[i]) / (chi1[i + 1] - chi1[i]))
