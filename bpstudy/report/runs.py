"""MLflow I/O for a report: the study's parent run, its child runs, and logging the report.

Only MlflowClient calls (search, get, log_artifact, set_tag), so the embedded SQLite store
and an MLflow server (with its own artifact store) work alike. Per-layer gradient norms
come from each run's latest metric values (`run.data.metrics`), not from its artifacts;
the one file read is the parent run's small sweep.json, for the objective's name.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bpstudy.report.summary import ARTIFACT_DIR
from bpstudy.report.summary import HEADING as NOTE_HEADING  # a note under it is ours
from bpstudy.report.table import RunRecord
from bpstudy.tracking.images import image_prefix, log_images
from bpstudy.tracking.store import TrackingError, quiet_downloads

NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (Markdown)
SEARCH_PAGE = 1000
NOTE_LIMIT = 7900  # MLflow caps a tag value at 8000 characters


def _record(run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
    )


def connect(tracking_uri: str):
    """An MlflowClient on the store; an embedded store that does not exist is not created."""
    from bpstudy.tracking.store import check_store_exists, client_for

    check_store_exists(tracking_uri, "pass --tracking-uri with the store the sweep logged to")
    return client_for(tracking_uri, checked=True)


def parent_run(client, run_id: str, tracking_uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise TrackingError(
            f"the study's MLflow parent run {run_id} is not in tracking store {tracking_uri}; "
            "pass --tracking-uri with the store the sweep logged to"
        ) from None


def child_runs(client, parent, run_ids: Iterable[str]) -> dict[str, RunRecord]:
    """Run records by id: the parent's children in one paged search, then any trial run
    recorded elsewhere one by one. Runs that no longer exist are left out."""
    from mlflow.exceptions import MlflowException

    found: dict[str, RunRecord] = {}
    if parent is not None:
        query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        token = None
        while True:
            page = client.search_runs(
                [parent.info.experiment_id],
                filter_string=query,
                max_results=SEARCH_PAGE,
                page_token=token,
            )
            found.update((r.info.run_id, _record(r)) for r in page)
            token = page.token
            if not token:
                break
    for run_id in set(run_ids) - set(found):
        try:
            found[run_id] = _record(client.get_run(run_id))
        except MlflowException:
            continue
    return found


def sweep_metrics(client, parent_run_id: str) -> list[str] | None:
    """The objective metric names from the parent run's sweep.json, when it has one."""
    try:
        with quiet_downloads(), tempfile.TemporaryDirectory(prefix="bpstudy-report-") as tmp:
            path = client.download_artifacts(parent_run_id, "sweep.json", tmp)
            metrics = json.loads(Path(path).read_text()).get("metrics")
    except Exception:  # noqa: BLE001 - optional: the names fall back to "objective"
        return None
    if isinstance(metrics, list) and all(isinstance(m, str) for m in metrics):
        return metrics
    return None


def log_report(
    client,
    parent,
    files: Iterable[Path],
    summary: str,
    artifact_dir: str = ARTIFACT_DIR,
    describe: bool = True,
    step: int = 0,
) -> None:
    """Upload the report files under `artifact_dir` and, when `describe`, show the summary
    as the run's description (unless the user wrote a description of their own)."""
    files = list(files)
    for path in files:
        client.log_artifact(parent.info.run_id, str(path), artifact_dir)
    # the pictures in the parent run's chart view too, step = the trials reported
    pictures = [p for p in files if p.suffix == ".png"]
    log_images(client, parent.info.run_id, pictures, image_prefix(artifact_dir), step)
    if not describe:
        return
    note = parent.data.tags.get(NOTE_TAG)
    if note and not note.startswith(NOTE_HEADING):
        return
    if len(summary) > NOTE_LIMIT:
        cut = summary.rfind("\n", 0, NOTE_LIMIT - 80)
        summary = summary[:cut] + f"\n\n... (the full summary is {ARTIFACT_DIR}/summary.md)\n"
    client.set_tag(parent.info.run_id, NOTE_TAG, summary)
