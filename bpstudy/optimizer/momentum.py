"""Heavy-ball momentum in PyTorch's form: v <- mu v + g; update = lr v, or with
Nesterov update = lr (g + mu v). (With a constant lr this equals CS231n's
v <- mu v - lr g; it differs only while the learning rate changes.)"""

from __future__ import annotations

import numpy as np

from bpstudy.optimizer.base import Optimizer


class Momentum(Optimizer):
    name = "momentum"

    def __init__(self, theta, grad, n_weights, momentum: float = 0.9, nesterov: bool = False):
        super().__init__(theta, grad, n_weights)
        self.momentum, self.nesterov = momentum, nesterov
        self.v = np.zeros_like(theta)

    def compute_update(self, lr: float) -> None:
        self.v *= self.momentum
        self.v += self.grad
        if self.nesterov:
            np.multiply(self.v, self.momentum, out=self.update)
            self.update += self.grad
            self.update *= lr
        else:
            np.multiply(self.v, lr, out=self.update)
