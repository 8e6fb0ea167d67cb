"""Which MLflow store a run goes to, and a check that it works before training starts.

Order: `tracking.uri` in the config, else MLFLOW_TRACKING_URI, else an embedded SQLite
store `mlflow.db` in the working directory (MLflow's own default; its old ./mlruns file
store is deprecated).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from bpstudy.environment import environ
from bpstudy.errors import BpstudyError, first_line
from bpstudy.paths import starts_with
from bpstudy.retry import retry

EMBEDDED_DB = "mlflow.db"


class TrackingError(BpstudyError):
    """The tracking store cannot be reached or written."""


def resolve_uri(uri: str | None = None) -> str:
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{launch_dir() / EMBEDDED_DB}"


def launch_dir() -> Path:
    """The folder the command was started in. A Hydra job with hydra.job.chdir=true runs
    in its output folder, where the default store would split a -m sweep into one store
    per job, none of them where `bpstudy ui` and `rerun` look."""
    if "hydra" in sys.modules:  # only a Hydra app can have moved us
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.cwd)
    return Path.cwd()


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


STORES = "sqlite:///PATH.db, http(s)://HOST:PORT (an MLflow server) or postgresql://..."
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_store(uri: str) -> None:
    """Fail early, in one line naming the URI, if the store is unusable."""
    scheme = urlparse(uri).scheme
    db = sqlite_path(uri)
    if uri in ("sqlite:///", "sqlite://", "sqlite:///:memory:"):
        raise TrackingError(
            f"tracking store {uri} names no file (an in-memory database); use sqlite:///PATH.db"
        )
    if db is not None:
        _check_sqlite_file(uri, db)
    elif scheme == "sqlite":
        raise TrackingError(
            f"tracking store {uri}: an SQLite store is sqlite:///PATH.db (three slashes, then "
            "a relative path, or four for an absolute one)"
        )
    elif scheme in ("http", "https"):
        _check_server(uri)
    elif scheme.startswith(("postgresql", "mysql", "mssql")):
        _check_database(uri)
    elif scheme == "databricks":
        return  # MLflow's own hosted store: nothing to check from here
    elif scheme in ("", "file"):
        raise TrackingError(
            f"tracking store {uri}: MLflow's file store is deprecated (a path or file: URI); "
            f"use {STORES}"
        )
    else:
        raise TrackingError(f"tracking store {uri}: unsupported scheme '{scheme}:'; use {STORES}")


def _check_sqlite_file(uri: str, db: Path) -> None:
    folder = db.parent if str(db.parent) else Path.cwd()
    if not folder.is_dir():
        raise TrackingError(f"tracking store {uri}: folder {folder} does not exist")
    if db.is_dir():
        raise TrackingError(
            f"tracking store {uri}: {db} is a folder; name a database file in it, e.g. {db / EMBEDDED_DB}"
        )
    if (db.exists() and not os.access(db, os.W_OK)) or not os.access(folder, os.W_OK):
        raise TrackingError(f"tracking store {uri}: not writable")
    if db.is_file() and db.stat().st_size and not starts_with(db, SQLITE_MAGIC):
        raise TrackingError(f"tracking store {uri}: {db} is not an SQLite database")


def _check_database(uri: str) -> None:
    """One connection attempt with a short timeout: MLflow's own retries an unreachable
    database for minutes, with a warning every few seconds."""
    _on_database(uri, lambda engine: engine.connect().close())


def _on_database(uri: str, probe):
    """probe(engine) on a short-timeout engine of `uri`, disposed after; any failure is one
    TrackingError line, with the password left out."""
    from bpstudy.errors import redact

    try:
        engine = _quick_engine(uri)
    except Exception as exc:  # noqa: BLE001 - e.g. the driver is not installed
        raise TrackingError(f"tracking store {redact(uri)}: {redact(first_line(exc))}") from None
    try:
        return probe(engine)
    except Exception as exc:  # noqa: BLE001 - any failure means the store is unusable
        raise TrackingError(
            f"tracking store {redact(uri)}: cannot connect: {redact(first_line(exc))}"
        ) from None
    finally:
        engine.dispose()


def check_store_exists(uri: str, hint: str) -> None:
    """For the commands that only read a store (report, rerun, ui): one that is not there
    is refused, not made (MLflow makes a new SQLite file, or its tables in an empty
    database, on first use). `hint`: what to do instead, for the message. A server keeps
    its own store."""
    from bpstudy.errors import redact

    check_store(uri)
    db = sqlite_path(uri)
    if db is not None and (not db.is_file() or not db.stat().st_size):
        raise TrackingError(f"no MLflow store at {uri}; {hint}")
    if db is None and urlparse(uri).scheme.startswith(("postgresql", "mysql", "mssql")):
        from sqlalchemy import inspect

        found = _on_database(uri, lambda engine: inspect(engine).has_table("experiments"))
        if not found:
            raise TrackingError(
                f"no MLflow store at {redact(uri)} (the database holds no MLflow tables); {hint}"
            )


def _quick_engine(uri: str):
    """An engine whose connection attempts give up after 5 s (PostgreSQL's default is the
    TCP timeout, minutes for a host that drops packets)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    connect_args = {}
    if url.get_backend_name() == "postgresql":  # libpq's name; pg8000 has its own
        connect_args = {"timeout" if url.get_driver_name() == "pg8000" else "connect_timeout": 5}
    return create_engine(url, connect_args=connect_args)


