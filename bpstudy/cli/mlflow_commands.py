"""`bpstudy rerun RUN_ID` and `bpstudy ui`: the commands that work on the MLflow store."""

from __future__ import annotations

import argparse
import sys

from bpstudy.cli.args import command_parser
from bpstudy.errors import BpstudyError


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = command_parser(prog, description)
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    return parser


def rerun_main(argv: list[str]) -> None:
    parser = _parser(
        "bpstudy rerun",
        "Retrain a logged run from its own config.yaml into a new run (tagged "
        "bpstudy.rerun_of) and compare every metric history, the full-resolution "
        "statistics and the final weights: prints 'identical' (exit 0) or the first "
        "difference (exit 1).",
    )
    parser.add_argument("run_id", help="the MLflow run id to retrain")
    args = parser.parse_args(argv)
    if not args.run_id.strip():
        raise BpstudyError("rerun: the run id is empty; give a run id from the dashboard")
    from bpstudy.tracking.rerun import rerun
    from bpstudy.training.progress import Progress

    result = rerun(args.run_id, args.tracking_uri, [Progress("lines")])
    print(f"rerun of {args.run_id}: new run {result.run_id}")
    if result.original_status == "FAILED":
        error = f" ({result.original_error.splitlines()[0]})" if result.original_error else ""
        print(f"the original run FAILED{error}")
    if result.interrupted_at is not None:
        how = "was interrupted" if result.original_status == "KILLED" else "failed"
        print(f"the original {how}: compared up to step {result.interrupted_at}")
    if result.data_changed:
        print(
            "note: the data differ from what the original trained on (bpstudy.data_hash): the data file, or the source of the data set, changed"
        )
    if result.difference is None:
        print("identical")
        return
    print(f"differs: {result.difference}")
    raise SystemExit(1)


def ui_main(argv: list[str]) -> None:
    parser = _parser(
        "bpstudy ui",
        "Start the MLflow UI on the store in use, bound to 127.0.0.1 (with --optuna, "
        "optuna-dashboard on the studies' storage beside it); Ctrl-C stops it.",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="default: 5000 if free, else a free port"
    )
    parser.add_argument(
        "--optuna",
        action="store_true",
        help="also start optuna-dashboard on the studies' storage (the dashboard extra)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="with --optuna: the Optuna storage (default: $BPSTUDY_STORAGE, else the "
        "bpstudy.journal beside the MLflow store)",
    )
    parser.add_argument(
        "--optuna-port", type=int, default=None, help="default: 8080 if free, else a free port"
    )
    args = parser.parse_args(argv)
    from bpstudy.tracking.ui import ui

    companions = []
    if args.optuna:
        from bpstudy.cli.args import storage_or_env
        from bpstudy.sweep.dashboard import optuna_dashboard
        from bpstudy.sweep.storage import default_storage_url
        from bpstudy.tracking.store import resolve_uri

        storage = storage_or_env(args.storage)
        storage = storage or default_storage_url(resolve_uri(args.tracking_uri))
        companions.append(optuna_dashboard(storage, args.optuna_port))
    elif args.storage or args.optuna_port:
        raise BpstudyError("--storage and --optuna-port go with --optuna; see 'bpstudy ui --help'")
    sys.exit(ui(args.port, args.tracking_uri, companions))
