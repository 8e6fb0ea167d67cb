"""Passwords, and the commands that only read, on a real PostgreSQL (tests/pg.py).

The cluster trusts local connections, except for the role ROLE, which must give its
password (scram-sha-256): a command that connects as ROLE without it fails, so a test that
keeps the password off the command line (libpq's PGPASSWORD or ~/.pgpass, or
$BPSTUDY_STORAGE) shows that the password got there by that way. The password is a
string found nowhere else, so that no trace of it may appear: not on stdout or stderr,
in no file under tmp_path (Hydra's logs and .hydra/ files, MLflow's artifacts), in no
row of the Optuna and MLflow databases (the studies' and trials' attributes, the runs'
tags and params), and on no process's command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from pg import PgCluster, have_psycopg, pg_bin

from bpstudy.tracking.ui import free_port
from tests.conftest import listing, wait_until

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
ROLE, PASSWORD = "alice", "Pw7f3kq9ZunseenSecret"
TINY = ["data=digits", "model.width=16", "trainer.epochs=2", "trainer.progress=none"]
LIBPQ_ENV = ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE")

pytestmark = [
    pytest.mark.skipif(
        pg_bin() is None and not os.environ.get("CI"),
        reason="PostgreSQL binaries not found (.ci/run installs them)",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # MLflow's SQL store's
]


@pytest.fixture(scope="module")
def pg():
    if not have_psycopg():
        pytest.fail("psycopg is missing: install the test extra, pip install -e '.[test]'")
    import psycopg

    cluster = PgCluster().init()
    try:
        hba = cluster.data / "pg_hba.conf"  # the first matching line wins
        hba.write_text(
            f"host all {ROLE} 127.0.0.1/32 scram-sha-256\nlocal all {ROLE} scram-sha-256\n"
            + hba.read_text()
        )
        cluster.start()
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        with pytest.raises(psycopg.OperationalError, match="password"):  # it is asked for
            psycopg.connect(
                url_of(cluster, "postgres", password=False), passfile=cluster.root / "none"
            )
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """No libpq setting of the shell's, and a HOME (for ~/.pgpass) inside tmp_path."""
    for key in LIBPQ_ENV:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def url_of(cluster: PgCluster, db: str, password: bool = True) -> str:
    secret = f":{PASSWORD}" if password else ""
    return f"postgresql://{ROLE}{secret}@127.0.0.1:{cluster.port}/{db}"


def database(cluster: PgCluster, name: str) -> str:
    """A new database owned by ROLE; its name."""
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
    return name


