"""`bpstudy sweep`, as a story: check the sweep, open (or resume) the study and its MLflow
parent run, start K worker processes (forks of one warm process: bpstudy.sweep.pool),
show progress, and end the parent run however the command ends.

Each worker gets max(1, cores // K) BLAS threads, so K workers never oversubscribe the
machine. A worker that dies mid-trial (SIGKILL, OOM) is looked after by the supervisor
(bpstudy.sweep.supervisor). Running the same command again resumes the study until it
holds n_trials finished (complete + pruned) trials. Ctrl-C stops the workers (their runs
end KILLED) and leaves the study resumable.

Where each part lives: the sweep file (spec), its sampler and pruner (samplers), the space
check (space), the study and its frozen settings (study), the parent run (parent), the
workers' supervisor (supervisor), one worker (worker), one trial (trial).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from multiprocessing import Process
from pathlib import Path

from bpstudy.shutdown import stop_signals_handled
from bpstudy.sweep.counts import TrialCounts, count_trials
from bpstudy.sweep.locks import lock_path
from bpstudy.sweep.parent import ParentRun, check_store_kept, open_parent_run
from bpstudy.sweep.pool import WorkerPool, check_workers
from bpstudy.sweep.progress import Progress, describe_best
from bpstudy.sweep.samplers import pruner_notes, try_sampler_and_pruner
from bpstudy.sweep.space import check_space
from bpstudy.sweep.spec import SweepSpec, load_spec
from bpstudy.sweep.storage import (
    StorageError,
    check_url,
    default_storage_url,
    is_rdb,
    open_storage,
)
from bpstudy.sweep.study import check_settings, create_study, stored_attrs
from bpstudy.sweep.supervisor import (
    SettingsClashError,
    Signals,
    Supervisor,
    recover_orphans,
    stop_workers,
)
from bpstudy.sweep.worker import WorkerArgs


@dataclass
class SweepOutcome:
    study_name: str
    storage: str
    counts: TrialCounts
    best: str | None
    parent_run_id: str | None
    tracking_uri: str | None
    interrupted: bool = False
    experiment_id: str | None = None


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
    pool = pool or WorkerPool(workers)  # checks `workers`
    try:
        check_workers(workers)  # a pool the caller started: with another count?
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
    signals = Signals(procs)
    parent, study, bar = ParentRun(), None, None
    status = "RUNNING"  # the parent run's, once the loop is left
    with stop_signals_handled(signals):  # from the set-up on: the parent run always ends
        try:
            study, storage_url, tracking_uri, settings = _set_up(spec, extra, storage, parent)
            parent_id = parent.run_id
            args = WorkerArgs(str(spec.path), spec.study_name, spec.n_trials, list(extra),
                              storage_url, parent_id, lock_path(storage_url, spec.study_name),
                              0, tracking_uri, settings)  # fmt: skip
            supervisor = Supervisor(pool, study, spec, args, procs)
            bar = Progress(spec, progress == "bar" or (progress == "auto" and sys.stderr.isatty()))
            supervisor.start(workers)
            supervisor.watch(bar)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            if study is None:  # in the set-up: nothing to stop or recover
                raise
            stop_workers(procs.values())
            recover_orphans(study, storage_url, tracking_uri, pids={p.pid for p in procs.values()})
            signals.absorb_repeats()
        except BaseException as exc:
            signals.stopping, status = True, "FAILED"  # a Ctrl-C now kills the workers
            stop_workers(procs.values())  # no worker outlives the command
            if isinstance(exc, SettingsClashError):
                parent.run_id = None  # the other command's: it runs on
            raise
        finally:
            if bar is not None:
                bar.close()
            try:
                parent.record(study, spec, loud=status == "FINISHED")
            finally:
                parent.end("KILLED" if status == "RUNNING" else status)
    out = _outcome(study, spec, storage_url, parent_id, tracking_uri, status == "KILLED")
    return dataclasses.replace(out, experiment_id=parent.experiment_id)


def _set_up(spec: SweepSpec, extra, storage: str | None, parent: ParentRun):
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
        from bpstudy.tracking.store import client_for

        client = client_for(tracking_uri, checked=True)  # checked above
    study = create_study(spec, opened or open_storage(storage_url))
    settings = check_settings(study, spec, base, storage_url)
    if client is not None:
        open_parent_run(parent, client, study, spec, base.tracking.experiment, storage_url,
                        tracking_uri)  # fmt: skip
    for note in notes:  # Optuna's deprecations: once the command goes on, not before its error
        print(note, file=sys.stderr)
    return study, storage_url, tracking_uri, settings


def _outcome(study, spec: SweepSpec, storage_url: str, parent_id: str | None,
             tracking_uri: str | None, interrupted: bool) -> SweepOutcome:  # fmt: skip
    c = count_trials(study)
    finished = c.finished
    if not interrupted and finished < spec.n_trials:
        running = c.running
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
        counts=c,
        best=describe_best(study, spec),
        parent_run_id=parent_id,
        tracking_uri=tracking_uri,
        interrupted=interrupted,
    )


__all__ = ["StorageError", "SweepOutcome", "run_sweep"]
