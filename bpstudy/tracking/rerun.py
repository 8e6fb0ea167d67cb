"""`bpstudy rerun RUN_ID`: retrain a logged run from its own config.yaml and compare
every metric history with the original, bit for bit, then the full-resolution
statistics (diagnostics/*.parquet) and the final weights (model/weights.npz)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from pathlib import Path

import yaml

from bpstudy.config.validate import validate
from bpstudy.tracking.profiles import is_derived
from bpstudy.tracking.store import (
    TrackingError,
    check_store_exists,
    client_for,
    quiet_downloads,
    resolve_uri,
)
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
            if is_derived(key):  # an original logged before bpstudy logged these
                continue
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


ARTIFACTS = ("diagnostics/layers.parquet", "diagnostics/steps.parquet", "model/weights.npz")


def artifact_difference(client, original: str, rerun: str, up_to: int | None = None) -> str | None:
    """The first difference in the full-resolution statistics (MLflow holds a bounded
    number of points per metric; the parquet files hold every logged step) and in the
    final weights, of the files the original has; None if they match bit for bit."""
    with quiet_downloads(), tempfile.TemporaryDirectory() as tmp:
        for name in ARTIFACTS:
            try:
                a = client.download_artifacts(original, name, f"{tmp}/a")
            except Exception:  # noqa: BLE001 - the original has no such file (interrupted)
                continue
            try:
                b = client.download_artifacts(rerun, name, f"{tmp}/b")
            except Exception:  # noqa: BLE001
                return f"{name}: logged by the original run only"
            compare = _weights_difference if name.endswith(".npz") else _frame_difference
            found = compare(Path(a), Path(b), up_to)
            if found:
                return f"{name}: {found}"
    return None


def _frame_difference(a: Path, b: Path, up_to: int | None) -> str | None:
    import numpy as np
    import pandas as pd

    fa, fb = pd.read_parquet(a), pd.read_parquet(b)
    if up_to is not None:
        fa, fb = (f[f["step"] <= up_to].reset_index(drop=True) for f in (fa, fb))
    if list(fa.columns) != list(fb.columns):
        return f"columns differ: original {list(fa.columns)}, rerun {list(fb.columns)}"
    if len(fa) != len(fb):
        return f"original has {len(fa)} rows, rerun {len(fb)}"
    for column in fa.columns:
        va, vb = fa[column].to_numpy(), fb[column].to_numpy()
        same = va == vb
        if va.dtype.kind == "f":
            same |= np.isnan(va) & np.isnan(vb)
        if not same.all():
            row = int(np.argmin(same))
            where = f"step {fa['step'].iat[row]}"
            if "layer" in fa:
                where = f"layer {fa['layer'].iat[row]} at {where}"
            return f"{column} of {where}: original {va[row].item()!r}, rerun {vb[row].item()!r}"
    return None


def _weights_difference(a: Path, b: Path, up_to: int | None) -> str | None:
    import numpy as np

    with np.load(a, allow_pickle=False) as wa, np.load(b, allow_pickle=False) as wb:
        if sorted(wa.files) != sorted(wb.files):
            return f"parameters differ: original {sorted(wa.files)}, rerun {sorted(wb.files)}"
        for key in wa.files:
            x, y = wa[key], wb[key]
            if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                gap = float(np.nanmax(np.abs(x - y))) if x.shape == y.shape else math.nan
                return f"{key} differs (largest difference {gap:.3g})"
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


def last_steps(client, run) -> tuple[int | None, int | None]:
    """The last step an interrupted run logged statistics for (it sends that step's
    points when it ends) and the step of its last finished epoch; None for what it
    never logged."""

    def last(key: str) -> int | None:
        if key not in run.data.metrics:
            return None
        return max(m.step for m in client.get_metric_history(run.info.run_id, key))

    return last("lr"), last("epoch")


def _stops(run, stats_at: int | None, epoch_at: int | None) -> list[Listener]:
    """Where the rerun of an interrupted original stops: after the last epoch it
    finished, when that came after its last statistics (a Ctrl-C between an epoch's end
    and the next logging step, or after the last epoch); else after that step."""
    tags, metrics = run.data.tags, run.data.metrics
    if epoch_at is not None and (
        stats_at is None or epoch_at > stats_at
    ):  # step s: before update s
        epoch = int(metrics["epoch"])
        return [
            StopWhereTheOriginalStopped(
                epoch, f"the original run was interrupted after epoch {epoch}"
            )
        ]
    if stats_at is not None:
        return [StopAfterStep(stats_at)]
    if tags.get("bpstudy.status") != "stopped" or "epoch" not in metrics:
        return []
    return [StopWhereTheOriginalStopped(int(metrics["epoch"]), tags.get("bpstudy.stop_reason", ""))]


@dataclasses.dataclass
class RerunResult:
    run_id: str  # the new run
    difference: str | None  # the first metric and step (or artifact) that differ, or None
    interrupted_at: int | None = None  # the original ended KILLED or FAILED after this step
    data_changed: bool = False  # the data's fingerprint differs from the original's
    original_status: str = "FINISHED"  # FINISHED, KILLED (Ctrl-C) or FAILED (an error)
    original_error: str | None = None  # a FAILED original's error


def rerun(run_id: str, tracking_uri: str | None = None, listeners=()) -> RerunResult:
    """Retrain and compare. An interrupted original is retrained as far as it got."""
    from bpstudy.tracking.run import tracked_train
    from bpstudy.training.run import load_data

    uri = resolve_uri(tracking_uri)
    check_store_exists(uri, f"pass --tracking-uri with the store that holds run {run_id}")
    client = client_for(uri, checked=True)  # a store that exists: no new one is made
    original = get_run(client, run_id, uri)
    cfg = load_run_config(client, original, uri)
    status = original.info.status
    if status in ("RUNNING", "SCHEDULED"):  # nothing final to compare with (or its process died)
        raise TrackingError(
            f"run {run_id} is {status}: it is still training, or its process died before "
            "ending it; rerun a run that has ended"
        )
    ended_early = status in ("KILLED", "FAILED")  # retrained as far as it got
    stats_at, epoch_at = last_steps(client, original) if ended_early else (None, None)
    logged = [step for step in (stats_at, epoch_at) if step is not None]
    at = max(logged) if logged else None
    if ended_early and at is None:
        raise TrackingError(
            f"run {run_id} ended {status} before it logged a step: there is nothing to compare "
            f"(bpstudy train with its config.yaml trains it again)"
        )
    with _same_blas_threads(original.data.tags.get(THREADS_TAG)):
        tracked = tracked_train(
            cfg,
            load_data(cfg),
            [*listeners, *_stops(original, stats_at, epoch_at)],
            run_name=f"{original.info.run_name or run_id} (rerun)",
            tags={"bpstudy.rerun_of": run_id},
        )
    difference = first_difference(client, run_id, tracked.run_id, up_to=at)
    difference = difference or artifact_difference(client, run_id, tracked.run_id, at)
    before = original.data.tags.get(DATA_HASH_TAG)
    after = client.get_run(tracked.run_id).data.tags.get(DATA_HASH_TAG)
    return RerunResult(
        tracked.run_id, difference, at, bool(before) and before != after, status,
        original.data.tags.get("bpstudy.error"),
    )  # fmt: skip


def _same_blas_threads(recorded: str | None):
    """Use the original's BLAS thread count: OpenBLAS splits a product differently with
    another count, and the rounding differs (a sweep worker runs with cores / workers)."""
    from threadpoolctl import threadpool_limits

    if recorded is None or not recorded.isdigit() or int(recorded) < 1:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(recorded), user_api="blas")