# How long a tracking server that does not answer is waited for, with backoff, before it
# is "unreachable": 0 for interactive commands (fail at once); a sweep's workers set
# WAIT_VAR, so that a server restart does not fail every trial started meanwhile.
WAIT_VAR = "BPSTUDY_TRACKING_WAIT_SECONDS"


def server_wait_seconds() -> float:
    """$BPSTUDY_TRACKING_WAIT_SECONDS: seconds >= 0 (0 when unset); anything else is
    refused in one line, naming the variable, not quietly read as 0."""
    raw = os.environ.get(WAIT_VAR, "0")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise TrackingError(f"{WAIT_VAR}={raw!r}: give a number of seconds >= 0, or unset it")
    return value


# A server that takes the connection but is slow to answer /health is busy, not gone:
# measured with benchmarks/many_workers.py (32 workers logging to a 2-worker `mlflow
# server` on 2 cores), a sweep command starting among them timed out after 5 s and
# exited 2 ("unreachable (timed out)"). Such a server is asked again for up to
# BUSY_SECONDS, by every command; one that refuses the connection fails at once.
HEALTH_TIMEOUT_SECONDS = 5.0
BUSY_SECONDS = 60.0


class ServerBusyError(TrackingError):
    """The tracking server took the connection but did not answer in time."""


def _check_server(uri: str) -> None:
    wait = server_wait_seconds()
    start = time.monotonic()

    def retryable(exc: BaseException) -> bool:
        waited = time.monotonic() - start
        return isinstance(exc, ServerBusyError) or (
            isinstance(exc, TrackingError) and waited < wait
        )

    retry(
        lambda: _check_server_once(uri),
        seconds=max(wait, BUSY_SECONDS),
        retryable=retryable,
        max_delay=10.0,
    )


def _check_server_once(uri: str) -> None:
    import urllib.error
    import urllib.request

    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=HEALTH_TIMEOUT_SECONDS) as response:
            if response.status != 200:
                raise TrackingError(f"tracking server {uri} answered {response.status} on /health")
    except urllib.error.HTTPError as exc:
        raise TrackingError(f"tracking server {uri} answered {exc.code} on /health") from None
    except (urllib.error.URLError, OSError) as exc:
        # urllib wraps what fails while connecting in a URLError (a host that drops
        # packets times out there, and is unreachable); a timeout while waiting for the
        # answer comes through as it is: the server took the connection, and is busy
        error = ServerBusyError if isinstance(exc, TimeoutError) else TrackingError
        reason = getattr(exc, "reason", exc)
        raise error(f"tracking server {uri} is unreachable ({reason})") from None


