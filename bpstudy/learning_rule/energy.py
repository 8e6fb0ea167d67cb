"""What the two energy-based rules share: the layered network's states, their settling
by Gauss-Seidel sweeps over the whole batch, and the contrast of two phases' correlations.

The network is the MLP of bpstudy.model without batch norm, dropout or residual blocks
(refused at the edge): states s_0 = X (clamped), hidden states s_1..s_depth and a linear
output state s_L (L = depth + 1), all (N, units). A hidden layer's state is

    s_k = f(s_{k-1} W_k + b_k + g s_{k+1} W_{k+1}^T)            (row vectors, W: (in, out))

with feedback gain g (contrastive Hebbian learning: gamma; equilibrium propagation: 1).
These are the stationary points of the energy (Hopfield 1984, firing-rate form)

    E(s) = sum_k g^k [ sum_i G(s_k,i) - s_{k-1} W_k s_k^T - b_k s_k^T ],  G' = f^-1,

and G(s) = s^2 / 2 for the linear output. f must be strictly increasing and bounded
(sigmoid, tanh, softsign): then f^-1 exists, G is convex, E is bounded below, and
updating one layer given its neighbours minimises E over that layer exactly (the units of
a layer are not connected). A bottom-up sweep over the layers is block-coordinate
descent on E, so E falls at every sweep and the iteration settles; relu and linear units
leave E unbounded below (states can grow without limit), hence the activation set.

One sweep updates every layer once, bottom-up: from zero states, the first free sweep is
exactly the feedforward pass. A sweep's residual is the largest state change of any layer
(over batch and units) beyond rounding (ROUNDING units of the dtype's eps: the hidden
states of bounded activations are at most 1 in size; for the linear output, ROUNDING eps
of its largest size, at least 1), each layer's change weighted by the rule's
`residual_weights`: the scale of that layer's error in the update against the output's
(contrastive Hebbian learning: gamma^(k - L), so a layer whose contrast is gamma^(L - k)
smaller settles that much finer; equilibrium propagation: 1). A phase stops when the
residual is at most `tol`, or after `steps` sweeps; a phase that stops unsettled is
counted (`unsettled`) and reported, never silent; so is a phase whose states are not a
number (its residual is infinite). The input's drive X W_1 + b_1 is the
same in every sweep and phase, so it is computed once per batch.

The update of W_k contrasts the correlations s_{k-1}^T s_k of two phases (a: the free
phase, b: the clamped or nudged one), scaled by the rule:

    dW_k = scale_k (s_{k-1}^T s_k - t_{k-1}^T t_k)
         = scale_k (s_{k-1}^T (s_k - t_k) + (s_{k-1} - t_{k-1})^T t_k),

the second form computed (the differences first, so a small contrast keeps its digits).
Its per-example error, scale_k (s_k - t_k), fills the workspace's `deltas` for the
diagnostics, and the free states its `acts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bpstudy.learning_rule.base import BatchResult, LearningRule, Settle
from bpstudy.model import Network
from bpstudy.vocabulary import ENERGY_ACTIVATIONS  # bounded, strictly increasing f

__all__ = ["ENERGY_ACTIVATIONS", "EnergyRule", "SettleSettings", "States"]

ROUNDING = 4  # state changes within 4 eps of the dtype are rounding, not settling


@dataclass(frozen=True)
class SettleSettings:
    steps: int = 100  # most sweeps per phase
    tol: float = 1e-4  # a phase has settled when a sweep's residual is at most this

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"settle steps must be >= 1, but got {self.steps}")
        if not self.tol >= 0:
            raise ValueError(f"settle tol must be >= 0, but got {self.tol}")


@dataclass
class States:
    """One phase's states for a batch of N: hidden (depth, N, width), output (N, out_dim)."""

    hidden: np.ndarray
    out: np.ndarray
    zero: bool = False  # all states zero (start_free), until the next sweep

    def copy_from(self, other: States) -> None:
        self.hidden[...] = other.hidden
        self.out[...] = other.out
        self.zero = other.zero


@dataclass
class Scratch:
    """Per-batch-size buffers of a sweep: the input's drive, the sweep's new hidden states
    (swapped with a phase's own after each sweep, not copied), products."""

    drive: np.ndarray  # (N, width): X W_1 + b_1
    spare: np.ndarray  # (depth, N, width)
    prod: np.ndarray  # (N, width)
    new_out: np.ndarray  # (N, out_dim)
    diff_out: np.ndarray  # (N, out_dim)
    phases: dict[str, States] = field(default_factory=dict)


