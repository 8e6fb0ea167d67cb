"""Milliseconds of study-storage work per trial on PostgreSQL, for three ways of surviving
a database restart (issue 21), and what each does when the database is down for a while.

    .venv/bin/python benchmarks/storage_calls.py [--trials 30] [--reports 20] [--repeats 3]

A trial's storage work is what a bpstudy worker does around training: ask (with the
`worker` attribute and two suggested params), `--reports` x (report + should_prune, a
median pruner reading the other trials), tell. Timed for
  subclass  the RDBStorage subclass bpstudy used to build, whose ~30 methods (five of them
            private ones that Optuna's _CachedStorage calls) each retried a lost connection
            (reproduced here as it was);
  call-site plain RDBStorage, each of bpstudy's calls wrapped in bpstudy.retry (what
            bpstudy.sweep.storage.stored does);
  grpc      GrpcStorageProxy in front of a run_grpc_proxy_server process that holds the
            RDBStorage (needs grpcio).
One PostgreSQL cluster (tests/pg.py) serves all; the variants run interleaved, each in a
study of its own, and the ratios are of medians against `subclass` in the same run. Then
PostgreSQL is stopped for 3 s while each variant runs a trial: the last table says
whether the trial got through.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pg import PgCluster  # noqa: E402

from bpstudy.sweep.storage import is_connection_error, open_storage, stored  # noqa: E402
from bpstudy.tracking.ui import free_port  # noqa: E402

PRIVATE_TOO = ("_get_trials", "_create_new_trial", "_set_trial_param", "_get_best_trial_id",
               "_get_stale_trial_ids")  # fmt: skip


def subclass_storage(url: str):
    """The removed RetryingRDBStorage: every public method and the five private ones
    retried on a lost connection, without the warning."""
    from optuna.storages import BaseStorage, RDBStorage

    from bpstudy.retry import retry

    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            return retry(lambda: method(self, *args, **kwargs), seconds=60,
                         retryable=is_connection_error)  # fmt: skip

        return call

    names = [n for n in vars(BaseStorage) if not n.startswith("_")] + list(PRIVATE_TOO)
    methods = {n: wrap(getattr(RDBStorage, n)) for n in names if callable(getattr(RDBStorage, n))}
    cls = type("RetryingRDBStorage", (RDBStorage,), methods)
    return cls(url, engine_kwargs={"pool_pre_ping": True})


def serve(url: str, port: int) -> None:
    from optuna.storages import get_storage, run_grpc_proxy_server

    warnings.simplefilter("ignore")  # "experimental"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_grpc_proxy_server(get_storage(url), host="127.0.0.1", port=port)


def grpc_storage(port: int):
    from optuna.storages import GrpcStorageProxy

    proxy = GrpcStorageProxy(host="127.0.0.1", port=port)
    proxy.wait_server_ready(timeout=60)
    return proxy


def plain(call):
    return call()


def one_trial(study, reports: int, wrap) -> None:
    """A worker's storage work for one trial, each call through `wrap`."""
    trial = wrap(study.ask)
    wrap(lambda: trial.set_user_attr("worker", "bench:1"))
    x = wrap(lambda: trial.suggest_float("x", 1e-3, 1.0, log=True))
    wrap(lambda: trial.suggest_int("depth", 1, 8))
    for step in range(reports):
        wrap(lambda s=step: trial.report(x * (reports - s), s))
        if wrap(trial.should_prune):
            wrap(lambda: study.tell(trial, state=optuna.trial.TrialState.PRUNED))
            return
    wrap(lambda: study.tell(trial, x))


def study_on(storage, name: str):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5)
    return optuna.create_study(study_name=name, storage=storage, pruner=pruner,
                               sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip


def through_outage(cluster: PgCluster, study, reports: int, wrap) -> str:
    """PostgreSQL stopped, started again 3 s later, while a trial runs."""
    cluster.stop()
    restart = threading.Timer(3.0, cluster.start)
    restart.start()
    try:
        start = time.perf_counter()
        one_trial(study, reports, wrap)
        return f"got through ({time.perf_counter() - start:.1f} s)"
    except Exception as exc:  # noqa: BLE001 - what happened is the figure
        code = exc.code() if callable(getattr(exc, "code", None)) else None  # a gRPC error's
        text = str(code) if code else (str(exc).strip().splitlines() or [""])[0][:70]
        return f"failed: {type(exc).__name__}: {text}"
    finally:
        restart.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--reports", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # "experimental" (heartbeats, the gRPC proxy)
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    cluster = PgCluster().init()
    server = None
    try:
        cluster.start()
        url, port = cluster.create_database("optuna"), free_port()
        optuna.storages.RDBStorage(url)  # the tables, before the proxy's storage looks
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(url, port))
        server.start()
        variants = {
            "subclass": (subclass_storage(url), plain),
            "call-site": (open_storage(url), stored),
            "grpc": (grpc_storage(port), plain),
        }
        studies = {name: study_on(s, f"bench_{name}") for name, (s, _) in variants.items()}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, (_, wrap) in variants.items():
                for _ in range(args.trials):
                    start = time.perf_counter()
                    one_trial(studies[name], args.reports, wrap)
                    times[name].append(1000 * (time.perf_counter() - start))
        outage = {
            name: through_outage(cluster, studies[name], args.reports, wrap)
            for name, (_, wrap) in variants.items()
        }
    finally:
        if server is not None:
            server.kill()
        cluster.cleanup()

    ref = statistics.median(times["subclass"])
    print(f"\n{args.repeats} x {args.trials} trials per variant, {args.reports} reports each")
    print(f"{'variant':10s} {'median ms/trial':>16s} {'p90 ms':>8s} {'ratio':>6s}")
    for name, ms in times.items():
        p90 = statistics.quantiles(ms, n=10)[-1]
        print(f"{name:10s} {statistics.median(ms):16.1f} {p90:8.1f} "
              f"{statistics.median(ms) / ref:6.2f}")  # fmt: skip
    print("\nPostgreSQL stopped for 3 s during a trial; heartbeats (a dead worker's trial failed):")
    for name, said in outage.items():
        beats = "heartbeats" if hasattr(variants[name][0], "record_heartbeat") else "no heartbeats"
        print(f"{name:10s} {said}; {beats}")


if __name__ == "__main__":
    main()
