"""How a command ends: its stop signals, and leaving the process once its work is done,
without tearing the interpreter down.

Finalizing the thousands of modules MLflow imports takes about a second after the last
line is printed; every command and every sweep worker would pay it (a sweep's tail pays
it twice, the worker's and the supervisor's). Everything a normal exit does that matters
still happens, in the same order: thread pools are told to stop and non-daemon threads
are joined (threading's own shutdown, as the interpreter calls it), atexit handlers run
(logging, MLflow, temporary directories), the standard streams are flushed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time


def exit_code(code: object) -> int:
    """What `sys.exit(code)` would make the exit status (a message prints, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def quick_exit(code: object = 0) -> None:
    status = exit_code(code)
    _join_threads()
    # private: the atexit handlers without the interpreter's teardown, which costs about
    # a second after MLflow's imports (module docstring); atexit has no public runner
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or its reader went away
            stream.flush()
    os._exit(status)


def _join_threads() -> None:
    """What the interpreter does first on exit. Joining the threads by hand is not
    enough: an idle concurrent.futures worker (MLflow's artifact downloads leave some)
    only ends once threading's exit hooks have told its pool to shut down."""
    # private: threading's own exit hook, as the interpreter calls it (docstring above)
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()
        return
    for thread in threading.enumerate():  # no such hook: best effort
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def run_and_exit(main) -> None:
    """Call `main()`; exit as it asked (SystemExit) or with 0, quickly. An uncaught
    exception keeps Python's own traceback and exit."""
    try:
        main()
    except SystemExit as exc:
        quick_exit(exc.code)
    except BrokenPipeError:  # `bpstudy train --help | head`: the reader went away
        stdout_to_devnull()
        quick_exit(SIGPIPE_EXIT)
    quick_exit(0)


SIGPIPE_EXIT = 128 + 13  # what a shell reports for a command its pipe's reader outlived


def stdout_to_devnull() -> None:
    """After a BrokenPipeError: later writes (and the final flush) go nowhere, quietly."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_handled(handler, signals: tuple[int, ...] = STOP_SIGNALS):
    """Ctrl-C and SIGTERM (or `signals`) go to `handler` (a function, or signal.SIG_IGN)
    inside the block, and back to what they were after it. Only the main thread receives
    signals and may set handlers; elsewhere (an API call from a thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


HOLD_SECONDS = 5.0  # past this, a further Ctrl-C goes through (a store that hangs)


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM for the block; one that arrived is then handed to the
    handler that was in place (in the main thread; elsewhere signals cannot arrive).
    After HOLD_SECONDS, one goes through at once, so a hung store can still be left."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    arrived: list[int] = []
    start = time.monotonic()

    def hold(signum, frame) -> None:
        arrived.append(signum)
        if time.monotonic() - start > HOLD_SECONDS and callable(previous[signum]):
            previous[signum](signum, frame)

    try:
        with stop_signals_handled(hold):
            yield
    finally:
        if arrived and callable(previous[arrived[0]]):
            previous[arrived[0]](arrived[0], None)
