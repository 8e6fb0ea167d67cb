"""Feedback alignment (Lillicrap et al., 2016): the error travels down through fixed
random matrices B instead of the transposed forward weights W^T.

Every layer that carries the error to the one below (hidden layers 2..depth and the
output layer) gets one B of its W's shape, drawn once, N(0, scale^2 / fan_in) like the
`normal` initialisation with sigma_w = scale. Layer i's update keeps its exact local form,
dW_i = h_{i-1}^T delta_i; only delta_i is computed through B. Batch norm, dropout and
residual skips are handled exactly as in backprop (they are local to a block), so the rule
applies to every architecture.

The matrices sit in one flat vector laid out like the network's weights from hidden.1.W
to output.W, so the angle of each against its W reduces as a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bpstudy.learning_rule.base import LearningRule, angles_deg
from bpstudy.model.feedback import Feedback


class FeedbackAlignment(LearningRule):
    name = "feedback_alignment"
    extra_stats = ("alignment", "feedback_angle")

    def __init__(
        self,
        weight_shapes: Sequence[tuple[int, int]],
        rng: np.random.Generator,
        scale: float = 1.0,
        dtype: np.dtype | str = np.float32,
    ) -> None:
        """weight_shapes: (fan_in, fan_out) of hidden.0.W, ..., hidden.{depth-1}.W, output.W."""
        if len(weight_shapes) < 1:
            raise ValueError(
                f"weight_shapes needs at least the output layer, but got {weight_shapes!r}"
            )
        if not scale > 0:
            raise ValueError(f"scale must be > 0, but got {scale}")
        self.scale = float(scale)
        depth = len(weight_shapes) - 1
        names = [f"hidden.{i}.W" for i in range(1, depth)] + ["output.W"]
        shapes = [tuple(s) for s in weight_shapes[1:]]
        sizes = [a * b for a, b in shapes]
        flat = np.empty(sum(sizes), dtype=np.float64)
        offset = 0
        for (fan_in, fan_out), n in zip(shapes, sizes, strict=True):
            flat[offset : offset + n] = rng.standard_normal(fan_in * fan_out) * (
                scale / np.sqrt(fan_in)
            )
            offset += n
        self.flat = flat.astype(dtype)  # drawn in float64: the same B whatever the dtype
        self.feedback: dict[str, np.ndarray] = {}  # name of the W it replaces -> B (its shape)
        offset = 0
        for name, shape, n in zip(names, shapes, sizes, strict=True):
            self.feedback[name] = self.flat[offset : offset + n].reshape(shape)
            offset += n
        # in W's place in Network.backward: B of hidden.1.W, ..., output.W
        self.feedback_path = Feedback(matrices=tuple(self.feedback.values()))

    def feedback_angles(self, net) -> np.ndarray:
        """(depth,): entry i is the angle between W and B of the layer that carries the
        error into hidden layer i+1 (1-based): hidden layer i+2's, or the output's."""
        start = (
            net.slices["hidden.1.W"][0].start if net.depth > 1 else net.slices["output.W"][0].start
        )
        W = net.theta[start : net.n_weights]  # laid out like self.flat
        out_size = self.feedback["output.W"].size
        angles = np.empty(net.depth)
        if net.depth > 1:
            rows = (net.depth - 1, -1)
            angles[:-1] = angles_deg(
                W[:-out_size].reshape(rows), self.flat[:-out_size].reshape(rows)
            )
        angles[-1:] = angles_deg(W[-out_size:][None, :], self.flat[-out_size:][None, :])
        return angles
