"""Feedback alignment and direct feedback alignment: exact where the math says they
must be, the alignment diagnostics, training on digits, and the refused combinations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import bpstudy
from bpstudy.config.validate import validate
from bpstudy.errors import ConfigError
from bpstudy.learning_rule import (
    Backprop,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    LearningRule,
    angles_deg,
    make_learning_rule,
)
from bpstudy.model import Architecture, Network
from bpstudy.seeding import Seeds
from bpstudy.training.diagnostics import STATS, alignment_angles
from tests.conftest import trainer_for

RULES = ["feedback_alignment", "direct_feedback_alignment"]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "softsign", "linear"]
# architectures each rule must handle (DFA: not residual, which it refuses)
ARCHS = {
    "plain": dict(activation="tanh"),
    "bn_dropout": dict(activation="relu", batch_norm=True, dropout=0.3),
    "residual_bn": dict(activation="sigmoid", residual=True, batch_norm=True),
}
DIGITS = ["data=digits", "model.width=64", "trainer.progress=none", "tracking.enabled=false"]


def make_net(dtype=np.float64, seed: int = 3, **arch) -> Network:
    base = dict(in_dim=5, out_dim=3, depth=3, width=7, activation="tanh", loss="cross_entropy")
    base.update(arch)
    l2 = base.pop("l2", 0.0)
    return Network(
        Architecture(**base),
        dtype=dtype,
        init_rng=np.random.default_rng(seed),
        dropout_rng=np.random.default_rng(seed + 1),
        init_scheme="xavier_normal",
        sigma_b=0.3,
        l2=l2,
    )


def weight_shapes(net: Network) -> list[tuple[int, int]]:
    return [W.shape for name, W in net.parameters().items() if name.endswith(".W")]


def rule_for(net: Network, name: str, seed: int = 0, scale: float = 1.0) -> LearningRule:
    rng = Seeds(seed).rng("feedback")
    return make_learning_rule(name, weight_shapes(net), rng, scale, net.dtype)


def forward(net: Network, n: int = 6, seed: int = 0) -> np.ndarray:
    """One training-mode forward pass on a random batch; returns dLoss/dscores."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.arch.in_dim)).astype(net.dtype)
    if net.arch.loss == "cross_entropy":
        y = rng.integers(0, net.arch.out_dim, n)
    else:
        y = rng.standard_normal((n, net.arch.out_dim)).astype(net.dtype)
    _, dscores = net.loss(net.forward(X, train=True), y)
    return dscores


def grad_of(net: Network, rule: LearningRule, dscores: np.ndarray) -> np.ndarray:
    net.grad[...] = np.nan  # every entry must be written by the rule
    rule.backward(net, dscores)
    return net.grad.copy()


# ---------------------------------------------------------------- exact where it must be


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_fa_with_feedback_equal_to_forward_weights_is_backprop(arch):
    net = make_net(**arch)
    rule = rule_for(net, "feedback_alignment")
    for name, B in rule.feedback.items():
        B[...] = net.parameters()[name]
    dscores = forward(net)  # one forward: the same dropout mask for both rules
    expected = grad_of(net, Backprop(), dscores)
    assert np.array_equal(grad_of(net, rule, dscores), expected)  # bit for bit


