"""The per-unit statistics (dead, saturation, saturated_entries) and the gradient-noise
pair (grad_snr, norm_test) of training/diagnostics.py, against their definitions: exact
constructed cases, and an explicit per-example loop in float64."""

from __future__ import annotations

import numpy as np
import pytest

from bpstudy.learning_rule import Backprop
from bpstudy.training.diagnostics import COL, Diagnostics, unit_stats
from bpstudy.training.events import Listener
from bpstudy.training.gradient_noise import error_sq_norms, input_sq_norms, rowwise_sq_norms
from tests.conftest import trainer_for


def logged_row(trainer, batch: int = 32) -> np.ndarray:
    """One logged training step on the first `batch` examples: its (depth, stats) row."""
    X, y = trainer.data.X_train[:batch], trainer.data.y_train[:batch]
    trainer.train_step(X, y)
    return trainer.diagnostics.rows[-1]


def test_unit_stats_count_units_not_entries():
    """4 units over a batch of 10: saturated on 10, 9, 5 and 0 examples."""
    counts = np.array([[10.0, 9.0, 5.0, 0.0]])
    dead, saturation, entries = unit_stats(counts, 10)
    assert dead[0] == 0.25  # only the unit saturated on every example
    assert saturation[0] == 0.5  # 10 and 9 of 10 are >= 90%
    assert entries[0] == 24 / 40


@pytest.mark.parametrize(
    ("mean", "spread"),
    [(0.0, 1e-4), (0.5, 1e-4), (1.0 - 1e-3, 1e-4), (3e17, 3e17), (1.0 - 1e-6, 1e-7)],
)
def test_act_std_keeps_its_digits_where_the_mean_dominates(mean, spread):
    """float32 activations of one layer with a `spread` around `mean`: the std matches
    float64's to 1e-5, though E[a^2] - E[a]^2 of float32 sums would cancel to noise (a
    saturated sigmoid layer at 1 - 1e-3); exploding ones at 3e17, whose squares overflow
    a float32 sum over the batch (was inf); a spread of about one float32 step near 1,
    where the centre's own rounding counts (was 9% off)."""
    rng = np.random.default_rng(0)
    acts = (mean + spread * rng.standard_normal((3, 64, 32))).astype(np.float32)
    acts[1] = rng.standard_normal((64, 32))  # a layer of the usual kind beside it
    act_sq = rowwise_sq_norms(acts.reshape(-1, 32)).reshape(3, 64)
    std = Diagnostics()._act_std(acts, act_sq)
    expected = acts.astype(np.float64).reshape(3, -1).std(axis=1)
    np.testing.assert_allclose(std, expected, rtol=1e-5)


def test_saturated_counts_agree_across_chunks(small_cfg, monkeypatch):
    """Flags made two layers at a time (chunks of 2, 2 and 1 layers) count what the
    definition counts, layer by layer."""
    from bpstudy.model.activations import SATURATED_BELOW
    from bpstudy.training import diagnostics

    cfg = small_cfg("model.depth=5", "model.activation=tanh", "model.init.sigma_w=2.5",
                    "model.init.scheme=normal", "trainer.log_every=1")  # fmt: skip
    trainer = trainer_for(cfg)
    logged_row(trainer)
    acts = trainer.net.last_workspace.acts
    monkeypatch.setattr(diagnostics, "CHUNK_BYTES", 2 * acts[0].nbytes)
    counts = Diagnostics()._saturated_counts(trainer.net, acts)
    expected = (1.0 - acts.astype(np.float64) ** 2 < SATURATED_BELOW).sum(axis=1)
    assert 0 < expected.sum() < expected.size * acts.shape[1]  # some saturate, not all
    np.testing.assert_array_equal(counts, expected)


def test_dead_is_zero_for_a_linear_net(small_cfg):
    trainer = trainer_for(small_cfg("model.activation=linear", "trainer.log_every=1"))
    row = logged_row(trainer)
    for stat in ("dead", "saturation", "saturated_entries"):
        assert (row[:, COL[stat]] == 0.0).all(), stat


