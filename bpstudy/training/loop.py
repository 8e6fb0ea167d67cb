"""The training loop: batch, forward, loss, backward, clip, step, emit events.

It knows nothing of MLflow, Optuna or progress bars; those are listeners (events.py).
A NaN or infinite loss or gradient ends the run at that step as `diverged`: a result,
not an error.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bpstudy.data import Dataset
from bpstudy.learning_rule import LearningRule
from bpstudy.model import Network
from bpstudy.optimizer import Optimizer, Schedule, clip_by_norm, clip_by_value
from bpstudy.training.diagnostics import Diagnostics
from bpstudy.training.events import Listener, StopTraining

EVAL_CHUNK = 8192  # rows per forward pass when evaluating, to bound memory


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

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


class Trainer:
    def __init__(
        self,
        net: Network,
        rule: LearningRule,
        optimizer: Optimizer,
        schedule: Schedule,
        data: Dataset,
        settings: LoopSettings,
        shuffle_rng: np.random.Generator,
        listeners: list[Listener] | tuple[Listener, ...] = (),
    ) -> None:
        self.net, self.rule, self.optimizer, self.schedule = net, rule, optimizer, schedule
        self.data, self.settings, self.shuffle_rng = data, settings, shuffle_rng
        self.diagnostics = Diagnostics(rule)
        self.listeners: list[Listener] = [self.diagnostics, *listeners]
        self.step = 0  # optimizer steps taken; MLflow's step
        self.epoch = 0
        self.lr = schedule(0)
        self.last_loss = float("nan")
        # dLoss/dscores of the current batch: (N, out_dim), for listeners that re-run a
        # backward pass on the cached forward (the alignment diagnostic)
        self.dscores: np.ndarray | None = None

    # ------------------------------------------------------------ events

    def emit(self, hook: str, *args) -> None:
        """Tell every listener; a StopTraining ends training once all of them have seen
        the event (the pruned epoch's metrics still reach the tracker)."""
        stop = None
        for listener in self.listeners:
            try:
                getattr(listener, hook)(self, *args)
            except StopTraining as exc:
                stop = stop or exc
        if stop is not None:
            raise stop

    # ------------------------------------------------------------ one step

    def train_step(self, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One optimizer step on a batch: (loss, scores). Raises Diverged."""
        net, s = self.net, self.settings
        log = self.step % s.log_every == 0
        scores = net.forward(X, train=True)
        loss, dscores = net.loss_fn(scores, net.targets(y))  # the data loss, reported
        objective = loss + net.penalty()  # what the step descends
        self.dscores = dscores
        self.rule.backward(net, dscores)
        net.add_penalty_grad()
        sq_norm = float(np.dot(net.grad, net.grad))
        if not math.isfinite(objective):
            raise Diverged(f"loss is {objective}")
        if not math.isfinite(sq_norm):
            raise Diverged("gradient is not finite")
        self.last_loss = loss
        self.lr = self.schedule(self.step)
        if log:
            self.emit("on_gradients", self.step)
        if s.clip_mode == "norm":
            clip_by_norm(net.grad, s.clip_threshold, sq_norm)
        elif s.clip_mode == "value":
            clip_by_value(net.grad, s.clip_threshold)
        self.optimizer.step(self.lr)
        step, self.step = self.step, self.step + 1  # taken, even if a listener stops here
        if log:
            self.emit("on_update", step)
        return loss, scores

    # ------------------------------------------------------------ epochs

    def fit(self) -> TrainResult:
        start = time.perf_counter()
        rows: list[dict[str, float]] = []
        # overflow on the way to divergence is expected; finiteness checks report it
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ending = self._epochs(rows)
        result = self._result(rows, ending)
        result.wall_time = time.perf_counter() - start
        with contextlib.suppress(StopTraining):  # the run has ended: nothing left to stop
            self.emit("on_train_end", result)
        return result

    def _epochs(self, rows: list[dict[str, float]]) -> Ending:
        """Run epochs until done, early-stopped, diverged or stopped by a listener."""
        s, d = self.settings, self.data
        best, waited = math.inf, 0
        try:
            self.emit("on_train_start")
            for epoch in range(1, s.epochs + 1):
                self.epoch = epoch
                try:
                    train_metrics = self._run_epoch()
                except Diverged as diverged:
                    return Ending("diverged", self.step, diverged.reason)
                metrics = {**train_metrics, **self.evaluate(d.X_val, d.y_val, "val")}
                rows.append({"epoch": epoch, "step": self.step, "lr": self.lr, **metrics})
                self.emit("on_epoch_end", epoch, metrics)
                if s.patience:
                    if metrics["val/loss"] < best - s.min_delta:
                        best, waited = metrics["val/loss"], 0
                    else:
                        waited += 1
                        if waited >= s.patience:
                            return Ending("early_stopped")
        except StopTraining as stop:
            return Ending("stopped", stop_reason=stop.reason)
        return Ending("finished")

    def _run_epoch(self) -> dict[str, float]:
        d, B = self.data, self.settings.batch_size
        order = self.shuffle_rng.permutation(d.X_train.shape[0])
        total_loss, correct, seen = 0.0, 0, 0
        classify = d.task == "classification"
        for lo in range(0, order.size, B):
            idx = order[lo : lo + B]
            X, y = d.X_train[idx], d.y_train[idx]
            loss, scores = self.train_step(X, y)
            total_loss += loss * idx.size
            seen += idx.size
            if classify:
                correct += int(np.count_nonzero(scores.argmax(axis=1) == y))
        metrics = {"train/loss": total_loss / seen}
        if classify:
            metrics["train/accuracy"] = correct / seen
        if self.net.l1 or self.net.l2:
            metrics["train/penalty"] = self.net.penalty()  # of the weights at the epoch's end
        return metrics

    def evaluate(self, X: np.ndarray, y: np.ndarray, prefix: str) -> dict[str, float]:
        """Eval-mode data loss and accuracy on a split. The L1/L2 penalty is left out (it is
        `train/penalty`): with it, a study over regularisation would rank every stronger
        penalty worse by construction."""
        net = self.net
        total, correct = 0.0, 0
        for lo in range(0, X.shape[0], EVAL_CHUNK):
            Xc, yc = X[lo : lo + EVAL_CHUNK], y[lo : lo + EVAL_CHUNK]
            with np.errstate(all="ignore"):
                scores = net.forward(Xc, train=False)
                loss, _ = net.loss_fn(scores, net.targets(yc))
            total += loss * Xc.shape[0]
            if self.data.task == "classification":
                correct += int(np.count_nonzero(scores.argmax(axis=1) == yc))
        metrics = {f"{prefix}/loss": total / X.shape[0]}
        if self.data.task == "classification":
            metrics[f"{prefix}/accuracy"] = correct / X.shape[0]
        return metrics

    def _result(self, rows: list[dict[str, float]], ending: Ending) -> TrainResult:
        d = self.data
        history = pd.DataFrame(rows)
        metrics: dict[str, float] = {}
        if rows:
            metrics.update({k: v for k, v in rows[-1].items() if "/" in k})
        if ending.status != "diverged":
            metrics.update(self.evaluate(d.X_test, d.y_test, "test"))
        return TrainResult(
            history=history,
            layer_stats=self.diagnostics.layer_frame(),
            step_stats=self.diagnostics.step_frame(),
            metrics=metrics,
            status=ending.status,
            steps=self.step,
            epochs=len(rows),
            diverged_step=ending.diverged_step,
            diverged_reason=ending.diverged_reason,
            stop_reason=ending.stop_reason,
            network=self.net,
        )
