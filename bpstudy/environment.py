"""Setting environment variables for a moment."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def environ(changes: dict[str, str]) -> Iterator[None]:
    """os.environ with `changes` set inside the block, and what was there before put back
    after it (a variable that was not set is removed again)."""
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