@pytest.mark.parametrize("depth", [1, 3])
def test_dfa_on_a_linear_net_with_downstream_products_is_backprop(depth):
    # linear layers: the error reaching block i is e @ (W_{i+1} ... W_out)^T exactly
    net = make_net(depth=depth, activation="linear")
    rule = rule_for(net, "direct_feedback_alignment")
    params = net.parameters()
    product = params["output.W"]
    for i in range(depth - 1, -1, -1):
        rule.feedback[f"hidden.{i}"][...] = product.T
        product = params[f"hidden.{i}.W"] @ product
    dscores = forward(net)
    expected = grad_of(net, Backprop(), dscores)
    np.testing.assert_allclose(grad_of(net, rule, dscores), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dfa_at_depth_one_is_fa(activation):
    net = make_net(depth=1, activation=activation, dropout=0.2)
    fa, dfa = rule_for(net, "feedback_alignment"), rule_for(net, "direct_feedback_alignment")
    dfa.feedback["hidden.0"][...] = fa.feedback["output.W"].T
    dscores = forward(net)
    np.testing.assert_allclose(grad_of(net, dfa, dscores), grad_of(net, fa, dscores), rtol=1e-13)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_loss(name, loss, activation):
    net = make_net(activation=activation, loss=loss)
    rule = rule_for(net, name)
    dscores = forward(net)
    expected = grad_of(net, Backprop(), dscores)
    got = grad_of(net, rule, dscores)
    assert np.isfinite(got).all()
    grads = {k: got[sl].reshape(shape) for k, (sl, shape) in net.slices.items()}
    assert all(grads[k].shape == p.shape for k, p in net.parameters().items())
    # the output layer sees the true error under every rule; the hidden ones do not
    for key in ("output.W", "output.b"):
        sl = net.slices[key][0]
        assert np.array_equal(got[sl], expected[sl])
    hidden = net.slices["hidden.0.W"][0]
    assert not np.allclose(got[hidden], expected[hidden])


def test_dfa_hidden_updates_have_the_right_shapes():
    cfg = bpstudy.compose([*DIGITS, "learning_rule=direct_feedback_alignment", "model.depth=4"])
    trainer = trainer_for(cfg)
    net, rule = trainer.net, trainer.rule
    assert isinstance(rule, DirectFeedbackAlignment)
    assert [B.shape for B in rule.feedback.values()] == [(10, 64)] * 4
    assert rule.B.dtype == net.dtype == np.float32
    X, y = trainer.data.X_train[:32], trainer.data.y_train[:32]
    _, grads = net.loss_and_grads(X, y, rule)
    params = net.parameters()
    for i in range(4):
        for part in ("W", "b"):
            key = f"hidden.{i}.{part}"
            assert grads[key].shape == params[key].shape
            assert np.isfinite(grads[key]).all() and np.abs(grads[key]).max() > 0


# ---------------------------------------------------------------- the alignment angle


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_backprop_alignment_angle_is_zero(dtype, arch):
    net = make_net(dtype=dtype, l2=0.01, **arch)
    dscores = forward(net)
    Backprop().backward(net, dscores)
    net.add_penalty_grad()
    before = (net.grad.copy(), net.last_workspace.deltas.copy())
    angles = alignment_angles(net, dscores)
    assert angles.shape == (net.depth,)
    assert np.array_equal(angles, np.zeros(net.depth))
    # the rule's gradient and error signals are left as they were
    assert np.array_equal(net.grad, before[0])
    assert np.array_equal(net.last_workspace.deltas, before[1])


def test_angles_deg():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [-3.0, 0.0], [1.0, 0.0]])
    angles = angles_deg(a, b)
    np.testing.assert_allclose(angles[:3], [90.0, 0.0, 180.0], atol=1e-12)
    assert np.isnan(angles[3])  # a zero update has no direction


def test_fa_starts_near_90_degrees_on_fresh_networks():
    data = bpstudy.load_data(bpstudy.compose(DIGITS))
    angles, feedback = [], []
    for seed in range(5):
        cfg = bpstudy.compose(
            [*DIGITS, "learning_rule=feedback_alignment", "model.depth=4", f"trainer.seed={seed}"]
        )
        trainer = trainer_for(cfg, data=data)
        net, rule = trainer.net, trainer.rule
        _, dscores = net.loss(net.forward(data.X_train[:64], train=True), data.y_train[:64])
        rule.backward(net, dscores)
        angles.append(alignment_angles(net, dscores))
        feedback.append(rule.feedback_angles(net))
    angles, feedback = np.array(angles), np.array(feedback)
    assert np.all(np.abs(angles - 90) < 15), angles.round(1)
    assert abs(angles.mean() - 90) < 4, angles.mean()
    assert np.all(np.abs(feedback - 90) < 5), feedback.round(1)


def test_fa_alignment_falls_during_training_on_digits():
    cfg = bpstudy.compose(
        [
            *DIGITS,
            "learning_rule=feedback_alignment",
            "model.depth=2",
            "model.activation=tanh",
            "optimizer=momentum",
            "trainer.epochs=20",
            "trainer.log_every=5",
        ]
    )
    result = bpstudy.train(cfg)
    stats = result.layer_stats
    assert list(stats.columns) == ["step", "layer", *STATS, "alignment", "feedback_angle"]
    by_step = stats.groupby("step")[["alignment", "feedback_angle"]].mean()
    start, end = by_step.iloc[:3].mean(), by_step.iloc[-10:].mean()
    assert abs(start["alignment"] - 90) < 6, start
    assert end["alignment"] < 75 and start["alignment"] - end["alignment"] > 15, (start, end)
    # W of the layers above turns toward the fixed B (Lillicrap et al.'s mechanism)
    assert end["feedback_angle"] < start["feedback_angle"] - 10, (start, end)
    assert result.history["train/loss"].iloc[-1] < 0.5


