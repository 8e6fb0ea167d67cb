"""Beyond one machine: docker-compose.yml, and sweeps on a real PostgreSQL cluster with a
real `mlflow server`, run by separate `bpstudy sweep` commands as on separate hosts, through
a SIGKILLed worker, a PostgreSQL restart and an MLflow server restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState
from pg import MlflowServer, PgCluster, have_psycopg, pg_bin

from bpstudy.sweep.storage import open_storage, schema_race
from bpstudy.tracking.store import client_for
from tests.conftest import processes_marked, wait_until

REPO = Path(__file__).resolve().parents[1]
BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# ---------------------------------------------------------------- docker-compose.yml


def env_example() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ (enough for our file)."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} is not set by .env.example")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value).replace("$$", "$")


def options_of(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", help_text))


def help_of(*cmd: str) -> str:
    out = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_compose_file_is_sound():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = env_example()
    assert env["POSTGRES_PASSWORD"] and env["POSTGRES_USER"]
    services = compose["services"]
    assert {"postgres", "mlflow", "worker", "dashboard"} <= set(services)

    # named volumes for the database and the artifacts, healthchecks on both servers
    volumes = set(compose["volumes"])
    assert any(v.split(":")[0] in volumes for v in services["postgres"]["volumes"])
    assert any(v.split(":")[0] in volumes for v in services["mlflow"]["volumes"])
    for name in ("postgres", "mlflow"):
        assert services[name]["healthcheck"]["test"], name
    assert services["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    # scalable: no fixed name, no published port
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]

    # credentials only from the environment; every published port on 127.0.0.1
    text = (REPO / "docker-compose.yml").read_text()
    assert env["POSTGRES_PASSWORD"] not in text
    for name, service in services.items():
        for port in service.get("ports", []):
            published = interpolate(str(port), env)
            assert published.startswith("127.0.0.1:"), (name, port)
            assert len(published.split(":")) == 3, (name, port)
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), (name, key)

    # every command uses options the real programs accept
    bpstudy_cmd = [interpolate(str(a), env) for a in services["worker"]["command"]]
    assert bpstudy_cmd[:2] == ["bpstudy", "sweep"]
    assert bpstudy_cmd[2] in {p.stem for p in (REPO / "sweeps").glob("*.yaml")}
    accepted = options_of(help_of(BPSTUDY, "sweep", "--help"))
    used = {a for a in bpstudy_cmd if a.startswith("-")}
    assert used <= accepted, used - accepted
    storage = bpstudy_cmd[bpstudy_cmd.index("--storage") + 1]
    assert storage.startswith("postgresql://") and "@postgres:5432/" in storage
    assert services["worker"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"

    mlflow_cmd = [interpolate(str(a), env) for a in services["mlflow"]["command"]]
    assert mlflow_cmd[:2] == ["mlflow", "server"]
    accepted = options_of(help_of(sys.executable, "-m", "mlflow", "server", "--help"))
    used = {a for a in mlflow_cmd if a.startswith("-")}
    assert used <= accepted, used - accepted
    backend = mlflow_cmd[mlflow_cmd.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql://") and "@postgres:5432/" in backend
    assert "--artifacts-destination" in mlflow_cmd

    dash_cmd = [interpolate(str(a), env) for a in services["dashboard"]["command"]]
    assert dash_cmd[0] == "optuna-dashboard" and dash_cmd[1] == storage
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    if dashboard.exists():  # the `dashboard` extra
        accepted = options_of(help_of(str(dashboard), "--help"))
        used = {a for a in dash_cmd if a.startswith("-")}
        assert used <= accepted, used - accepted

    # the image installs the extras the services need
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "postgres" in dockerfile and "dashboard" in dockerfile


# ---------------------------------------------------------------- real servers

SKIP_PG = pg_bin() is None and not os.environ.get("CI")
needs_pg = pytest.mark.skipif(
    SKIP_PG, reason="PostgreSQL binaries not found (.ci/run installs them)"
)


@pytest.fixture(scope="module")
def pg():
    if not have_psycopg():
        pytest.fail("psycopg is missing: install the test extra, pip install -e '.[test]'")
    cluster = PgCluster().init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def mlflow_server(pg, tmp_path_factory):
    server = MlflowServer(pg.create_database("mlflow"), tmp_path_factory.mktemp("mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


TINY = ["data=digits", "model.width=16", "trainer.progress=none"]


def write_sweep(folder: Path, name: str, n: int, epochs: int = 3) -> Path:
    tree = {
        "study_name": name,
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": n,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "overrides": [*TINY, f"trainer.epochs={epochs}"],
        "params": {"model.depth": "range(1, 4)", "optimizer.lr": "tag(log, interval(0.01, 0.5))"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


class Host:
    """One `bpstudy sweep` command as on a host of its own: its own working folder and
    temporary folder (so no shared lock file), in a process group of its own."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder / name
        (self.folder / "tmp").mkdir(parents=True)
        self.out, self.err = self.folder / "stdout.txt", self.folder / "stderr.txt"
        self.proc: subprocess.Popen | None = None

    def start(self, sweep: Path, storage: str, tracking: str, *args: str, env=None):
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [BPSTUDY, "sweep", str(sweep), "--storage", storage, "--progress", "lines", *args],
                cwd=self.folder, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": tracking,
                     "TMPDIR": str(self.folder / "tmp"), **(env or {})},
                start_new_session=True,
            )  # fmt: skip
        return self

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sweep did not finish in {timeout} s:\n{self.stderr()[-3000:]}")

    def running(self) -> bool:
        """True while the command runs; a test waiting on it fails at once if it ended."""
        if self.proc.poll() is not None:
            pytest.fail(f"sweep ended ({self.proc.returncode}) early:\n{self.stderr()[-3000:]}")
        return True

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stderr(self) -> str:
        return self.err.read_text() if self.err.exists() else ""


