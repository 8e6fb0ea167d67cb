"""`bpstudy report STUDY [--storage URL] [--out DIR] [--tracking-uri URI] [--where P=V]
[--group P]`"""

from __future__ import annotations

import argparse

from bpstudy.cli.args import STORAGE_VAR, command_parser, storage_or_env


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "bpstudy report",
        "Join a study's Optuna trials with their MLflow runs: write trials.csv, "
        "summary.md and pictures (gradient-flow profile, final val/loss heatmap, Optuna's "
        "importances and history) to a folder, and log them to the study's parent MLflow "
        "run under report/.",
    )
    p.add_argument("study", help="the study name (a sweep file's study_name)")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage of the study: journal:PATH or postgresql://... "
        f"(default: ${STORAGE_VAR}, else bpstudy.journal beside the MLflow store)",
    )
    p.add_argument(
        "--out", default=None, help="folder for the report (default: reports/STUDY/ here)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else the mlflow.db beside a "
        "--storage journal, else sqlite:///mlflow.db here)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="only the trials whose sampled PARAM is VALUE, e.g. --where model.depth=40 "
        "(repeat to narrow further); written to reports/STUDY/PARAM=VALUE/ and logged "
        "under report/PARAM=VALUE/",
    )
    p.add_argument(
        "--group",
        default=None,
        metavar="PARAM",
        help="one gradient-flow line per value of this sampled parameter (default: the "
        "activation when sampled, else the most important categorical)",
    )
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    from bpstudy.report import make_report
    from bpstudy.report.selection import Selection, parse_where

    selection = Selection(parse_where(args.where), args.group)
    storage = storage_or_env(args.storage)
    report = make_report(args.study, storage, args.out, args.tracking_uri, selection=selection)
    print(
        f"report for study {report.study_name} ({report.n_trials} trials: "
        f"{report.counts.describe()}) written to {report.out_dir}"
    )
    print("  " + ", ".join(p.name for p in report.files))
    if report.parent_run_id:
        print(
            f"logged to mlflow parent run {report.parent_run_id} "
            f"(artifacts {report.artifact_dir}/) "
            f"in {report.tracking_uri}"
        )
    else:
        print("not logged to MLflow: the study has no parent run")
