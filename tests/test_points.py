"""The bulk path for metric points on a SQL store reads back exactly as `log_batch`."""

from __future__ import annotations

import math

from mlflow import MlflowClient
from mlflow.entities import Metric

from bpstudy.tracking.points import _sql_store, write_points

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
