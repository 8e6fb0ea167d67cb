"""Plain stochastic gradient descent: theta <- theta - lr * g."""

from __future__ import annotations

import numpy as np

from bpstudy.optimizer.base import Optimizer


class SGD(Optimizer):
    name = "sgd"

    def compute_update(self, lr: float) -> None:
        np.multiply(self.grad, lr, out=self.update)
