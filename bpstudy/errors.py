"""Errors a user can act on.

Each carries one line that names the key or file at fault and what is allowed; the CLI
prints it and exits with code 2, without a traceback (DESIGN §7).
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


class BpstudyError(Exception):
    """Base class: bad input from the user, reported in one line with exit code 2."""

    exit_code = 2


class ConfigError(BpstudyError):
    """A wrong config key, value, type or combination."""


class DataError(BpstudyError):
    """Missing or malformed data."""
