"""Optimizers, schedules and clipping against their textbook formulas.

Each rule is checked twice: on a small case whose numbers were worked out by hand
(hyperparameters chosen so the square roots come out exact), and against a scalar
re-implementation of the paper's formula in plain Python floats, one entry at a time,
over several steps with a changing learning rate. Neither calls the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpstudy.optimizer import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Momentum,
    Optimizer,
    RMSprop,
    Schedule,
    clip_by_norm,
    clip_by_value,
)

THETA0 = [1.0, -2.0, 0.5]
GRADS = [[0.5, -1.0, 2.0], [1.0, 0.25, -0.5], [-0.5, 0.5, 1.0]]


def close(expected):
    """Exact up to float64 round-off: rel 1e-12 and no absolute slack."""
    return pytest.approx(expected, rel=1e-12, abs=0.0)


def run(
    cls: type[Optimizer],
    grads: list[list[float]],
    lrs: list[float] | float = 0.1,
    theta0: list[float] = THETA0,
    n_weights: int = 3,
    dtype=np.float64,
    **hyper,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Take one step per gradient, as the trainer does (the gradient is written into
    the array the optimizer holds). Returns theta after each step and each update."""
    if isinstance(lrs, float):
        lrs = [lrs] * len(grads)
    theta = np.array(theta0, dtype=dtype)
    grad = np.zeros_like(theta)
    opt = cls(theta, grad, n_weights, **hyper)
    thetas, updates = [], []
    for g, lr in zip(grads, lrs, strict=True):
        grad[:] = g
        before = theta.copy()
        opt.step(lr)
        assert opt.theta is theta  # in place: the network's views see the step
        assert np.array_equal(grad, np.array(g, dtype=dtype))  # gradient not consumed
        # `update` is exactly the change applied (bitwise, not approximately)
        assert np.array_equal(theta, before - opt.update)
        thetas.append(theta.copy())
        updates.append(opt.update.copy())
    assert opt.t == len(grads)
    return thetas, updates


# ---------------------------------------------------------------- scalar references


def ref_sgd(theta, grads, lrs):
    theta, out = list(theta), []
    for g, lr in zip(grads, lrs, strict=True):
        u = [lr * gi for gi in g]
        theta = [p - ui for p, ui in zip(theta, u, strict=True)]
        out.append((theta, u))
    return out


def ref_momentum(theta, grads, lrs, momentum=0.9, nesterov=False):
    """PyTorch SGD(momentum, dampening=0): v <- mu v + g; step lr v or lr (g + mu v)."""
    theta, v, out = list(theta), [0.0] * len(theta), []
    for g, lr in zip(grads, lrs, strict=True):
        u = []
        for i, gi in enumerate(g):
            v[i] = momentum * v[i] + gi
            u.append(lr * (gi + momentum * v[i]) if nesterov else lr * v[i])
        theta = [p - ui for p, ui in zip(theta, u, strict=True)]
        out.append((theta, u))
    return out


def ref_adagrad(theta, grads, lrs, eps=1e-10):
    """Duchi et al. 2011, diagonal form: G <- G + g^2; step lr g / (sqrt(G) + eps)."""
    theta, G, out = list(theta), [0.0] * len(theta), []
    for g, lr in zip(grads, lrs, strict=True):
        u = []
        for i, gi in enumerate(g):
            G[i] = G[i] + gi * gi
            u.append(lr * gi / (math.sqrt(G[i]) + eps))
        theta = [p - ui for p, ui in zip(theta, u, strict=True)]
        out.append((theta, u))
    return out


def ref_rmsprop(theta, grads, lrs, rho=0.99, eps=1e-8):
    """Tieleman & Hinton 2012: s <- rho s + (1 - rho) g^2; step lr g / (sqrt(s) + eps)."""
    theta, s, out = list(theta), [0.0] * len(theta), []
    for g, lr in zip(grads, lrs, strict=True):
        u = []
        for i, gi in enumerate(g):
            s[i] = rho * s[i] + (1.0 - rho) * gi * gi
            u.append(lr * gi / (math.sqrt(s[i]) + eps))
        theta = [p - ui for p, ui in zip(theta, u, strict=True)]
        out.append((theta, u))
    return out


