"""The training loop, its events, diagnostics, and the config-to-run wiring."""

from __future__ import annotations

from bpstudy.training.events import Listener, StopTraining
from bpstudy.training.loop import Trainer, TrainResult
from bpstudy.training.run import build_network, load_data, make_trainer, train

__all__ = [
    "Listener",
    "StopTraining",
    "TrainResult",
    "Trainer",
    "build_network",
    "load_data",
    "make_trainer",
    "train",
]
