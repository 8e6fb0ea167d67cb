"""Optimizers, learning-rate schedules and gradient clipping (see base.py for the interface)."""

from __future__ import annotations

from bpstudy.optimizer.adagrad import Adagrad
from bpstudy.optimizer.adam import Adam, AdamW
from bpstudy.optimizer.base import Optimizer
from bpstudy.optimizer.clip import clip_by_norm, clip_by_value
from bpstudy.optimizer.momentum import Momentum
from bpstudy.optimizer.rmsprop import RMSprop
from bpstudy.optimizer.schedule import Schedule
from bpstudy.optimizer.sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Adagrad, RMSprop, Adam, AdamW)
}

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Momentum",
    "Optimizer",
    "RMSprop",
    "Schedule",
    "clip_by_norm",
    "clip_by_value",
]
