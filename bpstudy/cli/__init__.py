"""The `bpstudy` command: one subcommand per journey.

bpstudy train [hydra overrides]     one run (a Hydra app: --cfg job, --help, -m)
"""

from __future__ import annotations

import sys

from bpstudy.errors import BpstudyError

USAGE = """usage: bpstudy COMMAND [ARGS]

commands:
  train [overrides]   train one run from the composed config (a Hydra app:
                      --cfg job, --help, -m for multirun)

Run 'bpstudy COMMAND --help' for a command's options."""


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, no traceback, and the exit code."""
    print(f"bpstudy: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        from bpstudy import __version__

        print(f"bpstudy {__version__}")
        return
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            from bpstudy.cli.train import main as train_main

            train_main(rest)
        else:
            fail(f"unknown command '{command}'; commands: train")
    except BpstudyError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("bpstudy: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
