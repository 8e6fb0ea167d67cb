"""A learning rule decides how the output error reaches each hidden layer.

Every rule fills the network's flat gradient with the update it proposes for each
parameter; only what carries the error from one layer to the one below differs
(backprop: W^T; feedback alignment: fixed random matrices of W's shape; direct feedback
alignment: fixed random matrices straight from the output to every hidden layer).

A rule that is not backprop names the extra per-layer statistics the diagnostics should
log for it in `extra_stats` (docs/architecture.md §4): `alignment`, the angle between its update and the
true gradient, and for rules with a W-shaped feedback matrix, `feedback_angle`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class LearningRule(ABC):
    name: str = ""
    #: per-layer statistics beyond the standard ones that the diagnostics log for this rule
    extra_stats: tuple[str, ...] = ()

    @abstractmethod
    def backward(self, net, dscores: np.ndarray) -> None:
        """Given dLoss/dscores: (N, out_dim), fill net.grad (without the L1/L2 terms)."""

    def feedback_angles(self, net) -> np.ndarray | None:
        """(depth,) angles in degrees between each feedback matrix and the forward weights
        it stands in for, or None when the rule has no such matrices."""
        return None


def angles_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angle in degrees between each row of A: (L, n) and the same row of B: (L, n).

    2 atan2(|u - v|, |u + v|) with u, v the unit rows (Kahan): exact at 0 and 180 degrees,
    where arccos of a rounded cosine is off by up to a few hundredths of a degree in float32.
    A row of zeros has no direction: NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u = A / np.linalg.norm(A, axis=1, keepdims=True)
        v = B / np.linalg.norm(B, axis=1, keepdims=True)
        diff = np.linalg.norm(u - v, axis=1)
        total = np.linalg.norm(u + v, axis=1)
    angle = np.degrees(2.0 * np.arctan2(diff, total)).astype(np.float64)
    angle[~(np.isfinite(diff) & np.isfinite(total))] = np.nan
    return angle
