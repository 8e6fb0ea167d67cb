"""Direct feedback alignment (Nøkland, 2016): the output error e = dLoss/dscores goes
straight to every hidden layer through its own fixed random matrix, B_i: (out_dim, width),
drawn once, N(0, scale^2 / width).

The variance scale^2 / width is that of feedback alignment's output matrix (and of the
output weights under the usual initialisations), so with scale = 1 every hidden layer
receives an error of the size backprop and FA deliver to the last hidden layer of a fresh
network, and the same learning rate fits all three rules; at depth 1 DFA is FA (B_0
= the transposed output matrix, drawn from the same distribution).
(Normalising by out_dim instead would make the hidden updates sqrt(width / out_dim) times
larger, 2.5x on digits at width 64: a hidden learning-rate change in disguise.)

Hidden block i receives e @ B_i as the error at its output and carries it back through
its own dropout, activation and batch norm (all local to the block) to its Linear layer:
delta_i = (e @ B_i) * f'(u_i) without batch norm, as in the paper. No error passes from
one hidden layer to another, so every layer's update is computed independently. There is
no backward path for a residual skip to shorten, so residual blocks are refused (see
`bpstudy.config.validate.check_combinations`).
"""

from __future__ import annotations

import numpy as np

from bpstudy.learning_rule.base import LearningRule
from bpstudy.model.feedback import Feedback


class DirectFeedbackAlignment(LearningRule):
    name = "direct_feedback_alignment"
    extra_stats = ("alignment",)

    def __init__(
        self,
        out_dim: int,
        depth: int,
        width: int,
        rng: np.random.Generator,
        scale: float = 1.0,
        dtype: np.dtype | str = np.float32,
    ) -> None:
        for key, value in (("out_dim", out_dim), ("depth", depth), ("width", width)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, but got {value}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, but got {scale}")
        self.scale = float(scale)
        B = rng.standard_normal((depth, out_dim, width)) * (scale / np.sqrt(width))
        self.B = B.astype(dtype)  # (depth, out_dim, width); drawn in float64
        self.feedback = {f"hidden.{i}": self.B[i] for i in range(depth)}
        self.feedback_path = Feedback(direct=self.B)
