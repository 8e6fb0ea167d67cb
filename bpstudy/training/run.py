"""From a validated config and its data set to a trainer: the typed core of training.

This is the one place where config objects become plain constructor arguments
(data -> network -> learning rule -> optimizer -> loop), so every entry point (CLI,
sweeps, rerun, `bpstudy.train`) trains through exactly the same path. It takes the typed
`Config` that `validate` made once at the edge, never a composed tree: nothing here
validates again or imports OmegaConf (bpstudy.api validates a composed tree, then calls these).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bpstudy.config.schema import ENERGY_RULES, Config
from bpstudy.config.schema import resolve_loss as validate_loss
from bpstudy.data import Dataset, load_dataset
from bpstudy.learning_rule import (
    ContrastiveHebbian,
    EquilibriumPropagation,
    LearningRule,
    SettleSettings,
    make_learning_rule,
)
from bpstudy.model import Architecture, Network
from bpstudy.optimizer import OPTIMIZERS, Optimizer, Schedule
from bpstudy.seeding import Seeds
from bpstudy.training.events import Listener
from bpstudy.training.loop import LoopSettings, Trainer, TrainResult


def load_data(c: Config) -> Dataset:
    """The train/val/test splits that `c` trains on, as arrays of trainer.dtype."""
    seeds = Seeds(c.trainer.seed)
    return load_dataset(c.data, c.trainer.dtype, seeds.rng("split"), seeds.rng("data"))


def data_key(c: Config) -> tuple:
    """What determines `load_data(c)`: the data config, dtype and seed, and for a data set
    read from disk the size and modification time of its file (or its folder's files)."""
    return (c.data, c.trainer.dtype, c.trainer.seed, _file_state(getattr(c.data, "path", "")))


def _file_state(path: str) -> tuple | None:
    """(file, size, modification time, inode) of the file at `path`, or of each file in
    the folder at `path` (mnist); None when there is none to read, and loading says why."""
    if not path:
        return None
    folder_or_file = Path(path).expanduser().resolve()
    try:
        files = sorted(folder_or_file.iterdir()) if folder_or_file.is_dir() else [folder_or_file]
        return tuple(_stat(f) for f in files)
    except OSError:
        return None


def _stat(file: Path) -> tuple:
    s = file.stat()
    return (str(file), s.st_size, s.st_mtime_ns, s.st_ino)


_last: tuple[tuple, Dataset] | None = None  # the data set loaded last in this process


def shared_data(c: Config) -> Dataset:
    """`load_data(c)`, but the data set loaded last in this process again when `c`
    determines the same one (`data_key`): the CLI loads it to check it before Hydra starts
    and trains on it, a sweep worker's trials share it. Its arrays are made read-only, so
    no run can change what the next one trains on."""
    global _last
    key = data_key(c)
    if _last is None or _last[0] != key:
        _last = None  # the old one can go before the new one is read
        data = load_data(c)
        for a in (data.X_train, data.y_train, data.X_val, data.y_val, data.X_test, data.y_test):
            a.flags.writeable = False
        _last = (key, data)
    return _last[1]


def check_data(configs, load: Callable[[Config], Dataset] = load_data) -> dict[tuple, str]:
    """Load each distinct data set of `configs` once: missing or malformed data, or a loss
    that does not fit the data's task, fails here (DataError, ConfigError), before any
    run or trial starts. Returns each data set's task, keyed (data config, dtype).
    `load=shared_data` keeps the last one for a run of this process to train on."""
    tasks: dict[tuple, str] = {}
    for c in configs:
        key = (c.data, c.trainer.dtype)
        if key not in tasks:
            tasks[key] = load(c).task
        resolve_loss(c, tasks[key])
    return tasks


def resolve_loss(c: Config, task: str) -> str:
    return validate_loss(c.model.loss, task, c.data.name, c.learning_rule.name)


def task_of(c: Config) -> str:
    """classification or regression: from the config where it says, else from the data."""
    if c.data.name == "teacher":
        return "regression"
    if c.data.name in ("digits", "spirals", "mnist"):
        return "classification"
    if c.data.task != "auto":
        return c.data.task
    return load_data(c).task  # csv/npz with task=auto: the data decides


def build_network(c: Config, in_dim: int, out_dim: int, task: str | None = None) -> Network:
    """Exactly the network that `c` trains from (same seeded initialisation)."""
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
    r = c.learning_rule
    if r.name in ENERGY_RULES:  # ContrastiveHebbianConfig | EquilibriumPropagationConfig
        settle = SettleSettings(r.settle_steps, r.settle_tol)
        if r.name == "contrastive_hebbian":
            return ContrastiveHebbian(settle, r.feedback_gain)
        return EquilibriumPropagation(settle, r.beta, r.symmetric_nudging)
    shapes = [W.shape for name, W in net.parameters().items() if name.endswith(".W")]
    return make_learning_rule(
        r.name,
        weight_shapes=shapes,
        rng=Seeds(c.trainer.seed).rng("feedback"),
        scale=getattr(r, "scale", 1.0),  # the feedback-alignment rules' only setting
        dtype=net.dtype,
    )


def make_trainer(c: Config, data: Dataset, listeners: Sequence[Listener] = ()) -> Trainer:
    """Everything a run of `c` on `data` (`load_data(c)`) wires together, ready to `fit()`."""
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


def train(c: Config, listeners: Sequence[Listener] = ()) -> TrainResult:
    """Train one run of the typed config `c` (bpstudy.train takes a composed one)."""
    return make_trainer(c, load_data(c), listeners).fit()


__all__ = ["build_network", "load_data", "make_trainer", "shared_data", "train"]