def tables(cluster: PgCluster, db: str) -> list[str]:
    import psycopg

    with psycopg.connect(cluster.url(db)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return sorted(r[0] for r in rows)


def tables_holding(cluster: PgCluster, db: str, text: str) -> list[str]:
    """The tables of `db` with a row whose text holds `text` (any column)."""
    import psycopg

    found = []
    with psycopg.connect(cluster.url(db)) as conn:
        for table in tables(cluster, db):
            query = f'SELECT count(*) FROM "{table}" AS r WHERE r::text LIKE %s'
            if conn.execute(query, (f"%{text}%",)).fetchone()[0]:
                found.append(table)
    return found


def files_holding(folder: Path, text: str) -> list[str]:
    needle = text.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def command_lines_holding(text: str) -> list[str]:
    """Every process's command line that holds `text`, as `ps` shows them to any user."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(text.encode() in a for a in args):
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def bpstudy(folder: Path, *args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [BPSTUDY, *args], cwd=folder, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip


def write_sweep(folder: Path, name: str, n: int = 1) -> Path:
    tree = {
        "study_name": name, "metric": "val/loss", "direction": "minimize", "n_trials": n,
        "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
        "overrides": TINY, "params": {"model.depth": "range(1, 3)"},
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def one_error_line(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpstudy: error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# ---------------------------------------------------------------- the ways to give it


@pytest.mark.parametrize(
    "way", ["url", "PGPASSWORD", "pgpass", "PGPASSFILE", "BPSTUDY_STORAGE", "none"]
)
def test_each_way_to_give_the_password(pg, tmp_path, own_home, way):
    """In the URL (then hidden in every line), by libpq's PGPASSWORD or ~/.pgpass (a URL
    without one: our checks must let it through), or in $BPSTUDY_STORAGE for both sweep
    and report (off the command line); without any, one line saying so."""
    db = database(pg, f"ways_{way.lower()}")
    path = write_sweep(tmp_path, "ways")
    bare, full = url_of(pg, db, password=False), url_of(pg, db)
    storage, env = ["--storage", bare], {}
    if way == "url":
        storage = ["--storage", full]
    elif way == "PGPASSWORD":
        env = {"PGPASSWORD": PASSWORD}
    elif way in ("pgpass", "PGPASSFILE"):
        pgpass = own_home / ".pgpass" if way == "pgpass" else tmp_path / "passwords"
        env = {} if way == "pgpass" else {"PGPASSFILE": str(pgpass)}
        pgpass.write_text(f"127.0.0.1:{pg.port}:*:{ROLE}:{PASSWORD}\n")
        pgpass.chmod(0o600)  # libpq ignores a ~/.pgpass others may read
    elif way == "BPSTUDY_STORAGE":
        storage, env = [], {"BPSTUDY_STORAGE": full}
    out = bpstudy(tmp_path, "sweep", str(path), *storage, "tracking.enabled=false",
                  "--progress", "lines", env=env)  # fmt: skip
    if way == "none":
        one_error_line(out, f"--storage {bare}", "password")
        assert tables(pg, db) == []
        return
    assert out.returncode == 0, out.stderr[-3000:]
    assert PASSWORD not in out.stdout + out.stderr
    assert f"(storage postgresql://{ROLE}{':***' if way in ('url', 'BPSTUDY_STORAGE') else ''}@" in out.stdout  # fmt: skip
    study = optuna.load_study(study_name="ways", storage=full)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]

    report = bpstudy(tmp_path, "report", "ways", *storage, env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "report for study ways (1 trials" in report.stdout
    assert PASSWORD not in report.stdout + report.stderr
    kept = {"pgpass": [str(own_home / ".pgpass")], "PGPASSFILE": [str(tmp_path / "passwords")]}
    assert files_holding(tmp_path, PASSWORD) == kept.get(way, [])
    if way == "BPSTUDY_STORAGE":  # an explicit --storage wins over it
        other = f"journal:{tmp_path / 'other.journal'}"
        out = bpstudy(tmp_path, "report", "ways", "--storage", other, env=env)
        one_error_line(out, "other.journal does not exist")


@pytest.mark.slow
def test_a_study_resumed_with_the_password_given_another_way_keeps_its_parent_run(pg, tmp_path):
    """Started with both URLs holding the password, resumed with both without it (and
    PGPASSWORD): the study's stores are the same, so no refusal ("logs to the MLflow store
    ...") and no second parent run."""
    from mlflow import MlflowClient

    optuna_db, mlflow_db = database(pg, "again_optuna"), database(pg, "again_mlflow")
    path = write_sweep(tmp_path, "again", n=1)
    full = {"MLFLOW_TRACKING_URI": url_of(pg, mlflow_db)}
    out = bpstudy(tmp_path, "sweep", str(path), "--storage", url_of(pg, optuna_db),
                  "--progress", "lines", env=full)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    bare = {"MLFLOW_TRACKING_URI": url_of(pg, mlflow_db, password=False), "PGPASSWORD": PASSWORD}
    out = bpstudy(tmp_path, "sweep", str(path), "--storage", url_of(pg, optuna_db, password=False),
                  "--n-trials", "2", "--progress", "lines", env=bare)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert PASSWORD not in out.stdout + out.stderr
    study = optuna.load_study(study_name="again", storage=url_of(pg, optuna_db))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    client = MlflowClient(url_of(pg, mlflow_db))
    experiment = client.get_experiment_by_name("bpstudy").experiment_id
    parents = client.search_runs([experiment], "tags.`bpstudy.study` = 'again'")
    assert [p.info.run_id for p in parents] == [study.user_attrs["mlflow_parent_run_id"]]
    children = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'"
    )
    assert len(children) == 2


# ---------------------------------------------------------------- read-only commands


