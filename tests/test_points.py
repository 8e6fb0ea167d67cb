"""The bulk path for metric points on a SQL store reads back exactly as `log_batch`; the
tracker's sender holds points and sends them in few transactions, yet soon enough."""

from __future__ import annotations

import math

from mlflow import MlflowClient
from mlflow.entities import Metric
from sqlalchemy import event

from bpstudy.tracking import sender as sending
from bpstudy.tracking.mlflow_internals import sql_store as _sql_store
from bpstudy.tracking.points import write_points
from bpstudy.tracking.sender import Sender
from tests.conftest import wait_until

KEYS = [f"{stat}/L{i:02d}" for stat in ("grad_norm", "act_std") for i in range(1, 4)]


def batches() -> list[list[Metric]]:
    first = [Metric(k, 0.5 * i + step, 1000, step) for step in (0, 10) for i, k in enumerate(KEYS)]
    odd = [
        Metric(KEYS[0], float("nan"), 1001, 20),
        Metric(KEYS[1], float("inf"), 1001, 20),
        Metric(KEYS[2], float("-inf"), 1001, 20),
        Metric(KEYS[3], 3.0, 1001, 20),
        Metric(KEYS[3], 3.0, 1001, 20),  # the same point twice in one batch
        Metric("epoch", 1.0, 1001, 20),  # a key the store has not seen yet
    ]
    older = [Metric(KEYS[4], 99.0, 999, 5), Metric(KEYS[5], 7.0, 1002, 30)]  # 5 < 10
    return [first, odd, older]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def readback(client: MlflowClient, run_id: str) -> tuple[dict, dict]:
    run = client.get_run(run_id)
    latest = dict(run.data.metrics)
    history = {
        k: [(m.value, m.timestamp, m.step) for m in client.get_metric_history(run_id, k)]
        for k in latest
    }
    return latest, history


def test_bulk_points_read_back_as_log_batch(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("points")
    bulk, reference = (client.create_run(exp).info.run_id for _ in range(2))
    assert _sql_store(client) is not None  # the bulk path is the one under test
    for batch in batches():
        write_points(client, bulk, batch)
        client.log_batch(reference, metrics=batch)
    got, want = readback(client, bulk), readback(client, reference)
    assert set(got[0]) == set(want[0]) == {*KEYS, "epoch"}
    for key in want[0]:
        assert same(got[0][key], want[0][key]), key  # latest value, as MLflow keeps it
        assert len(got[1][key]) == len(want[1][key]), key
        for g, w in zip(sorted(got[1][key]), sorted(want[1][key]), strict=True):
            assert same(g[0], w[0]) and g[1:] == w[1:], key
    assert math.isnan(got[0][KEYS[0]]) and got[0][KEYS[1]] > 1e308 and got[0][KEYS[2]] < -1e308
    assert got[0][KEYS[4]] == 0.5 * 4 + 10  # the older step did not replace the latest
    assert got[0][KEYS[5]] == 7.0


def test_a_point_stored_twice_is_kept_once(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("points")).info.run_id
    batch = batches()[0]
    write_points(client, run_id, batch)
    write_points(client, run_id, batch)  # the bulk insert refuses it: log_batch skips it
    latest, history = readback(client, run_id)
    assert set(latest) == set(KEYS) and all(len(points) == 2 for points in history.values())


def test_a_file_store_goes_through_log_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    run_id = client.create_run(client.create_experiment("points")).info.run_id
    assert _sql_store(client) is None
    write_points(client, run_id, batches()[0])
    latest, history = readback(client, run_id)
    assert set(latest) == set(KEYS) and all(len(p) == 2 for p in history.values())


def sender_for(tmp_path) -> tuple[MlflowClient, str, Sender, list[int]]:
    """A started sender on a new run of a SQLite store, and the sizes of the metric
    inserts its transactions made (one entry per transaction that wrote points)."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("points")).info.run_id
    inserts: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO METRICS"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(_sql_store(client).engine, "before_cursor_execute", count)
    sender = Sender(client, run_id)
    sender.start()
    return client, run_id, sender, inserts


def step_points(steps: range) -> list[list[Metric]]:
    """One list per step, as the tracker queues them: every key of a depth-50 run."""
    keys = [f"{stat}/L{i:02d}" for stat in ("grad_norm", "act_std") for i in range(1, 51)]
    return [[Metric(k, float(step), 1000 + step, step) for k in keys] for step in steps]


def points_stored(client: MlflowClient, run_id: str) -> int:
    return sum(
        len(client.get_metric_history(run_id, k)) for k in client.get_run(run_id).data.metrics
    )


def test_the_sender_sends_a_short_runs_points_in_one_transaction(tmp_path, monkeypatch):
    # no timed flush between the puts, however slow the machine: close() sends them
    monkeypatch.setattr(sending, "FLUSH_SECONDS", 3600.0)
    client, run_id, sender, inserts = sender_for(tmp_path)
    for points in step_points(range(0, 120, 10)):  # 12 x 100 points: more than 1,000
        sender.put(points)
    sender.close()
    assert sender.error is None
    assert inserts == [1200]  # one commit of every page touched, not one per 1,000 points
    assert points_stored(client, run_id) == 1200
    assert client.get_run(run_id).data.metrics["grad_norm/L01"] == 110.0  # the latest value


def test_held_points_go_out_after_flush_seconds_while_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(sending, "FLUSH_SECONDS", 0.2)
    client, run_id, sender, inserts = sender_for(tmp_path)
    try:
        sender.put(step_points(range(1))[0])
        # wait for the points to be readable (the commit), not for the insert statement:
        # that fires before the commit, and a loaded machine asserted in between
        wait_until(lambda: points_stored(client, run_id) == 100, 30, "the held points' commit")
        # the dashboard follows a run still training
        assert sender.is_alive() and inserts == [100]
    finally:
        sender.close()


def test_past_hold_points_they_go_out_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sending, "FLUSH_SECONDS", 3600.0)
    monkeypatch.setattr(sending, "HOLD_POINTS", 250)
    client, run_id, sender, inserts = sender_for(tmp_path)
    try:
        for points in step_points(range(3)):
            sender.put(points)
        wait_until(lambda: inserts, 30, "the points past HOLD_POINTS to be sent")
        assert sender.is_alive() and inserts == [300]
    finally:
        sender.close()
    assert points_stored(client, run_id) == 300
