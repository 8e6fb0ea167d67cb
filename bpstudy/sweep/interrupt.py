"""Ctrl-C and SIGTERM in a sweep worker: noted when they arrive, acted on at the next safe
point (a logging step, an epoch's end, between trials).

Raising KeyboardInterrupt straight from the signal handler could land in the middle of an
MLflow or Optuna write: an interrupted SQLite transaction kept its lock, the clean-up's own
writes then failed with "database is locked", and MLflow printed their tracebacks. At a
safe point nothing is half-written, so the clean-up (run ended KILLED, trial failed and
queued again) goes through. A second signal changes nothing.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from bpstudy.training.events import Listener

INTERRUPTED = "interrupted (Ctrl-C)"  # the error of a trial stopped this way (queued again)
_requested = False


def was_interrupted(trial: FrozenTrial) -> bool:
    """A trial stopped by Ctrl-C or SIGTERM, its values queued to run again: FAIL in
    Optuna (its only state for a trial that did not finish), yet nothing failed. The one
    rule for it: the sweep's counts, the report's table, counts and CSV all ask here."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get("error") == INTERRUPTED


def request(signum, frame) -> None:
    """The signal handler: only note it (a handler may run between any two bytecodes)."""
    global _requested
    _requested = True


def check() -> None:
    """Raise KeyboardInterrupt here if a stop was requested."""
    if _requested:
        raise KeyboardInterrupt


class InterruptCheck(Listener):
    """The training loop's safe points: every logging step and every epoch's end."""

    def on_update(self, trainer, step: int) -> None:
        check()

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        check()