def larger(residual: float, r: float) -> float:
    """max(residual, r), where a NaN (states that are not a number) is infinitely far
    from settled: Python's max would keep the other one and call the phase settled."""
    if r > residual:
        return r
    return residual if r == r else math.inf


class EnergyRule(LearningRule):
    """Settling and contrast; a subclass says what its phases are and how to scale."""

    extra_stats = ("alignment",)

    def __init__(self, settle: SettleSettings, gain: float) -> None:
        if not gain > 0:
            raise ValueError(f"feedback gain must be > 0, but got {gain}")
        self.settle_settings, self.gain = settle, float(gain)
        #: phases that stopped at settle_steps above settle_tol, by phase, over the run
        self.unsettled: dict[str, int] = {}
        self.phases_run = 0  # phases run in training, settled or not
        self.iterations_total = 0  # their sweeps
        self._scratch: dict[tuple[int, str], Scratch] = {}

    # ------------------------------------------------------------ what a subclass names

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases of a training step, free first (the names of settle/* metrics)."""
        raise NotImplementedError

    def residual_weights(self, depth: int) -> np.ndarray:
        """(depth + 1,): how much a state change of each layer (hidden 1..depth, then the
        output) counts in a sweep's residual: the scale of its error in the update
        against the output layer's. Equal by default."""
        return np.ones(depth + 1)

    def step_stats(self) -> tuple[str, ...]:
        """The per-step scalars this rule reports (docs/reference.md: settle metrics)."""
        names = [f"settle/{p}_{what}" for p in self.phases for what in ("iterations", "residual")]
        return (*names, "settle/unsettled")

    def step_values(self, batch: BatchResult) -> tuple[float, ...]:
        """Values of `step_stats()` for a batch's pass."""
        values: list[float] = []
        for s in batch.settle:
            values += [float(s.iterations), s.residual]
        return (*values, float(sum(self.unsettled.values())))

    def run_totals(self) -> dict[str, float]:
        """Over the run's training steps: phases run, left unsettled, mean sweeps."""
        n = self.phases_run
        return {
            "settle/phases": float(n),
            "settle/unsettled": float(sum(self.unsettled.values())),
            "settle/mean_iterations": self.iterations_total / n if n else float("nan"),
        }

    # ------------------------------------------------------------ buffers

    def scratch(self, net: Network, N: int, purpose: str = "train") -> Scratch:
        key = (N, purpose)
        s = self._scratch.get(key)
        if s is None:
            if len(self._scratch) >= 4:
                self._scratch.clear()
            width, out_dim, dt = net.arch.width, net.arch.out_dim, net.dtype
            s = Scratch(
                np.empty((N, width), dt),
                np.empty((net.depth, N, width), dt),
                np.empty((N, width), dt),
                np.empty((N, out_dim), dt),
                np.empty((N, out_dim), dt),
            )
            self._scratch[key] = s
        return s

    def states(
        self, net: Network, scratch: Scratch, phase: str, hidden: np.ndarray | None = None
    ) -> States:
        """The buffers of a phase's states; `hidden` (depth, N, width) to use given ones
        (the free phase's are the workspace's `acts`, which the diagnostics read)."""
        st = scratch.phases.get(phase)
        if st is None or (hidden is not None and st.hidden is not hidden):
            N = scratch.drive.shape[0]
            if hidden is None:
                hidden = np.empty((net.depth, N, net.arch.width), net.dtype)
            st = scratch.phases[phase] = States(hidden, np.empty((N, net.arch.out_dim), net.dtype))
        return st

    # ------------------------------------------------------------ settling

    def input_drive(self, net: Network, X: np.ndarray, scratch: Scratch) -> np.ndarray:
        first = net.blocks[0].dense
        np.matmul(X, first.W, out=scratch.drive)
        scratch.drive += first.b
        return scratch.drive

    def settle(
        self,
        net: Network,
        st: States,
        scratch: Scratch,
        phase: str,
        out_target: np.ndarray | None = None,
        beta: float = 0.0,
        clamp_out: bool = False,
        first_out: np.ndarray | None = None,
    ) -> Settle:
        """Sweep `st` until settled. The output is held (`clamp_out`), nudged toward
        out_target by beta ((u + beta y) / (1 + beta): the minimum of the linear output's
        energy plus beta/2 |s_L - y|^2), or free (beta = 0). `first_out` receives the
        output after the first sweep (from zero states: the feedforward scores)."""
        tol, steps = self.settle_settings.tol, self.settle_settings.steps
        pull = beta * out_target if beta else None  # (N, out_dim), the same every sweep
        weights = self.residual_weights(net.depth).tolist()
        floor = ROUNDING * float(np.finfo(net.dtype).eps)
        own = st.hidden  # the phase's buffer; sweeps alternate it with scratch.spare
        residual, sweeps = np.inf, 0
        while sweeps < steps:
            residual = self.sweep(net, st, scratch, pull, beta, clamp_out, weights, floor)
            sweeps += 1
            if sweeps == 1 and first_out is not None:
                first_out[...] = st.out
            if residual <= tol:
                break
        if st.hidden is not own:  # the last sweep's states are in the spare: one copy
            own[...] = st.hidden
            scratch.spare, st.hidden = st.hidden, own
        converged = bool(residual <= tol)
        return Settle(phase, sweeps, float(residual), converged)

    def sweep(
        self,
        net: Network,
        st: States,
        scratch: Scratch,
        pull: np.ndarray | None,
        beta: float,
        clamp_out: bool,
        weights: list[float],
        floor: float,
    ) -> float:
        """One bottom-up Gauss-Seidel sweep; returns its residual: the largest state change
        beyond `floor` of a layer, times the layer's weight (hidden..., output). Layer i's
        new state goes to scratch.spare[i], read by layer i + 1 in the same sweep, while
        the layer above is still the old st.hidden[i + 1]; then the two swap."""
        g, depth, old, new = self.gain, net.depth, st.hidden, scratch.spare
        prod = scratch.prod
        feedback, st.zero = not st.zero, False  # from zero states the feedback is zero
        residual = 0.0
        for i, block in enumerate(net.blocks):
            if feedback:
                if i + 1 < depth:
                    np.matmul(old[i + 1], net.blocks[i + 1].dense.W.T, out=prod)
                else:
                    np.matmul(st.out, net.output.W.T, out=prod)
                if g != 1.0:
                    prod *= g
            u = new[i]
            if i == 0 and feedback:
                np.add(scratch.drive, prod, out=u)
            elif i == 0:
                np.copyto(u, scratch.drive)
            else:
                np.matmul(new[i - 1], block.dense.W, out=u)
                u += block.dense.b
                if feedback:
                    u += prod
            block.activation.forward(u)  # in place: u is now the new state
            np.subtract(u, old[i], out=prod)
            change = float(np.abs(prod, out=prod).max(initial=0.0))
            residual = larger(residual, (change - floor) * weights[i])
        st.hidden, scratch.spare = new, old
        if not clamp_out:
            out = np.matmul(new[-1], net.output.W, out=scratch.new_out)
            out += net.output.b
            if pull is not None:
                out += pull
                out *= 1.0 / (1.0 + beta)
            diff = np.subtract(out, st.out, out=scratch.diff_out)
            change = float(np.abs(diff, out=diff).max(initial=0.0))
            size = max(1.0, float(np.abs(out, out=diff).max()))  # the output is unbounded
            residual = larger(residual, (change - floor * size) * weights[-1])
            st.out, scratch.new_out = out, st.out
        return residual

    def start_free(self, st: States) -> None:
        """Zero states: the first sweep is then the feedforward pass (and skips the
        feedback products, all zero)."""
        st.hidden.fill(0.0)
        st.out.fill(0.0)
        st.zero = True

    def record(self, settles: tuple[Settle, ...]) -> None:
        for s in settles:
            self.phases_run += 1
            self.iterations_total += s.iterations
            if not s.converged:
                self.unsettled[s.phase] = self.unsettled.get(s.phase, 0) + 1

    # ------------------------------------------------------------ the contrast

    def contrast(
        self,
        net: Network,
        X: np.ndarray,
        a: States,
        b: States,
        scales: np.ndarray,
        deltas: np.ndarray,
    ) -> None:
        """net.grad (every W and b) = scales[k] (corr_a - corr_b), k over hidden layers and
        the output (scales: (depth + 1,)); deltas (depth, N, width) get scales[k] (a - b)."""
        depth = net.depth
        layers = [*(blk.dense for blk in net.blocks), net.output]
        below_a, d_below = X, None  # the input is the same in both phases
        for k, dense in enumerate(layers):
            top_a = a.hidden[k] if k < depth else a.out
            top_b = b.hidden[k] if k < depth else b.out
            d = np.subtract(top_a, top_b, out=deltas[k] if k < depth else None)
            d *= scales[k]  # the layer's error: (N, units)
            np.matmul(below_a.T, d, out=dense.dW)
            if d_below is not None:
                corr = d_below.T @ top_b
                corr *= float(scales[k] / scales[k - 1])  # a Python float keeps the dtype
                dense.dW += corr
            np.add.reduce(d, axis=0, out=dense.db)
            below_a, d_below = top_a, d
