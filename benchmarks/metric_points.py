"""Seconds per 1,000 metric points: bpstudy's bulk insert (bpstudy.tracking.mlflow_internals)
against MLflow's public `MlflowClient.log_batch`, synchronous and not, on SQLite and on a
throwaway PostgreSQL cluster (tests/pg.py: fsync off).

One run's points as a depth-50 run logs them (50 layers x 10 stats x 25 logging steps =
12,500), sent at once as the tracker's sender does, into a store already holding --runs
runs of as many points. Wall time until the points are stored, and CPU of this process
(all threads: log_batch's asynchronous mode logs from a thread pool), medians of
--repeats interleaved tries; the ratio is each against synchronous log_batch.

    python benchmarks/metric_points.py [--runs 10] [--repeats 3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bpstudy.tracking.mlflow_internals import bulk_insert_metrics, sql_store
from bpstudy.training.diagnostics import STATS


def points() -> list[Metric]:
    now = int(time.time() * 1000)
    return [
        Metric(f"{stat}/L{i:02d}", 0.001 * i + step, now + step, step)
        for step in range(0, 1000, 40)
        for stat in STATS
        for i in range(1, 51)
    ]


def bulk(client, run_id, metrics) -> None:
    bulk_insert_metrics(sql_store(client), run_id, metrics)


def log_batch(client, run_id, metrics) -> None:
    client.log_batch(run_id, metrics=metrics)


def log_batch_async(client, run_id, metrics) -> None:
    client.log_batch(run_id, metrics=metrics, synchronous=False).wait()


METHODS = {"log_batch": log_batch, "log_batch async": log_batch_async, "bulk": bulk}


def measure(uri: str, runs: int, repeats: int) -> dict[str, tuple[float, float]]:
    client = MlflowClient(uri)
    exp = client.create_experiment("points")
    for _ in range(runs):  # the store's earlier runs
        bulk(client, client.create_run(exp).info.run_id, points())
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in METHODS}
    for k in range(repeats + 1):  # the first round warms up (imports, threads, caches)
        for name, send in METHODS.items():
            run_id, metrics = client.create_run(exp).info.run_id, points()
            wall, cpu = time.perf_counter(), time.process_time()
            send(client, run_id, metrics)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(client.get_metric_history(run_id, metrics[0].key)) == 25
            if k:
                times[name].append((wall, cpu))
    per = 1000 / len(points())
    return {
        name: (statistics.median(w for w, _ in t) * per, statistics.median(c for _, c in t) * per)
        for name, t in times.items()
    }


def report(backend: str, figures: dict[str, tuple[float, float]]) -> None:
    ref_wall, ref_cpu = figures["log_batch"]
    for name, (wall, cpu) in figures.items():
        print(f"{backend:>10} {name:>16} {wall:8.3f} {cpu:8.3f} {wall / ref_wall:7.2f}"
              f" {cpu / ref_cpu:7.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"{'store':>10} {'method':>16} {'wall s':>8} {'cpu s':>8} {'x wall':>7} {'x cpu':>7}"
          "   (per 1,000 points; x: against log_batch)")  # fmt: skip
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                report(backend, measure(f"sqlite:///{tmp}/mlflow.db", args.runs, args.repeats))
        else:
            from tests.pg import PgCluster

            pg = PgCluster().init()
            try:
                pg.start()
                uri = pg.create_database("points")
                report(backend, measure(uri, args.runs, args.repeats))
            finally:
                pg.cleanup()


if __name__ == "__main__":
    main()
