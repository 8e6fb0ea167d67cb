"""Per-layer statistics of DESIGN §4, computed on logging steps and kept in memory.

| grad_norm    | ||dLoss/dW_i||_F, the raw update the rule proposes (before clipping) |
| delta_norm   | RMS over examples of ||dloss_n/du_i||, u_i the pre-activation        |
| weight_norm  | ||W_i||_F after the step                                             |
| update_ratio | ||applied update of W_i||_F / ||W_i||_F                              |
| act_std      | std of the activation output f(u_i) over batch and units             |
| saturation   | fraction of (example, unit) entries with f'(u) < 1% of max f'        |

With a learning rule other than backprop, the columns its `extra_stats` names follow
(backprop runs keep exactly the six above; its angle is 0 by definition):

| alignment      | angle in degrees between the rule's update of W_i (L1/L2 included, |
|                | before clipping) and the true gradient dLoss/dW_i on the same batch |
| feedback_angle | angle in degrees between the feedback matrix B that carries the    |
|                | error into layer i and the W it replaces (that of layer i+1, or the |
|                | output layer's for the last): feedback alignment only               |

The true gradient costs one more backward pass on the cached forward, on logging steps
only; the rule's gradient and error signals are put back before anyone else sees them.
Norms over parameters read slices of the network's flat vectors.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bpstudy.learning_rule import Backprop, LearningRule, angles_deg
from bpstudy.training.events import Listener

STATS = ("grad_norm", "delta_norm", "weight_norm", "update_ratio", "act_std", "saturation")
EXTRA_STATS = ("alignment", "feedback_angle")  # what a non-backprop rule may add


def layer_sq_norms(flat: np.ndarray, net) -> np.ndarray:
    """Squared Frobenius norm of each hidden layer's W inside a flat vector: (depth,).

    Hidden layers after the first have equal shapes and sit next to each other in the
    flat vector, so they reduce as one (depth - 1, width^2) block."""
    slices = net.hidden_weight_slices
    out = np.empty(len(slices))
    first = flat[slices[0]]
    out[0] = np.dot(first, first)
    if len(slices) > 1:
        rest = flat[slices[1].start : slices[-1].stop].reshape(len(slices) - 1, -1)
        out[1:] = rowwise_sq_norms(rest)
    return out


def rowwise_sq_norms(A: np.ndarray) -> np.ndarray:
    """Sum of squares of each row of a 2-D array, as a batch of BLAS dot products
    (about twice as fast as einsum here)."""
    return np.matmul(A[:, None, :], A[:, :, None]).reshape(-1)


def layer_angles(a: np.ndarray, b: np.ndarray, net) -> np.ndarray:
    """Angle in degrees between each hidden layer's W-part of two flat vectors: (depth,)."""
    slices = net.hidden_weight_slices
    out = np.empty(len(slices))
    out[0] = angles_deg(a[slices[0]][None, :], b[slices[0]][None, :])[0]
    if len(slices) > 1:
        rest, rows = slice(slices[1].start, slices[-1].stop), (len(slices) - 1, -1)
        out[1:] = angles_deg(a[rest].reshape(rows), b[rest].reshape(rows))
    return out


def alignment_angles(net, dscores: np.ndarray) -> np.ndarray:
    """(depth,) angles in degrees between the update in net.grad (what a rule proposed
    for each hidden W, penalty included) and the true gradient, computed by backprop on
    the same cached forward pass from dscores: (N, out_dim). net.grad and the workspace's
    error signals are left as they were."""
    ws = net.last_workspace
    proposed, deltas = net.grad.copy(), ws.deltas.copy()
    try:
        Backprop().backward(net, dscores)
        net.add_penalty_grad()
        return layer_angles(proposed, net.grad, net)
    finally:
        net.grad[...] = proposed
        ws.deltas[...] = deltas


