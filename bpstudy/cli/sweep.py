"""`bpstudy sweep NAME|PATH [--n-trials N] [--workers K] [--storage URL] [--study-name S] [overrides...]`"""

from __future__ import annotations

import argparse

from bpstudy.cli.args import STORAGE_VAR, command_name, command_parser, storage_or_env
from bpstudy.errors import BpstudyError, redact


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "bpstudy sweep",
        "Run (or resume) an Optuna study defined by a sweep file: a name in the "
        "shipped sweeps/ folder or a path. Each trial is one MLflow run nested under the "
        "study's parent run.",
    )
    # optional for argparse, required below: with intermixed parsing argparse would call
    # the optional overrides "required" too when both are missing
    p.add_argument("sweep", nargs="?", help="sweep name (sweeps/NAME.yaml) or path to a sweep file")
    p.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every trial, e.g. trainer.epochs=5"
    )
    p.add_argument(
        "--n-trials",
        type=int,
        default=None,
        help="finished trials the study should hold (default: the file's n_trials)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes (each gets cores/K BLAS threads; default: 1)",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: postgresql://... to share a study across machines, journal:PATH "
        f"(default: ${STORAGE_VAR}, else bpstudy.journal beside the MLflow store)",
    )
    p.add_argument("--study-name", default=None, help="study name (default: the file's study_name)")
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "lines"),
        default="auto",
        help="a progress bar (bar), a line per finished trial (lines), or a bar only on a "
        "terminal (auto, the default)",
    )
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_intermixed_args(argv)  # overrides may come after the options
    if args.sweep is None:
        from bpstudy.sweep.spec import shipped_sweeps

        raise BpstudyError(
            f"give a sweep: a shipped one ({shipped_sweeps()}) or a path to a sweep file; "
            "see 'bpstudy sweep --help'"
        )
    if args.n_trials is not None and args.n_trials < 1:
        raise BpstudyError(f"--n-trials must be >= 1, got {args.n_trials}")
    from bpstudy.sweep.pool import WorkerPool

    # first of all (it checks --workers): its warm-up overlaps everything below
    pool = WorkerPool(args.workers)
    try:
        from bpstudy.sweep.run import run_sweep
    except BaseException:
        pool.close()
        raise
    out = run_sweep(
        args.sweep,
        args.n_trials,
        args.workers,
        storage_or_env(args.storage),
        args.study_name,
        args.overrides,
        args.progress,
        pool=pool,
    )
    print(f"study {out.study_name}: {out.counts.describe()}  (storage {redact(out.storage)})")
    if out.best:
        print(out.best)
    if out.parent_run_id:
        from bpstudy.tracking.store import run_link

        link = run_link(out.tracking_uri, out.experiment_id, out.parent_run_id)
        if link:
            print(f"mlflow parent run {out.parent_run_id}: {link}")
        else:
            print(f"mlflow parent run {out.parent_run_id} in {redact(out.tracking_uri)}")
            where = (
                ""
                if out.tracking_uri.endswith("/mlflow.db")
                else f" --tracking-uri {redact(out.tracking_uri)}"
            )
            print(f"open the dashboard: {command_name()} ui{where}")
    if out.interrupted:
        print("interrupted: run the same command again to resume the study")
        raise SystemExit(130)