@pytest.fixture
def hosts(tmp_path):
    made: list[Host] = []

    def make(name: str) -> Host:
        made.append(Host(tmp_path, name))
        return made[-1]

    yield make
    for h in made:
        h.kill()


def load_study(url: str, name: str):
    """The study, or None while it is not there (a host may be creating its tables)."""
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None
    except Exception as exc:
        if schema_race(exc):
            return None
        raise


def parent_of(url: str, name: str) -> str | None:
    study = load_study(url, name)
    return None if study is None else study.user_attrs.get("mlflow_parent_run_id")


def check_runs(server: MlflowServer, study, parent_id: str, n: int) -> None:
    """Each finished trial: one FINISHED child run of the parent, on the server, with its
    params, metrics and artifacts readable over HTTP."""
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("bpstudy")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    by_trial: dict[int, list] = {}
    for r in children:
        by_trial.setdefault(int(r.data.tags["optuna.trial"]), []).append(r)
    done = [t for t in study.trials if t.state in FINISHED]
    assert len(done) == n
    for t in done:
        assert len(by_trial.get(t.number, [])) == 1, f"trial {t.number}: {by_trial.get(t.number)}"
        run = by_trial[t.number][0]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.info.status == "FINISHED"
        for key, value in t.params.items():
            assert run.data.params[key] == str(value)
        assert "val/loss" in run.data.metrics
    # over plain HTTP: a metric history and an artifact of one run
    run_id = done[0].user_attrs["mlflow_run_id"]
    query = f"run_id={run_id}&metric_key=val/loss"
    with urllib.request.urlopen(
        f"{server.url}/api/2.0/mlflow/metrics/get-history?{query}", timeout=30
    ) as r:
        assert b"val/loss" in r.read()
    path = client.download_artifacts(run_id, "config.yaml", str(server.folder))
    assert "model" in Path(path).read_text()
    listed = {f.path for f in client.list_artifacts(run_id)}
    assert {"config.yaml", "diagnostics", "plots", "model"} <= listed


def workers_of(url: str, name: str) -> set[str]:
    study = load_study(url, name)
    return set() if study is None else {t.user_attrs.get("worker") for t in study.trials} - {None}


def training(url: str, name: str):
    """A trial that is training (it has reported an epoch, and its worker is known)."""
    study = load_study(url, name)
    for t in [] if study is None else study.get_trials(states=(TrialState.RUNNING,)):
        if t.intermediate_values and "worker" in t.user_attrs:
            return t
    return None


