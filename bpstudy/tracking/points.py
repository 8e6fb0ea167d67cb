"""How a run's metric points reach the MLflow store.

On a SQL store (`sqlite:`, `postgresql:`, `mysql:`, ...) the points go in with a few bulk
statements through MLflow's own engine, tables and value encoding
(bpstudy.tracking.mlflow_internals: 5x less CPU than `log_batch`, its figures there), so
that what MLflow reads back (histories, latest values) is the same. Any other store (an
`mlflow server`), and a batch holding a point already stored (which the bulk insert
refuses as a whole and `log_batch` skips), goes through `log_batch`.
"""

from __future__ import annotations

from bpstudy.tracking.mlflow_internals import bulk_insert_metrics, sql_store

LOG_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def write_points(client, run_id: str, metrics: list) -> None:
    """Add mlflow.entities.Metric points to a run, newest values kept as the latest."""
    store = sql_store(client)
    if store is not None:
        try:
            bulk_insert_metrics(store, run_id, metrics)  # one transaction: all or nothing
            return
        except Exception as exc:
            if not _already_stored(exc):  # any other failure (a store error, an MLflow
                raise  # internal changed: tests/test_mlflow_internals.py) is not hidden
    for lo in range(0, len(metrics), LOG_BATCH):
        client.log_batch(run_id, metrics=metrics[lo : lo + LOG_BATCH])


def _already_stored(exc: BaseException | None) -> bool:
    """A point already stored (MLflow's session wraps SQLAlchemy's IntegrityError)."""
    from sqlalchemy.exc import IntegrityError

    while exc is not None:
        if isinstance(exc, IntegrityError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
