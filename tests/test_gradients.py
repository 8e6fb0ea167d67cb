"""Finite-difference gradient checks in float64 (CS231n's eval_numerical_gradient)."""

from __future__ import annotations

import numpy as np
import pytest

from bpstudy.model import Architecture, Network
from bpstudy.model.activations import SATURATED_BELOW, LeakyReLU, make_activation
from tests.conftest import rel_error

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "softsign", "linear"]


def make_net(dropout_seed: int | None = None, **arch) -> Network:
    base = dict(in_dim=5, out_dim=3, depth=2, width=7, activation="tanh", loss="cross_entropy")
    base.update(arch)
    l1, l2 = base.pop("l1", 0.0), base.pop("l2", 0.0)
    scheme = base.pop("scheme", "xavier_normal")
    return Network(
        Architecture(**base),
        dtype=np.float64,
        init_rng=np.random.default_rng(3),
        init_scheme=scheme,
        sigma_b=0.3,
        l1=l1,
        l2=l2,
    )


def batch(net: Network, n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.arch.in_dim))
    if net.arch.loss == "cross_entropy":
        y = rng.integers(0, net.arch.out_dim, n)
    else:
        y = rng.standard_normal((n, net.arch.out_dim))
    return X, y


def numeric_grads(net: Network, X, y, h: float = 1e-6, reset=None) -> dict[str, np.ndarray]:
    out = {}
    for name, p in net.parameters().items():
        g = np.zeros_like(p)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = p[i]
            p[i] = old + h
            if reset:
                reset()
            plus, _ = net.loss_and_grads(X, y)
            p[i] = old - h
            if reset:
                reset()
            minus, _ = net.loss_and_grads(X, y)
            p[i] = old
            g[i] = (plus - minus) / (2 * h)
        out[name] = g
    return out


def check(net: Network, X, y, reset=None, tol: float = 1e-6) -> None:
    if reset:
        reset()
    _, analytic = net.loss_and_grads(X, y)
    numeric = numeric_grads(net, X, y, reset=reset)
    assert analytic.keys() == numeric.keys()
    for name in analytic:
        a, n = analytic[name], numeric[name]
        if max(np.abs(a).max(), np.abs(n).max()) < 1e-8:
            continue  # zero by the math (a bias before batch norm): only round-off is left
        err = rel_error(a, n)
        assert err < tol, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_every_activation_and_loss(activation, loss):
    # leaky/relu: with sigma_b > 0 and these seeds no pre-activation sits within h of a kink
    net = make_net(activation=activation, loss=loss, scheme="normal")
    X, y = batch(net)
    check(net, X, y)


