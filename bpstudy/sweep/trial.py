"""One Optuna trial: sampled values -> overrides -> config -> the same `train` -> objective.

The objective metric is reported to the trial every epoch; when the pruner says so, the
run stops (`StopTraining`) and the trial is PRUNED with its metrics kept. A run that
diverges is PRUNED at once with user attributes outcome=diverged and its step. A trial
that raises is FAIL with the error; the sweep goes on either way. Each call into the
trial or the study is retried through a storage outage (storage.stored). A trial that
another worker failed meanwhile (its heartbeat lapsed) is trained to its end, its result
kept as a new trial if the study still takes one (`taken`).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import traceback

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import Trial, TrialState

from bpstudy.config.compose import compose
from bpstudy.config.validate import validate
from bpstudy.errors import redact
from bpstudy.sweep import interrupt
from bpstudy.sweep.counts import count_trials
from bpstudy.sweep.failures import note_taken_run
from bpstudy.sweep.spec import WALL_TIME, SweepSpec, active_params, trial_overrides
from bpstudy.sweep.storage import stored
from bpstudy.tracking.naming import trial_run_name
from bpstudy.training.events import Listener, StopTraining


class PruningReporter(Listener):
    """Reports the objective each epoch; stops the run when the pruner says so."""

    def __init__(self, trial: Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.reported: dict[int, float] = {}  # kept here too, for a trial taken (see taken)
        self.taken = False  # failed by another worker: no more reports or prune checks

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.reported[epoch] = value
        if self.taken:
            return
        try:
            stored(lambda: self.trial.report(value, epoch))
            prune = stored(self.trial.should_prune)
        except UpdateFinishedTrialError:
            self.taken = True
            return
        if prune:
            raise StopTraining(
                f"pruned by the {type(self.trial.study.pruner).__name__} at epoch {epoch}"
            )


def set_attr(trial: Trial, key: str, value) -> None:
    """trial.set_user_attr through an outage; a trial another worker has failed takes no
    more attributes (its end finds that out: see tell). A text is stored redacted: an
    error or traceback may quote a URL with its password."""
    if isinstance(value, str):
        value = redact(value)
    with contextlib.suppress(UpdateFinishedTrialError):
        stored(lambda: trial.set_user_attr(key, value))


def tell(trial: Trial, values=None, state: TrialState | None = None) -> bool:
    """study.tell through an outage; False if another worker had finished the trial
    (failed it as stale). skip_if_finished: a tell retried after its commit went through
    but the reply was lost finds the trial in the state it told, which is fine. Minus one
    quirk: the grid sampler calls Study.stop() when its grid is used up, which only works
    inside Study.optimize and raises with ask/tell. The trial's state is stored before
    that (Optuna stores it in a `finally`), so the error is moot."""
    told = state or (TrialState.COMPLETE if values is not None else TrialState.FAIL)
    try:
        stored_as = stored(lambda: trial.study.tell(trial, values, state=state,
                                                    skip_if_finished=True)).state  # fmt: skip
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return True
    return stored_as == told


def taken(trial: Trial, spec: SweepSpec, state: TrialState, values, tracked,
          reported: dict[int, float]) -> TrialState:  # fmt: skip
    """Trial `trial` ended `state` here, but another worker had failed it meanwhile (its
    heartbeat lapsed, say, in an outage longer than the grace period): its result is
    added to the study as a new trial while the study still takes one, the worker says
    so in one line, and its MLflow run is tagged with what became of it."""
    import optuna

    study, where = trial.study, f"trial #{trial.number}"
    kept = None
    if state in (TrialState.COMPLETE, TrialState.PRUNED) and (
        count_trials(study).finished < spec.n_trials
    ):
        attrs = {k: v for k, v in stored(lambda: trial.user_attrs).items()
                 if k not in ("error", "traceback")}  # fmt: skip  # the failer's, not its own
        done = optuna.trial.create_trial(
            state=state, values=values, params=trial.params, distributions=trial.distributions,
            user_attrs={**attrs, "taken_from": trial.number}, intermediate_values=reported,
        )  # fmt: skip
        stored(lambda: study.add_trial(done))
        trials = stored(lambda: study.get_trials(deepcopy=False))
        kept = next(
            t.number for t in reversed(trials) if t.user_attrs.get("taken_from") == trial.number
        )
    note = (
        f"{where} was failed by another worker while this one ran it (its heartbeat lapsed); "
        + (f"its result is kept as trial #{kept}" if kept is not None else "its result is not kept")
    )
    print(f"warning: {note}", file=sys.stderr, flush=True)
    if tracked is not None and tracked.run_id:
        note_taken_run(tracked.run_id, tracked.tracking_uri, tracked.outcome, note)
    return state


def objective_value(result, metric: str, direction: str) -> float:
    """The metric's best value over the run (wall time: the run's)."""
    if metric == WALL_TIME:
        return float(result.wall_time)
    series = result.history[metric].dropna()
    if series.empty:
        return math.nan
    return float(series.min() if direction == "minimize" else series.max())


def sampled(spec: SweepSpec, active: dict) -> dict:
    """The trial's sampled values that apply, in the sweep file's order (for its name)."""
    return {key: active[key] for key in spec.space if key in active}


def run_trial(
    trial: Trial, spec: SweepSpec, extra: list[str], parent_run_id: str | None
) -> TrialState:
    """Train the trial's config and tell the study how it went."""
    from bpstudy.tracking import tracked_train
    from bpstudy.training.run import shared_data

    study = trial.study
    set_attr(trial, "worker", f"{socket.gethostname()}:{os.getpid()}")
    active, inactive = active_params(spec, trial.params)
    if inactive:  # sampled, but the chosen group option has no such key
        set_attr(trial, "inactive_params", inactive)
    reporter = None if spec.multi_objective else PruningReporter(trial, spec.metrics[0])
    try:
        cfg = validate(compose(trial_overrides(spec, trial.params, extra)))
        interrupt.check()
        listeners: list[Listener] = [interrupt.InterruptCheck()]
        if reporter is not None:
            listeners.append(reporter)
        tracked = tracked_train(
            cfg,
            shared_data(cfg),  # the worker's last trial's, if it is the same data set
            listeners,
            run_name=trial_run_name(trial.number, sampled(spec, active)),
            parent_run_id=parent_run_id,
            tags={"optuna.study": spec.study_name, "optuna.trial": str(trial.number)},
            on_run=lambda run_id: set_attr(trial, "mlflow_run_id", run_id),
        )
    except KeyboardInterrupt:  # stopped, not failed: its values run again on resume
        set_attr(trial, "error", interrupt.INTERRUPTED)
        if tell(trial, state=TrialState.FAIL):
            stored(lambda: study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}))
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one trial must not end the sweep
        set_attr(trial, "error", f"{type(exc).__name__}: {exc}"[:2000])
        set_attr(trial, "traceback", traceback.format_exc()[-4000:])
        tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    state, values = outcome(trial, spec, tracked)
    if not tell(trial, values if spec.multi_objective or values is None else values[0], state):
        return taken(trial, spec, state, values, tracked, reporter.reported if reporter else {})
    return state


def outcome(trial: Trial, spec: SweepSpec, tracked) -> tuple[TrialState, list[float] | None]:
    """How the trained trial ends (its user attributes set): PRUNED (diverged, or stopped
    by the pruner), FAIL (an objective that is not finite), else COMPLETE with its values."""
    result = tracked.result
    set_attr(trial, "outcome", tracked.outcome)
    set_attr(trial, "training", tracked.verdict.training)
    set_attr(trial, "symptoms", tracked.verdict.symptoms_tag)
    if result.diverged:
        set_attr(trial, "diverged_step", result.diverged_step)
        set_attr(trial, "prune_reason",
                 f"diverged at step {result.diverged_step}: {result.diverged_reason}")  # fmt: skip
        return TrialState.PRUNED, None
    if result.status == "stopped":
        set_attr(trial, "prune_reason", result.stop_reason)
        return TrialState.PRUNED, None
    values = [
        objective_value(result, m, d) for m, d in zip(spec.metrics, spec.directions, strict=True)
    ]
    if not all(math.isfinite(v) for v in values):
        set_attr(trial, "error", f"objective is not finite: {values}")
        return TrialState.FAIL, None
    return TrialState.COMPLETE, values