def test_feedback_angle_is_zero_when_feedback_equals_weights():
    net = make_net(depth=4)
    rule = rule_for(net, "feedback_alignment")
    assert np.all(np.abs(rule.feedback_angles(net) - 90) < 45)
    for name, B in rule.feedback.items():
        B[...] = net.parameters()[name]
    assert np.array_equal(rule.feedback_angles(net), np.zeros(4))


# ---------------------------------------------------------------- training


class OutputOnly(LearningRule):
    """A baseline that trains the output layer alone (the hidden layers stay random)."""

    name = "output_only"

    def backward(self, net, dscores: np.ndarray) -> None:
        net.grad[...] = 0.0
        net.output.backward(dscores, need_dx=False)


def test_dfa_reduces_training_loss_on_digits_within_a_few_epochs():
    base = [*DIGITS, "model.depth=4", "model.activation=tanh", "trainer.epochs=5"]
    result = bpstudy.train(bpstudy.compose([*base, "learning_rule=direct_feedback_alignment"]))
    loss = result.history["train/loss"].to_numpy()
    assert np.all(np.diff(loss) < 0), loss
    assert loss[-1] < 0.35 * np.log(10), loss  # from about log(10) for ten classes
    assert result.metrics["val/accuracy"] > 0.75
    # the hidden updates do the work: training the output layer alone falls far behind
    trainer = trainer_for(bpstudy.compose(base))
    trainer.rule = OutputOnly()
    baseline = trainer.fit().history["train/loss"].to_numpy()
    assert loss[-1] < 0.8 * baseline[-1], (loss, baseline)
    stats = result.layer_stats
    assert list(stats.columns) == ["step", "layer", *STATS, "alignment"]
    assert stats["alignment"].notna().all()


def test_alignment_diagnostics_do_not_change_training(small_cfg):
    # the extra backward pass on logging steps leaves the rule's update untouched
    for name in RULES:
        every = bpstudy.train(small_cfg(f"learning_rule={name}", "trainer.log_every=1"))
        rarely = bpstudy.train(small_cfg(f"learning_rule={name}", "trainer.log_every=1000"))
        pd.testing.assert_frame_equal(every.history, rarely.history, check_exact=True)
        assert len(every.layer_stats) > len(rarely.layer_stats)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_optimizer_and_regulariser(small_cfg, name, optimizer):
    cfg = small_cfg(
        f"learning_rule={name}",
        f"optimizer={optimizer}",
        "regularization.l1=1e-4",
        "regularization.l2=1e-3",
        "model.dropout=0.1",
        "trainer.clip.mode=norm",
    )
    result = bpstudy.train(cfg)
    assert result.status == "finished"
    assert np.isfinite(result.history["train/loss"]).all()


@pytest.mark.parametrize(
    "overrides",
    [
        ["learning_rule=feedback_alignment", "model.residual.enabled=true"],
        [
            "learning_rule=feedback_alignment",
            "model.residual.enabled=true",
            "model.batch_norm=true",
        ],
        ["learning_rule=direct_feedback_alignment", "model.batch_norm=true"],
        # regression (one output); DFA's rank-1 feedback needs the gentler step here
        ["learning_rule=feedback_alignment", "data=teacher", "trainer.dtype=float64"],
        ["learning_rule=direct_feedback_alignment", "data=teacher", "optimizer.lr=0.03"],
    ],
)
def test_supported_architectures_train(small_cfg, overrides):
    result = bpstudy.train(small_cfg(*overrides, "trainer.log_every=2"))
    assert result.status == "finished"
    assert result.layer_stats["alignment"].notna().all()


# ---------------------------------------------------------------- config and seeding


def test_feedback_matrices_come_from_their_own_seeded_stream(small_cfg):
    fa = trainer_for(small_cfg("learning_rule=feedback_alignment"))
    again = trainer_for(small_cfg("learning_rule=feedback_alignment"))
    assert isinstance(fa.rule, FeedbackAlignment)
    assert np.array_equal(fa.rule.flat, again.rule.flat)
    # drawn from Seeds(seed).rng("feedback") in float64, then cast
    direct = rule_for(fa.net, "feedback_alignment")
    assert np.array_equal(fa.rule.flat, direct.flat.astype(np.float32))
    assert list(fa.rule.feedback) == ["hidden.1.W", "hidden.2.W", "output.W"]
    for name, B in fa.rule.feedback.items():
        assert B.shape == fa.net.parameters()[name].shape
    # the rule draws nothing from the init stream: the same starting weights as backprop
    bp = trainer_for(small_cfg())
    assert np.array_equal(bp.net.theta, fa.net.theta)
    other = trainer_for(small_cfg("learning_rule=feedback_alignment", "trainer.seed=1"))
    assert not np.array_equal(fa.rule.flat, other.rule.flat)
    # scale multiplies the same draw
    doubled = trainer_for(small_cfg("learning_rule=feedback_alignment", "learning_rule.scale=2"))
    np.testing.assert_allclose(doubled.rule.flat, 2 * fa.rule.flat, rtol=1e-6)


