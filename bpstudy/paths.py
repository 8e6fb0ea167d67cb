"""Where the shipped config tree and sweep library are.

In a wheel they sit inside the package (bpstudy/conf, bpstudy/sweeps); in a source
checkout or editable install they are the top-level conf/ and sweeps/.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


CONF_DIR = _shipped("conf")
SWEEPS_DIR = _shipped("sweeps")


def starts_with(path: Path, *heads: bytes) -> bool:
    """The file begins with one of `heads` (b"" matches an empty file); False if it
    cannot be read. How a store or journal given by path is told from any other file."""
    try:
        with path.open("rb") as f:
            start = f.read(max(map(len, heads)))
    except OSError:
        return False
    return any(start.startswith(h) if h else not start for h in heads)


def not_a_folder(path: str | Path) -> str:
    """Why `path` is no folder, for a message."""
    return "a file, not a folder" if os.path.exists(path) else "no such folder"