def pause_inside_a_trial(host: Host, url: str, name: str) -> str:
    """SIGSTOP `host` while its worker trains, holding nothing another host waits for
    (no advisory lock, no open transaction: a trial that ended just before the stop may
    have been asking for the next one); returns the worker. The caller sends SIGCONT."""
    import psycopg

    while True:
        trial = wait_until(lambda: host.running() and training(url, name), 180, "a trial")
        os.killpg(host.proc.pid, signal.SIGSTOP)
        with psycopg.connect(url, autocommit=True) as conn:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            ).fetchone()[0]
            locks = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()[0]
        now = load_study(url, name).trials[trial.number].state
        if not busy and not locks and now == TrialState.RUNNING:
            return trial.user_attrs["worker"]
        os.killpg(host.proc.pid, signal.SIGCONT)


def assert_no_duplicates(study) -> None:
    ids = [t.user_attrs.get("mlflow_run_id") for t in study.trials if t.state in FINISHED]
    assert len(ids) == len(set(ids))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


@pytest.mark.slow
@needs_pg
def test_two_commands_share_one_study(pg, mlflow_server, tmp_path, hosts):
    n = 6
    url, sweep = pg.url("postgres"), write_sweep(tmp_path, "shared", n, epochs=12)
    # a paused host must not lose its trial to the heartbeat check
    env = {"BPSTUDY_HEARTBEAT_GRACE_SECONDS": "600"}
    a = hosts("host-a").start(sweep, url, mlflow_server.url, env=env)
    parent = wait_until(
        lambda: a.running() and parent_of(url, "shared"), 180, "the study and its parent run"
    )
    # Host a could finish all six trials while host b starts up (it did once, on a loaded
    # machine), so host a is paused inside its first trial until host b has one.
    first = pause_inside_a_trial(a, url, "shared")
    try:
        b = hosts("host-b").start(sweep, url, mlflow_server.url, env=env)
        wait_until(
            lambda: b.running() and workers_of(url, "shared") - {first}, 180, "host b's trial"
        )
    finally:
        os.killpg(a.proc.pid, signal.SIGCONT)
    assert a.wait(600) == 0, a.stderr()
    assert b.wait(600) == 0, b.stderr()
    exp = MlflowClient(mlflow_server.url).get_run(parent).info.experiment_id
    for h in (a, b):
        assert "Traceback" not in h.stderr(), h.stderr()
        out = h.out.read_text()
        # one link to the parent run, and none of MLflow's two lines per trial
        assert (
            f"mlflow parent run {parent}: {mlflow_server.url}/#/experiments/{exp}/runs/{parent}\n"
            in out
        )
        assert "View run" not in out, out
    study = load_study(url, "shared")
    assert [t.state for t in study.trials].count(TrialState.FAIL) == 0
    assert len(study.trials) == n  # exactly n: neither host started a surplus trial
    assert_no_duplicates(study)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) >= 2, workers  # both hosts did trials
    check_runs(mlflow_server, study, parent, n)

    # the report reads the study from PostgreSQL and its runs from the server
    out = subprocess.run(
        [BPSTUDY, "report", "shared", "--storage", url, "--tracking-uri", mlflow_server.url,
         "--out", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "report" / "trials.csv")
    assert sorted(table["number"]) == list(range(n))
    assert table["mlflow_run_id"].notna().all() and table["val/loss"].notna().all()
    assert table["grad_norm/L01"].notna().all()
    client = MlflowClient(mlflow_server.url)
    logged = {Path(a.path).name for a in client.list_artifacts(parent, "report")}
    assert {"trials.csv", "summary.md", "grad_flow_profile.png"} <= logged


def retried_number(t) -> int | None:
    with warnings.catch_warnings():  # "experimental", or the pre-4.9 name's deprecation
        warnings.simplefilter("ignore")
        cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        cls = cls or optuna.storages.RetryFailedTrialCallback
        return cls.retried_trial_number(t)


# fast heartbeats, so that a dead host's trial is found stale within seconds
FAST_HEARTBEAT = {"BPSTUDY_HEARTBEAT_SECONDS": "1", "BPSTUDY_HEARTBEAT_GRACE_SECONDS": "6"}


def _open_at_once(opener, url: str, barrier, results) -> None:
    barrier.wait()
    try:
        opener(url)
        results.put("opened")
    except Exception as exc:  # noqa: BLE001 - the test shows what it was
        results.put(str(exc))


@pytest.mark.slow
@needs_pg
@pytest.mark.parametrize("opener", [open_storage, client_for], ids=["optuna", "mlflow"])
def test_commands_opening_a_new_database_at_once_all_open_it(pg, opener):
    """A SLURM array's tasks open a fresh database together: each created the tables (the
    study storage's, or an MLflow store's), and all but one failed with "duplicate key
    value violates unique constraint"."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for k in range(2):  # a round of 6 lost the race 2 to 4 times before the fix
        url = pg.create_database(f"fresh_{opener.__name__}_{k}")
        barrier, results = context.Barrier(6), context.Queue()
        procs = [context.Process(target=_open_at_once, args=(opener, url, barrier, results))
                 for _ in range(6)]  # fmt: skip
        for p in procs:
            p.start()
        said = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert said == ["opened"] * 6, said


@pytest.mark.slow
@needs_pg
def test_a_full_server_is_waited_for_when_the_storage_opens(capfd):
    """32 workers on a PostgreSQL at its default max_connections took every slot; the
    workers that started next died at once of "too many clients" (exit 1 after six). Now
    the storage waits, as through an outage, until a slot frees up."""
    import threading

    import psycopg

    from bpstudy.sweep import storage as storage_module

    cluster = PgCluster(max_connections=6).init()
    held: list = []
    try:
        cluster.start()
        url = cluster.create_database("optuna")
        while True:  # take every slot
            try:
                held.append(psycopg.connect(cluster.url("postgres")))
            except psycopg.OperationalError as exc:
                assert "too many clients" in str(exc)
                break
        result: dict = {}

        def open_it() -> None:
            try:
                result["storage"] = open_storage(url)
            except Exception as exc:  # noqa: BLE001 - the test shows what it was
                result["error"] = exc

        opening = threading.Thread(target=open_it)
        opening.start()
        wait_until(
            lambda: storage_module.OUTAGE.down or not opening.is_alive(), 60, "a refused open"
        )
        assert "error" not in result, result  # the old code failed here, at once
        for conn in held:
            conn.close()
        held.clear()
        opening.join(timeout=120)
        assert "error" not in result, result
        assert result["storage"].get_all_studies() == []
        assert not storage_module.OUTAGE.down
        err = capfd.readouterr().err
        assert err.count("warning: study storage unreachable") == 1, err
        assert "too many clients" in err
    finally:
        for conn in held:
            conn.close()
        cluster.cleanup()


@pytest.mark.slow
@needs_pg
def test_an_mlflow_database_with_its_tables_takes_no_lock(pg):
    """Only a new database needs the lock around MLflow's migrations: a command paused
    while holding it (Ctrl-Z) must not stall every trial on a database already made."""
    import threading

    import psycopg

    from bpstudy.tracking.store import SCHEMA_LOCK

    url = pg.create_database("mlflow_ready")
    client_for(url)  # makes the tables
    opened = []
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%(a)s, %(b)s)", SCHEMA_LOCK)
        worker = threading.Thread(target=lambda: opened.append(client_for(url)), daemon=True)
        worker.start()
        worker.join(timeout=120)
        assert opened, "client_for waited for the lock on a database with MLflow's tables"


@pytest.mark.slow
@needs_pg
def test_a_tracking_store_through_pg8000_takes_the_run(pg, cli, tmp_path):
    """SQLAlchemy's pure-Python PostgreSQL driver takes no `connect_timeout` (its keyword
    is `timeout`): the store's check refused every such URI."""
    url = pg.create_database("mlflow_pg8000").replace("postgresql://", "postgresql+pg8000://")
    out = cli("train", *TINY, "model.depth=2", "trainer.epochs=1", f"tracking.uri={url}")
    assert out.returncode == 0, out.stderr
    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("bpstudy").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert "grad_norm/L01" in runs[0].data.metrics  # its points reached the store too


