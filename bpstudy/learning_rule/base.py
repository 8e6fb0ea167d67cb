"""A learning rule: the update it proposes for one batch, through one narrow interface.

    rule.update(net, X, y) -> BatchResult   fills net.grad (without the L1/L2 terms) and
                                            returns the model's output on the batch
    rule.predict(net, X) -> scores          the model's eval-mode output
    rule.exact_gradient(net, batch)         fills net.grad with the true gradient of the
                                            model's data loss on that batch (the
                                            alignment diagnostic's reference)

The backprop family runs one forward pass and `Network.backward`, and differs only in
what carries the error down, its `feedback_path` (bpstudy.model.feedback): backprop W^T
(None); feedback alignment fixed random matrices of W's shape; direct feedback alignment
fixed random matrices from the output to every hidden layer. An energy-based rule
(energy.py) overrides `update` with its own settling phases; its model's output may be a
fixed point (`predict`), and it reports how the settling went (`BatchResult.settle`).

A rule that is not backprop names the extra per-layer statistics the diagnostics should
log for it in `extra_stats` (docs/architecture.md §4): `alignment`, the angle between its
update and the true gradient, and for rules with a W-shaped feedback matrix,
`feedback_angle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bpstudy.model import Network
from bpstudy.model.feedback import Feedback


@dataclass(frozen=True)
class Settle:
    """How one settling phase of an energy-based rule ended on one batch."""

    phase: str  # free | clamped | nudged | nudged_pos | nudged_neg
    iterations: int  # sweeps taken (each updates every layer once)
    residual: float  # of the last sweep: the largest weighted state change (energy.py)
    converged: bool  # residual <= settle_tol within settle_steps


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a rule's update computed on one batch besides the gradient."""

    X: np.ndarray  # (N, in_dim)
    y: np.ndarray  # labels (N,) or targets (N, out_dim), as given
    scores: np.ndarray  # (N, out_dim): the model's training-mode output
    loss: float  # the data loss of scores
    dscores: np.ndarray  # dLoss/dscores: (N, out_dim)
    settle: tuple[Settle, ...] = ()  # energy-based rules: one entry per phase


class LearningRule:
    """Backprop's update; a subclass changes `feedback_path`, or `update` altogether."""

    name: ClassVar[str] = ""
    #: per-layer statistics beyond the standard ones that the diagnostics log for this rule
    extra_stats: ClassVar[tuple[str, ...]] = ()
    #: what carries the error down in Network.backward; None is W^T
    feedback_path: Feedback | None = None

    def update(self, net: Network, X: np.ndarray, y: np.ndarray) -> BatchResult:
        """One training-mode forward pass, the data loss, and `backward`."""
        scores = net.forward(X, train=True)
        loss, dscores = net.loss_fn(scores, net.targets(y))
        self.backward(net, dscores)
        return BatchResult(X, y, scores, loss, dscores)

    def backward(self, net: Network, dscores: np.ndarray) -> None:
        """Given dLoss/dscores: (N, out_dim) of the cached forward, fill net.grad."""
        net.backward(dscores, self.feedback_path)

    def predict(self, net: Network, X: np.ndarray) -> np.ndarray:
        """Eval-mode scores (N, out_dim) of the model this rule trains."""
        return net.forward(X, train=False)

    def exact_gradient(self, net: Network, batch: BatchResult) -> None:
        """Fill net.grad (without L1/L2) with the true gradient of the model's data loss
        on `batch`, whose forward pass the network still caches."""
        net.backward(batch.dscores)

    def step_stats(self) -> tuple[str, ...]:
        """Names of the per-step scalars this rule reports beside lr (energy rules: settle/*)."""
        return ()

    def step_values(self, batch: BatchResult) -> tuple[float, ...]:
        """The values of `step_stats()` for a batch's pass."""
        return ()

    def run_totals(self) -> dict[str, float]:
        """What the rule counted over the run's training steps (metric name -> value)."""
        return {}

    def feedback_angles(self, net: Network) -> np.ndarray | None:
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
