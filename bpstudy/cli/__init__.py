"""The `bpstudy` command: one subcommand per journey.

bpstudy train [hydra overrides]     one run (a Hydra app: --cfg job, --help, -m)
    bpstudy sweep NAME|PATH             an Optuna study (see sweeps/)
    bpstudy rerun RUN_ID                retrain a logged run and compare its metrics
    bpstudy ui [--port P]               the MLflow UI on the store in use
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from bpstudy.cli import completion
from bpstudy.errors import BpstudyError, first_line, redact

USAGE = """usage: bpstudy COMMAND [ARGS]

commands:
  train [overrides]   train one run from the composed config (a Hydra app:
                      --cfg job, --help, -m for multirun)
  sweep NAME|PATH     run or resume an Optuna study over a sweep file, with
                      --workers K processes, pruning and MLflow parent/child runs
  report STUDY        join a study's trials with their MLflow runs: CSV, summary,
                      pictures, logged to the study's parent run
  rerun RUN_ID        retrain a logged run from its config.yaml; say whether
                      its metric history matches, bit for bit
  ui [--port P]       open the MLflow UI on the store in use (127.0.0.1)

Run 'bpstudy COMMAND --help' for a command's options."""


COMMANDS = ("train", "sweep", "report", "rerun", "ui")


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, no traceback, and the exit code; a URL's password hidden, as
    everywhere (a message may quote a URL the user gave)."""
    print(f"bpstudy: error: {redact(message)}", file=sys.stderr)
    raise SystemExit(code)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, SLURM, kill) ends runs as Ctrl-C does


def entry() -> None:
    """The console script: `main`, then a quick exit (see bpstudy.shutdown)."""
    from bpstudy.shutdown import run_and_exit

    run_and_exit(main)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminated)
    # a handler whose stream broke (`bpstudy train --info | head`) drops its records, as
    # the logging docs advise for production, instead of a traceback per record
    logging.raiseExceptions = False
    # MLflow prints two "View run/experiment" lines per run ended on a server, so a sweep's
    # workers printed two per trial; the commands print one link of their own instead
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    if argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    if argv[0] == "--version":
        from bpstudy import __version__

        print(f"bpstudy {__version__}")
        return
    command, rest = argv[0], argv[1:]
    try:
        if command in completion.OPTIONS:  # Hydra's completion script asks here
            completion.main(rest, COMMANDS)
        elif command == "train" and any(a in completion.OPTIONS for a in rest):
            completion.main(rest, ())  # `bpstudy train -sc install=bash`
        elif command == "train":
            from bpstudy.cli.train import main as train_main

            train_main(rest)
        elif command == "sweep":
            from bpstudy.cli.sweep import main as sweep_main

            sweep_main(rest)
        elif command == "report":
            from bpstudy.cli.report import main as report_main

            report_main(rest)
        elif command == "rerun":
            from bpstudy.cli.mlflow_commands import rerun_main

            rerun_main(rest)
        elif command == "ui":
            from bpstudy.cli.mlflow_commands import ui_main

            ui_main(rest)
        else:
            fail(f"unknown command '{command}'; commands: {', '.join(COMMANDS)} (bpstudy --help)")
    except BpstudyError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("bpstudy: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except MemoryError as exc:  # numpy names the allocation: that says what was too big
        fail(f"out of memory: {first_line(exc) or 'an allocation failed'}", 1)
