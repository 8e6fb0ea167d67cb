"""How many trials a study holds in each state: the one count that the workers (is the
study done?), the supervisor (start a replacement?), the progress line, the command's
outcome and `bpstudy report` all read. A trial is finished once COMPLETE or PRUNED;
n_trials counts those."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import TrialState

from bpstudy.sweep.storage import stored

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class TrialCounts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


_FIELD = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def count_states(states: Iterable[TrialState | str]) -> TrialCounts:
    """Trial states (or their names, as a report's table holds them) by kind."""
    tally = dict.fromkeys(_FIELD.values(), 0)
    for state in states:
        tally[_FIELD[TrialState[state] if isinstance(state, str) else state]] += 1
    return TrialCounts(**tally)


def count_trials(study) -> TrialCounts:
    """The study's trials by state, as the storage holds them now (waiting out an outage)."""
    return count_states(t.state for t in stored(lambda: study.get_trials(deepcopy=False)))
