"""Many workers on one study: COMMANDS `bpstudy sweep` commands of WORKERS workers each, on
one PostgreSQL study of TRIALS tiny trials, tracked on an `mlflow server` whose backend is
the same cluster.

    .venv/bin/python benchmarks/many_workers.py [--commands 4] [--workers 8] [--trials 200]

Needs PostgreSQL's binaries (/usr/lib/postgresql/*/bin) and the `postgres` extra. The
cluster (max_connections=200 unless --max-connections) and the server run on free
127.0.0.1 ports and are removed afterwards. Prints what docs/sweeps.md (Many workers on
one study) quotes:

- trials/min over the wall time of the last command to end;
- peak PostgreSQL connections (pg_stat_activity, sampled every 0.2 s), and how many of
  them were the MLflow server's;
- trials lost (asked but neither finished nor failed-and-retried), trials duplicated (a
  trial number with more than one MLflow run), MLflow runs left RUNNING.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pg import MlflowServer, PgCluster  # noqa: E402

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
STUDY = "many_workers"


def write_sweep(folder: Path, n: int) -> Path:
    tree = {
        "study_name": STUDY,
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": n,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "overrides": [
            "data=spirals",
            "data.n_per_class=60",
            "model.width=8",
            "trainer.epochs=1",
            "trainer.progress=none",
        ],
        "params": {"model.depth": "range(2, 4)", "optimizer.lr": "tag(log, interval(0.01, 0.3))"},
    }
    path = folder / f"{STUDY}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


class ConnectionSampler(threading.Thread):
    """Peak connections to the cluster, in all and by database, every `every` seconds."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.peak, self.peak_by_db = 0, collections.Counter()
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(self.every):
                rows = conn.execute(
                    "SELECT datname, count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' GROUP BY datname"
                ).fetchall()
                by_db = {db or "": n - (db == "postgres") for db, n in rows}  # not ourselves
                self.peak = max(self.peak, sum(by_db.values()))
                for db, n in by_db.items():
                    self.peak_by_db[db] = max(self.peak_by_db[db], n)


def start_command(folder: Path, sweep: Path, workers: int, storage: str, tracking: str, i: int):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": tracking}
    log = (folder / f"command-{i}.log").open("w")
    cmd = [BPSTUDY, "sweep", str(sweep), "--workers", str(workers), "--storage", storage,
           "--progress", "lines"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def audit(storage: str, tracking: str) -> dict:
    """What the study and the MLflow store hold once every command has ended."""
    import optuna
    from mlflow import MlflowClient

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
    states = collections.Counter(t.state.name for t in trials)
    client = MlflowClient(tracking)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=5000)
    children = [r for r in runs if "optuna.trial" in r.data.tags]
    per_trial = collections.Counter(r.data.tags["optuna.trial"] for r in children)
    retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
    lost = [t.number for t in trials if t.state.name == "RUNNING"] + [
        t.number for t in trials if t.state.name == "FAIL" and t.number not in retried
    ]
    return {
        "states": dict(states),
        "lost": len(lost),
        "duplicated": sum(1 for n in per_trial.values() if n > 1),
        "running_runs": sum(1 for r in runs if r.info.status == "RUNNING"),
        "runs": len(children),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=200,
        help="the cluster's max_connections (PostgreSQL's default is 100)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bpstudy-many-") as tmp:
        root = Path(tmp)
        cluster = PgCluster(args.max_connections).init()
        server = sampler = None
        commands: list[subprocess.Popen] = []
        try:
            cluster.start()
            storage = cluster.create_database("optuna")
            server = MlflowServer(cluster.create_database("mlflow"), root)
            server.start()
            sweep = write_sweep(root, args.trials)
            sampler = ConnectionSampler(cluster.url("postgres"))
            sampler.start()
            start = time.perf_counter()
            commands = [
                start_command(root, sweep, args.workers, storage, server.url, i)
                for i in range(args.commands)
            ]
            codes = [c.wait(timeout=3600) for c in commands]
            elapsed = time.perf_counter() - start
            sampler.done.set()
            sampler.join()
            for i, code in enumerate(codes):
                if code != 0:
                    log = (root / f"command-{i}.log").read_text()
                    print(f"command {i} exited {code}:\n{log[-3000:]}", file=sys.stderr)
            found = audit(storage, server.url)
        finally:
            for c in commands:
                if c.poll() is None:
                    c.kill()
            if sampler is not None:
                sampler.done.set()
            if server is not None:
                server.stop()
            cluster.cleanup()

    finished = found["states"].get("COMPLETE", 0) + found["states"].get("PRUNED", 0)
    print(f"{args.commands} commands x {args.workers} workers, {args.trials} trials, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"exit codes            {codes}")
    print(f"wall time             {elapsed:.1f} s")
    print(f"trials/min            {60 * finished / elapsed:.1f}")
    print(f"trial states          {found['states']}")
    print(f"peak connections      {sampler.peak} "
          f"(optuna db {sampler.peak_by_db['optuna']}, mlflow db {sampler.peak_by_db['mlflow']})")  # fmt: skip
    print(f"trials lost           {found['lost']}")
    print(f"trials duplicated     {found['duplicated']}")
    print(f"runs left RUNNING     {found['running_runs']}  (child runs: {found['runs']})")


if __name__ == "__main__":
    main()
