"""Nothing outlives its `bpstudy sweep` command, however the command ends (SIGKILL too).

The chain: the command starts multiprocessing's resource tracker and the workers' fork
server (bpstudy.sweep.pool); the fork server forks the workers. A command that ends
normally, or on Ctrl-C, stops them all itself; a killed one cannot. Before this module,
each worker of a SIGKILLed command ran on with its trial and the next ones, and kept the
fork server alive (it exits once no one holds the pipe it watches: the command and every
worker hold it) and so the resource tracker (the same, without the server).

So a worker watches its command: `multiprocessing.parent_process().sentinel`, the read
end of a pipe whose only write end the command holds, reads end-of-file the moment the
command's process is gone, whatever killed it, and the worker exits at once, as if
killed with it. Its trial is left RUNNING, as a SIGKILLed worker's is: the next command
on this host fails it and queues its values again (supervisor.recover_orphans), and so
does a live command elsewhere once the trial's heartbeat goes stale (PostgreSQL). A
clean stop instead would write to the stores from a process no one watches any more,
for as long as they take (a store that hangs is one reason a command gets killed).

The fork server follows: at once if the command dies during its warm-up (it looks at its
parent's pid meanwhile: no pipe from the command reaches the warm-up; it went on for 8.5 s
before), else once the last worker is gone, skipping the 2.4 s of interpreter teardown.
The resource tracker exits on its own once the command and the workers are gone. Measured
here: all of them gone 0.1 s after the SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import sys
import threading
from multiprocessing.connection import wait

from bpstudy.sweep.periodic import repeated

ORPHANED_EXIT = 128 + 9  # as if SIGKILLed with the command (no one is left to read it)
POLL_SECONDS = 0.1  # the fork server's look at its parent, during its warm-up


def exit_with_command() -> None:
    """In a worker: end this process as soon as the process that started it ends."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child: nothing to watch
        return
    threading.Thread(
        target=_exit_on_ready, args=(parent.sentinel,), name="bpstudy-command-watch", daemon=True
    ).start()


def _exit_on_ready(sentinel: int) -> None:
    wait([sentinel])  # nothing more is written on it: ready means end-of-file
    os._exit(ORPHANED_EXIT)


@contextlib.contextmanager
def exit_if_parent_ends():
    """In the fork server, around its warm-up: end this process at once if its parent
    (the command) ends meanwhile. The watching thread is gone again after the block: the
    server must fork its workers with one thread."""
    parent = os.getppid()

    def watch(stop: threading.Event) -> None:
        if os.getppid() != parent:  # re-parented: the command is gone
            os._exit(ORPHANED_EXIT)

    with repeated(watch, POLL_SECONDS, "bpstudy-parent-watch"):
        yield


def exit_without_teardown() -> None:
    """In the fork server: its loop ends once no one holds the pipe it watches (the
    command and every worker are gone); it then exits at once, without the interpreter's
    teardown of its warm imports (2.4 s measured). Registered last, this runs first."""
    atexit.register(_exit_now, os.getpid())


def _exit_now(server: int) -> None:
    if os.getpid() != server:  # a worker forked from the server: its own exit, its code
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or its reader went away
            stream.flush()
    os._exit(0)
