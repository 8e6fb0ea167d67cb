"""From a validated config to a trained network: the public Python API.

This is the one place where config objects become plain constructor arguments
(data -> network -> learning rule -> optimizer -> loop), so every entry point (CLI,
sweeps, rerun, tests) trains through exactly the same path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bpstudy.config.schema import Config
from bpstudy.config.validate import resolve_loss as validate_loss
from bpstudy.config.validate import validate
from bpstudy.data import Dataset, load_dataset
from bpstudy.learning_rule import LearningRule, make_learning_rule
from bpstudy.model import Architecture, Network
from bpstudy.optimizer import OPTIMIZERS, Optimizer, Schedule
from bpstudy.seeding import Seeds
from bpstudy.training.events import Listener
from bpstudy.training.loop import LoopSettings, Trainer, TrainResult

AnyConfig = Config | Mapping[str, Any]  # a composed tree (a DictConfig is a Mapping) or typed


def load_data(cfg: AnyConfig) -> Dataset:
    """The train/val/test splits that `train(cfg)` uses, as arrays of trainer.dtype."""
    c = validate(cfg)
    seeds = Seeds(c.trainer.seed)
    return load_dataset(c.data, c.trainer.dtype, seeds.rng("split"), seeds.rng("data"))


def check_data(configs) -> dict[tuple, str]:
    """Load each distinct data set of `configs` once: missing or malformed data, or a loss
    that does not fit the data's task, fails here (DataError, ConfigError), before any
    run or trial starts. Returns each data set's task, keyed (data config, dtype)."""
    tasks: dict[tuple, str] = {}
    for c in configs:
        key = (c.data, c.trainer.dtype)
        if key not in tasks:
            tasks[key] = load_data(c).task
        resolve_loss(c, tasks[key])
    return tasks


def resolve_loss(c: Config, task: str) -> str:
    return validate_loss(c.model.loss, task, c.data.name)


def task_of(c: Config) -> str:
    """classification or regression: from the config where it says, else from the data."""
    if c.data.name == "teacher":
        return "regression"
    if c.data.name in ("digits", "spirals", "mnist"):
        return "classification"
    if c.data.task != "auto":
        return c.data.task
    return load_data(c).task  # csv/npz with task=auto: the data decides


def build_network(cfg: AnyConfig, in_dim: int, out_dim: int, task: str | None = None) -> Network:
    """Exactly the network `train(cfg)` starts from (same seeded initialisation)."""
    c = validate(cfg)
    m, seeds = c.model, Seeds(c.trainer.seed)
    arch = Architecture(
        in_dim=in_dim,
        out_dim=out_dim,
        depth=m.depth,
        width=m.width,
        activation=m.activation,
        leaky_slope=m.leaky_slope,
        batch_norm=m.batch_norm,
        bn_momentum=m.bn_momentum,
        bn_eps=m.bn_eps,
        dropout=m.dropout,
        residual=m.residual.enabled,
        loss=resolve_loss(c, task or task_of(c)),
    )
    return Network(
        arch,
        dtype=c.trainer.dtype,
        init_rng=seeds.rng("init"),
        dropout_rng=seeds.rng("dropout"),
        init_scheme=m.init.scheme,
        sigma_w=m.init.sigma_w,
        sigma_b=m.init.sigma_b,
        gain=m.init.gain,
        l1=c.regularization.l1,
        l2=c.regularization.l2,
    )


def build_optimizer(c: Config, net: Network) -> Optimizer:
    fields = {k: v for k, v in vars(c.optimizer).items() if k not in ("name", "lr")}
    return OPTIMIZERS[c.optimizer.name](net.theta, net.grad, net.n_weights, **fields)


def build_schedule(c: Config, steps_per_epoch: int) -> Schedule:
    s = c.trainer.schedule
    return Schedule(
        name=s.name,
        lr=c.optimizer.lr,
        total_steps=steps_per_epoch * c.trainer.epochs,
        warmup_steps=s.warmup_steps,
        step_size=s.step_size,
        gamma=s.gamma,
        min_lr=s.min_lr,
    )


def build_learning_rule(c: Config, net: Network) -> LearningRule:
    """The configured rule for `net`, its feedback matrices from their own seed stream."""
    shapes = [W.shape for name, W in net.parameters().items() if name.endswith(".W")]
    return make_learning_rule(
        c.learning_rule.name,
        weight_shapes=shapes,
        rng=Seeds(c.trainer.seed).rng("feedback"),
        scale=getattr(c.learning_rule, "scale", 1.0),
        dtype=net.dtype,
    )


def make_trainer(
    cfg: AnyConfig, listeners: Sequence[Listener] = (), data: Dataset | None = None
) -> Trainer:
    """Everything `train` wires together, ready to `fit()`."""
    c = validate(cfg)
    data = data if data is not None else load_data(c)
    net = build_network(c, data.in_dim, data.out_dim, task=data.task)
    t = c.trainer
    settings = LoopSettings(
        epochs=t.epochs,
        batch_size=t.batch_size,
        log_every=t.log_every,
        clip_mode=t.clip.mode,
        clip_threshold=t.clip.threshold,
        patience=t.early_stopping.patience,
        min_delta=t.early_stopping.min_delta,
    )
    return Trainer(
        net=net,
        rule=build_learning_rule(c, net),
        optimizer=build_optimizer(c, net),
        schedule=build_schedule(c, settings.steps_per_epoch(data.X_train.shape[0])),
        data=data,
        settings=settings,
        shuffle_rng=Seeds(t.seed).rng("shuffle"),
        listeners=list(listeners),
    )


def train(cfg: AnyConfig, listeners: Sequence[Listener] = ()) -> TrainResult:
    """Train one run from its config; returns history, layer_stats and final metrics."""
    return make_trainer(cfg, listeners).fit()


__all__ = ["build_network", "load_data", "make_trainer", "train"]
