"""bpstudy: study how backpropagation trains deep networks, and why it fails.

import bpstudy
cfg = bpstudy.validate(bpstudy.compose(["model.depth=10", "model.activation=tanh"]))
data = bpstudy.load_data(cfg)
net = bpstudy.build_network(cfg, data.in_dim, data.out_dim)
loss, grads = net.loss_and_grads(data.X_train[:32], data.y_train[:32])
result = bpstudy.train(cfg)
prediction = bpstudy.theory.predict(cfg)  # mean-field: q*, chi1, phase, gradient profile

The names below load on first use: `import bpstudy` alone costs milliseconds, not the
second that Hydra and pandas take, which every `bpstudy` command would otherwise pay
before it can even parse its arguments (a sweep starts its workers' warm-up first).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from bpstudy.errors import BpstudyError, ConfigError, DataError

if TYPE_CHECKING:  # what the names below are, for type checkers and editors
    from bpstudy.api import build_network, load_data, train
    from bpstudy.config import Config
    from bpstudy.config.compose import compose
    from bpstudy.config.validate import validate
    from bpstudy.training import Listener, StopTraining, TrainResult

__version__ = "0.1.0"

_LAZY = {
    "Config": "bpstudy.config",
    "compose": "bpstudy.config.compose",
    "validate": "bpstudy.config.validate",
    "Listener": "bpstudy.training",
    "StopTraining": "bpstudy.training",
    "TrainResult": "bpstudy.training",
    "build_network": "bpstudy.api",
    "load_data": "bpstudy.api",
    "train": "bpstudy.api",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f"{__name__}.{name}")  # bpstudy.training, ...
    else:
        raise AttributeError(f"module 'bpstudy' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BpstudyError",
    "Config",
    "ConfigError",
    "DataError",
    "Listener",
    "StopTraining",
    "TrainResult",
    "__version__",
    "build_network",
    "compose",
    "load_data",
    "train",
    "validate",
]
