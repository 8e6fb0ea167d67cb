"""A learning rule decides how the output error reaches each hidden layer.

Every rule fills the network's flat gradient with the update it proposes for each
parameter; only what carries the error from one layer to the one below differs
(backprop: W^T; later rules: fixed random matrices).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class LearningRule(ABC):
    name: str = ""

    @abstractmethod
    def backward(self, net, dscores: np.ndarray) -> None:
        """Given dLoss/dscores: (N, out_dim), fill net.grad (without the L1/L2 terms)."""
