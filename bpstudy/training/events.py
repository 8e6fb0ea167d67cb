"""What the training loop tells its listeners.

The loop calls every listener's hooks in order; a listener overrides only what it needs.
`on_gradients` and `on_update` fire on logging steps only (every `trainer.log_every`
optimizer steps), so listeners pay nothing on the other steps. A listener may end the
run early by raising `StopTraining(reason)` (Optuna pruning does); the loop tells the
other listeners the same event, records the reason and finishes normally (status
`stopped`; from `on_train_end`, when the run is over, it is ignored).

"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from bpstudy.data import Dataset
from bpstudy.learning_rule import BatchResult, LearningRule
from bpstudy.model import Network
from bpstudy.optimizer import Optimizer
from bpstudy.training.state import LoopSettings, TrainResult


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a listener to end training after the current step or epoch."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Trainer(Protocol):
    """What a hook may read on the trainer (training/loop.py's Trainer is one)."""

    net: Network  # parameters(), flat `theta` and `grad`
    rule: LearningRule
    optimizer: Optimizer  # its `update` is the change just applied
    data: Dataset
    settings: LoopSettings
    step: int  # optimizer steps taken: inside `on_update`, this one included
    epoch: int
    lr: float
    last_loss: float  # the batch's data loss
    dscores: np.ndarray | None  # the batch's dLoss/dscores
    batch: BatchResult | None  # the rule's pass over the batch (X, y, scores, settle, ...)
    diagnostics: Any  # training/diagnostics.py's Diagnostics: the per-layer rows so far


class Listener:
    """Override the hooks you need; each gets the `Trainer` it listens to."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step."""

    def on_gradients(self, trainer: Trainer, step: int) -> None:
        """Logging step: gradients are computed (raw, before clipping), not yet applied;
        `trainer.dscores` holds the batch's dLoss/dscores for a second backward pass."""

    def on_update(self, trainer: Trainer, step: int) -> None:
        """Logging step: the optimizer has applied its update."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """After each epoch's validation pass; metrics hold train/* and val/*."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once, however the run ended (finished, early-stopped, diverged, stopped)."""
