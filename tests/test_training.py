"""The training loop end to end: determinism, batch norm modes, early stopping,
divergence, clipping and the per-layer diagnostics table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bpstudy
from bpstudy.training.diagnostics import STATS
from tests.conftest import trainer_for


def test_python_api_as_in_readme():
    cfg = bpstudy.compose(
        ["model.depth=10", "model.activation=tanh", "trainer.epochs=1", "trainer.progress=none"]
    )
    data = bpstudy.load_data(cfg)
    assert data.X_train.dtype == np.float32 and data.in_dim == 64 and data.out_dim == 10
    net = bpstudy.build_network(cfg, data.in_dim, data.out_dim)
    params = net.parameters()
    assert len([k for k in params if k.endswith(".W")]) == 11
    loss, grads = net.loss_and_grads(data.X_train[:32], data.y_train[:32])
    assert grads.keys() == params.keys()
    assert all(grads[k].shape == params[k].shape for k in params)
    assert 1.5 < loss < 4.0  # about log(10) for a fresh 10-class net
    result = bpstudy.train(cfg)
    # build_network gives exactly the network train() starts from
    trainer = trainer_for(cfg)
    for name, p in net.parameters().items():
        assert np.array_equal(p, trainer.net.parameters()[name])
    assert set(result.history.columns) >= {
        "epoch",
        "step",
        "train/loss",
        "val/loss",
        "val/accuracy",
        "lr",
    }
    assert list(result.layer_stats.columns) == ["step", "layer", *STATS]


def test_import_bpstudy_is_light_and_its_names_load_on_use():
    """`import bpstudy` loads neither Hydra nor pandas nor MLflow (every command would pay
    for them before parsing its arguments); the API's names, and subpackages as
    attributes, load when used."""
    code = (
        "import sys, bpstudy\n"
        "heavy = [m for m in ('hydra', 'pandas', 'mlflow', 'optuna') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert bpstudy.api.train is bpstudy.train\n"
        "from bpstudy.config.compose import compose\n"
        "assert compose is bpstudy.compose\n"
        "from bpstudy import Listener, validate\n"
        "assert {'train', 'compose', 'Listener'} <= set(dir(bpstudy))\n"
        "try:\n"
        "    bpstudy.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'bpstudy' has no attribute 'no_such_name'"


def test_same_seed_same_numbers_bit_for_bit(small_cfg):
    cfg = small_cfg("model.dropout=0.2", "model.batch_norm=true", "trainer.log_every=1")
    a, b = bpstudy.train(cfg), bpstudy.train(cfg)
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    pd.testing.assert_frame_equal(a.layer_stats, b.layer_stats, check_exact=True)
    assert a.metrics == b.metrics
    other = bpstudy.train(small_cfg("model.dropout=0.2", "model.batch_norm=true", "trainer.seed=1"))
    assert not a.history["train/loss"].equals(other.history["train/loss"])


def test_seed_purposes_do_not_shift_each_other(small_cfg):
    # dropout draws from its own generator: turning it on changes no initial weight
    plain = bpstudy.build_network(small_cfg(), 64, 10)
    dropped = bpstudy.build_network(small_cfg("model.dropout=0.5"), 64, 10)
    for name, p in plain.parameters().items():
        assert np.array_equal(p, dropped.parameters()[name])
    # a wider network draws more at init, but the data split is untouched
    a = bpstudy.load_data(small_cfg("model.width=8"))
    b = bpstudy.load_data(small_cfg("model.width=128"))
    assert np.array_equal(a.X_val, b.X_val)


def test_float64_run(small_cfg):
    result = bpstudy.train(small_cfg("trainer.dtype=float64"))
    assert result.network.theta.dtype == np.float64
    assert result.status == "finished"


def test_batch_norm_train_vs_eval(small_cfg):
    cfg = small_cfg("model.batch_norm=true", "trainer.epochs=3")
    result = bpstudy.train(cfg)
    net = result.network
    bn = net.blocks[0].bn
    assert not np.allclose(bn.running_mean, 0.0) and not np.allclose(bn.running_var, 1.0)
    data = bpstudy.load_data(cfg)
    X = data.X_val[:50]
    # eval mode uses the running statistics: recompute the first block by hand
    z = X @ net.parameters()["hidden.0.W"] + net.parameters()["hidden.0.b"]
    u = (z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.gamma + bn.beta
    net.forward(X, train=False)
    assert np.allclose(net.blocks[0].a, np.maximum(u, 0), atol=1e-5)
    # train mode normalises with the batch's own statistics: the pre-activation batch mean
    # is beta and its std is |gamma| (per unit)
    net.forward(X, train=True)
    assert not np.allclose(net.forward(X, train=True), net.forward(X, train=False))
    running_before = bn.running_mean.copy()
    net.forward(X, train=False)
    assert np.array_equal(bn.running_mean, running_before), "eval must not update running stats"


def test_early_stopping(small_cfg):
    # min_delta so large that no epoch after the first counts as an improvement
    cfg = small_cfg(
        "trainer.epochs=10",
        "trainer.early_stopping.patience=2",
        "trainer.early_stopping.min_delta=1e9",
    )
    result = bpstudy.train(cfg)
    assert result.status == "early_stopped"
    assert result.epochs == 3
    assert "test/loss" in result.metrics


def test_losses_are_data_losses_and_the_penalty_is_its_own_metric(small_cfg):
    """With L1/L2, */loss is the data loss alone (a study over regularisation must not
    rank a stronger penalty worse by construction); train/penalty is the penalty."""
    cfg = small_cfg("trainer.epochs=2", "regularization.l2=0.5", "regularization.l1=0.01")
    result = bpstudy.train(cfg)
    net, data = result.network, bpstudy.load_data(cfg)
    w = np.concatenate([p.ravel() for k, p in net.parameters().items() if k.endswith(".W")])
    penalty = 0.01 * np.abs(w.astype(np.float64)).sum() + 0.25 * np.dot(w, w)
    assert result.history["train/penalty"].iloc[-1] == pytest.approx(penalty, rel=1e-5)
    for split, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        scores = net.forward(X, train=False).astype(np.float64)
        logp = scores - scores.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        cross_entropy = -logp[np.arange(len(y)), y].mean()
        assert result.metrics[f"{split}/loss"] == pytest.approx(cross_entropy, rel=1e-4)
        assert penalty > 1e-2 * cross_entropy  # far beyond the tolerance: it would show
    assert "train/penalty" not in bpstudy.train(small_cfg("trainer.epochs=1")).history


def test_divergence_is_a_result(small_cfg):
    cfg = small_cfg(
        "model.depth=30",
        "model.activation=relu",
        "model.init.scheme=normal",
        "model.init.sigma_w=4",
        "optimizer.lr=1",
        "trainer.log_every=1",
    )
    result = bpstudy.train(cfg)
    assert result.status == "diverged"
    assert result.diverged_step is not None and result.diverged_step < 5
    assert result.layer_stats["step"].max() < result.diverged_step
    assert result.steps == result.diverged_step


def test_layer_stats_every_log_every_steps(small_cfg):
    result = bpstudy.train(small_cfg("trainer.log_every=5", "model.depth=4"))
    stats = result.layer_stats
    steps = sorted(stats["step"].unique())
    assert steps == list(range(0, result.steps, 5))
    assert sorted(stats["layer"].unique()) == [1, 2, 3, 4]
    assert np.isfinite(stats[list(STATS)].to_numpy()).all()
    assert ((stats["saturation"] >= 0) & (stats["saturation"] <= 1)).all()
    assert (stats["dead"] <= stats["saturation"]).all()  # dead: saturated on every example
    # plain SGD without clipping applies lr * grad: update_ratio * |W| = lr * |dW|
    lr = bpstudy.validate(small_cfg()).optimizer.lr
    assert np.allclose(
        stats["update_ratio"] * stats["weight_norm"], lr * stats["grad_norm"], rtol=1e-4
    )
    ratio = result.step_stats["grad_norm/ratio_log10"].to_numpy()
    first = stats[stats["layer"] == 1]["grad_norm"].to_numpy()
    last = stats[stats["layer"] == 4]["grad_norm"].to_numpy()
    assert np.allclose(ratio, np.log10(first / last))


def test_clip_by_norm_bounds_the_applied_update(small_cfg):
    cfg = small_cfg("trainer.clip.mode=norm", "trainer.clip.threshold=0.01", "optimizer.lr=0.5")
    trainer = trainer_for(cfg)
    data = trainer.data
    trainer.train_step(data.X_train[:64], data.y_train[:64])
    assert np.linalg.norm(trainer.optimizer.update) == pytest.approx(0.5 * 0.01, rel=1e-4)
    cfg = small_cfg("trainer.clip.mode=value", "trainer.clip.threshold=0.001", "optimizer.lr=0.5")
    trainer = trainer_for(cfg)
    trainer.train_step(data.X_train[:64], data.y_train[:64])
    assert np.abs(trainer.optimizer.update).max() == pytest.approx(0.5 * 0.001, rel=1e-5)


@pytest.mark.parametrize("data", ["spirals", "teacher"])
def test_other_data_sets_train(small_cfg, data):
    result = bpstudy.train(small_cfg(f"data={data}", "trainer.epochs=5"))
    assert result.status == "finished"
    first, last = result.history["train/loss"].iloc[0], result.history["train/loss"].iloc[-1]
    assert last < first
    if data == "teacher":
        assert "val/accuracy" not in result.metrics  # regression: mse, no accuracy


def test_vanishing_and_healthy_gradients_with_depth():
    """The classic contrast: deep sigmoid + standard init vanishes, relu + he does not."""
    common = ["model.depth=20", "trainer.epochs=1", "trainer.progress=none"]
    sig = bpstudy.train(
        bpstudy.compose([*common, "model.activation=sigmoid", "model.init.scheme=standard"])
    )
    relu = bpstudy.train(
        bpstudy.compose([*common, "model.activation=relu", "model.init.scheme=he_normal"])
    )
    assert sig.step_stats["grad_norm/ratio_log10"].iloc[0] < -5
    assert abs(relu.step_stats["grad_norm/ratio_log10"].iloc[0]) < 1.5


def stopper(hook: str) -> bpstudy.Listener:
    """A listener that raises StopTraining from `hook`."""

    def stop(self, trainer, *args):
        raise bpstudy.StopTraining(f"from {hook}")

    return type("Stop", (bpstudy.Listener,), {hook: stop})()


@pytest.mark.parametrize("hook", ["on_train_start", "on_update", "on_train_end"])
def test_a_listener_may_stop_the_run_from_any_hook(small_cfg, hook):
    """StopTraining ends the run as `stopped` wherever it is raised (from on_train_end,
    when the run is over, it changes nothing); a step whose update was applied counts."""
    cfg = small_cfg("trainer.epochs=2", "trainer.log_every=1")
    trainer = trainer_for(cfg, [stopper(hook)])
    before = trainer.net.theta.copy()
    result = trainer.fit()
    moved = not np.array_equal(before, trainer.net.theta)
    if hook == "on_train_start":
        assert (result.status, result.steps, result.stop_reason) == (
            "stopped",
            0,
            "from on_train_start",
        )
        assert not moved
    elif hook == "on_update":
        # the first update was applied, so the run took one step
        assert (result.status, result.steps, result.stop_reason) == ("stopped", 1, "from on_update")
        assert moved and list(result.layer_stats["step"].unique()) == [0]
    else:
        assert result.status == "finished" and result.epochs == 2 and result.stop_reason is None


def test_a_run_whose_final_loss_is_not_finite_is_not_healthy(small_cfg):
    """Training finished, but the evaluation overflowed (a regression target in the 1e18s
    read as healthy): the outcome says diverged."""
    from bpstudy.training.outcome import classify

    result = bpstudy.train(small_cfg("trainer.epochs=1"))
    assert classify(result) == "healthy"
    result.metrics["val/loss"] = float("nan")
    assert classify(result) == "diverged"
    result.metrics["val/loss"], result.metrics["test/loss"] = 1.0, float("inf")
    assert classify(result) == "diverged"


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_layer_stats_match_their_definitions(small_cfg, activation):
    """One logged step's row of each statistic, recomputed from its docs/architecture.md §4 definition
    in float64 from the trainer's state after the step (plain SGD leaves the gradient)."""
    from bpstudy.model.activations import SATURATED_BELOW

    cfg = small_cfg(
        "model.depth=4",
        f"model.activation={activation}",
        "model.init.scheme=normal",
        "model.init.sigma_w=2.5",  # some units saturate
        "trainer.log_every=1",
    )
    trainer = trainer_for(cfg)
    X, y = trainer.data.X_train[:32], trainer.data.y_train[:32]
    trainer.train_step(X, y)
    net, ws = trainer.net, trainer.net.last_workspace
    row = pd.DataFrame(trainer.diagnostics.rows[-1], columns=list(trainer.diagnostics.columns))
    hidden = [f"hidden.{i}.W" for i in range(net.depth)]
    W = net.parameters()
    grad = {name: net.grad[net.slices[name][0]].astype(np.float64) for name in hidden}
    update = {
        name: trainer.optimizer.update[net.slices[name][0]].astype(np.float64) for name in hidden
    }
    acts = ws.acts.astype(np.float64).reshape(net.depth, -1)
    deltas = ws.deltas.astype(np.float64)
    act = net.blocks[0].activation
    slope = act.derivative(ws.acts, np.empty_like(ws.acts))  # (depth, N, width)
    saturated = slope < SATURATED_BELOW * act.max_slope
    expected = pd.DataFrame(
        {
            "grad_norm": [np.linalg.norm(grad[name]) for name in hidden],
            "delta_norm": np.sqrt((np.sum(deltas**2, axis=2) * len(X) ** 2).mean(axis=1)),
            "weight_norm": [np.linalg.norm(W[name].astype(np.float64)) for name in hidden],
            "update_ratio": [
                np.linalg.norm(update[name]) / np.linalg.norm(W[name].astype(np.float64))
                for name in hidden
            ],
            "act_std": acts.std(axis=1),
            "dead": saturated.all(axis=1).mean(axis=1),
            "saturation": (saturated.mean(axis=1) >= 0.9).mean(axis=1),
            "saturated_entries": saturated.mean(axis=(1, 2)),
        }
    )
    assert 0 < expected["saturated_entries"].max() < 1  # the case tests something
    # dead and saturation at 0 and 1, and grad_snr and norm_test: tests/test_diagnostics.py
    per_layer = [s for s in STATS if s not in ("grad_snr", "norm_test")]
    pd.testing.assert_frame_equal(row[per_layer], expected[per_layer], rtol=1e-5)


