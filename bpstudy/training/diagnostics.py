"""Per-layer statistics of docs/architecture.md §4, computed on logging steps and kept in memory.

| grad_norm         | ||dLoss/dW_i||_F, the raw update the rule proposes (before clipping)  |
| delta_norm        | RMS over examples of ||dloss_n/du_i||, u_i the pre-activation         |
| weight_norm       | ||W_i||_F after the step                                              |
| update_ratio      | ||applied update of W_i||_F / ||W_i||_F                               |
| act_std           | std of the activation output f(u_i) over batch and units              |
| dead              | fraction of units with f'(u) < 1% of max f' for every example        |
| saturation        | fraction of units with f'(u) < 1% of max f' for >= 90% of the batch   |
| saturated_entries | fraction of (example, unit) entries with f'(u) < 1% of max f'         |
| grad_snr          | ||mean g_n||^2 / mean ||g_n - mean g_n||^2 of layer i's (W_i, b_i)    |
| norm_test         | Byrd et al.'s norm test, as Cockpit computes it (gradient_noise.py)   |

A unit is saturated on an example where its slope is below 1% of the activation's largest
(relu: it did not fire), so `dead` <= `saturation`: a dead unit passes no gradient for the
whole batch. The gradient-noise pair comes from per-example gradient norms without
per-example gradients; gradient_noise.py says how, and what they mean for a rule other
than backprop.

With a learning rule other than backprop, the columns its `extra_stats` names follow
(backprop runs keep exactly the columns above; its angle is 0 by definition):

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

import functools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from bpstudy.learning_rule import LearningRule, angles_deg
from bpstudy.training.events import Listener
from bpstudy.training.gradient_noise import (
    data_grad_sq_norms,
    error_sq_norms,
    input_sq_norms,
    noise_stats,
    rowwise_sq_norms,
)

STATS = (
    "grad_norm",
    "delta_norm",
    "weight_norm",
    "update_ratio",
    "act_std",
    "dead",
    "saturation",
    "saturated_entries",
    "grad_snr",
    "norm_test",
)
COL = {name: j for j, name in enumerate(STATS)}
CANCELLATION = 10.0  # act_std recomputes a layer whose E[a^2] exceeds 10x its variance
CHUNK_BYTES = 1 << 19  # the saturation flags' buffer: a quarter of a 2 MiB L2 cache
SATURATED_SHARE = 0.9  # a unit counts in `saturation` when saturated on >= 90% of the batch
EXTRA_STATS = ("alignment", "feedback_angle")  # what a non-backprop rule may add


def hidden_weights(flat: np.ndarray, net) -> tuple[np.ndarray, np.ndarray | None]:
    """Views of the hidden layers' W inside a flat vector: the first layer's, flat, and the
    others' as one (depth - 1, width^2) block (they have equal shapes and sit next to each
    other), or None for a single hidden layer."""
    slices = net.hidden_weight_slices
    first = flat[slices[0]]
    if len(slices) == 1:
        return first, None
    return first, flat[slices[1].start : slices[-1].stop].reshape(len(slices) - 1, -1)


class LayerNorms:
    """Squared Frobenius norm of each hidden layer's W inside one flat vector (theta, its
    gradient or the update): (depth,), as one dot and one batch of dot products on views
    made once (the vector lives as long as the network)."""

    def __init__(self, flat: np.ndarray, net) -> None:
        self.flat = flat
        self.first, rest = hidden_weights(flat, net)
        self.out = np.empty(len(net.hidden_weight_slices))
        self.rows = self.cols = None
        if rest is not None:
            self.rows, self.cols = rest[:, None, :], rest[:, :, None]
            self.sums = np.empty((rest.shape[0], 1, 1), dtype=flat.dtype)

    def __call__(self) -> np.ndarray:
        """The norms now, in a buffer the next call overwrites."""
        self.out[0] = np.dot(self.first, self.first)
        if self.rows is not None:
            np.matmul(self.rows, self.cols, out=self.sums)
            self.out[1:] = self.sums.reshape(-1)
        return self.out


def unit_stats(counts: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dead, saturation, saturated_entries), each (depth,), from counts: (depth, width),
    the number of examples of a batch of N on which each unit is saturated."""
    dead = (counts >= N).mean(axis=1)
    saturation = (counts >= SATURATED_SHARE * N).mean(axis=1)
    return dead, saturation, counts.mean(axis=1) / N


