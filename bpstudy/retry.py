"""Calling again what failed for a passing reason: one loop with doubling waits.

A database that restarts, a tracking server that is not up yet, another command that
holds a lock or is creating the same tables: each is waited out here, up to a deadline,
and every other failure goes through at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    call: Callable[[], T],
    *,
    seconds: float,
    retryable: Callable[[BaseException], bool],
    first_delay: float = 0.5,
    max_delay: float = 8.0,
    on_retry: Callable[[BaseException, int], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`call()`, called again after 'first_delay', then doubling waits up to `max_delay`,
    while it raises an exception that `retryable` accepts and `seconds` have not passed.

    `on_retry(exc, attempt)` runs before each wait (attempt 1 is the first failure): where
    a warning is printed, or a dead connection pool dropped. The last exception, or any
    that is not retryable, is raised as it is. `sleep(seconds)` waits; one that returns
    True (a threading.Event's `wait` once the event is set) ends the retries there, with
    the last exception.
    """
    deadline = time.monotonic() + seconds
    delay, attempt = first_delay, 0
    while True:
        try:
            return call()
        except Exception as exc:
            attempt += 1
            if not retryable(exc) or time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            if sleep(delay) is True:
                raise
            delay = min(delay * 2, max_delay)
