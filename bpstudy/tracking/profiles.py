"""The per-layer magnitudes in forms MLflow's default charts can show (docs/dashboard.md).

MLflow draws every metric on a linear axis. A vanishing run's gradient norms span ten
decades or more, so the early layers' `grad_norm/Lii` charts read 0 at every tick and all
layers' curves have one shape. Two readable forms go beside the contract's names, which
stay as they are:

- log10 companions, `grad_norm_log10/Lii` (and `delta_norm_log10`, `update_ratio_log10`,
  the statistics that span decades), at the points already sent: the suffix names the
  axis, as `grad_norm/ratio_log10` does, and each sits in a chart section of its own
  beside the linear one. A value of 0 (a layer with no gradient at all) has no log and is
  left out.
- the profile in one chart: metrics whose step axis is the hidden layer (1 = input side),
  `profile_by_layer/grad_norm_log10_first` and `..._last` (log10 grad_norm of each layer
  at the first and the last logged step), and `profile_by_layer/predicted_log10`, the
  mean-field prediction drawn through the first step's last layer (as in
  plots/grad_profile.png). Selected runs overlay in MLflow's chart view: every trial's
  profile in one chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LOG10_STATS = ("grad_norm", "delta_norm", "update_ratio")  # those that span decades
PROFILE_PREFIX = "profile_by_layer"  # the step axis of these metrics is the layer
PROFILE_FIRST = f"{PROFILE_PREFIX}/grad_norm_log10_first"
PROFILE_LAST = f"{PROFILE_PREFIX}/grad_norm_log10_last"
PROFILE_PREDICTED = f"{PROFILE_PREFIX}/predicted_log10"


def is_derived(key: str) -> bool:
    """A metric this module derives from the logged statistics (a rerun of a run logged
    before bpstudy logged these compares the statistics themselves)."""
    head = key.split("/", 1)[0]
    return head == PROFILE_PREFIX or head in {f"{stat}_log10" for stat in LOG10_STATS}


def log10_key(stat: str, layer: int) -> str:
    """grad_norm, 3 -> grad_norm_log10/L03."""
    return f"{stat}_log10/L{layer:02d}"


def _log10(value: float) -> float | None:
    return math.log10(value) if value > 0 and math.isfinite(value) else None


def log10_companions(row: np.ndarray, columns: Sequence[str], now: int, step: int) -> list:
    """The log10 of each LOG10_STATS column of one logged step's row (depth, columns)."""
    from mlflow.entities import Metric

    out = []
    for stat in LOG10_STATS:
        if stat not in columns:
            continue
        j = columns.index(stat)
        for i in range(row.shape[0]):
            value = _log10(float(row[i, j]))
            if value is not None:
                out.append(Metric(log10_key(stat, i + 1), value, now, step))
    return out


def profile(row: np.ndarray, columns: Sequence[str], key: str, now: int) -> list:
    """log10 grad_norm of each hidden layer of one logged step's row, step = layer."""
    from mlflow.entities import Metric

    j = columns.index("grad_norm")
    out = []
    for i in range(row.shape[0]):
        value = _log10(float(row[i, j]))
        if value is not None:
            out.append(Metric(key, value, now, i + 1))
    return out


def predicted_profile(row: np.ndarray, columns: Sequence[str], predicted: Sequence[float],
                      now: int) -> list:  # fmt: skip
    """The mean-field profile (log10 ‖dW_l‖ − log10 ‖dW_L‖, l = 1 … L) through the last
    layer's measured norm in `row` (the first logged step's); none if that norm is 0."""
    from mlflow.entities import Metric

    top = _log10(float(row[-1, columns.index("grad_norm")]))
    if top is None or len(predicted) != row.shape[0]:
        return []
    return [
        Metric(PROFILE_PREDICTED, top + float(p), now, i + 1)
        for i, p in enumerate(predicted)
        if math.isfinite(p)
    ]
