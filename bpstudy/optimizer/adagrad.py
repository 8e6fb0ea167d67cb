"""Adagrad (Duchi et al. 2011): G <- G + g^2; update = lr g / (sqrt(G) + eps)."""

from __future__ import annotations

import numpy as np

from bpstudy.optimizer.base import Optimizer


class Adagrad(Optimizer):
    name = "adagrad"

    def __init__(self, theta, grad, n_weights, eps: float = 1e-10):
        super().__init__(theta, grad, n_weights)
        self.eps = eps
        self.G = np.zeros_like(theta)

    def compute_update(self, lr: float) -> None:
        g, u = self.grad, self.update
        np.multiply(g, g, out=u)
        self.G += u
        np.sqrt(self.G, out=u)
        u += self.eps
        np.divide(g, u, out=u)
        u *= lr