def test_learning_rule_config_checks(small_cfg):
    with pytest.raises(ConfigError, match=r"learning_rule.scale=0.0 is out of range"):
        validate(small_cfg("learning_rule=feedback_alignment", "learning_rule.scale=0"))
    with pytest.raises(ConfigError, match=r"learning_rule.scale.*scale is a key of"):
        validate(small_cfg("learning_rule.scale=2"))  # backprop has no scale
    with pytest.raises(ConfigError, match=r"model\.residual\.enabled=true"):
        validate(
            small_cfg("learning_rule=direct_feedback_alignment", "model.residual.enabled=true")
        )
    with pytest.raises(ValueError, match="unknown learning rule 'hebbian'"):
        make_learning_rule("hebbian")


def test_refused_combination_exits_2_through_the_cli(cli):
    out = cli(
        "train",
        "learning_rule=direct_feedback_alignment",
        "model.residual.enabled=true",
        "tracking.enabled=false",
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "learning_rule=direct_feedback_alignment" in lines[0]
    assert "model.residual.enabled=true" in lines[0]
    assert "Traceback" not in out.stderr + out.stdout


# ---------------------------------------------------------------- MLflow and the sweep


def test_alignment_is_logged_to_mlflow(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = cli(
        "train",
        "learning_rule=feedback_alignment",
        "model.depth=3",
        "model.width=16",
        "trainer.epochs=2",
        "trainer.log_every=5",
        "trainer.progress=none",
        f"tracking.uri={uri}",
    )
    assert out.returncode == 0, out.stderr
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("bpstudy").experiment_id])[0]
    for stat in ("alignment", "feedback_angle"):
        for layer in (1, 2, 3):
            key = f"{stat}/L{layer:02d}"
            assert key in run.data.metrics
            history = client.get_metric_history(run.info.run_id, key)
            assert len(history) > 1 and all(0 <= m.value <= 180 for m in history)
    plots = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    assert "plots/alignment.png" in plots
    local = client.download_artifacts(run.info.run_id, "diagnostics/layers.parquet", str(tmp_path))
    layers = pd.read_parquet(local)
    assert list(layers.columns) == ["step", "layer", *STATS, "alignment", "feedback_angle"]


def test_learning_rules_sweep_composes():
    from bpstudy.sweep.space import check_space
    from bpstudy.sweep.spec import load_spec

    spec = load_spec("learning_rules")
    assert spec.space["learning_rule"].choices == tuple(
        ["backprop", "feedback_alignment", "direct_feedback_alignment"]
    )
    check_space(spec)  # every choice composes and validates


# ---------------------------------------------------------------- the interface, bit for bit


def walk_backward(net: Network, rule: LearningRule, dscores: np.ndarray) -> None:
    """The rules' backward passes as they walked the network before Network.backward
    (issue 26): the reference the interface must reproduce bit for bit."""
    deltas = net.last_workspace.deltas
    if isinstance(rule, DirectFeedbackAlignment):
        net.output.backward(dscores, need_dx=False)
        errors = np.matmul(dscores, rule.B)
        for i, block in enumerate(net.blocks):
            block.backward(errors[i], need_dx=False, delta_out=deltas[i])
        return
    B = list(rule.feedback.values()) if isinstance(rule, FeedbackAlignment) else None
    dh = net.output.backward(dscores, need_dx=net.depth > 0, feedback=B[-1] if B else None)
    for i in range(net.depth - 1, -1, -1):
        into = B[i - 1] if B and i > 0 else None
        dh = net.blocks[i].backward(dh, need_dx=i > 0, feedback=into, delta_out=deltas[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["backprop", *RULES])
@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_network_backward_reproduces_the_rules_walk_bit_for_bit(dtype, name, arch):
    if name == "direct_feedback_alignment" and arch.get("residual"):
        pytest.skip("refused combination")
    net = make_net(dtype=dtype, **arch)
    rule = rule_for(net, name) if name != "backprop" else Backprop()
    dscores = forward(net)
    walk_backward(net, rule, dscores)
    expected = (net.grad.copy(), net.last_workspace.deltas.copy())
    net.grad[...] = np.nan
    net.last_workspace.deltas[...] = np.nan
    rule.backward(net, dscores)
    assert np.array_equal(net.grad, expected[0])
    assert np.array_equal(net.last_workspace.deltas, expected[1])
