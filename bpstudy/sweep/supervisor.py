"""The local supervisor: starts a command's workers (forks of the warm pool), watches
them, and looks after those that die. A worker that dies mid-trial (SIGKILL, OOM) has its
trial failed and queued again and a replacement started; Ctrl-C and SIGTERM stop the
workers gently (their runs end KILLED). Commands that join a journal study at one count
are ranked (`join_rank`), so their seeded samplers start apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import socket
import time
import zlib
from multiprocessing import Process
from multiprocessing.connection import wait

from optuna.trial import TrialState

from bpstudy.errors import BpstudyError, redact
from bpstudy.sweep.counts import count_trials
from bpstudy.sweep.failures import fail_and_retry
from bpstudy.sweep.locks import file_lock
from bpstudy.sweep.pool import WorkerPool
from bpstudy.sweep.progress import Progress
from bpstudy.sweep.spec import SweepSpec
from bpstudy.sweep.storage import is_rdb, stored
from bpstudy.sweep.study import settings_clash
from bpstudy.sweep.worker import (
    FAILING_EXIT,
    FAILS_IN_A_ROW,
    SAMPLER_FAILED_EXIT,
    SETTINGS_CHANGED_EXIT,
    WorkerArgs,
)

POLL_SECONDS = 0.5
MAX_WORKER_DEATHS = 5  # a worker that keeps dying (a broken install, OOM) ends the sweep
REPEAT_SECONDS = 0.5  # a second Ctrl-C this soon after the first is the same one


class SweepAbortedError(BpstudyError):
    """Workers keep dying: not bad input, so exit code 1."""

    exit_code = 1


class SettingsClashError(BpstudyError):
    """Another command set the new study up with other settings just after this one: a
    refusal like check_settings', found by a worker (exit code 2). The parent run is the
    other command's to end."""


