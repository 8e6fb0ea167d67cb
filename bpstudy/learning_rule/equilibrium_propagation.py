"""Equilibrium propagation (Scellier & Bengio 2017), with symmetric nudging (Laborieux et
al. 2021).

The model is the layered Hopfield-style network of energy.py with symmetric feedback
(gain 1): its output is the output state at the free fixed point, which `predict` settles
for. Training adds beta C to the energy, C = |s_L - y|^2 / 2 per example (the linear
output then settles at (u_L + beta y) / (1 + beta)), and contrasts the correlations of
the free and the nudged fixed points:

    dW_k = c / beta (free correlation - nudged correlation),          c = 2 / (N out_dim)
    dW_k = c / (2 beta) (correlation at -beta - correlation at +beta)  (symmetric_nudging)

which tends to the gradient of the mean squared error of the free fixed point's output
(c: `model.loss=mse`) as beta -> 0; the one-sided estimate is off by O(beta), the
symmetric one by O(beta^2) (Laborieux et al. 2021). The nudged phases start from the
free fixed point; the one at -beta needs beta < 1 (the output's energy stays convex).

`exact_gradient` (for the alignment diagnostic, on logging steps only) differentiates the
free fixed point implicitly: with H the energy's Hessian in the states there, the
gradient of the loss L is dL/dtheta = -mu^T d2E/(ds dtheta), where H mu = dL/ds, solved by
Gauss-Seidel sweeps top-down (recurrent backprop: Almeida 1987, Pineda 1987). mu_k is
the error at layer k:

    mu_L = dL/ds_L + mu_{L-1} W_L,   mu_k = f'(u_k) (mu_{k-1} W_k + mu_{k+1} W_{k+1}^T),
    dW_k = s_{k-1}^T mu_k + mu_{k-1}^T s_k,   db_k = sum over the batch of mu_k.

H is positive definite at a minimum of E, so the sweeps converge; from zero, the first
sweep is backprop through the feedforward graph.
"""

from __future__ import annotations

import numpy as np

from bpstudy.learning_rule.base import BatchResult, Settle
from bpstudy.learning_rule.energy import ROUNDING, EnergyRule, SettleSettings, States
from bpstudy.model import Network

ADJOINT_RTOL = 1e-9  # implicit differentiation: stop when a sweep changes mu by less,
# relative to its size (in float32: ROUNDING eps, below which a change is rounding)


class EquilibriumPropagation(EnergyRule):
    name = "equilibrium_propagation"

    def __init__(
        self, settle: SettleSettings, beta: float = 0.05, symmetric_nudging: bool = True
    ) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, but got {beta}")
        if symmetric_nudging and not beta < 1:
            raise ValueError(f"beta must be < 1 with symmetric nudging, but got {beta}")
        super().__init__(settle, gain=1.0)
        self.beta, self.symmetric = float(beta), bool(symmetric_nudging)
        self.eval_unsettled = 0  # free phases of `predict` left unsettled
        self.adjoint_sweeps = 0  # of the last exact_gradient

    @property
    def phases(self) -> tuple[str, ...]:
        return ("free", "nudged_pos", "nudged_neg") if self.symmetric else ("free", "nudged")

    def free_phase(self, net: Network, X: np.ndarray, purpose: str) -> tuple[States, Settle]:
        """Settle the free phase on X from zero states; `purpose` "train" keeps the
        hidden states in the workspace (the diagnostics read them), "eval" apart."""
        N = X.shape[0]
        sc = self.scratch(net, N, purpose)
        self.input_drive(net, X, sc)
        hidden = net.workspace(N).acts if purpose == "train" else None
        free = self.states(net, sc, "free", hidden=hidden)
        self.start_free(free)
        return free, self.settle(net, free, sc, "free")

    def update(self, net: Network, X: np.ndarray, y: np.ndarray) -> BatchResult:
        targets = net.targets(y)
        N = X.shape[0]
        ws, sc = net.workspace(N), self.scratch(net, N)
        net.blocks[0].dense.x = X
        free, free_settle = self.free_phase(net, X, "train")
        scores = free.out.copy()
        loss, dscores = net.loss_fn(scores, targets)
        settles = [free_settle]
        nudged: list[States] = []
        signs = (1.0, -1.0) if self.symmetric else (1.0,)
        for sign, phase in zip(signs, self.phases[1:], strict=True):
            st = self.states(net, sc, phase)
            st.copy_from(free)
            settles.append(self.settle(net, st, sc, phase, targets, sign * self.beta))
            nudged.append(st)
        c = 2.0 / (N * net.arch.out_dim)
        scale = c / (2 * self.beta) if self.symmetric else c / self.beta
        scales = np.full(net.depth + 1, scale)
        a, b = (nudged[1], nudged[0]) if self.symmetric else (free, nudged[0])
        self.contrast(net, X, a, b, scales, ws.deltas)
        self.record(tuple(settles))
        return BatchResult(X, y, scores, loss, dscores, tuple(settles))

    def predict(self, net: Network, X: np.ndarray) -> np.ndarray:
        """The output state at the free fixed point: (N, out_dim)."""
        free, settle = self.free_phase(net, X, "eval")
        if not settle.converged:
            self.eval_unsettled += 1
        return free.out.copy()

    def run_totals(self) -> dict[str, float]:
        return {**super().run_totals(), "settle/eval_unsettled": float(self.eval_unsettled)}

    def exact_gradient(self, net: Network, batch: BatchResult) -> None:
        """The gradient of the data loss at the free fixed point of `batch` (whose free
        states the workspace and the free phase's buffers still hold)."""
        X, N, depth = batch.X, batch.X.shape[0], net.depth
        free = self.states(net, self.scratch(net, N), "free", hidden=net.workspace(N).acts)
        S, out = free.hidden, free.out
        slopes = np.empty_like(S)
        for i, block in enumerate(net.blocks):
            block.activation.derivative(S[i], out=slopes[i])
        mu, mu_out = np.zeros_like(S), np.zeros_like(out)
        new_out, above = np.empty_like(out), np.empty_like(S[0])
        W = [blk.dense.W for blk in net.blocks] + [net.output.W]
        rtol = max(ADJOINT_RTOL, ROUNDING * float(np.finfo(S.dtype).eps))
        self.adjoint_sweeps = 0
        while self.adjoint_sweeps < 4 * self.settle_settings.steps:
            self.adjoint_sweeps += 1
            np.matmul(mu[-1], W[-1], out=new_out)
            new_out += batch.dscores
            change = float(np.abs(new_out - mu_out).max(initial=0.0))
            mu_out[...] = new_out
            for i in range(depth - 1, -1, -1):
                np.matmul(mu[i + 1] if i + 1 < depth else mu_out, W[i + 1].T, out=above)
                if i > 0:
                    above += mu[i - 1] @ W[i]
                above *= slopes[i]
                change = max(change, float(np.abs(above - mu[i]).max(initial=0.0)))
                mu[i] = above
            size = max(float(np.abs(mu).max(initial=0.0)), float(np.abs(mu_out).max()))
            if change <= rtol * size:
                break
        layers = [*(blk.dense for blk in net.blocks), net.output]
        states = [*S, out]
        errors = [*mu, mu_out]
        for k, dense in enumerate(layers):
            below = X if k == 0 else states[k - 1]
            np.matmul(below.T, errors[k], out=dense.dW)
            if k > 0:
                dense.dW += errors[k - 1].T @ states[k]
            np.add.reduce(errors[k], axis=0, out=dense.db)
