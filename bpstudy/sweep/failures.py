"""What happens to a trial whose worker died: FAIL in the study, its values tried again,
its MLflow run ended FAILED instead of RUNNING forever."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

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


def fail_and_retry(study, trial: FrozenTrial, tracking_uri: str | None, reason: str) -> None:
    """Mark a RUNNING trial FAIL, enqueue its values again, end its MLflow run FAILED."""
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, "error", reason)
    retries = int(trial.user_attrs.get("retries", 0))
    if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL) and retries < MAX_RETRIES:
        attrs = {"retry_of": trial.number, "retries": retries + 1}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
    end_mlflow_run_of(trial, tracking_uri, reason)