def _pid_alive(pid: int) -> bool:
    """Whether pid still runs. Needed beside a worker's `exitcode` too: that comes through
    the fork server, and reads 255 if the server dies while the worker lives."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_orphans(study, storage_url: str, tracking_uri: str | None,
                    pids: set[int] | None = None) -> int:  # fmt: skip
    """Fail and retry RUNNING trials of workers on this host that are gone."""
    host = socket.gethostname()
    recovered = 0
    for t in stored(lambda: study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
        worker = str(t.user_attrs.get("worker", ""))
        whost, _, pid = worker.rpartition(":")
        if whost != host or not pid.isdigit():
            continue
        pid_n = int(pid)
        if (pids is not None and pid_n in pids) or (pids is None and not _pid_alive(pid_n)):
            try:
                reason = f"worker {worker} died during the trial"
                fail_and_retry(study, storage_url, t, tracking_uri, reason)
                recovered += 1
            except Exception:  # noqa: BLE001 - finished meanwhile: nothing to recover
                pass
    return recovered


def seed_base(n_trials: int, storage_url: str, host: str, pid: int, rank: int = 0) -> int:
    """Where this command's workers start their sampler seeds. A seeded sampler replays
    its draws, so on resume they start past the trials the study holds. Commands that
    start at the same moment see the same count: on a journal, `rank` (see `join_rank`)
    sets them apart; on a database storage, host and process do (so a study there is not
    reproducible from its seed; one on a journal is, run by one command at a time with
    one worker)."""
    base = 1009 * n_trials + 104729 * rank
    if is_rdb(storage_url):
        base += zlib.crc32(f"{host}:{pid}".encode())
    return base


def join_rank(study, lock: str, storage_url: str, n_trials: int, host: str, pid: int) -> int:
    """How many commands that still run joined this journal study while it held n_trials
    trials: recorded in the study (a system attribute per count) under the workers' file
    lock, so two commands started together get 0 and 1. Commands that have ended no
    longer count, so a study resumed by one command at a time keeps its seeds."""
    if is_rdb(storage_url):
        return 0
    key = f"bpstudy.joined_at.{n_trials}"  # a user attribute, Optuna's public per-study store
    with file_lock(lock):
        joined = stored(lambda: study.user_attrs).get(key, [])
        live = [w for w in joined if _still_runs(w, host)]
        stored(lambda: study.set_user_attr(key, [*live, f"{host}:{pid}"]))
    return len(live)


def _still_runs(worker: str, host: str) -> bool:
    """A `host:pid` entry of this host whose process is gone has ended (another host's,
    on a journal they share, is taken as running)."""
    name, _, pid = worker.rpartition(":")
    return name != host or (pid.isdigit() and _pid_alive(int(pid)))


class Supervisor:
    """Starts the workers and watches them: a worker that dies mid-study has its trial
    failed and queued again and a replacement started (up to MAX_WORKER_DEATHS)."""

    def __init__(self, pool: WorkerPool, study, spec: SweepSpec, args: WorkerArgs, procs) -> None:
        self.pool, self.study, self.spec, self.args = pool, study, spec, args
        self.procs: dict[int, Process] = procs  # shared with Signals
        self.next_index, self.deaths = 0, 0

    def start(self, workers: int) -> None:
        a = self.args
        recover_orphans(self.study, a.storage, a.tracking_uri)  # this host's dead workers' trials
        n = len(stored(lambda: self.study.get_trials(deepcopy=False)))
        host, pid = socket.gethostname(), os.getpid()
        rank = join_rank(self.study, a.lock, a.storage, n, host, pid)
        base = seed_base(n, a.storage, host, pid, rank)
        self.args = dataclasses.replace(self.args, seed_offset=base)
        for _ in range(workers):
            self._start_one()

    def _start_one(self) -> None:
        index, self.next_index = self.next_index, self.next_index + 1
        self.procs[index] = self.pool.start(
            dataclasses.replace(self.args, seed_offset=self.args.seed_offset + index)
        )

    def watch(self, bar: Progress) -> None:
        """Until every worker has ended (each ends once the study holds n_trials)."""
        while self.procs:
            wait([p.sentinel for p in self.procs.values()], timeout=POLL_SECONDS)
            for index, proc in list(self.procs.items()):
                if proc.exitcode is not None:
                    self._ended(index, proc)
            bar.update(self.study)

    def _ended(self, index: int, proc: Process) -> None:
        code, name = proc.exitcode, self.spec.study_name
        if _pid_alive(proc.pid):  # its fork server died (SIGKILL, OOM): reads 255
            raise SweepAbortedError(
                f"sweep '{name}': the workers' fork server died; stopped. The study is resumable"
            )
        del self.procs[index]
        if code == 0:
            return
        if code == SAMPLER_FAILED_EXIT:
            raise SweepAbortedError(
                f"sweep '{name}': {_last_error(self.study, 'sampler ')}; stopped (the trial is FAIL). "
                f"The study is resumable once {self.spec.path.name}'s sampler is fixed"
            )
        if code == SETTINGS_CHANGED_EXIT:
            change = stored(lambda: settings_clash(self.study, self.args.settings))
            raise SettingsClashError(
                f"sweep '{name}': another command set the study up meanwhile with "
                f"{redact(change or 'other settings')}; stopped before this command ran a "
                "trial (its trials would not be comparable)"
            )
        if code == FAILING_EXIT:
            raise SweepAbortedError(
                f"sweep '{name}': {FAILS_IN_A_ROW} trials in a row failed ({_last_error(self.study)}); "
                "stopped. The study is resumable once the cause is fixed"
            )
        self.deaths += 1  # died mid-study: recover its trial, start a replacement
        recover_orphans(self.study, self.args.storage, self.args.tracking_uri, pids={proc.pid})
        if self.deaths > MAX_WORKER_DEATHS:
            raise SweepAbortedError(
                f"sweep '{name}': workers died {self.deaths} times (last exit code {code}); "
                "stopped. The study is resumable once the cause is fixed"
            )
        if count_trials(self.study).finished < self.spec.n_trials:
            self._start_one()


def _last_error(study, starting: str = "") -> str:
    """The error of the last FAIL trial (of those whose error starts with `starting`)."""
    failed = stored(lambda: study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    errors = [str(t.user_attrs.get("error", "no error recorded")) for t in failed]
    errors = [e for e in errors if e.startswith(starting)]
    return errors[-1] if errors else "?"


def _running(p: Process) -> bool:
    return p.exitcode is None or _pid_alive(p.pid)  # see _pid_alive: 255 may be a live one


def stop_workers(procs) -> None:
    """Ctrl-C: the workers usually got SIGINT from the terminal too; make sure, then wait
    for them to end their runs and queue their trials again (a minute at most)."""
    procs = list(procs)
    live = [p for p in procs if _running(p)]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    for p in live:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
        while _pid_alive(p.pid) and time.monotonic() < deadline:  # no sentinel left to wait on
            time.sleep(0.1)
        if _running(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.join(timeout=5)


class Signals:
    """The supervisor's Ctrl-C and SIGTERM: the first raises KeyboardInterrupt, which
    stops the workers gently (their runs end KILLED, their trials are queued again); any
    later one (half a second or more after it), or any during the clean-up after an
    error, SIGKILLs the workers instead of cutting that clean-up short, so the parent run
    still ends and nothing is left running (trials of killed workers are failed and
    queued again on resume)."""

    def __init__(self, procs: dict[int, Process]) -> None:
        self.procs, self.stopping, self.since = procs, False, -math.inf

    def __call__(self, signum, frame) -> None:
        if not self.stopping:
            self.stopping = True  # before raising: no window for a second signal
            self.since = time.monotonic()
            raise KeyboardInterrupt
        if time.monotonic() - self.since < REPEAT_SECONDS:
            return  # the same stop twice: `timeout` signals the command, then its group
        for p in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                if _running(p):
                    os.kill(p.pid, signal.SIGKILL)

    def absorb_repeats(self) -> None:
        """A stop done quickly: stay in charge until a repeat of its signal would no longer
        be the same stop, so that it does not reach the default handler once this one is
        gone (and end the command with a bare 'interrupted')."""
        time.sleep(max(0.0, self.since + REPEAT_SECONDS - time.monotonic()))
