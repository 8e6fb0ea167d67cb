"""Every MLflow internal bpstudy reads, in one place; tests/test_mlflow_internals.py fails
loudly, naming the internal, when a release changes one of them.

Checked on MLflow 3.17.2 (SQLAlchemy 2.1). MLflow has no public bulk API for metric
points: `MlflowClient.log_batch` builds one ORM object per point, validates it twice and
commits every 1,000 points. benchmarks/metric_points.py (a depth-50 run's 7,500 points
sent at once into a store of 10 runs; seconds per 1,000 points, wall / CPU of this
process, medians of 3; a 2-core VM; PostgreSQL 15, tests/pg.py's cluster, fsync off):

    SQLite      log_batch 0.118 / 0.109   asynchronous 0.154 / 0.112   bulk 0.014 / 0.012
    PostgreSQL  log_batch 0.131 / 0.105   asynchronous 0.203 / 0.184   bulk 0.023 / 0.013

The bulk insert takes 0.11-0.18x log_batch's time (wall and CPU); log_batch's
asynchronous mode costs more than its synchronous one (1.0-1.8x), since the tracker's
sender thread already keeps the store off the training thread, so it gains nothing here.
Through log_batch a depth-50 run's points would cost about 0.8 s of CPU on a 2-core
machine beside a 10 s run (8%, past the <=1.05x target of a tracked run); through the
bulk insert 0.1 s (1%).

What is used, and why:
- `client._tracking_client.store`: the client's SqlAlchemyStore (no public accessor);
- its `engine` and `ManagedSessionMaker`: MLflow's own connection and session settings;
- `SqlMetric` / `SqlLatestMetric` (tables `metrics`, `latest_metrics`): where points go;
- `store.sanitize_metric_value`: MLflow's encoding of NaN and infinities;
- `mlflow.store.db.utils._all_tables_exist`, `_get_schema_version`,
  `_get_latest_schema_revision`: whether a PostgreSQL store's tables are made and current,
  so that commands opening it at once do not all run the migrations (store.py). MLflow's
  public route (creating a store) runs the migrations themselves, which is what the check
  guards; the latest revision is only known to MLflow's own alembic scripts.
"""

from __future__ import annotations

import sys
from operator import itemgetter

SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"


def sql_store(client):
    """The client's SqlAlchemyStore, or None. A process with such a store has imported
    its module; one without it (a server's client) does not import it here (1.5 s)."""
    # private: MlflowClient has no public accessor for its store (see the docstring)
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    module = sys.modules.get(SQL_STORE_MODULE)
    return store if module is not None and isinstance(store, module.SqlAlchemyStore) else None


def bulk_insert_metrics(store, run_id: str, metrics: list) -> None:
    """Add mlflow.entities.Metric points in one transaction, as log_batch would store
    them (one row per identical point, the newest kept as the latest value). Raises
    (MLflow wrapping) an IntegrityError, storing nothing, when a point is already stored."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from sqlalchemy import insert

    rows = _rows(store, run_id, metrics)
    newest: dict[str, dict] = {}
    for row in rows:
        old = newest.get(row["key"])
        if old is None or _order(row) > _order(old):
            newest[row["key"]] = row
    with store.ManagedSessionMaker(read_only=False) as session:
        session.execute(insert(SqlMetric.__table__), rows)
        _update_latest(session, SqlLatestMetric.__table__, run_id, newest)


def _rows(store, run_id: str, metrics: list) -> list[dict]:
    rows, seen = [], set()
    for m in metrics:
        is_nan, value = store.sanitize_metric_value(float(m.value))
        ident = (m.key, int(m.timestamp), int(m.step), value, is_nan)
        if ident not in seen:  # as log_batch: one row per identical point
            seen.add(ident)
            rows.append(dict(key=m.key, value=value, timestamp=int(m.timestamp),
                             step=int(m.step), is_nan=is_nan, run_uuid=run_id))  # fmt: skip
    rows.sort(key=itemgetter("key", "timestamp", "step"))  # the primary key's order: each
    # insert lands beside the last in the index, and the commit writes fewer pages
    return rows


def _update_latest(session, latest, run_id: str, newest: dict[str, dict]) -> None:
    from sqlalchemy import bindparam, insert, select, update

    query = select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value).where(
        latest.c.run_uuid == run_id, latest.c.key.in_(list(newest))
    )
    stored = {key: (step, ts, value) for key, step, ts, value in session.execute(query)}
    fresh = [row for key, row in newest.items() if key not in stored]
    newer = [
        {"b_" + k: v for k, v in row.items()}
        for key, row in newest.items()
        if key in stored and _order(row) > stored[key]
    ]
    if fresh:
        session.execute(insert(latest), fresh)
    if newer:
        session.execute(
            update(latest)
            .where(latest.c.run_uuid == run_id, latest.c.key == bindparam("b_key"))
            .values({c: bindparam("b_" + c) for c in ("value", "timestamp", "step", "is_nan")}),
            newer,
        )


def _order(row: dict) -> tuple:
    """MLflow's 'more recent' for the latest value: by step, then timestamp, then value."""
    return row["step"], row["timestamp"], row["value"]


def schema_ready(engine) -> bool:
    """MLflow's tables are there at its current revision (raises if MLflow's probes are
    gone: tests/test_mlflow_internals.py checks them)."""
    from mlflow.store.db import utils

    if not utils._all_tables_exist(engine):  # private: no public probe (module docstring)
        return False
    current = utils._get_schema_version(engine)  # private: as above
    return current == utils._get_latest_schema_revision()  # private: as above
