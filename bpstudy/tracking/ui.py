"""`bpstudy ui`: the MLflow UI on the store in use, bound to 127.0.0.1, and the servers
started beside it (`Companion`: optuna-dashboard with `--optuna`), stopped with it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bpstudy.errors import redact
from bpstudy.shutdown import stop_signals_handled
from bpstudy.tracking.store import TrackingError, check_store, check_store_exists, resolve_uri

DEFAULT_PORT = 5000


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now. With SO_REUSEADDR, as
    MLflow's (uvicorn) and optuna-dashboard's (http.server) servers bind: the closed
    connections of a server just stopped (TIME_WAIT, a minute) do not count, a
    listening socket does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Companion:
    """A server that `bpstudy ui` starts beside MLflow's, on 127.0.0.1, and stops with it."""

    name: str  # as the terminal says it: optuna-dashboard
    what: str  # what it serves, for the address line (a storage, redacted)
    cmd: list[str]
    port: int
    check: str  # the path that answers 200 once it serves
    env: dict[str, str] = field(default_factory=dict)  # added to os.environ

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120,
                  path: str = "/health") -> bool:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + path, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def ui(port: int | None = None, tracking_uri: str | None = None,
       companions: list[Companion] = ()) -> int:  # fmt: skip
    if port is not None and not 1 <= port <= 65535:
        raise TrackingError(f"--port {port}: a port is 1 to 65535 (omit it for 5000 or a free one)")
    uri = resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        check_store(uri)  # a server that is not there: one line, exit 2
        print(f"the tracking store is an MLflow server: open {redact(uri)}", flush=True)
        with stops_as_ctrl_c():
            return _companions_only(companions)
    # a path without a scheme, an unwritable folder, no store there: one line, not MLflow's
    check_store_exists(uri, "train a run first (bpstudy train) or pass --tracking-uri")
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    elif not port_is_free(port):
        raise TrackingError(f"--port {port} is in use on 127.0.0.1; choose another or omit --port")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # one person's dashboard: MLflow's 4 cost about 300 MB each
    ]
    # MLflow's job runner (GenAI evaluation, prompt optimisation) starts a handful more
    # processes that bpstudy never uses; the user may still ask for it
    # the store in the environment, not the command line, which every user sees in `ps`
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # MLflow's and uvicorn's start-up lines, a deprecation warning and one line per request
    # go to a log file, kept if the server fails; the terminal shows our address line. The
    # server runs in a session of its own, so that stopping it stops all of its processes.
    handle, name = tempfile.mkstemp(prefix="bpstudy-ui-", suffix=".log")
    log = Path(name)
    with os.fdopen(handle, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env
        )
    with stops_as_ctrl_c():
        return _serve(proc, f"http://127.0.0.1:{port}", uri, log, companions)


