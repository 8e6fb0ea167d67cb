"""The MLflow internals bpstudy reads (bpstudy/tracking/mlflow_internals.py) are still
there and still mean what they did: each check fails with a message naming the internal
that changed, instead of bpstudy silently falling back or taking a lock it need not."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from bpstudy.tracking import mlflow_internals as internals
from bpstudy.tracking.points import write_points


@pytest.fixture
def client(tmp_path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_the_client_store_is_reached_at_tracking_client_store(client):
    tracking = getattr(client, "_tracking_client", None)
    assert tracking is not None, "MlflowClient._tracking_client is gone"
    store = getattr(tracking, "store", None)
    assert store is not None, "MlflowClient._tracking_client.store is gone"
    import importlib

    module = importlib.import_module(internals.SQL_STORE_MODULE)
    assert isinstance(store, module.SqlAlchemyStore), (
        f"a sqlite: client's store is {type(store)}, not {internals.SQL_STORE_MODULE}.SqlAlchemyStore"
    )
    assert internals.sql_store(client) is store
    for name in ("engine", "ManagedSessionMaker", "sanitize_metric_value"):
        assert hasattr(store, name), f"SqlAlchemyStore.{name} is gone"


def test_the_metric_tables_keep_their_names_and_columns():
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

    columns = {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}
    for model, table in ((SqlMetric, "metrics"), (SqlLatestMetric, "latest_metrics")):
        assert model.__table__.name == table, f"{model.__name__} is now {model.__table__.name}"
        got = set(model.__table__.columns.keys())
        assert columns <= got, f"{table} lost columns {columns - got}"
        required = {c.name for c in model.__table__.columns if not c.nullable and c.default is None
                    and c.server_default is None} - columns  # fmt: skip
        assert not required, f"{table} has new required columns {required}"
    pk = {c.name for c in SqlMetric.__table__.primary_key}
    assert pk == columns, f"metrics' primary key is now {pk}: the duplicate check relies on it"


def test_sanitize_metric_value_encodes_nan_and_infinities_as_before(client):
    store = internals.sql_store(client)
    assert store.sanitize_metric_value(float("nan")) == (True, 0), "NaN encoding changed"
    assert store.sanitize_metric_value(float("inf")) == (False, 1.7976931348623157e308)
    assert store.sanitize_metric_value(-math.inf) == (False, -1.7976931348623157e308)
    assert store.sanitize_metric_value(2.5) == (False, 2.5)


def test_the_bulk_insert_runs_without_falling_back(client):
    """write_points falls back to log_batch only on an IntegrityError; here the bulk
    insert itself must work on the current MLflow."""
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    internals.bulk_insert_metrics(internals.sql_store(client), run_id, [Metric("a", 1.0, 5, 0)])
    write_points(client, run_id, [Metric("a", 2.0, 6, 1)])
    assert [m.value for m in client.get_metric_history(run_id, "a")] == [1.0, 2.0]
    assert client.get_run(run_id).data.metrics == {"a": 2.0}


def test_the_schema_probes_are_there_and_say_a_made_store_is_ready(client):
    from mlflow.store.db import utils

    for name in ("_all_tables_exist", "_get_schema_version", "_get_latest_schema_revision"):
        assert callable(getattr(utils, name, None)), f"mlflow.store.db.utils.{name} is gone"
    engine = internals.sql_store(client).engine
    assert internals.schema_ready(engine), "a store MLflow just made is not 'ready'"


def test_a_fresh_database_is_not_ready(tmp_path):
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert not internals.schema_ready(engine), "an empty database is 'ready'"
    finally:
        engine.dispose()
