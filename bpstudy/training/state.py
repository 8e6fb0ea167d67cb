"""The training loop's typed values: its settings, and how a run ended.

They live apart from the loop so that its listeners (events.py) can name them without
importing the loop back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bpstudy.model import Network


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    log_every: int = 10
    clip_mode: str = "none"  # none | norm | value
    clip_threshold: float = 1.0
    patience: int = 0  # early stopping on val/loss; 0 = off
    min_delta: float = 0.0

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one epoch over n_train examples (the last batch may be short)."""
        return -(-n_train // self.batch_size)


class Diverged(Exception):  # noqa: N818 - an outcome, not an error
    """A step whose loss or gradient is not finite: the run ends there as `diverged`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Ending:
    """How the epochs ended: the status and, for it, the step and reason."""

    status: str  # finished | early_stopped | diverged | stopped
    diverged_step: int | None = None
    diverged_reason: str | None = None
    stop_reason: str | None = None


@dataclass
class TrainResult:
    """What a run produced. `history`: one row per epoch; `layer_stats`: one row per
    (logged step, hidden layer); `step_stats`: one row per logged step."""

    history: pd.DataFrame
    layer_stats: pd.DataFrame
    step_stats: pd.DataFrame
    metrics: dict[str, float]  # final: train/*, val/*, test/*
    status: str  # finished | early_stopped | diverged | stopped
    steps: int
    epochs: int
    diverged_step: int | None = None
    diverged_reason: str | None = None
    stop_reason: str | None = None
    wall_time: float = 0.0
    network: Network | None = field(default=None, repr=False)
    # what the learning rule counted over the run (energy rules: settle/phases,
    # settle/unsettled, settle/mean_iterations), sent as metrics at the last step
    rule_totals: dict[str, float] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"