def test_dead_is_one_for_relu_units_that_never_fire(small_cfg):
    """A large negative bias in every hidden layer: every pre-activation is negative."""
    trainer = trainer_for(small_cfg("model.activation=relu", "trainer.log_every=1"))
    for i in range(trainer.net.depth):
        trainer.net.parameters()[f"hidden.{i}.b"][...] = -1e3
    row = logged_row(trainer)
    for stat in ("dead", "saturation", "saturated_entries"):
        assert (row[:, COL[stat]] == 1.0).all(), stat


@pytest.mark.parametrize(("sigma_w", "low", "high"), [(1000.0, 0.9, 1.0), (0.01, 0.0, 0.0)])
def test_tanh_saturation_follows_the_weights(small_cfg, sigma_w, low, high):
    """Huge weights drive tanh units to +-1 on nearly every example; tiny ones keep every
    unit in the linear part."""
    trainer = trainer_for(
        small_cfg(
            "model.activation=tanh",
            "model.init.scheme=normal",
            f"model.init.sigma_w={sigma_w}",
            "trainer.log_every=1",
        )
    )
    saturation = logged_row(trainer)[:, COL["saturation"]]
    assert ((low <= saturation) & (saturation <= high)).all(), saturation


def per_example_grads(net, X: np.ndarray, y: np.ndarray, layer: int) -> np.ndarray:
    """(B, fan_in * fan_out + fan_out): the gradient of each example's own loss for hidden
    layer `layer`'s W and b, by one forward and backward pass per example (no L1/L2)."""
    rows = []
    W = net.parameters()[f"hidden.{layer}.W"]
    for n in range(X.shape[0]):
        net.compute_gradient(X[n : n + 1], y[n : n + 1], Backprop())
        dW = net.grad[net.slices[f"hidden.{layer}.W"][0]] - net.l2 * W.ravel()
        db = net.grad[net.slices[f"hidden.{layer}.b"][0]]
        rows.append(np.concatenate([dW, db]))
    return np.array(rows)


def expected_noise(g: np.ndarray) -> tuple[float, float]:
    """(grad_snr, norm_test) from materialised per-example gradients g: (B, P)."""
    B, mean = g.shape[0], g.mean(axis=0)
    spread = ((g - mean) ** 2).sum(axis=1)  # ||g_n - mean g||^2, no cancellation
    signal = mean @ mean
    return signal / spread.mean(), np.sqrt(spread.sum() / ((B - 1) * B * signal))


def rel_error(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))))


@pytest.mark.parametrize(
    "extra",
    [
        ["model.activation=tanh"],
        ["model.activation=relu", "regularization.l2=0.01"],
        ["model.activation=softsign", "model.residual.enabled=true"],
    ],
    ids=["tanh", "relu-l2", "residual"],
)
def test_gradient_noise_matches_a_per_example_loop(small_cfg, extra):
    """The norm identity ||g_n|| = B ||delta_n|| sqrt(||a_n||^2 + 1), grad_snr and
    norm_test against the gradients of each example's own loss (float64, 1e-10)."""
    cfg = small_cfg("model.depth=3", "trainer.dtype=float64", "trainer.log_every=1", *extra)
    trainer = trainer_for(cfg)
    net, B = trainer.net, 16
    X, y = trainer.data.X_train[:B], trainer.data.y_train[:B]
    theta = net.theta.copy()
    row = logged_row(trainer, B)
    ws = net.last_workspace
    delta_sq = rowwise_sq_norms(ws.deltas.reshape(-1, net.arch.width)).reshape(net.depth, B)
    act_sq = rowwise_sq_norms(ws.acts.reshape(-1, net.arch.width)).reshape(net.depth, B)
    norms = B * np.sqrt(error_sq_norms(net, delta_sq) * (input_sq_norms(net, act_sq) + 1.0))
    net.theta[...] = theta  # the statistics were taken before the step
    for i in range(net.depth):
        g = per_example_grads(net, X, y, i)
        assert rel_error(norms[i], np.linalg.norm(g, axis=1)) < 1e-10
        snr, norm_test = expected_noise(g)
        assert rel_error(row[i, COL["grad_snr"]], snr) < 1e-10
        assert rel_error(row[i, COL["norm_test"]], norm_test) < 1e-10
        assert 0 < snr < 1e3  # not degenerate: a spread and a signal


