"""argparse for the subcommands, with bpstudy's error contract: a bad option is one line
(`bpstudy: error: ...`, exit 2), not argparse's usage block."""

from __future__ import annotations

import argparse
from typing import NoReturn

from bpstudy.errors import BpstudyError


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)

    def error(message: str) -> NoReturn:
        raise BpstudyError(f"{message}; see '{prog} --help'")

    parser.error = error  # type: ignore[method-assign]
    return parser
