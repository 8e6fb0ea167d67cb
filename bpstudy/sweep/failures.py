"""What happens to a trial whose worker died: FAIL in the study, its values tried again,
its MLflow run ended FAILED instead of RUNNING forever. And to one failed by another
worker while its own ran on (see trial.taken): its run says so."""

from __future__ import annotations

import functools

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from bpstudy.sweep.storage import open_storage, stored, trial_id

MAX_RETRIES = 3  # the same values are tried at most this many more times


def end_mlflow_run_of(trial: FrozenTrial, tracking_uri: str | None, reason: str) -> None:
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id or not tracking_uri:
        return
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    client = MlflowClient(tracking_uri)
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.log_batch(
                run_id, tags=[RunTag("bpstudy.outcome", "failed"), RunTag("bpstudy.error", reason)]
            )
            client.set_terminated(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - best effort: the study must go on
        pass


def note_taken_run(run_id: str, tracking_uri: str | None, outcome: str, note: str) -> None:
    """The run of a trial another worker failed while this one trained it: FINISHED (it
    ran to its end) with its own outcome, whatever that worker's end_mlflow_run_of said
    meanwhile, and `bpstudy.error` saying what became of the trial."""
    if not tracking_uri:
        return
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    client = MlflowClient(tracking_uri)
    try:
        client.log_batch(
            run_id, tags=[RunTag("bpstudy.outcome", outcome), RunTag("bpstudy.error", note)]
        )
        client.set_terminated(run_id, "FINISHED")
    except Exception:  # noqa: BLE001 - best effort: the study must go on
        pass


@functools.cache
def _storage(url: str):
    """The storage a supervisor fails its dead workers' trials in, opened once."""
    return open_storage(url)


def fail_and_retry(study, storage_url: str, trial: FrozenTrial, tracking_uri: str | None,
                   reason: str) -> None:  # fmt: skip
    """Mark a RUNNING trial FAIL, enqueue its values again, end its MLflow run FAILED.
    The error goes on first: a trial that has finished meanwhile takes no attribute
    (UpdateFinishedTrialError) and is left alone. skip_if_finished: a tell retried after
    its commit went through (the reply lost), or one that lost a race with another
    finisher, is no error; the values are queued again only if the trial ended FAIL."""
    storage = _storage(storage_url)
    number = trial.number
    try:
        stored(lambda: storage.set_trial_user_attr(
            trial_id(storage, study.study_name, number), "error", reason))  # fmt: skip
    except UpdateFinishedTrialError:
        return
    told = stored(lambda: study.tell(number, state=TrialState.FAIL, skip_if_finished=True))
    retries = int(trial.user_attrs.get("retries", 0))
    if told.state == TrialState.FAIL and retries < MAX_RETRIES:
        attrs = {"retry_of": number, "retries": retries + 1}
        stored(lambda: study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False))
    end_mlflow_run_of(trial, tracking_uri, reason)