def ref_adam(theta, grads, lrs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, n_weights=None):
    """Kingma & Ba 2015, Algorithm 1, plus AdamW's decoupled decay in PyTorch's form
    (lr * weight_decay * theta, on the first n_weights entries only)."""
    n_weights = len(theta) if n_weights is None else n_weights
    theta, out = list(theta), []
    m, v = [0.0] * len(theta), [0.0] * len(theta)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        u = []
        for i, gi in enumerate(g):
            m[i] = beta1 * m[i] + (1.0 - beta1) * gi
            v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi
            m_hat = m[i] / (1.0 - beta1**t)
            v_hat = v[i] / (1.0 - beta2**t)
            ui = lr * m_hat / (math.sqrt(v_hat) + eps)
            if i < n_weights:
                ui += lr * weight_decay * theta[i]
            u.append(ui)
        theta = [p - ui for p, ui in zip(theta, u, strict=True)]
        out.append((theta, u))
    return out


LRS = [0.1, 0.05, 0.2]  # changing, as under a schedule
REFERENCE_CASES = {
    "sgd": (SGD, {}, lambda: ref_sgd(THETA0, GRADS, LRS)),
    "momentum": (Momentum, {}, lambda: ref_momentum(THETA0, GRADS, LRS)),
    "nesterov": (
        Momentum,
        {"momentum": 0.8, "nesterov": True},
        lambda: ref_momentum(THETA0, GRADS, LRS, momentum=0.8, nesterov=True),
    ),
    "adagrad": (Adagrad, {"eps": 1e-3}, lambda: ref_adagrad(THETA0, GRADS, LRS, eps=1e-3)),
    "rmsprop": (
        RMSprop,
        {"rho": 0.9, "eps": 1e-3},
        lambda: ref_rmsprop(THETA0, GRADS, LRS, rho=0.9, eps=1e-3),
    ),
    "adam": (Adam, {}, lambda: ref_adam(THETA0, GRADS, LRS)),
    "adam_eps": (
        Adam,
        {"beta1": 0.8, "beta2": 0.9, "eps": 0.1},
        lambda: ref_adam(THETA0, GRADS, LRS, beta1=0.8, beta2=0.9, eps=0.1),
    ),
    "adamw": (
        AdamW,
        {"weight_decay": 0.3},
        lambda: ref_adam(THETA0, GRADS, LRS, weight_decay=0.3, n_weights=2),
    ),
}


@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_matches_scalar_reference(case):
    cls, hyper, reference = REFERENCE_CASES[case]
    thetas, updates = run(cls, GRADS, LRS, n_weights=2, **hyper)
    for (ref_theta, ref_update), theta, update in zip(reference(), thetas, updates, strict=True):
        assert update.tolist() == close(ref_update)
        assert theta.tolist() == close(ref_theta)


# ---------------------------------------------------------------- hand-computed cases


def test_sgd_by_hand():
    thetas, updates = run(SGD, GRADS[:2], 0.1)
    assert updates[0].tolist() == close([0.05, -0.1, 0.2])
    assert thetas[0].tolist() == close([0.95, -1.9, 0.3])
    assert updates[1].tolist() == close([0.1, 0.025, -0.05])
    assert thetas[1].tolist() == close([0.85, -1.925, 0.35])


def test_momentum_by_hand():
    # v1 = g1 = [0.5, -1, 2];  v2 = 0.9 v1 + g2 = [1.45, -0.65, 1.3]
    # v3 = 0.9 v2 + g3 = [0.805, -0.085, 2.17];  update = lr v
    thetas, updates = run(Momentum, GRADS, 0.1, momentum=0.9)
    assert updates[0].tolist() == close([0.05, -0.1, 0.2])
    assert updates[1].tolist() == close([0.145, -0.065, 0.13])
    assert updates[2].tolist() == close([0.0805, -0.0085, 0.217])
    assert thetas[2].tolist() == close([0.7245, -1.8265, -0.047])


