"""The MLP: hidden blocks Linear -> [BatchNorm] -> activation -> [Dropout], optional
residual wrapping h <- h + block(h) for blocks after the first, and a Linear output.

All trainable parameters live in one flat vector `theta` (weights first, then biases and
batch-norm parameters) with a matching flat `grad`; each layer holds reshaped views.
That layout lets the optimizer, clipping, L1/L2 and the per-layer norms each run as a
handful of vectorised calls whatever the depth.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bpstudy.model.activations import Activation, make_activation
from bpstudy.model.feedback import Feedback, UpdateRule
from bpstudy.model.init import init_weights
from bpstudy.model.layers import BatchNorm, Dense, Dropout
from bpstudy.model.losses import LOSSES


@dataclass(frozen=True)
class Architecture:
    """Plain values that fix the network's shape (no config objects below the edge)."""

    in_dim: int
    out_dim: int
    depth: int
    width: int
    activation: str = "relu"
    leaky_slope: float = 0.01
    batch_norm: bool = False
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    dropout: float = 0.0
    residual: bool = False
    loss: str = "cross_entropy"


@dataclass
class Workspace:
    """Per-batch-size training buffers: activations and pre-activation errors."""

    acts: np.ndarray  # (depth, N, width): f(u_i) of each hidden layer
    deltas: np.ndarray  # (depth, N, width): dLoss/du_i