def write_csv(path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["a,b,label", *(f"{x:.4f},{y:.4f},{int(x > y)}" for x, y in rng.normal(size=(rows, 2)))]
    path.write_text("\n".join(lines) + "\n")


def test_shared_data_is_loaded_once_per_data_set(small_cfg, tmp_path, monkeypatch):
    """The data set loaded last is given again for a config that determines the same one
    (data, dtype, seed, and the file as it is now); its arrays are read-only."""
    from bpstudy.training import run

    monkeypatch.setattr(run, "_last", None)
    first = run.shared_data(bpstudy.validate(small_cfg("model.width=8")))
    assert run.shared_data(bpstudy.validate(small_cfg("model.width=128"))) is first
    with pytest.raises(ValueError, match="read-only"):
        first.X_train[0, 0] = 1.0
    fresh = bpstudy.load_data(small_cfg())
    assert fresh.fingerprint() == first.fingerprint()
    assert run.shared_data(bpstudy.validate(small_cfg("trainer.seed=1"))) is not first
    assert run.shared_data(bpstudy.validate(small_cfg("trainer.dtype=float64"))) is not first
    # a file read again once it changed: same config, other numbers
    csv = tmp_path / "points.csv"
    write_csv(csv, 40, seed=0)
    cfg = bpstudy.validate(small_cfg("data=csv", f"data.path={csv}"))
    before = run.shared_data(cfg)
    assert run.shared_data(cfg) is before
    write_csv(csv, 60, seed=1)
    after = run.shared_data(cfg)
    assert after.fingerprint() == bpstudy.load_data(cfg).fingerprint() != before.fingerprint()


def test_training_on_shared_data_twice_gives_the_same_run(small_cfg, monkeypatch):
    """A run on the shared (read-only) data set trains as on a fresh one, and leaves it
    as it found it for the next."""
    from bpstudy.training import run

    monkeypatch.setattr(run, "_last", None)
    config = bpstudy.validate(small_cfg("model.batch_norm=true", "model.dropout=0.1"))
    shared = run.shared_data(config)
    once = run.make_trainer(config, shared).fit()
    again = run.make_trainer(config, run.shared_data(config)).fit()
    fresh = bpstudy.train(config)
    assert once.metrics == again.metrics == fresh.metrics
    assert shared.fingerprint() == bpstudy.load_data(config).fingerprint()