def _serve(proc: subprocess.Popen, url: str, uri: str, log: Path,
           companions: list[Companion]) -> int:  # fmt: skip
    """Wait for MLflow's server, start the companions, then serve until Ctrl-C (or until
    the server stops by itself); every server stopped on the way out."""
    started: list[tuple[Companion, subprocess.Popen, Path]] = []
    try:
        if not wait_until_up(url, proc):
            raise TrackingError(
                f"the MLflow UI did not start on {url} (store {redact(uri)}): "
                f"{redact(_last_line(log))}; "
                f"its log: {log}"
            )
        page = landing_page(url)
        print(f"MLflow UI on {redact(uri)}: {page}  (Ctrl-C to stop; server log {log})", flush=True)
        for companion in companions:
            _start(companion, started)
        code = proc.wait()
        print(f"the MLflow UI stopped by itself (exit {code}); its log: {log}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        _stop_all(started, proc)  # first: then "stopped" is true when it is printed
        print("MLflow UI stopped", flush=True)
        log.unlink(missing_ok=True)
        _say_stopped(started)
        return 0
    finally:
        _stop_all(started, proc)


# MLflow 3.18's UI chooses its GenAI or model-training navigation by the URL's
# `workflowType` (else what the browser last chose, GenAI at first); newer UIs also follow
# the experiment's mlflow.experimentKind tag (tracking/naming.py). The address printed
# carries it, so the first page is the study's runs in the model-training view.
WORKFLOW = "workflowType=machine_learning"


def landing_page(url: str) -> str:
    """The Runs page of the experiment a user most likely came for (the newest that
    bpstudy made, else the newest other than Default), in the model-training view; the
    home page if the store holds none. Asked of the server just started (read-only)."""
    import json

    from bpstudy.tracking.naming import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

    try:
        query = url + "/ajax-api/2.0/mlflow/experiments/search?max_results=1000"
        with urllib.request.urlopen(query, timeout=10) as r:
            experiments = json.load(r).get("experiments", [])
    except (OSError, ValueError):
        return f"{url}/#/?{WORKFLOW}"

    def ours(e: dict) -> bool:
        tags = {t["key"]: t.get("value") for t in e.get("tags", [])}
        return tags.get(EXPERIMENT_KIND_TAG) == MODEL_TRAINING_KIND

    newest = sorted(experiments, key=lambda e: int(e.get("creation_time", 0)), reverse=True)
    pick = next((e for e in newest if ours(e)), None) or next(
        (e for e in newest if e.get("name") != "Default"), None
    )
    if pick is None:
        return f"{url}/#/?{WORKFLOW}"
    return f"{url}/#/experiments/{pick['experiment_id']}/runs?{WORKFLOW}"


def _companions_only(companions: list[Companion]) -> int:
    """With an MLflow server as the store, only the companions run here, until Ctrl-C
    (or SIGTERM, SIGHUP: stops_as_ctrl_c)."""
    started: list[tuple[Companion, subprocess.Popen, Path]] = []
    try:
        for companion in companions:
            _start(companion, started)
        for _, proc, _ in started:
            proc.wait()
        return 0 if not started else 1  # a companion that stopped by itself
    except KeyboardInterrupt:
        _stop_all(started)
        _say_stopped(started)
        return 0
    finally:
        _stop_all(started)


def _stop_all(started: list[tuple[Companion, subprocess.Popen, Path]],
              proc: subprocess.Popen | None = None) -> None:  # fmt: skip
    """Stop the companions, then MLflow's server; a second call finds them gone."""
    for _, other, _ in started:
        stop_group(other)
    if proc is not None:
        stop_group(proc)


def _say_stopped(started: list[tuple[Companion, subprocess.Popen, Path]]) -> None:
    """After Ctrl-C: each companion's line, and its log gone (it ended as asked)."""
    for companion, _, log in started:
        print(f"{companion.name} stopped", flush=True)
        log.unlink(missing_ok=True)


def _start(companion: Companion, started: list[tuple[Companion, subprocess.Popen, Path]]) -> None:
    """Start a companion server (its own session and log, as MLflow's) and wait for it.
    It joins `started` as soon as it runs, before it answers or its address line is
    printed, so a stop signal at any later moment finds it in the caller's list (one that
    came just after the address line left it running, outside the list)."""
    handle, name = tempfile.mkstemp(prefix=f"bpstudy-{companion.name}-", suffix=".log")
    log = Path(name)
    with os.fdopen(handle, "wb") as out:
        proc = subprocess.Popen(companion.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env={**os.environ, **companion.env})  # fmt: skip
    started.append((companion, proc, log))
    if not wait_until_up(companion.url, proc, path=companion.check):
        raise TrackingError(  # the caller stops it, and keeps its log
            f"{companion.name} did not start on {companion.url} ({companion.what}): "
            f"{redact(_last_line(log))}; its log: {log}"
        )
    print(f"{companion.name} on {companion.what}: {companion.url}/  (server log {log})", flush=True)


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "it printed nothing"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum, frame):
    # one stop is enough: a second signal (systemd's SIGHUP after its SIGTERM, a second
    # Ctrl-C) must not cut short the stopping of the servers
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def stops_as_ctrl_c() -> contextlib.AbstractContextManager:
    """Ctrl-C, SIGTERM (`kill`) and SIGHUP (a closed terminal) stop the servers, which
    run in sessions of their own that no signal to this process reaches; the first
    signal stops them, the others are ignored until that is done. An ignored SIGINT (a
    command started in the background) stays ignored."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    sigs = tuple(sig for sig in STOP_SIGNALS if not (sig == signal.SIGINT and ignored))
    return stop_signals_handled(_interrupt, sigs)


def stop_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL what is left after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
