"""The locks under which a command's workers count a study's trials and ask for one, so
that together they never start more than n_trials: a file lock on this host, and on
PostgreSQL a session-level advisory lock per study for workers on other hosts."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from bpstudy.sweep.storage import is_rdb, stored


def lock_path(storage_url: str, study_name: str) -> str:
    """The workers' lock file: beside a journal, else one per study name in the temp dir."""
    if not is_rdb(storage_url):
        return storage_url.removeprefix("journal:") + ".workers-lock"
    safe = "".join(ch if ch.isalnum() else "_" for ch in study_name)
    return str(Path(tempfile.gettempdir()) / f"bpstudy-{safe}.lock")


@contextmanager
def file_lock(path: str):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def _lock_engine(storage_url: str):
    """Our own engine for the advisory lock, not the one inside Optuna's storage: the lock
    is ours, and so is its connection. It is not pooled: a worker holds it only while it
    starts a trial, and a kept one was a third of a sweep's PostgreSQL connections
    (benchmarks/many_workers.py: 32 workers held 108 of them, 3.4 each)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(storage_url, poolclass=NullPool)


def _is_postgresql(storage_url: str) -> bool:
    if not is_rdb(storage_url):
        return False
    from sqlalchemy.engine import make_url

    return make_url(storage_url).get_backend_name() == "postgresql"


@contextmanager
def study_lock(storage_url: str, study_name: str):
    """PostgreSQL: a session-level advisory lock per study, held while a worker counts the
    trials and asks for one, so that workers on different hosts (which share no lock
    file) never start more than n_trials between them. Other storages: no-op."""
    if not _is_postgresql(storage_url):
        yield
        return
    from sqlalchemy import text

    # one bigint key (tracking/store.py's SCHEMA_LOCK uses the two-int4 form: apart)
    key = zlib.crc32(f"bpstudy:{study_name}".encode())  # fits a signed bigint
    engine = _lock_engine(storage_url)
    # the database may be restarting: wait for it as the storage calls do (and, as they
    # do, note the outage: an idle worker waits here through it, and must not then judge
    # the others' heartbeats at once; see worker.fail_stale)
    conn = stored(engine.connect)
    try:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        yield
    finally:
        with contextlib.suppress(Exception):  # a lost connection has released it anyway
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        with contextlib.suppress(Exception):
            conn.close()