class Diagnostics(Listener):
    """Collects the per-layer table and the per-step scalars (lr, gradient ratio)."""

    def __init__(self, rule: LearningRule | None = None) -> None:
        self.rule = rule
        extra = tuple(rule.extra_stats) if rule is not None else ()
        unknown = [name for name in extra if name not in EXTRA_STATS]
        if unknown:
            raise ValueError(f"unknown extra statistics {unknown}; known: {EXTRA_STATS}")
        self.columns: tuple[str, ...] = (*STATS, *extra)  # of each row, in order
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []  # each (depth, len(self.columns))
        self.scalars: list[tuple[int, float, float, float]] = []  # step, lr, loss, ratio
        self._pending: np.ndarray | None = None
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}
        self._ones: np.ndarray | None = None

    def ones(self, n: int, dtype) -> np.ndarray:
        if self._ones is None or self._ones.size != n or self._ones.dtype != dtype:
            self._ones = np.ones(n, dtype=dtype)
        return self._ones

    def scratch(self, like: np.ndarray) -> np.ndarray:
        buf = self._scratch.get(like.shape)
        if buf is None or buf.dtype != like.dtype:
            self._scratch.clear()
            buf = self._scratch[like.shape] = np.empty_like(like)
        return buf

    def on_gradients(self, trainer, step: int) -> None:
        net = trainer.net
        ws = net.last_workspace
        L, N, _ = ws.acts.shape
        A = ws.acts.reshape(L, -1)
        row = np.empty((L, len(self.columns)))
        row[:, 0] = np.sqrt(layer_sq_norms(net.grad, net))
        n = A.shape[1]
        ones = self.ones(n, A.dtype)
        row[:, 1] = np.sqrt(N * rowwise_sq_norms(ws.deltas.reshape(L, -1)))
        mean = (A @ ones) / n  # row sums as one BLAS matrix-vector product
        centred = np.subtract(A, mean[:, None], out=self.scratch(A))
        row[:, 4] = np.sqrt(rowwise_sq_norms(centred) / n)
        act = net.blocks[0].activation  # one activation for every hidden layer
        flags = act.saturated(A, out=self.scratch(A))  # 1.0 where saturated
        row[:, 5] = (flags @ ones) / n
        if len(self.columns) > len(STATS):
            self._extra(trainer, row)  # after delta_norm: it re-runs the backward pass
        self._pending = row

    def _extra(self, trainer, row: np.ndarray) -> None:
        for j, name in enumerate(self.columns[len(STATS) :], start=len(STATS)):
            if name == "alignment":
                row[:, j] = alignment_angles(trainer.net, trainer.dscores)
            elif name == "feedback_angle":
                row[:, j] = self.rule.feedback_angles(trainer.net)

    def on_update(self, trainer, step: int) -> None:
        net, row = trainer.net, self._pending
        w_norm = np.sqrt(layer_sq_norms(net.theta, net))
        u_norm = np.sqrt(layer_sq_norms(trainer.optimizer.update, net))
        row[:, 2] = w_norm
        with np.errstate(divide="ignore", invalid="ignore"):
            row[:, 3] = u_norm / w_norm
        g = row[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = math.log10(g[0] / g[-1]) if g[0] > 0 and g[-1] > 0 else float("nan")
        self.steps.append(step)
        self.rows.append(row)
        self.scalars.append((step, trainer.lr, trainer.last_loss, ratio))
        self._pending = None

    def layer_frame(self) -> pd.DataFrame:
        """One row per (step, layer): step, layer (1-based), then `columns` (STATS, and
        the rule's extra statistics)."""
        if not self.rows:
            return pd.DataFrame(columns=["step", "layer", *self.columns])
        depth = self.rows[0].shape[0]
        table = np.concatenate(self.rows)
        frame = pd.DataFrame(table, columns=list(self.columns))
        frame.insert(0, "layer", np.tile(np.arange(1, depth + 1), len(self.rows)))
        frame.insert(0, "step", np.repeat(np.asarray(self.steps, dtype=np.int64), depth))
        return frame

    def step_frame(self) -> pd.DataFrame:
        """One row per logging step: step, lr, train/loss of the batch, grad_norm/ratio_log10."""
        return pd.DataFrame(
            self.scalars, columns=["step", "lr", "batch_loss", "grad_norm/ratio_log10"]
        )
