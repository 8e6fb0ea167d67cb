"""Errors a user can act on.

Each carries one line that names the key or file at fault and what is allowed; the CLI
prints it and exits with code 2, without a traceback (docs/architecture.md §7).
"""

from __future__ import annotations

import re


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def os_reason(exc: OSError) -> str:
    """Why a file could not be opened, for a message: "permission denied" when its mode
    forbids it (the user's to fix with chmod), else the system's own words."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or first_line(exc)


_PASSWORD = re.compile(r"(//[^/:@\s]+):[^@/\s]+@")  # //user:password@


def redact(text: str) -> str:
    """Hide the password of any user:password@ in a URL or message."""
    return _PASSWORD.sub(r"\1:***@", text)


def without_password(url: str) -> str:
    """`url` with its password left out (user:password@ or user:***@ -> user@): one store
    however its password is given (in the URL, or by PGPASSWORD or ~/.pgpass)."""
    return _PASSWORD.sub(r"\1@", url)


def shown(value) -> str:
    """A config or sweep-file value as YAML writes it (null, true, 0.5), not as Python
    prints it (None, True, np.float64(0.5)): what the user wrote, in a message."""
    import yaml

    if hasattr(value, "item") and not hasattr(value, "__len__"):  # a numpy scalar
        value = value.item()
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    except yaml.YAMLError:
        return str(value)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def malformed_yaml(exc, path=None) -> str:
    """'FILE: line N malformed YAML (problem)' for a yaml.YAMLError; the file is the one
    the parser names when `path` is not given (a preset Hydra read)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    name = path if path is not None else getattr(mark, "name", None) or "a config file"
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"{name}:{where} malformed YAML ({problem})"


class BpstudyError(Exception):
    """Base class: bad input from the user, reported in one line with exit code 2."""

    exit_code = 2


class ConfigError(BpstudyError):
    """A wrong config key, value, type or combination."""


class DataError(BpstudyError):
    """Missing or malformed data."""
