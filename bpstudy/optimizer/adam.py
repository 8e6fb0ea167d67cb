"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
update = lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
AdamW adds lr * weight_decay * W to the update of weights (decoupled decay).
"""

from __future__ import annotations

import numpy as np

from bpstudy.optimizer.base import Optimizer


class Adam(Optimizer):
    name = "adam"

    def __init__(
        self,
        theta,
        grad,
        n_weights,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(theta, grad, n_weights)
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)

    def compute_update(self, lr: float) -> None:
        g, u, b1, b2 = self.grad, self.update, self.beta1, self.beta2
        self.m *= b1
        np.multiply(g, 1.0 - b1, out=u)
        self.m += u
        np.multiply(g, g, out=u)
        u *= 1.0 - b2
        self.v *= b2
        self.v += u
        # u = sqrt(v / (1 - b2^t)) + eps, then m_hat / u
        np.multiply(self.v, 1.0 / (1.0 - b2**self.t), out=u)
        np.sqrt(u, out=u)
        u += self.eps
        np.divide(self.m, u, out=u)
        u *= lr / (1.0 - b1**self.t)
        if self.weight_decay:
            w = self.theta[: self.n_weights]
            u[: self.n_weights] += (lr * self.weight_decay) * w


class AdamW(Adam):
    name = "adamw"

    def __init__(self, theta, grad, n_weights, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(theta, grad, n_weights, beta1, beta2, eps, weight_decay)
