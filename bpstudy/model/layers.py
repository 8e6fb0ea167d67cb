"""Layers in the CS231n manner: `forward` keeps what `backward` needs; `backward` takes
the upstream gradient and returns the downstream one.

Parameters and gradients are views into the network's flat vectors (see `network.py`),
so a layer writes its gradient in place and the optimizer updates all layers at once.
Running statistics of batch norm are buffers, kept apart from trainable parameters.
"""

from __future__ import annotations

import numpy as np


class Dense:
    """z = x @ W + b, with W: (fan_in, fan_out)."""

    def __init__(self, W: np.ndarray, b: np.ndarray, dW: np.ndarray, db: np.ndarray) -> None:
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """x: (N, fan_in) -> z: (N, fan_out), written into `out` when given."""
        self.x = x
        z = np.matmul(x, self.W, out=out)
        z += self.b
        return z

    def backward(
        self, dz: np.ndarray, need_dx: bool = True, feedback: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Fill dW, db from dz: (N, fan_out); return dx: (N, fan_in).

        dx carries the error to the layer below through W^T (backprop), or through a
        fixed `feedback` matrix of W's shape when a learning rule supplies one.
        """
        np.matmul(self.x.T, dz, out=self.dW)
        np.add.reduce(dz, axis=0, out=self.db)
        if not need_dx:
            return None
        return dz @ (self.W if feedback is None else feedback).T


class BatchNorm:
    """Per-unit normalisation over the batch, then scale gamma and shift beta (Ioffe &
    Szegedy 2015). Training mode uses batch statistics and updates the running ones
    (momentum as in PyTorch, unbiased running variance); eval mode uses the running ones.
    """

    def __init__(
        self,
        gamma: np.ndarray,
        beta: np.ndarray,
        dgamma: np.ndarray,
        dbeta: np.ndarray,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        self.gamma, self.beta, self.dgamma, self.dbeta = gamma, beta, dgamma, dbeta
        self.momentum, self.eps = momentum, eps
        self.running_mean = np.zeros_like(gamma)
        self.running_var = np.ones_like(gamma)
        self.xhat: np.ndarray | None = None
        self.inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool, out: np.ndarray | None = None) -> np.ndarray:
        """x: (N, H) -> (N, H), written into `out` when given."""
        if train:
            N = x.shape[0]
            mean = x.mean(axis=0)
            var = x.var(axis=0)
            m = self.momentum
            self.running_mean *= 1.0 - m
            self.running_mean += m * mean
            self.running_var *= 1.0 - m
            self.running_var += (m * N / max(N - 1, 1)) * var
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = x - mean
        xhat *= inv_std
        if train:
            self.xhat, self.inv_std = xhat, inv_std
        out = np.multiply(xhat, self.gamma, out=out)
        out += self.beta
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (N, H) -> dx: (N, H), through the batch statistics."""
        xhat, N = self.xhat, dout.shape[0]
        np.sum(dout, axis=0, out=self.dbeta)
        np.sum(dout * xhat, axis=0, out=self.dgamma)
        dxhat = dout * self.gamma
        dx = dxhat * N
        dx -= dxhat.sum(axis=0)
        dx -= xhat * (dxhat * xhat).sum(axis=0)
        dx *= self.inv_std / N
        return dx


class Dropout:
    """Inverted dropout: drop each unit with probability p, scale the rest by 1/(1-p),
    so eval mode is the identity."""

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        self.p, self.rng = p, rng
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        self.mask = keep.astype(x.dtype)
        self.mask *= 1.0 / (1.0 - self.p)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask
