"""Where the shipped config tree and sweep library are.

In a wheel they sit inside the package (bpstudy/conf, bpstudy/sweeps); in a source
checkout or editable install they are the top-level conf/ and sweeps/.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


CONF_DIR = _shipped("conf")
SWEEPS_DIR = _shipped("sweeps")
