"""Where a study lives.

Default: Optuna's JournalStorage in a file beside the MLflow store (`bpstudy.journal`).
Several local workers append to it under a file lock; measured here, a report + prune
check costs about 0.5 ms on it against about 6 ms on SQLite, which Optuna also discourages
for parallel writers. A `postgresql://` (or other SQLAlchemy) URL gives an RDB storage with
heartbeats, so workers on many machines share one study and a dead worker's trial is
failed and retried.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import time
import warnings
from pathlib import Path

from bpstudy.errors import BpstudyError, first_line, os_reason, redact
from bpstudy.paths import starts_with

JOURNAL = "bpstudy.journal"
LOCK_GRACE_SECONDS = 5


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


# RDB storages: a worker records a heartbeat every HEARTBEAT_SECONDS; a RUNNING trial whose
# heartbeat is older than GRACE_SECONDS is failed and retried. A storage call that loses its
# database connection (a PostgreSQL restart, a network blip) is retried for up to
# RETRY_SECONDS before it fails.
HEARTBEAT_SECONDS = int(_env_seconds("BPSTUDY_HEARTBEAT_SECONDS", 10))
GRACE_SECONDS = int(_env_seconds("BPSTUDY_HEARTBEAT_GRACE_SECONDS", 30))
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


def check_url(url: str) -> None:
    """What can be told of `url` without touching it: a scheme, and for a journal an
    existing folder."""
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
    attempt = 1
    while True:
        try:
            return _rdb_storage(url, on_failed_trial)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors of many kinds
            if schema_race(exc) and attempt < SCHEMA_ATTEMPTS:
                time.sleep(0.1 * attempt)  # the other command's tables are there by now
                attempt += 1
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"--storage {redact(url)}: cannot open the study storage ({redact(first[:300])})"
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
        return _retrying_rdb_class()(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            **{callback_arg: _retry_then(retry_cls(max_retry=3), on_failed_trial)},
        )


# Commands that open a new database at the same moment (a SLURM array's tasks) each create
# Optuna's tables; all but one then failed with "duplicate key value violates unique
# constraint pg_type_typname_nsp_index" or 'relation "studies" already exists'. Opened
# again, the tables are found and left alone.
SCHEMA_ATTEMPTS = 5


def schema_race(exc: BaseException) -> bool:
    """`exc` is another command creating the same tables (or stamping their version)."""
    from sqlalchemy import exc as sa_exc

    made = (sa_exc.ProgrammingError, sa_exc.OperationalError)  # PostgreSQL; SQLite, MySQL
    return any(
        isinstance(e, sa_exc.IntegrityError) or (isinstance(e, made) and "already exists" in str(e))
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

# pool_pre_ping replaces connections that died while idle in the pool; these retries cover
# the calls made while the database is down or that lose their connection half-way.
# record_heartbeat is left out: a missed beat is harmless and must not stall a trial.
_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
    "set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "get_best_trial", "get_trial_user_attrs", "get_trial_system_attrs", "get_n_trials",
    "get_trial_params", "get_trial_number_from_id", "_get_stale_trial_ids",
    # what Optuna's _CachedStorage calls on the RDB storage directly
    "_get_trials", "_create_new_trial", "_set_trial_param", "_get_best_trial_id",
)  # fmt: skip


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


def _with_retry(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline = time.monotonic() + RETRY_SECONDS
        delay, warned = 0.5, False
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                cause = connection_error(exc)
                if cause is None or time.monotonic() + delay > deadline:
                    raise
                if not warned:
                    text = str(getattr(cause, "orig", None) or cause).strip()
                    first = (text.splitlines() or [type(cause).__name__])[0]
                    print(
                        f"warning: study storage unreachable ({redact(first[:200])}); "
                        f"retrying for up to {RETRY_SECONDS:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    warned = True
                with contextlib.suppress(Exception):
                    self.engine.dispose()  # drop the pool's dead connections at once
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    return call


@functools.cache
def _retrying_rdb_class():
    from optuna.storages import RDBStorage

    methods = {
        name: _with_retry(getattr(RDBStorage, name))
        for name in _RETRIED
        if callable(getattr(RDBStorage, name, None))
    }
    return type("RetryingRDBStorage", (RDBStorage,), methods)
