"""Backpropagation: the error travels down through the transposed forward weights."""

from __future__ import annotations

import numpy as np

from bpstudy.learning_rule.base import LearningRule


class Backprop(LearningRule):
    name = "backprop"

    def backward(self, net, dscores: np.ndarray) -> None:
        deltas = net.last_workspace.deltas
        dh = net.output.backward(dscores, need_dx=net.depth > 0)
        for i in range(net.depth - 1, -1, -1):
            # the input needs no gradient, so the first block skips dx
            dh = net.blocks[i].backward(dh, need_dx=i > 0, delta_out=deltas[i])
