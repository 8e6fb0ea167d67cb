"""Where a study lives.

Default: Optuna's JournalStorage in a file beside the MLflow store (`bpstudy.journal`).
Several local workers append to it under a file lock; measured here, a report + prune
check costs about 0.5 ms on it against about 6 ms on SQLite, which Optuna also discourages
for parallel writers. A `postgresql://` (or other SQLAlchemy) URL gives an RDB storage with
heartbeats, so workers on many machines share one study and a dead worker's trial is
failed and retried.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bpstudy.errors import BpstudyError, first_line, os_reason, redact
from bpstudy.paths import starts_with
from bpstudy.retry import retry

T = TypeVar("T")

JOURNAL = "bpstudy.journal"
LOCK_GRACE_SECONDS = 5


BAD_ENV: dict[str, str] = {}  # tuning variables set to what is no number of seconds


def _env_seconds(name: str, default: float) -> float:
    """$name as seconds > 0, else `default`; a value that is set but no such number is
    kept in BAD_ENV, for check_environment to refuse (not at import: no traceback)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        BAD_ENV[name] = raw
        return default
    return value


# RDB storages: a worker records a heartbeat every HEARTBEAT_SECONDS; a RUNNING trial whose
# heartbeat is older than GRACE_SECONDS is failed and retried. A storage call that loses its
# database connection (a PostgreSQL restart, a network blip) is retried for up to
# RETRY_SECONDS before it fails.
HEARTBEAT_SECONDS = math.ceil(_env_seconds("BPSTUDY_HEARTBEAT_SECONDS", 10))  # whole seconds
GRACE_SECONDS = math.ceil(_env_seconds("BPSTUDY_HEARTBEAT_GRACE_SECONDS", 30))
RETRY_SECONDS = _env_seconds("BPSTUDY_STORAGE_RETRY_SECONDS", 120)


class StorageError(BpstudyError):
    """The study storage cannot be opened."""


def default_storage_url(tracking_uri: str) -> str:
    """journal:<folder of the SQLite MLflow store, else the working directory>/bpstudy.journal"""
    folder = Path.cwd()
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
    return f"journal:{folder / JOURNAL}"


def is_rdb(url: str) -> bool:
    return "://" in url and not url.startswith("journal:")


def check_environment() -> None:
    """The storage's tuning variables (docs/reference.md): a value that is no number of
    seconds > 0 is refused, naming the variable, rather than quietly replaced."""
    if BAD_ENV:
        name, raw = next(iter(BAD_ENV.items()))
        raise StorageError(f"{name}={raw!r}: give a number of seconds > 0, or unset it")


def check_url(url: str) -> None:
    """What can be told of `url` without touching it: a scheme, and for a journal an
    existing folder; first, the storage's tuning variables (check_environment)."""
    check_environment()
    if not is_rdb(url) and not url.startswith("journal:"):
        raise StorageError(
            f"--storage {url}: give journal:PATH (did you mean journal:{url}?) or a database "
            "URL such as postgresql://USER:PASSWORD@HOST/DB"
        )
    if is_rdb(url):
        _check_dialect(url)
    else:
        path = journal_path(url)
        if not url.removeprefix("journal:") or path.is_dir():
            raise StorageError(
                f"--storage {url}: give a journal file, e.g. journal:{path / 'bpstudy.journal'}"
            )
        if not path.parent.is_dir():
            raise StorageError(f"--storage {url}: folder {path.parent} does not exist")
        if path.is_file() and not os.access(path, os.R_OK | os.W_OK):  # read and appended to
            raise StorageError(f"--storage {url}: {path}: cannot read (permission denied)")
        if path.is_file() and not starts_with(path, b"", b"{"):  # empty, or JSON lines
            raise StorageError(f"--storage {url}: {path} is not an Optuna journal file")


