"""One Optuna trial: sampled values -> overrides -> config -> the same `train` -> objective.

The objective metric is reported to the trial every epoch; when the pruner says so, the
run stops (`StopTraining`) and the trial is PRUNED with its metrics kept. A run that
diverges is PRUNED at once with user attributes outcome=diverged and its step. A trial
that raises is FAIL with the error; the sweep goes on either way.
"""

from __future__ import annotations

import math
import os
import socket
import traceback

from optuna.trial import Trial, TrialState

from bpstudy.config.compose import compose
from bpstudy.config.validate import validate
from bpstudy.sweep import interrupt
from bpstudy.sweep.spec import WALL_TIME, SweepSpec, active_params, trial_overrides
from bpstudy.training.events import Listener, StopTraining


class PruningReporter(Listener):
    """Reports the objective each epoch; stops the run when the pruner says so."""

    def __init__(self, trial: Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise StopTraining(
                f"pruned by the {type(self.trial.study.pruner).__name__} at epoch {epoch}"
            )


def tell(trial: Trial, values=None, state: TrialState | None = None) -> None:
    """study.tell, minus one quirk: the grid sampler calls Study.stop() when its grid is
    used up, which only works inside Study.optimize and raises with ask/tell. The trial's
    state is stored before that (Optuna stores it in a `finally`), so the error is moot."""
    try:
        trial.study.tell(trial, values, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def objective_value(result, metric: str, direction: str) -> float:
    """The metric's best value over the run (wall time: the run's)."""
    if metric == WALL_TIME:
        return float(result.wall_time)
    series = result.history[metric].dropna()
    if series.empty:
        return math.nan
    return float(series.min() if direction == "minimize" else series.max())


def run_trial(
    trial: Trial, spec: SweepSpec, extra: list[str], parent_run_id: str | None
) -> TrialState:
    """Train the trial's config and tell the study how it went."""
    from bpstudy.tracking import tracked_train
    from bpstudy.training.run import shared_data

    study = trial.study
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    _, inactive = active_params(spec, trial.params)
    if inactive:  # sampled, but the chosen group option has no such key
        trial.set_user_attr("inactive_params", inactive)
    try:
        cfg = validate(compose(trial_overrides(spec, trial.params, extra)))
        interrupt.check()
        listeners: list[Listener] = [interrupt.InterruptCheck()]
        if not spec.multi_objective:
            listeners.append(PruningReporter(trial, spec.metrics[0]))
        tracked = tracked_train(
            cfg,
            shared_data(cfg),  # the worker's last trial's, if it is the same data set
            listeners,
            run_name=f"{spec.study_name} #{trial.number}",
            parent_run_id=parent_run_id,
            tags={"optuna.study": spec.study_name, "optuna.trial": str(trial.number)},
            on_run=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
        )
    except KeyboardInterrupt:  # stopped, not failed: its values run again on resume
        trial.set_user_attr("error", interrupt.INTERRUPTED)
        tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one trial must not end the sweep
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    result = tracked.result
    trial.set_user_attr("outcome", tracked.outcome)
    if result.diverged:
        trial.set_user_attr("diverged_step", result.diverged_step)
        trial.set_user_attr(
            "prune_reason", f"diverged at step {result.diverged_step}: {result.diverged_reason}"
        )
        tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    if result.status == "stopped":
        trial.set_user_attr("prune_reason", result.stop_reason)
        tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    values = [
        objective_value(result, m, d) for m, d in zip(spec.metrics, spec.directions, strict=True)
    ]
    if not all(math.isfinite(v) for v in values):
        trial.set_user_attr("error", f"objective is not finite: {values}")
        tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    tell(trial, values if spec.multi_objective else values[0])
    return TrialState.COMPLETE
