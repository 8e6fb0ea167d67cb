"""Progress on long work: a tqdm bar over epochs on a terminal, one line per epoch
otherwise (logs, CI, sweeps)."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

from bpstudy.training.events import Listener


def epoch_line(epoch: int, total: int, step: int, metrics: dict[str, float]) -> str:
    """'epoch 3/10  step 60  train/loss 1.2  ...'"""
    values = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    return f"epoch {epoch}/{total}  step {step}  {values}"


class Progress(Listener):
    def __init__(self, mode: str = "auto", total_epochs: int = 0, stream=None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode, self.total = mode, total_epochs
        self.bar: tqdm | None = None

    def on_train_start(self, trainer) -> None:
        self.total = self.total or trainer.settings.epochs  # callers need not know it
        if self.mode == "bar":
            self.bar = tqdm(total=self.total, unit="epoch", file=self.stream, dynamic_ncols=True)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if "loss" in k})
            self.bar.update(1)
        elif self.mode == "lines":
            print(
                epoch_line(epoch, self.total, trainer.step, metrics), file=self.stream, flush=True
            )

    def on_train_end(self, trainer, result) -> None:
        if self.bar is not None:
            self.bar.close()


class EpochLog(Listener):
    """One log record per epoch (logger `bpstudy.train`): what a Hydra job's log file
    keeps of the run, whatever the terminal showed."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("bpstudy.train")

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.log.info("%s", epoch_line(epoch, trainer.settings.epochs, trainer.step, metrics))
