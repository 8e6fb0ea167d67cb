"""Sweep workers forked from one warm process.

A worker spends several CPU-seconds importing MLflow, Optuna and Hydra, composing its
first config and drawing its first plots before its first trial can start. Spawned one
interpreter each, K workers paid that K times, all at once, on the same cores as the
supervisor's own set-up. Here one fork server (multiprocessing's) pays it once, while the
supervisor checks the space and sets up the study; each worker is then a fork of that
warm process and starts its first trial at once.

The fork server and its resource tracker carry the workers' environment (BLAS threads
split between the workers) and are stopped with `close()`, so nothing outlives the
command; a command that is killed cannot stop them, and bpstudy.sweep.orphans sees to it
that they and the workers end with it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from multiprocessing import forkserver, resource_tracker

from bpstudy.environment import environ
from bpstudy.errors import BpstudyError
from bpstudy.shutdown import stop_signals_handled

WARM_MODULE = "bpstudy.sweep.warm"  # importing it warms the fork server up


class WorkerStartError(BpstudyError):
    """Not bad input: a broken installation or a full process table. Exit code 1."""

    exit_code = 1


def check_workers(workers: int) -> None:
    """The one check of --workers (bad input: exit code 2)."""
    if workers < 1:
        raise BpstudyError(f"--workers must be >= 1, got {workers}")


def blas_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def worker_env(workers: int) -> dict[str, str]:
    """What the workers' environment changes: BLAS threads split between them."""
    n = str(blas_threads(workers))
    env = dict.fromkeys(
        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"), n
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerPool:
    """Imports nothing heavy itself, so `bpstudy sweep` can start it first of all."""

    def __init__(self, workers: int) -> None:
        check_workers(workers)
        self.env = worker_env(workers)
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([WARM_MODULE])
        try:
            # ignored, not blocked: an ignored signal stays ignored across exec (a blocked
            # one does not), so a Ctrl-C to the whole process group cannot kill the server
            # mid-start, with a traceback, before it ignores them itself (sweep.warm); one
            # arriving in this moment (a fork and an exec) is lost here
            with environ(self.env), stop_signals_handled(signal.SIG_IGN):
                forkserver.ensure_running()  # returns at once: the server warms up meanwhile
        except OSError as exc:
            raise WorkerStartError(f"could not start the sweep workers' server: {exc}") from None
        except BaseException:
            self.close()
            raise

    def start(self, args) -> multiprocessing.Process:
        """A worker running `args` (WorkerArgs); waits for the server to be warm the first
        time."""
        from bpstudy.sweep.worker import run_job

        process = self.context.Process(target=run_job, args=(args,), name="bpstudy-worker")
        try:
            with environ(self.env):  # should the server have to start again
                process.start()
        except (OSError, EOFError) as exc:  # the server died: its traceback is above
            raise WorkerStartError(f"could not start a sweep worker: {exc!r}") from None
        return process

    def close(self) -> None:
        """Stop the fork server and the resource tracker, once the workers are gone.

        On their own they would exit a moment after this process. The server is killed,
        not asked: it holds nothing, and when the set-up fails it may still be importing
        for seconds before it would read the request. multiprocessing has no public way
        to stop either; the calls below are the ones its own tests use."""
        pid = _fork_server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _forget_fork_server()
        _stop_resource_tracker()


def _fork_server_pid() -> int | None:
    # private: multiprocessing names its fork server's pid nowhere public; asked to stop
    # instead of killed, the server goes on with its seconds of warm-up first (close())
    return forkserver._forkserver._forkserver_pid


def _forget_fork_server() -> None:
    # private: no public stop; ForkServer._stop (what multiprocessing's tests call) closes
    # the server's pipe and reaps it, so that a later pool starts a server of its own
    forkserver._forkserver._stop()


def _stop_resource_tracker() -> None:
    # private: no public stop; left alone, the tracker outlives the command by a moment
    resource_tracker._resource_tracker._stop()
