"""`bpstudy rerun RUN_ID`: retrain a logged run from its own config.yaml and compare
every metric history with the original, bit for bit."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from pathlib import Path

import yaml

from bpstudy.config.validate import validate
from bpstudy.tracking.store import TrackingError, client_for, quiet_downloads, resolve_uri
from bpstudy.tracking.tracker import STUDY_TAG, THREADS_TAG
from bpstudy.training.events import Listener, StopTraining


def load_run_config(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"run {run_id} is not in the tracking store {uri}") from None
    study = run.data.tags.get(STUDY_TAG)
    if study:
        raise TrackingError(
            f"run {run_id} is the parent run of study '{study}', not a training run; "
            "rerun one of its trials' runs (nested under it)"
        )
    with quiet_downloads(), tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception:  # noqa: BLE001 - any failure means the artifact is not usable
            raise TrackingError(f"run {run_id} has no config.yaml artifact in {uri}") from None
        tree = yaml.safe_load(Path(path).read_text())
    cfg = validate(tree)
    # train into the same store the original lives in, whatever the recorded uri said
    return dataclasses.replace(
        cfg, tracking=dataclasses.replace(cfg.tracking, uri=uri, enabled=True)
    )


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def first_difference(client, original: str, rerun: str) -> str | None:
    """'metric at step s: original x, rerun y' for the first mismatch, else None."""
    keys_a = set(client.get_run(original).data.metrics)
    keys_b = set(client.get_run(rerun).data.metrics)
    for key in sorted(keys_a | keys_b):
        if key not in keys_b:
            return f"{key}: logged by the original run only"
        if key not in keys_a:
            return f"{key}: logged by the rerun only"
        a = sorted((m.step, m.value) for m in client.get_metric_history(original, key))
        b = sorted((m.step, m.value) for m in client.get_metric_history(rerun, key))
        for (step_a, va), (step_b, vb) in zip(a, b, strict=False):
            if step_a != step_b:
                return f"{key}: original logs step {step_a}, rerun logs step {step_b}"
            if not _same(va, vb):
                return f"{key} at step {step_a}: original {va!r}, rerun {vb!r}"
        if len(a) != len(b):
            return f"{key}: original has {len(a)} points, rerun {len(b)}"
    return None


class StopWhereTheOriginalStopped(Listener):
    """A run that was stopped early (an Optuna pruner: status `stopped`) is retrained up
    to the same epoch, and stopped there for the same reason, so that its histories can
    be compared whole."""

    def __init__(self, epoch: int, reason: str) -> None:
        self.epoch, self.reason = epoch, reason

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if epoch >= self.epoch:
            raise StopTraining(self.reason)


def _stops(run) -> list[Listener]:
    tags, metrics = run.data.tags, run.data.metrics
    if tags.get("bpstudy.status") != "stopped" or "epoch" not in metrics:
        return []
    return [StopWhereTheOriginalStopped(int(metrics["epoch"]), tags.get("bpstudy.stop_reason", ""))]


def rerun(run_id: str, tracking_uri: str | None = None, listeners=()) -> tuple[str, str | None]:
    """Retrain; return (new run id, first difference or None)."""
    from bpstudy.tracking.run import tracked_train

    uri = resolve_uri(tracking_uri)
    client = client_for(uri)
    cfg = load_run_config(client, run_id, uri)
    original = client.get_run(run_id)
    with _same_blas_threads(original.data.tags.get(THREADS_TAG)):
        tracked = tracked_train(
            cfg, [*listeners, *_stops(original)], tags={"bpstudy.rerun_of": run_id}
        )
    return tracked.run_id, first_difference(client, run_id, tracked.run_id)


def _same_blas_threads(recorded: str | None):
    """Use the original's BLAS thread count: OpenBLAS splits a product differently with
    another count, and the rounding differs (a sweep worker runs with cores / workers)."""
    from threadpoolctl import threadpool_limits

    if recorded is None or not recorded.isdigit() or int(recorded) < 1:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(recorded), user_api="blas")
