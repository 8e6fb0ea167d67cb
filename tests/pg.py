"""Throwaway PostgreSQL clusters and MLflow servers for the distributed tests.

A cluster lives in a temporary folder, listens on a free 127.0.0.1 port and trusts local
connections. PostgreSQL refuses to run as root, so as root its programs run as the
`postgres` user (Debian's package creates it) or, failing that, as `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bpstudy.tracking.ui import free_port, stop_group, wait_until_up


def pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, if any."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = [p for p in found if (p / "pg_ctl").exists()]
    return found[-1] if found else None


def have_psycopg() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PgCluster:
    """initdb + pg_ctl on a free port; `url(db)` gives a SQLAlchemy URL (psycopg 3)."""

    def __init__(self, max_connections: int = 200) -> None:
        self.max_connections = max_connections
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.port = free_port()
        # not under pytest's tmp_path: that is private to root, and the server may not be
        self.root = Path(tempfile.mkdtemp(prefix="bpstudy-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.user = _run_as()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.superuser = "postgres"

    def _cmd(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        out = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,  # the postmaster outlives pg_ctl: keep it off our group
            **kwargs,
        )
        if out.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}\n{log}")
        return out

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={self.max_connections}"
        )

    def init(self) -> PgCluster:
        self._cmd("initdb", "-D", str(self.data), "-U", self.superuser, "-A", "trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        return self

    def start(self) -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(),
                  "-w", "-t", "60", "start")  # fmt: skip

    def restart(self) -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(),
                  "-m", "fast", "-w", "-t", "60", "restart")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(Exception):
            self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():  # pg_ctl could not stop it: do not leave it behind
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"),
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class MlflowServer:
    """`mlflow server` on a free 127.0.0.1 port with a given backend store and a local
    artifacts folder; stop() and start() again keep the same address."""

    def __init__(self, backend_uri: str, folder: Path, workers: int = 2) -> None:
        self.backend_uri, self.folder, self.workers = backend_uri, folder, workers
        self.artifacts = folder / "server-artifacts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = folder / "mlflow-server.log"

    def start(self, timeout: float = 180) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
                 "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers)],
                cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        if not wait_until_up(self.url, self.proc, timeout=timeout):
            self.stop()
            raise RuntimeError(f"mlflow server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, timeout=5)
            self.proc = None
        # the port must be free again before a restart binds it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                # as the server binds it: connections in TIME_WAIT do not count
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    time.sleep(0.2)
