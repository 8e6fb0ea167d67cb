"""RMSprop (Tieleman & Hinton 2012): s <- rho s + (1 - rho) g^2;
update = lr g / (sqrt(s) + eps)."""

from __future__ import annotations

import numpy as np

from bpstudy.optimizer.base import Optimizer


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(self, theta, grad, n_weights, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(theta, grad, n_weights)
        self.rho, self.eps = rho, eps
        self.s = np.zeros_like(theta)

    def compute_update(self, lr: float) -> None:
        g, u = self.grad, self.update
        np.multiply(g, g, out=u)
        u *= 1.0 - self.rho
        self.s *= self.rho
        self.s += u
        np.sqrt(self.s, out=u)
        u += self.eps
        np.divide(g, u, out=u)
        u *= lr
