"""Contrastive Hebbian learning in a layered network (Movellan 1991; Xie & Seung 2003).

Feedforward weights W_k and feedback gamma W_k^T (energy.py: the states, the energy, the
settling). Two phases on each batch, both settled over the whole batch at once:

- free: the input clamped, every other layer settles;
- clamped: the output also held at the target (one-hot rows for a classification task),
  the hidden layers settle again, from the free states.

Layer k's update (k = 1..L, L the output layer) is Xie & Seung's

    dW_k = c gamma^(k - L) (free correlation - clamped correlation),   c = 2 / (N out_dim),

with the correlation s_{k-1}^T s_k (and sum over the batch of s_k for b_k). To first order
in gamma the clamped phase moves layer k by -gamma^(L - k) times backprop's error there,
so dW_k is the gradient of the feedforward network's mean squared error (c makes it that
of `model.loss=mse`, the mean over N out_dim entries) up to O(gamma) (Xie & Seung's
equivalence): that is the model this rule trains, and `predict` is the feedforward
pass. The batch's reported loss is that of the feedforward scores, which the free phase's
first sweep computes (from zero states it is the feedforward pass).
"""

from __future__ import annotations

import numpy as np

from bpstudy.learning_rule.base import BatchResult
from bpstudy.learning_rule.energy import EnergyRule, SettleSettings
from bpstudy.model import Network


class ContrastiveHebbian(EnergyRule):
    name = "contrastive_hebbian"

    def __init__(self, settle: SettleSettings, feedback_gain: float = 0.1) -> None:
        super().__init__(settle, feedback_gain)

    @property
    def phases(self) -> tuple[str, ...]:
        return ("free", "clamped")

    def residual_weights(self, depth: int) -> np.ndarray:
        """gamma^(k - L) for layer k = 1..L (L = depth + 1, the output): the update's
        scale, and the weight of each layer's state change in a sweep's residual."""
        return self.gain ** (np.arange(depth + 1, dtype=np.float64) - depth)

    def update(self, net: Network, X: np.ndarray, y: np.ndarray) -> BatchResult:
        targets = net.targets(y)
        N, depth = X.shape[0], net.depth
        ws, sc = net.workspace(N), self.scratch(net, N)
        net.blocks[0].dense.x = X  # the first layer's input, as after a forward pass
        self.input_drive(net, X, sc)
        free = self.states(net, sc, "free", hidden=ws.acts)
        self.start_free(free)
        scores = np.empty_like(sc.new_out)
        free_settle = self.settle(net, free, sc, "free", first_out=scores)
        loss, dscores = net.loss_fn(scores, targets)
        clamped = self.states(net, sc, "clamped")
        clamped.copy_from(free)
        clamped.out[...] = targets
        clamped_settle = self.settle(net, clamped, sc, "clamped", clamp_out=True)
        scales = 2.0 / (N * net.arch.out_dim) * self.residual_weights(depth)
        self.contrast(net, X, free, clamped, scales, ws.deltas)
        settles = (free_settle, clamped_settle)
        self.record(settles)
        return BatchResult(X, y, scores, loss, dscores, settles)

    def exact_gradient(self, net: Network, batch: BatchResult) -> None:
        """Backprop's gradient of the feedforward network (the model CHL trains)."""
        scores = net.forward(batch.X, train=True)
        _, dscores = net.loss_fn(scores, net.targets(batch.y))
        net.backward(dscores)