def test_nesterov_by_hand():
    # same v as above; update = lr (g + 0.9 v)
    thetas, updates = run(Momentum, GRADS, 0.1, momentum=0.9, nesterov=True)
    assert updates[0].tolist() == close([0.095, -0.19, 0.38])
    assert updates[1].tolist() == close([0.2305, -0.0335, 0.067])
    assert updates[2].tolist() == close([0.02245, 0.04235, 0.2953])
    assert thetas[2].tolist() == close([0.65205, -1.81885, -0.2423])


def test_momentum_follows_pytorch_when_lr_changes():
    # PyTorch: update2 = lr2 (mu g1 + g2). CS231n's v <- mu v - lr g would give
    # mu lr1 g1 + lr2 g2 instead, which differs here (lr1 = 0.1, lr2 = 0.2).
    _, updates = run(Momentum, GRADS[:2], [0.1, 0.2], momentum=0.9)
    assert updates[1].tolist() == close([0.29, -0.13, 0.26])


def test_adagrad_by_hand():
    # eps = 1 sits outside the root: g / (sqrt(G) + 1).
    # G1 = [9, 16, 1] -> [3/4, -4/5, 1/2];  G2 = [25, 25, 1] -> [4/6, 3/6, 0]
    _, updates = run(Adagrad, [[3.0, -4.0, 1.0], [4.0, 3.0, 0.0]], 0.1, eps=1.0)
    assert updates[0].tolist() == close([0.075, -0.08, 0.05])
    assert updates[1].tolist() == close([0.4 / 6, 0.05, 0.0])


def test_rmsprop_by_hand():
    # rho = 0.75, eps = 1: s1 = 0.25 g1^2 = [1, 4, 9] -> g / (sqrt(s) + 1) = [1, -4/3, 6/4]
    # s2 = 0.75 s1 + 0.25 g2^2 = [1, 4, 9] again -> [1/2, 2/3, -3/4]
    _, updates = run(RMSprop, [[2.0, -4.0, 6.0], [1.0, 2.0, -3.0]], 0.1, rho=0.75, eps=1.0)
    assert updates[0].tolist() == close([0.1, -0.4 / 3, 0.15])
    assert updates[1].tolist() == close([0.05, 0.2 / 3, -0.075])


ADAM_GRADS = [[2.0, -4.0, 0.5], [-2.0, 10.0, -0.5]]


def test_adam_bias_correction_by_hand():
    # beta1 = 0.5, beta2 = 0.75, eps = 1, lr = 0.1.
    # t=1: m_hat = m / 0.5 = g, v_hat = v / 0.25 = g^2 -> update = lr g / (|g| + 1)
    #      (without the correction it would be lr 0.5 g / (0.5 |g| + 1)).
    # t=2: m_hat = (0.25 g1 + 0.5 g2) / 0.75 = [-2/3, 16/3, -1/6]
    #      v_hat = (0.1875 g1^2 + 0.25 g2^2) / 0.4375 = [4, 64, 1/4]
    #      update = lr m_hat / (sqrt(v_hat) + 1) = lr [-2/9, 16/27, -1/9]
    thetas, updates = run(Adam, ADAM_GRADS, 0.1, beta1=0.5, beta2=0.75, eps=1.0)
    assert updates[0].tolist() == close([0.2 / 3, -0.08, 0.1 / 3])
    assert updates[1].tolist() == close([-0.2 / 9, 1.6 / 27, -0.1 / 9])
    assert thetas[1].tolist() == close(
        [1.0 - 0.2 / 3 + 0.2 / 9, -2.0 + 0.08 - 1.6 / 27, 0.5 - 0.1 / 3 + 0.1 / 9]
    )