def test_read_only_commands_make_no_tables_in_an_empty_database(pg, tmp_path):
    """`bpstudy report` left Optuna's 13 tables in an empty database; rerun and ui would
    have made MLflow's (about 30) there."""
    db = database(pg, "empty")
    url = url_of(pg, db)
    before = listing(tmp_path)
    out = bpstudy(tmp_path, "report", "nope", "--storage", url)
    one_error_line(out, "'nope'", "holds no Optuna study", "known studies: none")
    out = bpstudy(tmp_path, "rerun", "0123456789abcdef0123456789abcdef", "--tracking-uri", url)
    one_error_line(out, "no MLflow store at", "holds no MLflow tables")
    out = bpstudy(tmp_path, "ui", "--tracking-uri", url, timeout=60)
    one_error_line(out, "no MLflow store at", "holds no MLflow tables")
    assert tables(pg, db) == []
    assert listing(tmp_path) == before


# ---------------------------------------------------------------- no trace anywhere


@pytest.mark.slow
def test_no_trace_of_the_password_anywhere(pg, tmp_path, ctrl_c):
    """Every command on a store and a study reached by URLs with the password: sweep
    (two workers), report, train, rerun and ui. Then nothing holds it: their output, the
    files under tmp_path, the rows of both databases, the command lines of the processes
    (the ui's MLflow server among them)."""
    storage, tracking = url_of(pg, database(pg, "optuna")), url_of(pg, database(pg, "mlflow"))
    env = {"MLFLOW_TRACKING_URI": tracking}
    path = write_sweep(tmp_path, "leak", n=2)
    outs = [bpstudy(tmp_path, "sweep", str(path), "--storage", storage, "--workers", "2",
                    "--progress", "lines", env=env)]  # fmt: skip
    assert outs[-1].returncode == 0, outs[-1].stderr[-3000:]
    assert f"postgresql://{ROLE}:***@127.0.0.1:{pg.port}/optuna" in outs[-1].stdout
    assert f"postgresql://{ROLE}:***@127.0.0.1:{pg.port}/mlflow" in outs[-1].stdout
    study = optuna.load_study(study_name="leak", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    outs.append(bpstudy(tmp_path, "report", "leak", "--storage", storage, "--out", "rep", env=env))
    assert outs[-1].returncode == 0, outs[-1].stderr[-3000:]
    outs.append(bpstudy(tmp_path, "train", *TINY, "model.depth=2", env=env))
    assert outs[-1].returncode == 0, outs[-1].stderr[-3000:]
    assert (tmp_path / "outputs").is_dir()  # Hydra's logs and .hydra/ files are scanned
    child = study.trials[0].user_attrs["mlflow_run_id"]
    outs.append(bpstudy(tmp_path, "rerun", child, env=env))
    assert outs[-1].returncode == 0, outs[-1].stderr[-3000:]
    outs.append(ui_output(tmp_path, env))

    for out in outs:
        assert PASSWORD not in out.stdout + out.stderr, out.args
    assert files_holding(tmp_path, PASSWORD) == []
    for db in ("optuna", "mlflow"):
        assert tables(pg, db), db  # something was written there...
        assert tables_holding(pg, db, PASSWORD) == [], db  # ...but not the password
    parent = study.user_attrs["mlflow_parent_run_id"]  # the study still names its stores
    assert study.user_attrs["mlflow_tracking_uri"].startswith(f"postgresql://{ROLE}:***@")
    assert parent


def ui_output(folder: Path, env: dict) -> subprocess.CompletedProcess:
    """`bpstudy ui` until it serves, then Ctrl-C; meanwhile no process shows the password
    on its command line (MLflow's server took the store as an argument)."""
    out, err = folder / "ui.out", folder / "ui.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [BPSTUDY, "ui", "--port", str(free_port())], cwd=folder, stdout=o, stderr=e,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )  # fmt: skip
    try:
        wait_until(lambda: "MLflow UI on" in out.read_text() or proc.poll() is not None, 180,
                   "the MLflow UI")  # fmt: skip
        assert proc.poll() is None, err.read_text()
        assert command_lines_holding(PASSWORD) == []
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, out.read_text(), err.read_text()
    )
    out.unlink()
    err.unlink()
    return result
