"""argparse for the subcommands, with bpstudy's error contract: a bad option is one line
(`bpstudy: error: ...`, exit 2), not argparse's usage block."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from bpstudy.errors import BpstudyError


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)

    def error(message: str) -> NoReturn:
        raise BpstudyError(f"{message}; see '{prog} --help'")

    parser.error = error  # type: ignore[method-assign]
    return parser


STORAGE_VAR = "BPSTUDY_STORAGE"


def storage_or_env(given: str | None) -> str | None:
    """--storage, else $BPSTUDY_STORAGE (a URL kept off the command line, which every user
    sees in `ps`), else None: the journal beside the MLflow store."""
    return given or os.environ.get(STORAGE_VAR) or None


def command_name() -> str:
    """How to run bpstudy again from here, for the commands we print: `bpstudy` when that
    is on PATH, else the running script's path (`.venv/bin/bpstudy` after `make demo`,
    in a shell where the venv is not activated)."""
    script = Path(sys.argv[0])
    if script.name != "bpstudy":  # python -m bpstudy, or an API call
        return "bpstudy"
    found = shutil.which("bpstudy")
    if found and Path(found).resolve() == script.resolve():
        return "bpstudy"
    try:
        text = str(script.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        text = str(script.resolve())
    if "/" not in text:
        text = f"./{text}"  # a shell looks a bare name up on PATH, not in the folder
    return shlex.quote(text)