def test_adam_first_step_is_lr_times_sign():
    # With default eps the bias-corrected first step is lr g / |g|, whatever |g| is.
    _, updates = run(Adam, [[1e-3, -5.0, 300.0]], 0.01)
    assert updates[0].tolist() == pytest.approx([0.01, -0.01, 0.01], rel=1e-4)


def test_adamw_decays_weights_not_biases_by_hand():
    # Same Adam steps as above, plus lr * wd * theta on theta[:2] only (wd = 0.5).
    thetas, updates = run(
        AdamW, ADAM_GRADS, 0.1, n_weights=2, beta1=0.5, beta2=0.75, eps=1.0, weight_decay=0.5
    )
    # decay terms at t=1: 0.05 * [1, -2]; bias entry gets none
    assert updates[0].tolist() == close([0.2 / 3 + 0.05, -0.08 - 0.1, 0.1 / 3])
    theta1 = [1.0 - 0.2 / 3 - 0.05, -2.0 + 0.08 + 0.1, 0.5 - 0.1 / 3]
    assert thetas[0].tolist() == close(theta1)
    # t=2 decays the current weights, theta1[:2]
    assert updates[1].tolist() == close(
        [-0.2 / 9 + 0.05 * theta1[0], 1.6 / 27 + 0.05 * theta1[1], -0.1 / 9]
    )


def test_adamw_zero_gradient_only_shrinks_weights():
    # m = v = 0 -> the Adam part is 0 / eps = 0; weights shrink by (1 - lr wd), biases stay
    thetas, updates = run(AdamW, [[0.0, 0.0, 0.0]] * 2, 0.1, n_weights=2, weight_decay=0.1)
    assert updates[0].tolist() == close([0.01, -0.02, 0.0])
    assert thetas[1].tolist() == close([0.99**2, -2.0 * 0.99**2, 0.5])


def test_adam_has_no_decay_and_adamw_defaults_to_decay():
    theta0 = [1.0, -2.0, 0.5]
    _, adam = run(Adam, [[0.0, 0.0, 0.0]], 0.1, theta0=theta0, n_weights=2)
    assert adam[0].tolist() == [0.0, 0.0, 0.0]
    _, adamw = run(AdamW, [[0.0, 0.0, 0.0]], 0.1, theta0=theta0, n_weights=2)
    assert adamw[0].tolist() == close([0.001, -0.002, 0.0])  # weight_decay = 0.01


