"""`bpstudy sweep`: check the sweep, open (or resume) the study and its MLflow parent run,
start K worker processes (forks of one warm process: bpstudy.sweep.pool), show progress,
and look after workers that die.

Each worker gets max(1, cores // K) BLAS threads, so K workers never oversubscribe the
machine. A worker that dies mid-trial (SIGKILL, OOM) is noticed here: its trial is marked
FAIL, its values are queued to run again, its MLflow run ends FAILED, and a replacement
worker starts. Running the same command again resumes the study until it holds n_trials
finished (complete + pruned) trials. Ctrl-C stops the workers (their runs end KILLED) and
leaves the study resumable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import socket
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from multiprocessing import Process
from multiprocessing.connection import wait
from pathlib import Path

from optuna.trial import TrialState

from bpstudy.errors import BpstudyError, redact, shown
from bpstudy.shutdown import stop_signals_handled
from bpstudy.sweep.failures import fail_and_retry
from bpstudy.sweep.pool import WorkerPool
from bpstudy.sweep.spec import (
    SweepSpec,
    check_space,
    format_value,
    load_spec,
    make_pruner,
    make_sampler,
    pruner_notes,
    try_sampler_and_pruner,
)
from bpstudy.sweep.storage import (
    PARENT_ATTR,
    SETTINGS_ATTR,
    STORE_ATTR,
    StorageError,
    check_url,
    default_storage_url,
    is_rdb,
    journal_path,
    open_storage,
)
from bpstudy.sweep.worker import (
    FAILING_EXIT,
    FAILS_IN_A_ROW,
    SAMPLER_FAILED_EXIT,
    SETTINGS_CHANGED_EXIT,
    WorkerArgs,
    counts,
    file_lock,
    settings_clash,
    study_lock,
)
from bpstudy.tracking.tracker import STUDY_TAG

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


@dataclass
class SweepOutcome:
    study_name: str
    storage: str
    counts: dict[str, int]
    best: str | None
    parent_run_id: str | None
    tracking_uri: str | None
    interrupted: bool = False
    experiment_id: str | None = None


def create_study(spec: SweepSpec, storage):
    import optuna

    try:
        study = optuna.create_study(
            study_name=spec.study_name,
            storage=storage,
            sampler=make_sampler(spec),
            pruner=make_pruner(spec),
            directions=list(spec.directions),
            load_if_exists=True,
        )
    except ValueError as exc:
        raise BpstudyError(f"study '{spec.study_name}': {str(exc).splitlines()[0]}") from None
    check_objective(study, spec)
    return study


OBJECTIVE_ATTR = "bpstudy.objective"  # the metrics and directions the study was created with


def check_objective(study, spec: SweepSpec) -> None:
    """A study resumes with the objective it was created with. Optuna loads a stored study
    whatever directions are asked for: a file switched to two objectives failed every
    trial at `tell`, for ever; one switched to another metric or direction labelled the
    stored values with the new name."""
    wanted = [[m, d] for m, d in zip(spec.metrics, spec.directions, strict=True)]
    stored = study.user_attrs.get(OBJECTIVE_ATTR)
    if stored is None:  # new (or made by an older bpstudy): its directions at least
        stored_dirs = [d.name.lower() for d in study.directions]
        if stored_dirs == list(spec.directions):
            study.set_user_attr(OBJECTIVE_ATTR, wanted)
            return
        stored = [["its objective", d] for d in stored_dirs]
    if stored != wanted:
        said = ", ".join(f"{m} ({d})" for m, d in stored)
        asks = ", ".join(f"{m} ({d})" for m, d in wanted)
        raise BpstudyError(
            f"study '{spec.study_name}' optimises {said}; {spec.path.name} asks for {asks}: "
            "give the sweep another study_name (or --study-name), or use another --storage"
        )


# how a run is shown and where it is logged, not what it computes (and a tracking URI may
# hold a password): left out of the settings a study keeps
NOT_SETTINGS = ("trainer.progress", "tracking")


def study_settings(spec: SweepSpec, base) -> dict:
    """What every trial of the study shares: the composed config of its fixed part (the
    file's overrides, the command line's, the single-valued params; flattened to dotted
    keys, the searched keys and the groups they choose left out), and the searched space
    (Optuna's JSON per key). Compared by value, so 1e-2 is 0.01 and restating a default
    or moving an override into the file changes nothing."""
    from optuna.distributions import distribution_to_json

    from bpstudy.config.compose import GROUPS
    from bpstudy.config.serialize import flatten, to_dict

    chosen = tuple(f"{k}." for k in spec.space if k in GROUPS)
    config = {
        k: v
        for k, v in flatten(to_dict(base)).items()
        if k not in spec.space and not k.startswith(chosen) and not _not_a_setting(k)
    }
    space = {k: distribution_to_json(d) for k, d in spec.space.items()}
    return {"config": config, "space": space}


def _not_a_setting(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_SETTINGS)


def check_settings(study, spec: SweepSpec, base, storage_url: str) -> dict:
    """A study resumes with the settings it was created with. A resume with, say,
    trainer.epochs=3 where the first trials had 2 mixed incomparable trials in one study,
    its best trial and its report, without a word. Until it holds a trial, a study takes
    the settings of the command at hand (a first command stopped in its set-up, say); the
    workers check them again before each trial (another command may have set its own
    meanwhile). Returns this command's settings, for its workers to compare."""
    wanted = study_settings(spec, base)
    # under the lock the workers take a trial with: a command that sets a new study's
    # settings either comes before every trial, or sees one and compares
    with file_lock(_lock_path(storage_url, spec.study_name)), study_lock(study):
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None or "config" not in stored or not study.get_trials(deepcopy=False):
            study.set_user_attr(SETTINGS_ATTR, wanted)
            return wanted
    change = settings_change(stored, wanted)
    if change:
        raise BpstudyError(
            f"study '{spec.study_name}' was run with {redact(change)}: its trials would not "
            "be comparable; give another study_name (or --study-name), or use another --storage"
        )
    return wanted


def settings_change(stored: dict, wanted: dict) -> str | None:
    """The first setting in which `wanted` differs from the study's `stored` ones."""
    change = _config_change(stored["config"], wanted["config"])
    return change or _space_change(stored["space"], wanted["space"])


def _config_change(was: dict, now: dict) -> str | None:
    """The first key both configs have with another value (a key only one has came with
    another bpstudy version: its default is what the other ran with)."""
    for key, value in was.items():
        if key in now and now[key] != value:
            return f"{key}={shown(value)}, this command {key}={shown(now[key])}"
    return None


def _space_change(was: dict, now: dict) -> str | None:
    """The first param searched differently (compared as distributions, not as text)."""
    from optuna.distributions import json_to_distribution

    old = {k: json_to_distribution(v) for k, v in was.items()}
    new = {k: json_to_distribution(v) for k, v in now.items()}
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key) != new.get(key):
            return (
                f"params.{key} {old.get(key, 'not searched')}, "
                f"this command {new.get(key, 'not searched')}"
            )
    return None


