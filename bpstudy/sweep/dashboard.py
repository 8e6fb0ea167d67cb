"""optuna-dashboard beside the MLflow UI (`bpstudy ui --optuna`): Optuna's own view of the
studies in a storage (history, importances, parallel coordinates, the trials' attributes),
on 127.0.0.1. It comes with the `dashboard` extra (`pip install 'bpstudy[dashboard]'`).

The server runs as `python -m bpstudy.sweep.dashboard PORT`, on the storage bpstudy opens
(`open_storage`: a journal file, or a database), given in its environment rather than on
its command line, which every user sees in `ps`. A storage that does not exist is refused,
never made: this command only reads.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from bpstudy.errors import BpstudyError, redact
from bpstudy.sweep.storage import check_url, holds_studies, is_rdb, journal_path, open_storage
from bpstudy.tracking.ui import Companion, free_port, port_is_free

STORAGE_VAR = "BPSTUDY_DASHBOARD_STORAGE"
DEFAULT_PORT = 8080  # optuna-dashboard's own


def optuna_dashboard(storage_url: str, port: int | None = None) -> Companion:
    """The optuna-dashboard server on `storage_url`, checked first (one line, exit 2)."""
    if port is not None and not 1 <= port <= 65535:
        raise BpstudyError(
            f"--optuna-port {port}: a port is 1 to 65535 (omit it for {DEFAULT_PORT} or a free one)"
        )
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise BpstudyError(
            "--optuna: optuna-dashboard is not installed; pip install 'bpstudy[dashboard]' "
            "(or optuna-dashboard)"
        )
    check_url(storage_url)
    where = redact(storage_url)
    if is_rdb(storage_url) and not holds_studies(storage_url):
        raise BpstudyError(f"--optuna: {where} holds no Optuna study; run 'bpstudy sweep' first")
    if not is_rdb(storage_url) and not journal_path(storage_url).is_file():
        raise BpstudyError(
            f"--optuna: no Optuna storage at {where}; run 'bpstudy sweep' here first, or "
            "pass --storage URL"
        )
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    elif not port_is_free(port):
        raise BpstudyError(f"--optuna-port {port} is in use on 127.0.0.1; choose another")
    cmd = [sys.executable, "-m", "bpstudy.sweep.dashboard", str(port)]
    return Companion("optuna-dashboard", where, cmd, port, "/api/studies",
                     env={STORAGE_VAR: storage_url})  # fmt: skip


def serve(port: int) -> None:
    """Serve optuna-dashboard on 127.0.0.1:`port` (blocks until stopped)."""
    from optuna_dashboard import run_server

    run_server(open_storage(os.environ[STORAGE_VAR]), host="127.0.0.1", port=port)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