# ---------------------------------------------------------------- dtype


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float32_stays_float32(name):
    theta = np.array(THETA0, dtype=np.float32)
    grad = np.zeros_like(theta)
    opt = OPTIMIZERS[name](theta, grad, 2)
    for g in GRADS:
        grad[:] = g
        opt.step(0.1)
    assert theta.dtype == np.float32
    assert opt.update.dtype == np.float32
    for state in vars(opt).values():
        if isinstance(state, np.ndarray):
            assert state.dtype == np.float32
    # and agrees with the float64 run to float32 precision
    thetas64, _ = run(OPTIMIZERS[name], GRADS, 0.1, n_weights=2)
    np.testing.assert_allclose(theta, thetas64[-1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- schedules


def lrs(schedule: Schedule, ts) -> list[float]:
    return [schedule(t) for t in ts]


def test_constant_schedule():
    assert lrs(Schedule("constant", 0.1, 10), [0, 1, 9, 10, 1000]) == [0.1] * 5


def test_step_schedule():
    s = Schedule("step", 0.1, 100, step_size=3, gamma=0.5)
    assert lrs(s, range(8)) == close([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])


def test_cosine_schedule():
    # min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2, held at min_lr after T
    s = Schedule("cosine", 0.1, 4, min_lr=0.01)
    expected = [
        0.1,
        0.01 + 0.045 * (1 + math.sqrt(0.5)),
        0.055,
        0.01 + 0.045 * (1 - math.sqrt(0.5)),
    ]
    assert lrs(s, range(4)) == close(expected)
    assert lrs(s, [4, 5, 100]) == close([0.01, 0.01, 0.01])


def test_warmup_schedule():
    # linear ramp lr (t + 1) / w, then constant
    s = Schedule("warmup", 0.1, 100, warmup_steps=4)
    assert lrs(s, [0, 1, 2, 3, 4, 50, 1000]) == close([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1])


def test_warmup_then_step():
    # the step decay counts from the end of the warm-up
    s = Schedule("step", 0.1, 100, warmup_steps=2, step_size=3, gamma=0.5)
    assert lrs(s, range(9)) == close([0.05, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_warmup_then_cosine():
    # the cosine runs over the remaining total_steps - w = 8 steps
    s = Schedule("cosine", 0.1, 10, warmup_steps=2)
    assert lrs(s, [0, 1, 2, 6, 10, 11]) == close([0.05, 0.1, 0.1, 0.05, 0.0, 0.0])
    assert s(4) == close(0.05 * (1 + math.sqrt(0.5)))


def test_unknown_schedule_names_the_value():
    with pytest.raises(ValueError, match="'linear'"):
        Schedule("linear", 0.1, 10)(0)


# ---------------------------------------------------------------- clipping


def test_clip_by_norm_leaves_small_gradient_untouched():
    grad = np.array([3.0, -4.0, 0.0])
    scale = clip_by_norm(grad, 10.0, float(grad @ grad))
    assert scale == 1.0
    assert grad.tolist() == [3.0, -4.0, 0.0]
    # a norm exactly at the threshold is not scaled either
    assert clip_by_norm(grad, 5.0, float(grad @ grad)) == 1.0
    assert grad.tolist() == [3.0, -4.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_norm_scales_to_threshold(dtype):
    grad = np.array([3.0, -4.0, 0.0], dtype=dtype)
    out = grad
    scale = clip_by_norm(grad, 2.0, float(grad @ grad))
    assert scale == close(0.4)
    assert grad is out and grad.dtype == dtype  # in place
    rel = 1e-12 if dtype == np.float64 else 1e-6
    assert grad.tolist() == pytest.approx([1.2, -1.6, 0.0], rel=rel, abs=0.0)
    assert float(np.linalg.norm(grad.astype(np.float64))) == pytest.approx(2.0, rel=rel)


def test_clip_by_value():
    grad = np.array([3.0, -4.0, 0.5, -1.0])
    out = grad
    assert clip_by_value(grad, 1.0) is None
    assert grad is out
    assert grad.tolist() == [1.0, -1.0, 0.5, -1.0]
    grad32 = np.array([3.0, -0.25], dtype=np.float32)
    clip_by_value(grad32, 0.5)
    assert grad32.dtype == np.float32
    assert grad32.tolist() == [0.5, -0.25]


# ---------------------------------------------------------------- end to end


QUAD_LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.5, "rmsprop": 0.05, "adam": 0.2}
QUAD_LR["adamw"] = QUAD_LR["adam"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_reduces_quadratic_loss(name):
    """L = 1/2 sum a (theta - c)^2 with a badly scaled a; 50 steps as the trainer takes
    them (schedule, clip by norm, step). Every optimizer must cut the loss tenfold."""
    a = np.array([1.0, 4.0, 0.5])
    c = np.array([0.5, -1.0, 2.0])
    theta = np.array([3.0, 2.0, -1.0])
    grad = np.zeros_like(theta)
    opt = OPTIMIZERS[name](theta, grad, 2)
    schedule = Schedule("cosine", QUAD_LR[name], 50, warmup_steps=5)

    def loss() -> float:
        return float(0.5 * np.sum(a * (theta - c) ** 2))

    start = loss()
    for t in range(50):
        grad[:] = a * (theta - c)
        clip_by_norm(grad, 5.0, float(grad @ grad))
        opt.step(schedule(t))
    assert np.all(np.isfinite(theta))
    assert loss() < 0.1 * start, (name, start, loss())