class HiddenBlock:
    """Linear -> [BatchNorm] -> activation -> [Dropout], residual-wrapped when asked."""

    def __init__(
        self,
        dense: Dense,
        activation: Activation,
        bn: BatchNorm | None = None,
        dropout: Dropout | None = None,
        residual: bool = False,
    ) -> None:
        self.dense, self.activation, self.bn, self.dropout = dense, activation, bn, dropout
        self.residual = residual
        self.a: np.ndarray | None = None  # activation output (N, H), before dropout
        self.delta: np.ndarray | None = None  # error at the pre-activation (N, H)
        self.dz: np.ndarray | None = None  # error at the Linear output (N, H): through batch norm
        self._dropped = False

    def forward(self, h: np.ndarray, train: bool, out: np.ndarray | None = None) -> np.ndarray:
        """h: (N, fan_in) -> block output (N, H); the activation lands in `out` if given."""
        if self.bn is not None:
            z = self.bn.forward(self.dense.forward(h), train, out=out)
        else:
            z = self.dense.forward(h, out=out)
        a = self.activation.forward(z)  # in place: z is ours
        self.a = a
        self._dropped = train and self.dropout is not None
        out = self.dropout.forward(a) if self._dropped else a
        return h + out if self.residual else out

    def backward(
        self,
        dout: np.ndarray,
        need_dx: bool = True,
        feedback: np.ndarray | None = None,
        delta_out: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """dout: (N, H) -> dh: (N, fan_in); the pre-activation error lands in `delta_out`."""
        d = self.dropout.backward(dout) if self._dropped else dout
        if delta_out is None:
            delta_out = np.empty_like(self.a)
        self.delta = self.activation.backward(d, self.a, out=delta_out)
        dz = self.bn.backward(self.delta) if self.bn is not None else self.delta
        self.dz = dz  # kept for the per-example gradient norms (training/gradient_noise.py)
        dh = self.dense.backward(dz, need_dx, feedback)
        if self.residual and dh is not None:
            dh += dout  # the skip path; dh is a fresh array, dout is left intact
        return dh


class Network:
    """The MLP of `Architecture`, its flat parameters, and its training-mode loss."""

    def __init__(
        self,
        arch: Architecture,
        dtype: np.dtype | str = np.float32,
        init_rng: np.random.Generator | None = None,
        dropout_rng: np.random.Generator | None = None,
        init_scheme: str = "he_normal",
        sigma_w: float = 1.0,
        sigma_b: float = 0.0,
        gain: float = 1.0,
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        if arch.loss not in LOSSES:
            raise ValueError(f"unknown loss {arch.loss!r}; allowed: {', '.join(LOSSES)}")
        self.arch, self.dtype = arch, np.dtype(dtype)
        self.l1, self.l2 = l1, l2
        self.loss_fn = LOSSES[arch.loss]
        init_rng = init_rng if init_rng is not None else np.random.default_rng(0)
        dropout_rng = dropout_rng if dropout_rng is not None else np.random.default_rng(1)

        dims = [arch.in_dim] + [arch.width] * arch.depth + [arch.out_dim]
        self._layout(dims, arch.batch_norm)
        self.theta = np.zeros(self.size, dtype=self.dtype)
        self.grad = np.zeros(self.size, dtype=self.dtype)
        params, grads = self._views(self.theta), self._views(self.grad)

        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
            W, b = init_weights(init_scheme, fan_in, fan_out, init_rng, sigma_w, sigma_b, gain)
            prefix = f"hidden.{i}" if i < arch.depth else "output"
            params[f"{prefix}.W"][...] = W
            params[f"{prefix}.b"][...] = b
        for i in range(arch.depth):
            if arch.batch_norm:
                params[f"hidden.{i}.bn.gamma"][...] = 1.0

        self.blocks: list[HiddenBlock] = []
        for i in range(arch.depth):
            p = f"hidden.{i}"
            dense = Dense(params[p + ".W"], params[p + ".b"], grads[p + ".W"], grads[p + ".b"])
            bn = None
            if arch.batch_norm:
                bn = BatchNorm(
                    params[p + ".bn.gamma"],
                    params[p + ".bn.beta"],
                    grads[p + ".bn.gamma"],
                    grads[p + ".bn.beta"],
                    arch.bn_momentum,
                    arch.bn_eps,
                )
            dropout = Dropout(arch.dropout, dropout_rng) if arch.dropout > 0 else None
            act = make_activation(arch.activation, arch.leaky_slope)
            self.blocks.append(HiddenBlock(dense, act, bn, dropout, arch.residual and i > 0))
        self.output = Dense(
            params["output.W"], params["output.b"], grads["output.W"], grads["output.b"]
        )
        self._params, self._grads = params, grads
        self._workspaces: dict[int, Workspace] = {}
        self.last_workspace: Workspace | None = None

    # ------------------------------------------------------------ layout

    def _layout(self, dims: list[int], batch_norm: bool) -> None:
        """Fix where each parameter sits in the flat vector: all weights, then the rest."""
        names = [f"hidden.{i}" for i in range(len(dims) - 2)] + ["output"]
        shapes: dict[str, tuple[int, ...]] = {}
        for name, fan_in, fan_out in zip(names, dims[:-1], dims[1:], strict=True):
            shapes[f"{name}.W"] = (fan_in, fan_out)
        for name, fan_out in zip(names, dims[1:], strict=True):
            shapes[f"{name}.b"] = (fan_out,)
            if batch_norm and name != "output":
                shapes[f"{name}.bn.gamma"] = (fan_out,)
                shapes[f"{name}.bn.beta"] = (fan_out,)
        self.slices: dict[str, tuple[slice, tuple[int, ...]]] = {}
        offset = 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            self.slices[name] = (slice(offset, offset + n), shape)
            offset += n
        self.size = offset
        self.n_weights = sum(fan_in * fan_out for fan_in, fan_out in itertools.pairwise(dims))
        # where each hidden layer's W sits in the flat vectors, for per-layer norms
        self.hidden_weight_slices = [self.slices[f"hidden.{i}.W"][0] for i in range(len(dims) - 2)]

    def _views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {name: flat[sl].reshape(shape) for name, (sl, shape) in self.slices.items()}

    def _order(self) -> list[str]:
        """Parameter names block by block: hidden.0.W, hidden.0.b, hidden.0.bn.gamma,
        hidden.0.bn.beta, ..., output.W, output.b."""
        suffixes = (".W", ".b", ".bn.gamma", ".bn.beta")
        prefixes = [f"hidden.{i}" for i in range(self.arch.depth)] + ["output"]
        return [p + s for p in prefixes for s in suffixes if p + s in self.slices]

    # ------------------------------------------------------------ public

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def parameters(self) -> dict[str, np.ndarray]:
        """name -> live view into the parameters (writing to it changes the network)."""
        return {name: self._params[name] for name in self._order()}

    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state: batch norm running statistics."""
        out: dict[str, np.ndarray] = {}
        for i, block in enumerate(self.blocks):
            if block.bn is not None:
                out[f"hidden.{i}.bn.running_mean"] = block.bn.running_mean
                out[f"hidden.{i}.bn.running_var"] = block.bn.running_var
        return out

    def forward(self, X: np.ndarray, train: bool = False) -> np.ndarray:
        """X: (N, in_dim) -> scores (N, out_dim).

        In training mode every block writes its activation into one preallocated
        (depth, N, width) buffer, and backward its error signal into another: no
        allocation per step, and diagnostics reduce over all layers in one call."""
        h = X
        if train:
            acts = self.workspace(X.shape[0]).acts
            for block, out in zip(self.blocks, acts, strict=False):
                h = block.forward(h, True, out=out)
        else:
            for block in self.blocks:
                h = block.forward(h, False)
        return self.output.forward(h)

    def backward(self, dscores: np.ndarray, feedback: Feedback | None = None) -> None:
        """Fill `grad` (without the L1/L2 terms) from dscores: (N, out_dim), through the
        cached training-mode forward pass; each block's pre-activation error lands in the
        workspace's `deltas`. The error reaches block i through W_{i+1}^T (backprop), or
        as `feedback` says (feedback.py: fixed matrices in W's place, or direct errors)."""
        deltas = self.last_workspace.deltas  # (depth, N, width)
        if feedback is not None and feedback.direct is not None:
            self.output.backward(dscores, need_dx=False)
            errors = np.matmul(dscores, feedback.direct)  # (depth, N, width): one call
            for i, block in enumerate(self.blocks):
                block.backward(errors[i], need_dx=False, delta_out=deltas[i])
            return
        B = feedback.matrices if feedback is not None else None  # hidden.1.W, ..., output.W
        dh = self.output.backward(
            dscores, need_dx=self.depth > 0, feedback=None if B is None else B[-1]
        )
        for i in range(self.depth - 1, -1, -1):
            # the input needs no error, so the first block skips dx
            into = B[i - 1] if B is not None and i > 0 else None
            dh = self.blocks[i].backward(dh, need_dx=i > 0, feedback=into, delta_out=deltas[i])

    def workspace(self, batch: int) -> Workspace:
        """The training buffers for a batch size (a run sees at most two sizes)."""
        ws = self._workspaces.get(batch)
        if ws is None:
            if len(self._workspaces) >= 4:
                self._workspaces.clear()
            shape = (self.depth, batch, self.arch.width)
            ws = Workspace(np.empty(shape, self.dtype), np.empty(shape, self.dtype))
            self._workspaces[batch] = ws
        self.last_workspace = ws
        return ws

    def targets(self, y: np.ndarray) -> np.ndarray:
        """What the loss compares against: labels for cross-entropy; one-hot rows when a
        classification task is trained with mean squared error."""
        if self.loss_fn is LOSSES["mse"] and y.ndim == 1:
            onehot = np.zeros((y.shape[0], self.arch.out_dim), dtype=self.dtype)
            onehot[np.arange(y.shape[0]), y] = 1.0
            return onehot
        return y

    def loss(self, scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Data loss plus the L1/L2 penalty on weights, and dLoss/dscores."""
        loss, dscores = self.loss_fn(scores, self.targets(y))
        return loss + self.penalty(), dscores

    def penalty(self) -> float:
        w = self.theta[: self.n_weights]
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(w).sum(dtype=np.float64))
        if self.l2:
            total += 0.5 * self.l2 * float(np.dot(w, w))
        return total

    def add_penalty_grad(self) -> None:
        """grad += d(penalty)/dW, on weights only."""
        w, g = self.theta[: self.n_weights], self.grad[: self.n_weights]
        if self.l1:
            g += self.l1 * np.sign(w)
        if self.l2:
            g += self.l2 * w

    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray, rule: UpdateRule | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Training-mode loss (dropout on, batch statistics) and a copy of every gradient,
        keyed like `parameters()`. `rule` defaults to backprop."""
        loss = self.compute_gradient(X, y, rule)
        return loss, {name: self._grads[name].copy() for name in self._order()}

    def compute_gradient(
        self, X: np.ndarray, y: np.ndarray, rule: UpdateRule | None = None
    ) -> float:
        """Forward, loss and backward in training mode (or the rule's own passes); fills
        `grad`; returns the loss, penalty included."""
        if rule is None:
            scores = self.forward(X, train=True)
            loss, dscores = self.loss(scores, y)
            self.backward(dscores)
        else:
            loss = rule.update(self, X, y).loss + self.penalty()
        self.add_penalty_grad()
        return loss

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and buffers as plain arrays (for saving; loads without pickle)."""
        return {**{k: v.copy() for k, v in self.parameters().items()}, **self.buffers()}
