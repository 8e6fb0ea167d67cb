"""The end-of-run summary: status, final metrics, and a short per-layer table of the
first vs last logged gradient norm, where vanishing or exploding shows at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bpstudy.training.state import TrainResult
from bpstudy.training.verdict import Verdict

MAX_ROWS = 10


def layer_table(layer_stats: pd.DataFrame, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """Per layer: grad_norm at the first and last logged step, and the last step's shares
    of dead and of saturated units."""
    if layer_stats.empty:
        return pd.DataFrame(
            columns=["layer", "grad_norm_first", "grad_norm_last", "dead_last", "saturation_last"]
        )
    first_step, last_step = layer_stats["step"].min(), layer_stats["step"].max()
    first = layer_stats[layer_stats["step"] == first_step].set_index("layer")
    last = layer_stats[layer_stats["step"] == last_step].set_index("layer")
    table = pd.DataFrame(
        {
            "grad_norm_first": first["grad_norm"],
            "grad_norm_last": last["grad_norm"],
            "dead_last": last["dead"],
            "saturation_last": last["saturation"],
        }
    ).reset_index()
    if len(table) > max_rows:
        keep = np.unique(np.linspace(0, len(table) - 1, max_rows).round().astype(int))
        table = table.iloc[keep]
    return table


def render(
    result: TrainResult,
    outcome: str | None = None,
    verdict: Verdict | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The summary; `notes` are lines of the caller's after the verdict (the theory's)."""
    lines = [
        f"status: {result.status}  epochs: {result.epochs}  steps: {result.steps}  time: {result.wall_time:.1f}s"
    ]
    if outcome:
        lines.append(f"outcome: {outcome}")
    if verdict is not None:
        shown = f" (symptoms: {', '.join(verdict.symptoms)})" if len(verdict.symptoms) > 1 else ""
        lines.append(f"training: {verdict.training}{shown}")
    lines.extend(notes)
    if result.diverged:
        lines.append(f"diverged at step {result.diverged_step}: {result.diverged_reason}")
    if result.stop_reason:
        lines.append(f"stopped: {result.stop_reason}")
    if result.metrics:
        lines.append("  ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items())))
    table = layer_table(result.layer_stats)
    if not table.empty:
        lines.append("per-layer gradient norm (first vs last logged step):")
        lines.append(f"  {'layer':>5}  {'first':>10}  {'last':>10}  {'dead':>7}  {'saturated':>9}")
        for row in table.itertuples(index=False):
            lines.append(
                f"  {row.layer:>5}  {row.grad_norm_first:>10.3e}  {row.grad_norm_last:>10.3e}"
                f"  {row.dead_last:>7.1%}  {row.saturation_last:>9.1%}"
            )
        g = result.layer_stats[result.layer_stats["step"] == result.layer_stats["step"].min()][
            "grad_norm"
        ].to_numpy()
        if g[0] > 0 and g[-1] > 0:
            lines.append(
                f"  first/last layer gradient ratio at the start: 10^{math.log10(g[0] / g[-1]):+.1f}"
            )
    if "alignment" in result.layer_stats and not result.layer_stats.empty:
        lines.append(alignment_line(result.layer_stats))
    if "settle/phases" in result.rule_totals:
        lines.append(settle_line(result.rule_totals))
    return "\n".join(lines)


def settle_line(totals: dict[str, float]) -> str:
    """How the energy-based rule's phases settled over the run; the unsettled ones named."""
    phases, unsettled = int(totals["settle/phases"]), int(totals["settle/unsettled"])
    line = f"settling: {phases} phases, {totals['settle/mean_iterations']:.1f} sweeps on average; "
    if unsettled:
        line += (
            f"{unsettled} did not reach learning_rule.settle_tol within "
            "learning_rule.settle_steps (their updates came from unsettled states)"
        )
    else:
        line += "all reached learning_rule.settle_tol"
    evals = int(totals.get("settle/eval_unsettled", 0))
    if evals:
        line += f"; {evals} evaluation passes were unsettled"
    return line


def alignment_line(layer_stats: pd.DataFrame) -> str:
    """Mean over hidden layers of the angle between the rule's update and the true
    gradient, at the first and the last logged step (90 degrees: no better than random)."""
    by_step = layer_stats.groupby("step")["alignment"].mean()
    last_layer = layer_stats[layer_stats["layer"] == layer_stats["layer"].max()]
    last_layer = last_layer.set_index("step")["alignment"]
    return (
        "alignment with the true gradient (mean over layers, first -> last logged step): "
        f"{by_step.iloc[0]:.1f} -> {by_step.iloc[-1]:.1f} deg; last hidden layer "
        f"{last_layer.iloc[0]:.1f} -> {last_layer.iloc[-1]:.1f} deg"
    )
