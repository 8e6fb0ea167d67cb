"""The Python API for a composed config: validate it once, here, then train typed.

`bpstudy.train(cfg)`, `bpstudy.load_data(cfg)` and `bpstudy.build_network(cfg, ...)`
take what `bpstudy.compose` returns (a DictConfig), a plain dict of the same tree, or a
`Config` that `bpstudy.validate` made; each validates once and calls the typed function of
`bpstudy.training.run`, which never validates and never imports OmegaConf. To train one
config several ways, validate once and use `bpstudy.training.run` directly:
`make_trainer(config, load_data(config), listeners)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bpstudy.config.schema import Config
from bpstudy.config.validate import validate
from bpstudy.data import Dataset
from bpstudy.model import Network
from bpstudy.training import run
from bpstudy.training.events import Listener
from bpstudy.training.state import TrainResult

AnyConfig = Config | Mapping[str, Any]  # a composed tree (a DictConfig is a Mapping) or typed


def train(cfg: AnyConfig, listeners: Sequence[Listener] = ()) -> TrainResult:
    """Train one run from its config; returns history, layer_stats and final metrics."""
    return run.train(validate(cfg), listeners)


def load_data(cfg: AnyConfig) -> Dataset:
    """The train/val/test splits that `train(cfg)` uses, as arrays of trainer.dtype."""
    return run.load_data(validate(cfg))


def build_network(cfg: AnyConfig, in_dim: int, out_dim: int, task: str | None = None) -> Network:
    """Exactly the network `train(cfg)` starts from (same seeded initialisation)."""
    return run.build_network(validate(cfg), in_dim, out_dim, task)


__all__ = ["build_network", "load_data", "train"]
