"""The training loop: batch, forward, loss, backward, clip, step, emit events.

It knows nothing of MLflow, Optuna or progress bars; those are listeners (events.py).
A NaN or infinite loss or gradient ends the run at that step as `diverged`: a result,
not an error.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from bpstudy.data import Dataset
from bpstudy.learning_rule import BatchResult, LearningRule
from bpstudy.model import Network
from bpstudy.optimizer import Optimizer, Schedule, clip_by_norm, clip_by_value
from bpstudy.training.diagnostics import Diagnostics
from bpstudy.training.events import Listener, StopTraining
from bpstudy.training.state import Diverged, Ending, LoopSettings, TrainResult

__all__ = ["Diverged", "Ending", "LoopSettings", "TrainResult", "Trainer"]

EVAL_CHUNK = 8192  # rows per forward pass when evaluating, to bound memory


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
        # the current batch's pass (and its dLoss/dscores: (N, out_dim)), for listeners
        # that re-run a backward pass on the cached forward (the alignment diagnostic)
        self.batch: BatchResult | None = None
        self.dscores: np.ndarray | None = None

    # ------------------------------------------------------------ events

    def emit(self, event: Callable[[Listener], None]) -> None:
        """Tell every listener, `event(listener)` calling one of its hooks; a StopTraining
        ends training once all of them have seen the event (the pruned epoch's metrics
        still reach the tracker)."""
        stop = None
        for listener in self.listeners:
            try:
                event(listener)
            except StopTraining as exc:
                stop = stop or exc
        if stop is not None:
            raise stop

    # ------------------------------------------------------------ one step

    def train_step(self, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One optimizer step on a batch: (loss, scores). Raises Diverged."""
        net, s = self.net, self.settings
        log = self.step % s.log_every == 0
        batch = self.rule.update(net, X, y)  # fills net.grad; the data loss, reported
        loss, scores = batch.loss, batch.scores
        objective = loss + net.penalty()  # what the step descends
        self.batch, self.dscores = batch, batch.dscores
        net.add_penalty_grad()
        sq_norm = float(np.dot(net.grad, net.grad))
        if not math.isfinite(objective):
            raise Diverged(f"loss is {objective}")
        if not math.isfinite(sq_norm):
            raise Diverged("gradient is not finite")
        self.last_loss = loss
        self.lr = self.schedule(self.step)
        step = self.step
        if log:
            self.emit(lambda listener: listener.on_gradients(self, step))
        if s.clip_mode == "norm":
            clip_by_norm(net.grad, s.clip_threshold, sq_norm)
        elif s.clip_mode == "value":
            clip_by_value(net.grad, s.clip_threshold)
        self.optimizer.step(self.lr)
        self.step = step + 1  # taken, even if a listener stops here
        if log:
            self.emit(lambda listener: listener.on_update(self, step))
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
            self.emit(lambda listener: listener.on_train_end(self, result))
        return result

    def _epochs(self, rows: list[dict[str, float]]) -> Ending:
        """Run epochs until done, early-stopped, diverged or stopped by a listener."""
        s, d = self.settings, self.data
        best, waited = math.inf, 0
        try:
            self.emit(lambda listener: listener.on_train_start(self))
            for epoch in range(1, s.epochs + 1):
                self.epoch = epoch
                try:
                    train_metrics = self._run_epoch()
                except Diverged as diverged:
                    return Ending("diverged", self.step, diverged.reason)
                metrics = {**train_metrics, **self.evaluate(d.X_val, d.y_val, "val")}
                rows.append({"epoch": epoch, "step": self.step, "lr": self.lr, **metrics})
                self.emit(lambda listener, e=epoch, m=metrics: listener.on_epoch_end(self, e, m))
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
                scores = self.rule.predict(net, Xc)
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
            rule_totals=self.rule.run_totals(),
        )
