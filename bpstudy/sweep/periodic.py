"""An action repeated beside a block of work, in a daemon thread that is gone again when
the block ends (the trial's heartbeat; the fork server's watch on its command)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def repeated(
    action: Callable[[threading.Event], None], seconds: float, name: str
) -> Iterator[None]:
    """Call `action(stop)` at once and then every `seconds` while the block runs; `stop`
    is set when the block ends (an action that waits may wait on it). The thread is
    joined before the block is left."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            action(stop)
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