def decomposed_grads(net, layer: int) -> np.ndarray:
    """(B, P): example n's term B [a_n; 1] dz_n^T of hidden layer `layer`'s batch gradient,
    materialised from the layer's cached input and Linear-output error."""
    block = net.blocks[layer]
    x, dz = block.dense.x, block.dz
    B = x.shape[0]
    x1 = np.concatenate([x, np.ones((B, 1))], axis=1)
    outer = B * x1[:, :, None] * dz[:, None, :]  # (B, fan_in + 1, fan_out)
    return np.concatenate([outer[:, :-1].reshape(B, -1), outer[:, -1]], axis=1)


@pytest.mark.parametrize(
    "extra",
    [
        ["model.batch_norm=true"],
        ["model.dropout=0.3"],
        ["learning_rule=feedback_alignment"],
        ["learning_rule=direct_feedback_alignment"],
    ],
    ids=["batch_norm", "dropout", "fa", "dfa"],
)
def test_gradient_noise_of_a_coupled_batch_or_another_rule(small_cfg, extra):
    """With batch norm, dropout or a feedback-alignment rule, g_n is example n's term of
    the layer's batch update (the rule's, for FA/DFA): the terms add up to dW and db, and
    the statistics are theirs (float64, 1e-10)."""
    cfg = small_cfg("model.depth=3", "trainer.dtype=float64", "trainer.log_every=1", *extra)
    trainer = trainer_for(cfg)
    net = trainer.net
    grads = {}

    class Grab(Listener):  # the update the rule proposed, before the optimizer's step
        def on_gradients(self, trainer, step):
            grads.update({i: decomposed_grads(net, i) for i in range(net.depth)})
            grads["dW"] = [b.dense.dW.copy() for b in net.blocks]
            grads["db"] = [b.dense.db.copy() for b in net.blocks]

    trainer.listeners.insert(1, Grab())  # after the diagnostics, before the step
    row = logged_row(trainer, 16)
    for i in range(net.depth):
        g = grads[i]
        total = np.concatenate([grads["dW"][i].ravel(), grads["db"][i]])
        np.testing.assert_allclose(g.mean(axis=0), total, rtol=1e-10, atol=1e-14)
        snr, norm_test = expected_noise(g)
        assert rel_error(row[i, COL["grad_snr"]], snr) < 1e-10
        assert rel_error(row[i, COL["norm_test"]], norm_test) < 1e-10


def test_a_batch_of_one_has_no_noise_figure(small_cfg):
    trainer = trainer_for(small_cfg("trainer.log_every=1"))
    row = logged_row(trainer, 1)
    assert np.isnan(row[:, COL["grad_snr"]]).all() and np.isnan(row[:, COL["norm_test"]]).all()


def test_summary_shows_dead_and_saturated_units(small_cfg):
    """The end-of-run table: a relu net that never fires is 100% dead and saturated."""
    from bpstudy.training.summary import render

    trainer = trainer_for(small_cfg("model.activation=relu"))
    for i in range(trainer.net.depth):
        trainer.net.parameters()[f"hidden.{i}.b"][...] = -1e3
    lines = render(trainer.fit()).splitlines()
    header = lines.index("per-layer gradient norm (first vs last logged step):")
    assert lines[header + 1].split() == ["layer", "first", "last", "dead", "saturated"]
    for layer, line in enumerate(lines[header + 2 : header + 5], start=1):
        assert line.split()[0] == str(layer) and line.split()[3:] == ["100.0%", "100.0%"]
