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
from bpstudy.tracking.tracker import DATA_HASH_TAG, DATA_PATH_TAG, STUDY_TAG, THREADS_TAG
from bpstudy.training.events import Listener, StopTraining


def get_run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"run {run_id} is not in the tracking store {uri}") from None


def load_run_config(client, run, uri: str):
    """The config a logged run trained with, to train it again into `uri`."""
    run_id = run.info.run_id
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
    cfg = _where_the_data_was(validate(tree), run.data.tags.get(DATA_PATH_TAG))
    # train into the same store the original lives in, whatever the recorded uri said
    return dataclasses.replace(
        cfg, tracking=dataclasses.replace(cfg.tracking, uri=uri, enabled=True)
    )


def _where_the_data_was(cfg, recorded: str | None):
    """A relative data.path was relative to the original's working folder: from another
    folder, read the file the original read (its absolute path is a tag)."""
    path = getattr(cfg.data, "path", "")
    if not path or not recorded or Path(path).expanduser().is_absolute() or Path(path).exists():
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=recorded))


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def first_difference(client, original: str, rerun: str, up_to: int | None = None) -> str | None:
    """'metric at step s: original x, rerun y' for the first mismatch, else None. With
    `up_to` (the original was interrupted there), the points up to that step of the
    metrics the original logged; the rerun, stopped there, also logs test/*."""
    keys_a = set(client.get_run(original).data.metrics)
    keys_b = set(client.get_run(rerun).data.metrics)
    last = math.inf if up_to is None else up_to

    def history(run_id: str, key: str) -> list[tuple[int, float]]:
        points = client.get_metric_history(run_id, key)
        return sorted((m.step, m.value) for m in points if m.step <= last)

    for key in sorted(keys_a if up_to is not None else keys_a | keys_b):
        if key not in keys_b:
            return f"{key}: logged by the original run only"
        if key not in keys_a:
            return f"{key}: logged by the rerun only"
        a, b = history(original, key), history(rerun, key)
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


class StopAfterStep(Listener):
    """A run that was interrupted (Ctrl-C: status KILLED) is retrained up to the last
    step it logged, so that what it logged can be compared."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_update(self, trainer, step: int) -> None:
        if step >= self.step:
            raise StopTraining(f"the original run was interrupted after step {self.step}")


def last_logged_step(client, run) -> int | None:
    """The last step an interrupted run logged statistics for (it sends that step's
    points when it ends), or None if it logged none."""
    if "lr" not in run.data.metrics:
        return None
    return max(m.step for m in client.get_metric_history(run.info.run_id, "lr"))


def _stops(run, interrupted_at: int | None) -> list[Listener]:
    if interrupted_at is not None:
        return [StopAfterStep(interrupted_at)]
    tags, metrics = run.data.tags, run.data.metrics
    if tags.get("bpstudy.status") != "stopped" or "epoch" not in metrics:
        return []
    return [StopWhereTheOriginalStopped(int(metrics["epoch"]), tags.get("bpstudy.stop_reason", ""))]


@dataclasses.dataclass
class RerunResult:
    run_id: str  # the new run
    difference: str | None  # the first metric and step that differ, or None
    interrupted_at: int | None = None  # the original was Ctrl-C'd after this step
    data_changed: bool = False  # the data's fingerprint differs from the original's


def rerun(run_id: str, tracking_uri: str | None = None, listeners=()) -> RerunResult:
    """Retrain and compare. An interrupted original is retrained as far as it got."""
    from bpstudy.tracking.run import tracked_train

    uri = resolve_uri(tracking_uri)
    client = client_for(uri)
    original = get_run(client, run_id, uri)
    cfg = load_run_config(client, original, uri)
    at = last_logged_step(client, original) if original.info.status == "KILLED" else None
    with _same_blas_threads(original.data.tags.get(THREADS_TAG)):
        tracked = tracked_train(
            cfg, [*listeners, *_stops(original, at)], tags={"bpstudy.rerun_of": run_id}
        )
    difference = first_difference(client, run_id, tracked.run_id, up_to=at)
    before = original.data.tags.get(DATA_HASH_TAG)
    after = client.get_run(tracked.run_id).data.tags.get(DATA_HASH_TAG)
    return RerunResult(tracked.run_id, difference, at, bool(before) and before != after)


def _same_blas_threads(recorded: str | None):
    """Use the original's BLAS thread count: OpenBLAS splits a product differently with
    another count, and the rounding differs (a sweep worker runs with cores / workers)."""
    from threadpoolctl import threadpool_limits

    if recorded is None or not recorded.isdigit() or int(recorded) < 1:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(recorded), user_api="blas")
