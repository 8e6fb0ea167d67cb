"""The optimizer interface, documented once (as in CS231n's optim.py).

An optimizer sees the network's flat parameter vector `theta` and gradient `grad`
(see bpstudy.model.network) and, in `step(lr)`, writes the change it makes into `update`
and applies it: theta <- theta - update. Keeping `update` lets diagnostics measure the
applied step (update_ratio) without the optimizer knowing about them. State arrays are
flat too, so one step is a few vectorised calls whatever the depth.

Clipping and the L1/L2 penalty are separate steps before `step` (bpstudy.optimizer.clip,
Network.add_penalty_grad); only AdamW's decoupled weight decay lives here, because it is
part of that optimizer's definition. It applies to weights only: theta[:n_weights].
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Optimizer(ABC):
    name: str = ""

    def __init__(self, theta: np.ndarray, grad: np.ndarray, n_weights: int) -> None:
        self.theta, self.grad, self.n_weights = theta, grad, n_weights
        self.update = np.zeros_like(theta)
        self.t = 0  # steps taken

    def step(self, lr: float) -> None:
        self.t += 1
        self.compute_update(lr)
        self.theta -= self.update

    @abstractmethod
    def compute_update(self, lr: float) -> None:
        """Write this step's change into self.update (theta will lose it)."""