def holds_studies(url: str) -> bool:
    """The RDB at `url` has Optuna's tables, so opening it creates none: the commands that
    only read a study ask this first (RDBStorage makes the schema of an empty database)."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    check_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return False  # connecting would create the file
    engine = create_engine(parsed)
    try:
        tables = inspect(engine)
        return tables.has_table("studies") and tables.has_table("version_info")
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors of many kinds
        raise StorageError(
            f"--storage {redact(url)}: cannot open the study storage ({redact(first_line(exc))})"
        ) from None
    finally:
        engine.dispose()


def _check_dialect(url: str) -> None:
    """A database URL whose scheme SQLAlchemy can use (redis:// said "Can't load plugin")."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = url.split("://", 1)[0]
    try:
        make_url(url).get_dialect().import_dbapi()  # the driver too (mysql:// without one)
    except ValueError as exc:  # e.g. a port that is not a number
        raise StorageError(
            f"--storage {redact(url)}: not a valid URL ({redact(str(exc))})"
        ) from None
    except (ArgumentError, NoSuchModuleError):
        raise StorageError(
            f"--storage {redact(url)}: {scheme}:// is not a database SQLAlchemy knows; give "
            "journal:PATH or a database URL such as postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    except ImportError as exc:
        raise StorageError(
            f"--storage {redact(url)}: the {scheme} driver is not installed "
            f"(no module {exc.name}); pip install it, or use postgresql://"
        ) from None


def trial_id(storage, study_name: str, number: int) -> int:
    """The storage's id of trial `number` of study `study_name` (BaseStorage's public API)."""
    study_id = stored(lambda: storage.get_study_id_from_name(study_name))
    return stored(lambda: storage.get_trial_id_from_study_id_trial_number(study_id, number))


PARENT_ATTR = "mlflow_parent_run_id"  # study user attrs: its MLflow parent run,
STORE_ATTR = "mlflow_tracking_uri"  # and the store that holds it (redacted)
SETTINGS_ATTR = "bpstudy.settings"  # the fixed config and the space it was created with


def journal_path(url: str) -> Path:
    """The file of a journal:PATH storage URL."""
    return Path(url.removeprefix("journal:")).expanduser()


def open_storage(url: str, on_failed_trial=None):
    """An Optuna storage for `url` (journal:PATH or an RDB URL). With an RDB, a trial whose
    heartbeat stopped is failed, retried, and passed to `on_failed_trial(study, trial)`."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_url(url)
    if not is_rdb(url):
        path = journal_path(url)
        try:
            # a short grace period: a worker SIGKILLed while holding the lock stalls the
            # others only this long
            lock = JournalFileOpenLock(str(path), grace_period=LOCK_GRACE_SECONDS)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        except OSError as exc:
            raise StorageError(f"--storage {url}: {os_reason(exc)}") from None
    quiet_fallback_warning()

    def opened():
        return retry(lambda: _rdb_storage(url, on_failed_trial), seconds=SCHEMA_SECONDS,
                     retryable=schema_race, first_delay=0.1, max_delay=1.0)  # fmt: skip

    try:
        storage = retry(opened, seconds=RETRY_SECONDS, retryable=server_full,
                        max_delay=min(8.0, HEARTBEAT_SECONDS), on_retry=OUTAGE.failed)  # fmt: skip
        OUTAGE.answered()
        return storage
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors of many kinds
        raise StorageError(
            f"--storage {redact(url)}: cannot open the study storage ({redact(first_line(exc)[:300])})"
        ) from None


def _rdb_storage(url: str, on_failed_trial):
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    # Optuna >= 4.9 renamed the heartbeat callback; the old names warn on stderr
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    callback_arg = "heartbeat_stale_trial_callback"
    if retry_cls is None or callback_arg not in inspect.signature(RDBStorage).parameters:
        retry_cls, callback_arg = RetryFailedTrialCallback, "failed_trial_callback"
    with warnings.catch_warnings():  # heartbeats are "experimental": not the user's concern
        warnings.simplefilter("ignore")
        return RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            **{callback_arg: _retry_then(retry_cls(max_retry=3), on_failed_trial)},
        )


# Commands that open a new database at the same moment (a SLURM array's tasks) each create
# Optuna's tables; all but one then failed with "duplicate key value violates unique
# constraint pg_type_typname_nsp_index" or 'relation "studies" already exists'. Opened
# again (for up to SCHEMA_SECONDS), the tables are found and left alone.
SCHEMA_SECONDS = 3.0


def schema_race(exc: BaseException) -> bool:
    """`exc` is another command creating the same tables (or stamping their version)."""
    from sqlalchemy import exc as sa_exc

    made = (sa_exc.ProgrammingError, sa_exc.OperationalError)  # PostgreSQL; SQLite, MySQL
    return any(
        isinstance(e, sa_exc.IntegrityError) or (isinstance(e, made) and "already exists" in str(e))
        for e in causes(exc)
    )


# 32 workers in 4 commands on a PostgreSQL at its default max_connections (100) took every
# slot (benchmarks/many_workers.py: about 3.4 connections per worker); the workers that
# started next failed at once with "FATAL: sorry, too many clients already", six such
# deaths stopped their command, and it exited 1. A full server is waited out like an
# outage, for up to RETRY_SECONDS, as slots free up when trials end.
TOO_MANY_CONNECTIONS = "53300"  # PostgreSQL's SQLSTATE too_many_connections


def server_full(exc: BaseException) -> bool:
    """`exc` is the database refusing a connection because all its slots are taken."""
    return any(
        getattr(e, "sqlstate", None) == TOO_MANY_CONNECTIONS
        or "too many clients" in str(e)
        or "remaining connection slots are reserved" in str(e)
        for e in causes(exc)
    )


def causes(exc: BaseException):
    """`exc` and the exceptions behind it (Optuna wraps SQLAlchemy's errors in its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retry_then(retry, then):
    def callback(study, trial) -> None:
        retry(study, trial)
        if then is not None:
            then(study, trial)

    return callback


# ---------------------------------------------------------------- surviving a DB restart

# pool_pre_ping replaces connections that died while idle in the pool; `stored` retries
# the calls made while the database is down or that lose their connection half-way. Each
# of bpstudy's calls into a study, trial or storage goes through it. Measured with
# benchmarks/storage_calls.py (a trial's ask, 20 report + should_prune, tell; median ms,
# 2 shared cores): the retrying RDBStorage subclass used before (which had to wrap five
# private methods) 64.3, these call-site retries 62.0 (0.96 x), GrpcStorageProxy 66.5
# (1.03 x; 0.56 to 0.88 x in noisier runs). The proxy was not taken: it keeps no
# heartbeats (a dead worker's trial stays RUNNING), needs a server process per study,
# and fails a call with StatusCode.UNKNOWN when PostgreSQL stops for 3 s, where both
# others get through.


def connection_error(exc: BaseException) -> BaseException | None:
    """The lost or refused database connection behind `exc`, if that is what it is
    (Optuna wraps SQLAlchemy's errors in its own)."""
    from sqlalchemy import exc as sa_exc

    for e in causes(exc):
        if isinstance(e, sa_exc.OperationalError | sa_exc.InterfaceError):
            return e
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return e
    return None


def is_connection_error(exc: BaseException) -> bool:
    return connection_error(exc) is not None


@dataclass
class Outage:
    """This process's view of the storage: whether it is cut off, whether that was said,
    and since when it has answered again. One warning per outage: the command's
    supervisor polls the storage every half second, so it says it and its workers keep
    quiet (`warns=False`); each used to print its own."""

    warns: bool = True
    down: bool = False
    warned: bool = False
    back_since: float = -math.inf  # monotonic; never cut off: answering for ever
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, exc: BaseException, attempt: int) -> None:
        with self.lock:
            self.down = True
            if self.warned or not self.warns:
                return
            self.warned = True
        cause = connection_error(exc) or exc
        print(
            f"warning: study storage unreachable ({redact(first_line(getattr(cause, 'orig', None) or cause)[:200])}); "
            f"retrying for up to {RETRY_SECONDS:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def answered(self) -> None:
        if self.down:
            with self.lock:
                self.down, self.warned, self.back_since = False, False, time.monotonic()

    def answering_for(self) -> float:
        """Seconds the storage has answered every call since this process was last cut
        off from it (0 while it is)."""
        return 0.0 if self.down else time.monotonic() - self.back_since


OUTAGE = Outage()


def stored(call: Callable[[], T], *, sleep: Callable[[float], object] = time.sleep) -> T:
    """`call()`, a call into a study, trial or storage, retried while the database is
    unreachable (up to RETRY_SECONDS), warning once per outage (see Outage). The tries
    are at most a heartbeat interval apart, so a live trial's beats resume within one
    interval of the database's return (see worker.fail_stale)."""
    result = retry(call, seconds=RETRY_SECONDS, retryable=is_connection_error,
                   max_delay=min(8.0, HEARTBEAT_SECONDS), on_retry=OUTAGE.failed,
                   sleep=sleep)  # fmt: skip
    OUTAGE.answered()
    return result


class _OutageFallbackFilter(logging.Filter):
    """Drops Optuna's "Caught an error from sqlalchemy: ... Falling back to a slower
    alternative." warning when the error is a lost connection: measured, a PostgreSQL
    stop printed it as an 8-line block (the driver's message, the SQL, a link) beside
    bpstudy's own warning, and its fallback (meant for SQLite's limit on IN variables)
    fails the same way and is retried by `stored`."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Caught an error from sqlalchemy") and "connect" in text)


def quiet_fallback_warning() -> None:
    # private: the logger of Optuna's private RDB module, which logs that warning (a
    # filter on the public "optuna" logger does not see its children's records)
    logger = logging.getLogger("optuna.storages._rdb.storage")
    if not any(isinstance(f, _OutageFallbackFilter) for f in logger.filters):
        logger.addFilter(_OutageFallbackFilter())