@pytest.mark.slow
@needs_pg
@pytest.mark.parametrize("kill", ["host", "command"])
def test_sigkilled_host_trial_fails_by_heartbeat_and_is_retried(
    pg, mlflow_server, tmp_path, hosts, kill
):
    """A host SIGKILLed whole, or only its `bpstudy sweep` command (`kill -9`, the OOM
    killer): the other host fails its trial once the heartbeat is stale, and runs its
    values again. Killed alone, the command leaves no process behind: its worker went on
    with the trial (heartbeat and all) and the next ones, burning a core."""
    n = 6
    name = f"killed_{kill}"
    url, sweep = pg.url("postgres"), write_sweep(tmp_path, name, n, epochs=40)
    # both at once (a SLURM array's start): started after the study, host b once found
    # host a through with all six on a loaded machine. Pausing host a instead would let
    # the short heartbeat grace fail its trial.
    marks = {h: {**FAST_HEARTBEAT, "BPSTUDY_TEST_MARK": f"bpstudy-test-{uuid.uuid4().hex}"}
             for h in ("host-a", "host-b")}  # fmt: skip
    a = hosts("host-a").start(sweep, url, mlflow_server.url, env=marks["host-a"])
    b = hosts("host-b").start(sweep, url, mlflow_server.url, env=marks["host-b"])
    groups = {a.proc.pid: a, b.proc.pid: b}

    def owner(t) -> Host | None:
        """The host whose live worker took trial t (None: not yet marked, or gone)."""
        worker = t.user_attrs.get("worker")  # set just after the trial is asked for
        try:
            return groups.get(os.getpgid(int(worker.rpartition(":")[2]))) if worker else None
        except ProcessLookupError:
            return None

    def victim():
        # both hosts run on this machine, so a supervisor still setting up would recover a
        # dead trial by its pid: only once both have asked for a trial (so are past their
        # set-up) is the heartbeat what finds it
        a.running(), b.running()
        study = load_study(url, name)
        if study is None:
            return None
        trials = study.get_trials(deepcopy=False)
        if len({owner(t) for t in trials} - {None}) < 2:
            return None
        for t in trials:  # running, with its MLflow run, and far from its end
            if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs:
                host = owner(t)
                if host is not None and len(t.intermediate_values) < 25:
                    return t, host
        return None

    dead, host = wait_until(victim, 300, "a RUNNING trial early in its run")
    survivor = b if host is a else a
    if kill == "host":
        host.kill()  # the whole host: its supervisor and its worker, no goodbye
    else:
        marker = marks["host-a" if host is a else "host-b"]["BPSTUDY_TEST_MARK"]
        family = processes_marked(marker)  # the command, tracker, fork server and worker
        assert len(family) == 4 and int(dead.user_attrs["worker"].rpartition(":")[2]) in family
        os.kill(host.proc.pid, signal.SIGKILL)  # the command alone: its group lives on
        host.proc.wait(timeout=10)
        wait_until(lambda: not processes_marked(marker), 10, "the command's processes to end")
        assert load_study(url, name).trials[dead.number].state == TrialState.RUNNING
    assert survivor.wait(600) == 0, survivor.stderr()
    assert "Traceback" not in survivor.stderr(), survivor.stderr()

    study = load_study(url, name)
    trials = study.trials
    assert trials[dead.number].state == TrialState.FAIL
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = [t for t in trials if t.state in FINISHED]
    assert len(done) == n
    retries = [t for t in done if retried_number(t) == dead.number]
    assert len(retries) == 1 and retries[0].params == dead.params
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [dead.number]
    assert_no_duplicates(study)
    client = MlflowClient(mlflow_server.url)
    dead_run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED"
    assert "heartbeat" in dead_run.data.tags["bpstudy.error"]
    check_runs(mlflow_server, study, study.user_attrs["mlflow_parent_run_id"], n)


