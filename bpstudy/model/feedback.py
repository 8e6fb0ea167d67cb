"""What carries the output error down in `Network.backward`, when it is not W^T.

A learning rule of the backprop family differs from backprop only here, so it hands the
network one of these instead of walking the network's layers itself:

- nothing (None): backprop, the error reaches hidden block i through W_{i+1}^T;
- `matrices`: feedback alignment, one fixed matrix of W's shape in place of each W that
  carries the error down (hidden.1.W, ..., output.W, in that order);
- `direct`: direct feedback alignment, block i's error is dscores @ direct[i], straight
  from the output, and no error passes from one hidden block to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True, eq=False)
class Feedback:
    matrices: tuple[np.ndarray, ...] | None = None  # B_{i+1}: (fan_in, fan_out) of W_{i+1}
    direct: np.ndarray | None = None  # (depth, out_dim, width)

    def __post_init__(self) -> None:
        if (self.matrices is None) == (self.direct is None):
            raise ValueError("Feedback takes either matrices or direct, and exactly one")


class UpdateRule(Protocol):
    """What `Network.loss_and_grads` needs of a learning rule (bpstudy.learning_rule's
    LearningRule is one; the model names no rule, so it imports none)."""

    def update(self, net: Any, X: np.ndarray, y: np.ndarray) -> Any:
        """Fill net.grad (without L1/L2) for the batch; return what has `.loss`."""
