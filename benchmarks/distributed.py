"""Trials per minute: the embedded default (JournalStorage + SQLite MLflow store) against
PostgreSQL + an MLflow server, with 1 and 2 workers.

    .venv/bin/python benchmarks/distributed.py [--trials 8] [--epochs 3]

Needs PostgreSQL's binaries (/usr/lib/postgresql/*/bin) and the `postgres` extra. It starts
a throwaway cluster and `mlflow server` on free 127.0.0.1 ports (the test helpers in
tests/pg.py) and removes them afterwards. Each figure is the wall time of the whole
`bpstudy sweep` command, start-up included, so it is what a user waits for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pg import MlflowServer, PgCluster  # noqa: E402

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))


def write_sweep(folder: Path, name: str, n: int, epochs: int) -> Path:
    tree = {
        "study_name": name,
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": n,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "overrides": [
            "data=digits",
            "model.width=32",
            f"trainer.epochs={epochs}",
            "trainer.progress=none",
        ],
        "params": {"model.depth": "range(2, 6)", "optimizer.lr": "tag(log, interval(0.01, 0.3))"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def timed_sweep(folder: Path, sweep: Path, workers: int, storage: str | None, tracking: str | None):
    cmd = [BPSTUDY, "sweep", str(sweep), "--workers", str(workers), "--progress", "lines"]
    if storage:
        cmd += ["--storage", storage]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if tracking:
        env["MLFLOW_TRACKING_URI"] = tracking
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=3600, check=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bpstudy-bench-") as tmp:
        root = Path(tmp)
        for workers in (1, 2):
            folder = root / f"embedded-{workers}"
            folder.mkdir()
            sweep = write_sweep(folder, f"bench_embedded_{workers}", args.trials, args.epochs)
            rows.append(("embedded (journal + SQLite)", workers,
                         timed_sweep(folder, sweep, workers, None, None)))  # fmt: skip
            print(f"{rows[-1][0]:32s} {workers} worker(s): {rows[-1][2]:6.1f} s", flush=True)

        cluster = PgCluster().init()
        server = None
        try:
            cluster.start()
            optuna_url = cluster.create_database("optuna")
            server_folder = root / "server"
            server_folder.mkdir()
            server = MlflowServer(cluster.create_database("mlflow"), server_folder)
            server.start()
            for workers in (1, 2):
                folder = root / f"pg-{workers}"
                folder.mkdir()
                sweep = write_sweep(folder, f"bench_pg_{workers}", args.trials, args.epochs)
                rows.append(("PostgreSQL + mlflow server", workers,
                             timed_sweep(folder, sweep, workers, optuna_url, server.url)))  # fmt: skip
                print(f"{rows[-1][0]:32s} {workers} worker(s): {rows[-1][2]:6.1f} s", flush=True)
        finally:
            if server is not None:
                server.stop()
            cluster.cleanup()

    print(f"\n{args.trials} trials of {args.epochs} epochs each, {os.cpu_count()} cores")
    print(f"{'storage + tracking':32s} {'workers':>7s} {'seconds':>8s} {'trials/min':>10s}")
    for name, workers, seconds in rows:
        print(f"{name:32s} {workers:7d} {seconds:8.1f} {60 * args.trials / seconds:10.1f}")


if __name__ == "__main__":
    main()