def client_for(uri: str, checked: bool = False):
    """An MlflowClient on `uri` (checked first, unless the caller just did), quiet about
    its own table migrations."""
    import logging

    if not checked:
        check_store(uri)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow import MlflowClient

    try:
        _create_whole(uri)
        with _schema_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any store failure is the user's URI
        from bpstudy.errors import redact

        raise TrackingError(f"tracking store {redact(uri)}: {redact(first_line(exc))}") from None
    return client


def _create_whole(uri: str) -> None:
    """A new SQLite store is made under a temporary name and linked into place once
    MLflow's table migrations are done: a Ctrl-C in those seconds left a half-made
    mlflow.db that every later command refused ("table ... already exists")."""
    from mlflow import MlflowClient

    db = sqlite_path(uri)
    if db is None or db.exists():
        return
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        with contextlib.suppress(FileExistsError):  # another command made it meanwhile
            os.link(tmp, db)  # never replaces a store another process already uses
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _schema_lock(uri: str):
    """PostgreSQL: commands that open a new database at the same moment (a SLURM array's
    tasks) each ran MLflow's table migrations, and all but one failed ("duplicate key
    value violates unique constraint"). Until the tables are there, the first makes them
    under an advisory lock and the others wait for it. Other stores: no-op (SQLite is
    made by `_create_whole`; MLflow's own lock is a file on one host)."""
    if not urlparse(uri).scheme.startswith("postgresql"):
        yield
        return
    from sqlalchemy import text

    from bpstudy.errors import redact

    engine = _quick_engine(uri)
    try:
        if _mlflow_schema_ready(engine):
            yield
            return
        with engine.connect() as conn:
            started, told = time.monotonic(), False
            try_lock = text("SELECT pg_try_advisory_lock(:a, :b)")
            while not conn.execute(try_lock, SCHEMA_LOCK).scalar():
                if not told and time.monotonic() - started > 10:
                    print(f"waiting for another command to make MLflow's tables in "
                          f"{redact(uri)}", file=sys.stderr)  # fmt: skip
                    told = True
                time.sleep(0.2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection released it
                    conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), SCHEMA_LOCK)
    finally:
        engine.dispose()


def _mlflow_schema_ready(engine) -> bool:
    """MLflow's tables are there at its current revision: nothing to make, no lock."""
    from bpstudy.tracking.mlflow_internals import schema_ready

    try:
        return schema_ready(engine)
    except Exception:  # noqa: BLE001 - e.g. the database is unreachable: take the lock;
        return False  # an MLflow change to the probes fails tests/test_mlflow_internals.py


# pg_advisory_lock's two-integer form: a key space apart from the one-bigint keys of the
# sweeps' per-study locks (sweep/worker.py, study_lock)
SCHEMA_LOCK = {"a": 0x62707374, "b": 1}  # "bpst", MLflow's tables


def run_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in an MLflow server's UI (the address MLflow itself would print);
    None for a store without a server of its own (`bpstudy ui` serves those)."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_location(uri: str, name: str) -> str | None:
    """For an SQLite store, artifacts live beside the database (`mlartifacts/NAME`), not
    in MLflow's default ./mlruns of whatever directory the process happens to run in."""
    db = sqlite_path(uri)
    if db is None:
        return None  # a server decides where its artifacts go
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return (db.parent / "mlartifacts" / safe).resolve().as_uri()


def experiment_id(client, name: str) -> str:
    """The experiment `name`; one bpstudy creates opens in MLflow's model-training view
    (naming.experiment_tags). One that exists keeps its tags: it may be the user's."""
    from bpstudy.tracking.naming import experiment_tags

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(
            name,
            artifact_location=artifact_location(client.tracking_uri, name),
            tags=experiment_tags(),
        )
    except Exception:  # another worker may have created it meanwhile; re-raised if not
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


PROGRESS_BAR_VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def quiet_downloads():
    """MLflow draws a download bar on stderr for even one small file."""
    return environ({PROGRESS_BAR_VAR: "false"})
