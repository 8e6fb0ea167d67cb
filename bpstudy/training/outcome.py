"""Name what happened to a run: healthy, vanishing, exploding or diverged.

Rules, in order (thresholds from the `outcome` config node):
1. diverged   the loss or a gradient became NaN or infinite, in training or in the
              final evaluation (a net whose val/loss is NaN has not learnt anything);
2. exploding  the median over logged steps of log10(|dW_1| / |dW_L|) is above
              `exploding_log10`, or any layer's gradient norm exceeded `exploding_norm`;
3. vanishing  that median is below `vanishing_log10` (the first hidden layer gets a
              gradient that many orders of magnitude smaller than the last), or the first
              layer's median gradient norm is below `vanishing_norm`;
4. healthy    otherwise.
('failed', a run that raised, is decided by tracking, which sees the exception.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bpstudy.training.state import TrainResult

OUTCOMES = ("healthy", "vanishing", "exploding", "diverged", "failed")


@dataclass(frozen=True)
class Thresholds:
    vanishing_log10: float = -3.0
    exploding_log10: float = 3.0
    vanishing_norm: float = 1e-8
    exploding_norm: float = 1e4


def classify(result: TrainResult, t: Thresholds | None = None) -> str:
    t = t or Thresholds()
    losses = [v for k, v in result.metrics.items() if k.endswith("/loss")]
    if result.diverged or not all(math.isfinite(v) for v in losses):
        return "diverged"
    stats = result.layer_stats
    if stats.empty:
        return "healthy"
    ratio = result.step_stats["grad_norm/ratio_log10"].to_numpy()
    ratio = ratio[np.isfinite(ratio)]
    median_ratio = float(np.median(ratio)) if ratio.size else 0.0
    first_layer = stats.loc[stats["layer"] == 1, "grad_norm"].to_numpy()
    if median_ratio > t.exploding_log10 or float(stats["grad_norm"].max()) > t.exploding_norm:
        return "exploding"
    if median_ratio < t.vanishing_log10 or float(np.median(first_layer)) < t.vanishing_norm:
        return "vanishing"
    return "healthy"