@pytest.mark.slow
@needs_pg
def test_sweep_survives_a_postgresql_restart(pg, mlflow_server, tmp_path, hosts):
    n = 6
    url, sweep = pg.url("postgres"), write_sweep(tmp_path, "pgrestart", n, epochs=15)
    a = hosts("host-a").start(sweep, url, mlflow_server.url, "--workers", "2")

    def mid_sweep():
        a.running()
        study = load_study(url, "pgrestart")
        if study is None:
            return False
        states = [t.state for t in study.get_trials(deepcopy=False)]
        return TrialState.RUNNING in states and any(s in FINISHED for s in states)

    wait_until(mid_sweep, 300, "a finished and a running trial")
    pg.restart()
    assert a.wait(600) == 0, a.stderr()
    assert "Traceback" not in a.stderr(), a.stderr()
    study = load_study(url, "pgrestart")
    assert len([t for t in study.trials if t.state in FINISHED]) == n
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert_no_duplicates(study)
    check_runs(mlflow_server, study, study.user_attrs["mlflow_parent_run_id"], n)


@pytest.fixture
def study_pg():
    """A cluster of its own for the study storage, to be stopped while the MLflow server
    (on the module's cluster) stays up."""
    cluster = PgCluster().init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


OUTAGE_HEARTBEAT = {"BPSTUDY_HEARTBEAT_SECONDS": "1", "BPSTUDY_HEARTBEAT_GRACE_SECONDS": "4"}
UNREACHABLE = "warning: study storage unreachable"


