"""bpstudy: study how backpropagation trains deep networks, and why it fails.

import bpstudy
cfg = bpstudy.compose(["model.depth=10", "model.activation=tanh"])
data = bpstudy.load_data(cfg)
net = bpstudy.build_network(cfg, data.in_dim, data.out_dim)
loss, grads = net.loss_and_grads(data.X_train[:32], data.y_train[:32])
result = bpstudy.train(cfg)
"""

from __future__ import annotations

from bpstudy.config import Config, compose, validate
from bpstudy.errors import BpstudyError, ConfigError, DataError
from bpstudy.training import Listener, StopTraining, TrainResult, build_network, load_data, train

__version__ = "0.1.0"

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
