"""Losses over a batch: each returns (mean loss, dLoss/dscores) for scores: (N, C).

Cross-entropy takes integer labels (N,); mean squared error takes targets (N, C) and
averages over all N*C entries (as torch.nn.MSELoss does).
"""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    N = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.mean(np.log(sums[:, 0]) - shifted[rows, y]))
    dscores = exp
    dscores /= sums  # softmax probabilities
    dscores[rows, y] -= 1.0
    dscores /= N
    return loss, dscores


def mean_squared_error(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    diff = scores - y
    loss = float(np.mean(diff * diff))
    diff *= 2.0 / diff.size
    return loss, diff


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}
