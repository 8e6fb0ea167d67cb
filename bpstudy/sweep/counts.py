"""How many trials a study holds in each state: the one count that the workers (is the
study done?), the supervisor (start a replacement?), the progress line, the command's
outcome and `bpstudy report` all read. A trial is finished once COMPLETE or PRUNED;
n_trials counts those. A trial stopped by Ctrl-C is counted as interrupted, not failed
(`interrupt.was_interrupted`): its values were queued again, so nothing failed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from bpstudy.sweep.interrupt import was_interrupted
from bpstudy.sweep.storage import stored

INTERRUPTED_STATE = "INTERRUPTED"  # beside Optuna's state names, for such a trial


@dataclass(frozen=True)
class TrialCounts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def describe(self) -> str:
        """The counts as the sweep's last line and the report's first say them."""
        return (
            f"{self.complete} complete, {self.pruned} pruned, {self.failed} failed, "
            f"{self.interrupted} interrupted"
        )


_FIELD = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    INTERRUPTED_STATE: "interrupted",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def state_name(trial: FrozenTrial) -> str:
    """Optuna's state name, or INTERRUPTED for a trial stopped by Ctrl-C (Optuna: FAIL)."""
    return INTERRUPTED_STATE if was_interrupted(trial) else trial.state.name


def count_states(names: Iterable[str]) -> TrialCounts:
    """Trials by kind, from their `state_name`s (as a report's table holds them)."""
    tally = dict.fromkeys(_FIELD.values(), 0)
    for name in names:
        tally[_FIELD[name]] += 1
    return TrialCounts(**tally)


def count_trials(study) -> TrialCounts:
    """The study's trials by state, as the storage holds them now (waiting out an outage)."""
    trials = stored(lambda: study.get_trials(deepcopy=False))
    return count_states(state_name(t) for t in trials)