@pytest.mark.slow
@needs_pg
def test_an_outage_longer_than_the_heartbeat_grace_kills_no_live_trial(
    study_pg, mlflow_server, tmp_path, hosts
):
    """Issue 22, finding 2: PostgreSQL down for twice the grace, and a live trial was
    failed as stale by the other command's worker as soon as the database came back; its
    own worker then died with UpdateFinishedTrialError tracebacks. Finding 6: each command
    printed two warnings, and sometimes Optuna's 8-line block."""
    # 3 trials for 4 workers: one waits for the others, judging their heartbeats as it
    # waits (it failed them as soon as the database was back)
    n, grace = 3, float(OUTAGE_HEARTBEAT["BPSTUDY_HEARTBEAT_GRACE_SECONDS"])
    url, sweep = study_pg.url("postgres"), write_sweep(tmp_path, "outage", n, epochs=200)
    a, b = (
        hosts(name).start(sweep, url, mlflow_server.url, "--workers", "2", env=OUTAGE_HEARTBEAT)
        for name in ("host-a", "host-b")
    )

    def all_training():
        a.running(), b.running()
        study = load_study(url, "outage")
        running = [] if study is None else study.get_trials(states=(TrialState.RUNNING,))
        live = [t for t in running if t.intermediate_values and "mlflow_run_id" in t.user_attrs]
        return [t.number for t in live] if len(live) == n else None

    live = wait_until(all_training, 300, f"{n} trials training")
    study_pg.stop()
    time.sleep(3 * grace)  # the outage itself: the commands must ride it out
    study_pg.start()
    for host in (a, b):
        assert host.wait(600) == 0, host.stderr()
        err = host.stderr()
        assert "Traceback" not in err, err
        assert err.count(UNREACHABLE) == 1, err
        assert "Falling back" not in err, err
    study = load_study(url, "outage")
    trials = study.trials
    assert [trials[k].state for k in live] == [TrialState.COMPLETE] * n
    assert [t.number for t in trials if t.state == TrialState.FAIL] == []
    assert len([t for t in trials if t.state in FINISHED]) == n
    assert_no_duplicates(study)


@pytest.mark.slow
@needs_pg
def test_sweep_survives_an_mlflow_server_restart(pg, mlflow_server, tmp_path, hosts):
    n = 6
    url, sweep = pg.url("postgres"), write_sweep(tmp_path, "mlrestart", n, epochs=15)
    a = hosts("host-a").start(sweep, url, mlflow_server.url, "--workers", "2")

    def in_flight():
        a.running()
        study = load_study(url, "mlrestart")
        if study is None:
            return False
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return any("mlflow_run_id" in t.user_attrs for t in running)

    wait_until(in_flight, 300, "a trial with its MLflow run in flight")
    mlflow_server.stop()
    time.sleep(3)
    mlflow_server.start()
    assert a.wait(900) == 0, a.stderr()
    assert "Traceback" not in a.stderr(), a.stderr()
    study = load_study(url, "mlrestart")
    trials = study.trials
    assert len([t for t in trials if t.state in FINISHED]) == n
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for t in trials:  # a trial that could not be tracked failed clearly, with its error
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("error"), t.number
    assert_no_duplicates(study)
    check_runs(mlflow_server, study, study.user_attrs["mlflow_parent_run_id"], n)