@dataclass
class _Parent:
    """The study's parent run, known from the moment it exists or is resumed (RUNNING),
    so that however the command ends, it ends the run."""

    client: object = None
    run_id: str | None = None
    experiment_id: str | None = None

    def end(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            with _quiet_unless(status == "FINISHED"):
                self.client.set_terminated(self.run_id, status)


def parent_run(
    client, experiment_id: str, spec: SweepSpec, storage_url: str, parent: _Parent
) -> str:
    """The study's MLflow parent run: found by tag on resume, created once otherwise;
    recorded in `parent` as soon as it is RUNNING."""
    where = storage_url if not is_rdb(storage_url) else redact(storage_url)
    query = f"tags.`{STUDY_TAG}` = '{spec.study_name}' and tags.`bpstudy.study_storage` = '{where}'"
    found = client.search_runs(
        [experiment_id], filter_string=query, order_by=["attributes.start_time ASC"]
    )
    if found:
        parent.client, parent.run_id = client, found[0].info.run_id
        client.update_run(parent.run_id, status="RUNNING")
        return parent.run_id
    tags = {
        STUDY_TAG: spec.study_name,
        "optuna.study": spec.study_name,
        "bpstudy.sweep_file": str(spec.path),
        "bpstudy.study_storage": where,
        "mlflow.runName": f"study {spec.study_name}",
    }
    run = client.create_run(experiment_id, run_name=f"study {spec.study_name}", tags=tags)
    parent.client, parent.run_id = client, run.info.run_id
    # commands started at the same moment on several hosts may each have created one:
    # the earliest wins, the others delete their own
    found = client.search_runs(
        [experiment_id], filter_string=query, order_by=["attributes.start_time ASC"]
    )
    if found and found[0].info.run_id != run.info.run_id:
        parent.run_id = found[0].info.run_id  # RUNNING: its creator's command runs
        client.delete_run(run.info.run_id)
        return parent.run_id
    client.log_dict(
        run.info.run_id,
        {k: v for k, v in dataclasses.asdict(spec).items() if k != "space"}
        | {"space": {k: repr(v) for k, v in spec.space.items()}},
        "sweep.json",
    )
    return run.info.run_id


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


def recover_orphans(study, tracking_uri: str | None, pids: set[int] | None = None) -> int:
    """Fail and retry RUNNING trials of workers on this host that are gone."""
    host = socket.gethostname()
    recovered = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        whost, _, pid = worker.rpartition(":")
        if whost != host or not pid.isdigit():
            continue
        pid_n = int(pid)
        if (pids is not None and pid_n in pids) or (pids is None and not _pid_alive(pid_n)):
            try:
                fail_and_retry(study, t, tracking_uri, f"worker {worker} died during the trial")
                recovered += 1
            except Exception:  # noqa: BLE001 - finished meanwhile: nothing to recover
                pass
    return recovered


def describe_best(study, spec: SweepSpec) -> str | None:
    try:
        if spec.multi_objective:
            best = study.best_trials
            return f"{len(best)} Pareto-optimal trials" if best else None
        t = study.best_trial
    except ValueError:
        return None
    inactive = set(t.user_attrs.get("inactive_params", ()))  # sampled, but not used
    values = ", ".join(f"{k}={format_value(v)}" for k, v in t.params.items() if k not in inactive)
    return f"best {spec.metrics[0]} {t.value:.5g} (trial #{t.number}: {values})"


class Progress:
    def __init__(self, spec: SweepSpec, enabled: bool) -> None:
        self.spec, self.bar = spec, None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=spec.n_trials,
                unit="trial",
                desc=spec.study_name,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self.last = None

    def update(self, study) -> dict[TrialState, int]:
        c = counts(study)
        done = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        best = None
        if not self.spec.multi_objective and c[TrialState.COMPLETE]:
            try:
                best = study.best_value
            except ValueError:
                best = None
        status = {
            "complete": c[TrialState.COMPLETE],
            "pruned": c[TrialState.PRUNED],
            "failed": c[TrialState.FAIL],
            "running": c[TrialState.RUNNING],
        }
        if best is not None and math.isfinite(best):
            status["best"] = f"{best:.4g}"
        if self.bar is not None:
            self.bar.n = min(done, self.spec.n_trials)
            self.bar.set_postfix(status, refresh=False)
            self.bar.refresh()
        elif (done, c[TrialState.FAIL]) != self.last:
            print(
                f"{self.spec.study_name}: {done}/{self.spec.n_trials} finished  "
                + "  ".join(f"{k} {v}" for k, v in status.items()),
                file=sys.stderr,
                flush=True,
            )
        self.last = (done, c[TrialState.FAIL])
        return c

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _set_up(spec: SweepSpec, extra, storage: str | None, parent: _Parent):
    """Check the space, open (or resume) the study and its MLflow parent run (recorded in
    `parent`). Returns (study, storage_url, tracking_uri); tracking_uri is None when
    tracking is off."""
    base = check_space(spec, list(extra))  # every choice composes and validates
    notes = try_sampler_and_pruner(spec)  # bad arguments fail before any storage exists
    notes += pruner_notes(spec, base.trainer.epochs)
    tracking_uri, client = None, None
    if base.tracking.enabled:
        from bpstudy.tracking.store import check_store, resolve_uri

        tracking_uri = resolve_uri(base.tracking.uri)
        check_store(tracking_uri)
    storage_url = storage or default_storage_url(
        tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    )
    # a bad --storage fails before mlflow.db is written: checked, or for a database opened
    # (connecting is the check); a journal file is created only once the store is open
    check_url(storage_url)
    opened = open_storage(storage_url) if is_rdb(storage_url) else None
    # before the client, which makes a new store: a resume refused must not make one
    check_store_kept(stored_attrs(storage_url, opened, spec.study_name), spec, tracking_uri)
    if tracking_uri is not None:
        from bpstudy.tracking.store import client_for, experiment_id

        client = client_for(tracking_uri, checked=True)  # checked above
    study = create_study(spec, opened or open_storage(storage_url))
    settings = check_settings(study, spec, base, storage_url)
    if client is not None:
        check_experiment(client, study, spec, base.tracking.experiment)
        exp = experiment_id(client, base.tracking.experiment)
        parent.experiment_id = exp
        parent_id = parent_run(client, exp, spec, storage_url, parent)
        study.set_user_attr(PARENT_ATTR, parent_id)
        study.set_user_attr(STORE_ATTR, store_id(tracking_uri))
    for note in notes:  # Optuna's deprecations: once the command goes on, not before its error
        print(note, file=sys.stderr)
    return study, storage_url, tracking_uri, settings


def stored_attrs(storage_url: str, opened, name: str) -> dict | None:
    """The user attributes of study `name`, if the storage holds it; None for a new study.
    Nothing is made to look: a journal file that is not there holds no study."""
    if opened is None:
        if not journal_path(storage_url).is_file():
            return None
        opened = open_storage(storage_url)
    try:
        return opened.get_study_user_attrs(opened.get_study_id_from_name(name))
    except KeyError:
        return None


def store_id(uri: str) -> str:
    """A tracking store as its study records it: an SQLite file by its absolute path (a
    relative one names another file from another folder), others as given, redacted."""
    from bpstudy.tracking.store import sqlite_path

    db = sqlite_path(uri)
    return f"sqlite:///{db.expanduser().resolve()}" if db is not None else redact(uri)


def check_store_kept(attrs: dict | None, spec: SweepSpec, tracking_uri: str | None) -> None:
    """A tracked study resumes tracked, into the store that holds its parent run. Another
    store got a second parent run with the new trials only, and `report` then found the
    others' runs in neither; with tracking off, trials came without runs."""
    stored = (attrs or {}).get(STORE_ATTR)
    run_id = (attrs or {}).get(PARENT_ATTR)
    if stored is None or run_id is None:
        return  # a new study, or one tracking never saw
    name = spec.study_name
    if tracking_uri is None:
        raise BpstudyError(
            f"tracking.enabled=false: study '{name}' logs its trials to MLflow ({stored}); "
            "resume it with tracking on, or give the study another name"
        )
    if store_id(tracking_uri) == stored or _server_holds_run(tracking_uri, stored, run_id):
        return
    raise BpstudyError(
        f"tracking.uri={redact(tracking_uri)}: study '{name}' logs to the MLflow store "
        f"{stored} (parent run {run_id}); resume it with that store, or give the study "
        "another name"
    )


def _server_holds_run(tracking_uri: str, stored: str, run_id: str) -> bool:
    """Two addresses of one MLflow server (a host's name and its IP) hold the same runs:
    asked, which a server answers without writing. A database or file is not opened
    to look: MLflow's client would make its tables there."""
    servers = ("http://", "https://")
    if not (tracking_uri.startswith(servers) and stored.startswith(servers)):
        return False
    from mlflow.exceptions import MlflowException

    from bpstudy.tracking.store import client_for

    try:
        client_for(tracking_uri, checked=True).get_run(run_id)
    except (MlflowException, BpstudyError):
        return False
    return True


def check_experiment(client, study, spec: SweepSpec, name: str) -> None:
    """A study resumes in the MLflow experiment that holds its parent run. Named another
    one, the command made a second parent run there, with the new trials only, and
    `bpstudy report` logged to that one."""
    from mlflow.exceptions import MlflowException

    run_id = study.user_attrs.get(PARENT_ATTR)
    if not run_id:
        return
    try:
        run = client.get_run(run_id)
        holder = client.get_experiment(run.info.experiment_id)
    except MlflowException:  # another tracking store, or the run deleted for good
        return
    if run.info.lifecycle_stage == "active" and holder.name != name:
        raise BpstudyError(
            f"tracking.experiment={name}: study '{spec.study_name}' logs to MLflow "
            f"experiment '{holder.name}' (parent run {run_id}); resume it with "
            f"tracking.experiment={holder.name}, or give the study another name"
        )


def run_sweep(
    sweep: str,
    n_trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    extra: list[str] | tuple[str, ...] = (),
    progress: str = "auto",
    pool: WorkerPool | None = None,
) -> SweepOutcome:
    """`pool`: the workers' fork server, when the caller started it even earlier (it is
    closed here either way); otherwise one is started here, ahead of the set-up."""
    if workers < 1:
        if pool is not None:
            pool.close()
        raise BpstudyError(f"--workers must be >= 1, got {workers}")
    pool = pool or WorkerPool(workers)
    try:
        spec = load_spec(sweep)
        spec = dataclasses.replace(
            spec, n_trials=n_trials or spec.n_trials, study_name=study_name or spec.study_name
        )
        return _run(pool, spec, workers, extra, storage, progress)
    finally:
        pool.close()


def _run(
    pool: WorkerPool, spec: SweepSpec, workers: int, extra, storage: str | None, progress: str
) -> SweepOutcome:
    procs: dict[int, Process] = {}
    signals = _Signals(procs)
    parent, study, bar = _Parent(), None, None
    status = "RUNNING"  # the parent run's, once the loop is left
    with stop_signals_handled(signals):  # from the set-up on: the parent run always ends
        try:
            study, storage_url, tracking_uri, settings = _set_up(spec, extra, storage, parent)
            parent_id = parent.run_id
            args = WorkerArgs(str(spec.path), spec.study_name, spec.n_trials, list(extra),
                              storage_url, parent_id, _lock_path(storage_url, spec.study_name),
                              0, tracking_uri, settings)  # fmt: skip
            supervisor = _Supervisor(pool, study, spec, args, procs)
            bar = Progress(spec, progress == "bar" or (progress == "auto" and sys.stderr.isatty()))
            supervisor.start(workers)
            supervisor.watch(bar)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            if study is None:  # in the set-up: nothing to stop or recover
                raise
            _stop(procs.values())
            recover_orphans(study, tracking_uri, pids={p.pid for p in procs.values()})
            signals.absorb_repeats()
        except BaseException as exc:
            signals.stopping, status = True, "FAILED"  # a Ctrl-C now kills the workers
            _stop(procs.values())  # no worker outlives the command
            if isinstance(exc, SettingsClashError):
                parent.run_id = None  # the other command's: it runs on
            raise
        finally:
            if bar is not None:
                bar.close()
            parent.end("KILLED" if status == "RUNNING" else status)
    out = _outcome(study, spec, storage_url, parent_id, tracking_uri, status == "KILLED")
    return dataclasses.replace(out, experiment_id=parent.experiment_id)


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
    storage, study_id = study._storage, study._study_id
    key = f"bpstudy:joined_at:{n_trials}"
    with file_lock(lock):
        joined = storage.get_study_system_attrs(study_id).get(key, [])
        live = [w for w in joined if _still_runs(w, host)]
        storage.set_study_system_attr(study_id, key, [*live, f"{host}:{pid}"])
    return len(live)


def _still_runs(worker: str, host: str) -> bool:
    """A `host:pid` entry of this host whose process is gone has ended (another host's,
    on a journal they share, is taken as running)."""
    name, _, pid = worker.rpartition(":")
    return name != host or (pid.isdigit() and _pid_alive(int(pid)))


class _Supervisor:
    """Starts the workers and watches them: a worker that dies mid-study has its trial
    failed and queued again and a replacement started (up to MAX_WORKER_DEATHS)."""

    def __init__(self, pool: WorkerPool, study, spec: SweepSpec, args: WorkerArgs, procs) -> None:
        self.pool, self.study, self.spec, self.args = pool, study, spec, args
        self.procs: dict[int, Process] = procs  # shared with _Signals
        self.next_index, self.deaths = 0, 0

    def start(self, workers: int) -> None:
        recover_orphans(self.study, self.args.tracking_uri)  # this host's dead workers' trials
        n = len(self.study.get_trials(deepcopy=False))
        host, pid, a = socket.gethostname(), os.getpid(), self.args
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
            change = settings_clash(self.study, self.args.settings)
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
        recover_orphans(self.study, self.args.tracking_uri, pids={proc.pid})
        if self.deaths > MAX_WORKER_DEATHS:
            raise SweepAbortedError(
                f"sweep '{name}': workers died {self.deaths} times (last exit code {code}); "
                "stopped. The study is resumable once the cause is fixed"
            )
        c = counts(self.study)
        if c[TrialState.COMPLETE] + c[TrialState.PRUNED] < self.spec.n_trials:
            self._start_one()


def _last_error(study, starting: str = "") -> str:
    """The error of the last FAIL trial (of those whose error starts with `starting`)."""
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    errors = [str(t.user_attrs.get("error", "no error recorded")) for t in failed]
    errors = [e for e in errors if e.startswith(starting)]
    return errors[-1] if errors else "?"


def _outcome(study, spec: SweepSpec, storage_url: str, parent_id: str | None,
             tracking_uri: str | None, interrupted: bool) -> SweepOutcome:  # fmt: skip
    c = counts(study)
    finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
    if not interrupted and finished < spec.n_trials:
        running = c[TrialState.RUNNING]
        held = f"study {spec.study_name} holds {finished} of {spec.n_trials} finished trials"
        if running:  # another command's (this one's workers have all ended)
            one = running == 1
            print(f"{held}; {running} {'is' if one else 'are'} running in another command, which "
                  f"finishes {'it' if one else 'them'} (if that command was stopped, run this "
                  "one again to resume)", file=sys.stderr)  # fmt: skip
        else:
            print(f"warning: {held}; run the command again to resume", file=sys.stderr)
    return SweepOutcome(
        study_name=spec.study_name,
        storage=storage_url,
        counts={
            "complete": c[TrialState.COMPLETE],
            "pruned": c[TrialState.PRUNED],
            "failed": c[TrialState.FAIL],
        },
        best=describe_best(study, spec),
        parent_run_id=parent_id,
        tracking_uri=tracking_uri,
        interrupted=interrupted,
    )


def _lock_path(storage_url: str, study_name: str) -> str:
    if not is_rdb(storage_url):
        return storage_url.removeprefix("journal:") + ".workers-lock"
    safe = "".join(ch if ch.isalnum() else "_" for ch in study_name)
    return str(Path(tempfile.gettempdir()) / f"bpstudy-{safe}.lock")


def _running(p: Process) -> bool:
    return p.exitcode is None or _pid_alive(p.pid)  # see _pid_alive: 255 may be a live one


def _stop(procs) -> None:
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


class _Signals:
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


@contextlib.contextmanager
def _quiet_unless(loud: bool):
    """Let errors through only when nothing else is on its way out: a failure to end the
    parent run must not hide the error that ended the sweep."""
    if loud:
        yield
        return
    with contextlib.suppress(Exception):
        yield


__all__ = ["StorageError", "SweepOutcome", "run_sweep"]