@pytest.mark.parametrize(
    "act", [make_activation(name) for name in ACTIVATIONS] + [LeakyReLU(0.001), LeakyReLU(0.2)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_is_a_slope_below_one_percent_of_the_largest(act, dtype):
    """Each activation's shortcut test on a agrees with f'(z) < 1% of max f' (the saturation
    statistic's definition), away from the threshold itself where rounding decides."""
    z = np.random.default_rng(0).normal(0.0, 4.0, (64, 50)).astype(dtype)
    a = act.forward(z.copy())
    slope = act.derivative(a, np.empty_like(a))
    limit = SATURATED_BELOW * act.max_slope
    exact = slope == limit  # leaky_relu(0.01) below zero: not below the limit
    clear = np.abs(slope - limit) > 1e-3 * act.max_slope
    expected = (slope < limit).astype(dtype)
    got = act.saturated(a, np.full_like(a, 7.0))  # every entry must be written
    assert set(np.unique(got)) <= {0.0, 1.0}
    assert np.array_equal(got[clear], expected[clear])
    assert not got[exact].any()
    assert (clear | exact).mean() > 0.95


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_several_depths(depth):
    net = make_net(depth=depth, activation="tanh")
    X, y = batch(net)
    check(net, X, y)


def test_batch_norm():
    net = make_net(batch_norm=True, activation="sigmoid", depth=3)
    X, y = batch(net, n=8)
    params = net.parameters()
    assert {"hidden.0.bn.gamma", "hidden.2.bn.beta"} <= params.keys()
    # non-trivial gamma/beta, so their gradients are tested away from the identity
    rng = np.random.default_rng(1)
    for name, p in params.items():
        if ".bn." in name:
            p += 0.3 * rng.standard_normal(p.shape)
    check(net, X, y)


def test_residual():
    net = make_net(residual=True, depth=4, activation="tanh")
    X, y = batch(net)
    check(net, X, y)


def test_residual_with_batch_norm_and_mse():
    net = make_net(residual=True, batch_norm=True, depth=3, activation="softsign", loss="mse")
    X, y = batch(net, n=8)
    check(net, X, y)


def test_dropout_with_fixed_mask():
    net = make_net(dropout=0.4, depth=3, activation="tanh")
    X, y = batch(net)
    state = {}

    def reset():  # the same dropout mask on every evaluation
        for block in net.blocks:
            block.dropout.rng = np.random.default_rng(42)
        state["n"] = state.get("n", 0) + 1

    check(net, X, y, reset=reset)
    reset()
    net.loss_and_grads(X, y)
    mask = net.blocks[0].dropout.mask
    assert np.any(mask == 0) and np.any(mask > 1), "dropout must drop and rescale some units"


@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.05, 0.0), (0.05, 0.3)])
def test_l1_l2_penalties(l1, l2):
    net = make_net(l1=l1, l2=l2, depth=2, activation="tanh")
    X, y = batch(net)
    check(net, X, y)
    # the penalty is in the loss, on weights only
    plain = make_net(depth=2, activation="tanh")
    loss_pen, g_pen = net.loss_and_grads(X, y)
    loss_plain, g_plain = plain.loss_and_grads(X, y)
    W = net.parameters()["hidden.0.W"]
    expected = l1 * sum(np.abs(p).sum() for k, p in net.parameters().items() if k.endswith(".W"))
    expected += (
        0.5 * l2 * sum((p**2).sum() for k, p in net.parameters().items() if k.endswith(".W"))
    )
    assert loss_pen - loss_plain == pytest.approx(expected, rel=1e-10)
    assert np.allclose(g_pen["hidden.0.W"] - g_plain["hidden.0.W"], l1 * np.sign(W) + l2 * W)
    assert np.array_equal(g_pen["hidden.0.b"], g_plain["hidden.0.b"])


def test_parameter_names_shapes_and_views():
    net = make_net(depth=3, batch_norm=True)
    params = net.parameters()
    assert list(params) == [
        "hidden.0.W", "hidden.0.b", "hidden.0.bn.gamma", "hidden.0.bn.beta",
        "hidden.1.W", "hidden.1.b", "hidden.1.bn.gamma", "hidden.1.bn.beta",
        "hidden.2.W", "hidden.2.b", "hidden.2.bn.gamma", "hidden.2.bn.beta",
        "output.W", "output.b",
    ]  # fmt: skip
    assert params["hidden.0.W"].shape == (5, 7)
    assert params["output.W"].shape == (7, 3)
    # a dense layer computes x @ W + b: check the whole forward pass by hand (eval mode,
    # where batch norm uses its running statistics: mean 0, variance 1 at the start)
    X, _ = batch(net)
    h = X
    for i in range(3):
        z = h @ params[f"hidden.{i}.W"] + params[f"hidden.{i}.b"]
        z = z / np.sqrt(1.0 + 1e-5) * params[f"hidden.{i}.bn.gamma"] + params[f"hidden.{i}.bn.beta"]
        h = np.tanh(z)
    expected = h @ params["output.W"] + params["output.b"]
    assert np.allclose(net.forward(X, train=False), expected)
    # parameters() are live views: writing changes the network
    params["output.b"][:] = 5.0
    assert np.allclose(net.forward(X)[0] - expected[0], 5.0 - 0.0)