def layer_angles(a: np.ndarray, b: np.ndarray, net) -> np.ndarray:
    """Angle in degrees between each hidden layer's W-part of two flat vectors: (depth,)."""
    (a_first, a_rest), (b_first, b_rest) = hidden_weights(a, net), hidden_weights(b, net)
    out = np.empty(len(net.hidden_weight_slices))
    out[0] = angles_deg(a_first[None, :], b_first[None, :])[0]
    if a_rest is not None:
        out[1:] = angles_deg(a_rest, b_rest)
    return out


def alignment_angles(
    net, dscores: np.ndarray, exact: Callable[[], None] | None = None
) -> np.ndarray:
    """(depth,) angles in degrees between the update in net.grad (what a rule proposed
    for each hidden W, penalty included) and the true gradient: computed by `exact()`
    (the rule's exact_gradient, which may run forward passes of its own), by default by
    backprop on the same cached forward pass from dscores: (N, out_dim). net.grad and the
    workspace's activations and error signals are left as they were."""
    ws = net.last_workspace
    proposed, deltas, acts = net.grad.copy(), ws.deltas.copy(), ws.acts.copy()
    try:
        if exact is None:
            net.backward(dscores)
        else:
            exact()
        net.add_penalty_grad()
        return layer_angles(proposed, net.grad, net)
    finally:
        net.grad[...] = proposed
        ws.deltas[...] = deltas
        ws.acts[...] = acts


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
        # the rule's own per-step scalars (settle/*), one tuple per entry of `scalars`
        self.step_columns: tuple[str, ...] = rule.step_stats() if rule is not None else ()
        self.step_extra: list[tuple[float, ...]] = []
        self._pending: np.ndarray | None = None
        self._norms: dict[str, LayerNorms] = {}
        self._scratch: dict[str, np.ndarray] = {}

    def scratch(self, name: str, shape: tuple[int, ...], dtype, fill: float | None = None):
        """A buffer kept between logging steps, filled with `fill` when (re)made."""
        buf = self._scratch.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._scratch[name] = np.empty(shape, dtype=dtype)
            if fill is not None:
                buf.fill(fill)
        return buf

    def layer_norms(self, name: str, flat: np.ndarray, net) -> np.ndarray:
        norms = self._norms.get(name)
        if norms is None or norms.flat is not flat:
            norms = self._norms[name] = LayerNorms(flat, net)
        return norms()

    def on_gradients(self, trainer, step: int) -> None:
        net = trainer.net
        ws = net.last_workspace
        L, N, width = ws.acts.shape
        row = np.empty((L, len(self.columns)))
        grad_sq = self.layer_norms("grad", net.grad, net)
        row[:, COL["grad_norm"]] = np.sqrt(grad_sq)
        delta_sq = rowwise_sq_norms(ws.deltas.reshape(L * N, width)).reshape(L, N)
        row[:, COL["delta_norm"]] = np.sqrt(N * delta_sq.sum(axis=1))
        act_sq = rowwise_sq_norms(ws.acts.reshape(L * N, width)).reshape(L, N)
        row[:, COL["act_std"]] = self._act_std(ws.acts, act_sq)
        counts = self._saturated_counts(net, ws.acts)
        row[:, COL["dead"]], row[:, COL["saturation"]], row[:, COL["saturated_entries"]] = (
            unit_stats(counts, N)
        )
        signal = data_grad_sq_norms(net, grad_sq)
        row[:, COL["grad_snr"]], row[:, COL["norm_test"]] = noise_stats(
            error_sq_norms(net, delta_sq), input_sq_norms(net, act_sq), signal
        )
        if len(self.columns) > len(STATS):
            self._extra(trainer, row)  # after the error signals are read: it re-runs backward
        self._pending = row

    def _act_std(self, acts: np.ndarray, act_sq: np.ndarray) -> np.ndarray:
        """(depth,) std of each layer's activations over batch and units, from the
        per-example sums and act_sq, the per-example sums of squares (both (depth, N),
        added up in float64): var = E[a^2] - E[a]^2, one pass over acts. Where the mean
        dominates (E[a^2] > CANCELLATION * var, e.g. a saturated sigmoid layer) the
        subtraction would lose the digits float32 sums keep; such a layer is centred
        and summed again."""
        L, N, width = acts.shape
        n = N * width
        ones = self.scratch("ones_width", (width,), acts.dtype, 1.0)
        sums = (acts.reshape(L * N, width) @ ones).reshape(L, N)  # BLAS matrix-vector
        mean = sums.sum(axis=1, dtype=np.float64) / n
        mean_sq = act_sq.sum(axis=1, dtype=np.float64) / n
        var = mean_sq - mean**2
        for i in np.flatnonzero(mean_sq > CANCELLATION * var):
            work = self.scratch("centred", (N, width), acts.dtype)
            centred = np.subtract(acts[i], mean[i].astype(acts.dtype), out=work).ravel()
            # the corrected two-pass formula: the centre's own rounding taken out
            shift = centred.sum(dtype=np.float64) / n
            var[i] = np.dot(centred, centred) / n - shift**2
        return np.sqrt(var)

    def _saturated_counts(self, net, acts: np.ndarray) -> np.ndarray:
        """(depth, width): on how many examples of the batch each unit is saturated. The
        flags are made a few layers at a time, in a buffer of at most CHUNK_BYTES that
        stays in cache beside what the training step needs."""
        L, N, width = acts.shape
        act = net.blocks[0].activation  # one activation for every hidden layer
        per = max(1, CHUNK_BYTES // (N * width * acts.itemsize))  # layers per chunk
        work = self.scratch("flags", (min(per, L), N, width), acts.dtype)
        ones = self.scratch("ones_batch", (N,), acts.dtype, 1.0)
        counts = np.empty((L, width), dtype=acts.dtype)
        for start in range(0, L, per):
            stop = min(start + per, L)
            flags = act.saturated(acts[start:stop], out=work[: stop - start])
            np.matmul(ones, flags, out=counts[start:stop])  # BLAS matrix-vector products
        return counts

    def _extra(self, trainer, row: np.ndarray) -> None:
        for j, name in enumerate(self.columns[len(STATS) :], start=len(STATS)):
            if name == "alignment":
                net, batch = trainer.net, trainer.batch
                exact = functools.partial(self.rule.exact_gradient, net, batch)
                row[:, j] = alignment_angles(net, batch.dscores, exact)
            elif name == "feedback_angle":
                row[:, j] = self.rule.feedback_angles(trainer.net)

    def on_update(self, trainer, step: int) -> None:
        """Weight norms and update ratios after the step. A zero W gives an infinite or
        NaN ratio, without a warning inside Trainer.fit (it ignores floating-point errors)."""
        net, row = trainer.net, self._pending
        w_norm = np.sqrt(self.layer_norms("theta", net.theta, net))
        u_norm = np.sqrt(self.layer_norms("update", trainer.optimizer.update, net))
        row[:, COL["weight_norm"]] = w_norm
        row[:, COL["update_ratio"]] = u_norm / w_norm
        first, last = float(row[0, COL["grad_norm"]]), float(row[-1, COL["grad_norm"]])
        ratio = math.log10(first) - math.log10(last) if first > 0 and last > 0 else math.nan
        self.steps.append(step)
        self.rows.append(row)
        self.scalars.append((step, trainer.lr, trainer.last_loss, ratio))
        if self.step_columns:
            self.step_extra.append(self.rule.step_values(trainer.batch))
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
        """One row per logging step: step, lr, train/loss of the batch,
        grad_norm/ratio_log10, then the rule's `step_columns`."""
        frame = pd.DataFrame(
            self.scalars, columns=["step", "lr", "batch_loss", "grad_norm/ratio_log10"]
        )
        if self.step_columns:
            extra = pd.DataFrame(self.step_extra, columns=list(self.step_columns))
            frame = pd.concat([frame, extra], axis=1)
        return frame
