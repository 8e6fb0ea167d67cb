"""A sweep worker: asks the shared study for trials and runs them until the study holds
n_trials finished (complete + pruned) trials.

`bpstudy sweep` forks one per `--workers` from a warm fork server (bpstudy.sweep.pool),
with BLAS threads already limited through the environment, and calls `run_job`. Local
workers take trials under a file lock, so together they never start more than n_trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from optuna.trial import TrialState

from bpstudy.shutdown import quick_exit
from bpstudy.sweep import interrupt
from bpstudy.sweep.counts import count_trials
from bpstudy.sweep.locks import file_lock, study_lock

FAILS_IN_A_ROW = 10  # a worker whose trials all fail (a store gone, a bug) stops the sweep
WAIT_SECONDS = 2.0  # an RDB study whose last trials run elsewhere: look again this often
# exit codes the supervisor reads (130: Ctrl-C or SIGTERM)
FAILING_EXIT = 3  # FAILS_IN_A_ROW failed: reported with the last trial's error
SAMPLER_FAILED_EXIT = 4  # the sampler raised: the supervisor stops the sweep with its error
SETTINGS_CHANGED_EXIT = 5  # another command set the new study up with other settings


@dataclasses.dataclass(frozen=True)
class WorkerArgs:
    sweep: str
    study_name: str
    n_trials: int
    extra: list[str]
    storage: str
    parent_run_id: str | None
    lock: str
    seed_offset: int = 0
    tracking_uri: str | None = None
    settings: dict | None = None  # the study's, as this command set them up


def load(args: WorkerArgs):
    import optuna

    from bpstudy.sweep.failures import end_mlflow_run_of
    from bpstudy.sweep.samplers import make_pruner, make_sampler
    from bpstudy.sweep.spec import load_spec
    from bpstudy.sweep.storage import open_storage, stored

    spec = dataclasses.replace(
        load_spec(args.sweep), study_name=args.study_name, n_trials=args.n_trials
    )
    seed = spec.sampler.get("seed")
    # workers must not propose the same values in lockstep; but the grid sampler's seed
    # shuffles the grid, whose cells it hands out by trial number: every worker needs the
    # same shuffle, or two workers run one cell and none runs another
    if seed is not None and spec.sampler["name"] != "grid":
        spec = dataclasses.replace(
            spec, sampler={**spec.sampler, "seed": (seed + args.seed_offset) % 2**32}
        )

    def on_failed(study, trial) -> None:
        end_mlflow_run_of(trial, args.tracking_uri, "worker lost (heartbeat stopped)")

    storage = open_storage(args.storage, on_failed_trial=on_failed)
    study = stored(
        lambda: optuna.load_study(
            study_name=spec.study_name,
            storage=storage,
            sampler=make_sampler(spec),
            pruner=make_pruner(spec),
        )
    )
    return spec, storage, study


def work(args: WorkerArgs) -> int:
    from bpstudy.sweep.storage import OUTAGE, stored, trial_id
    from bpstudy.sweep.study import settings_clash
    from bpstudy.sweep.trial import run_trial
    from bpstudy.tracking.store import WAIT_VAR

    OUTAGE.warns = False  # the supervisor says it, once for the command (see Outage)

    # a tracking server that is restarting: wait for it before a trial, instead of failing
    # trial after trial (MLflow's client itself retries each call with backoff)
    os.environ.setdefault(WAIT_VAR, "120")
    spec, storage, study = load(args)
    shared = heartbeat_interval(storage) is not None
    failed_in_a_row = 0
    while True:
        interrupt.check()  # between trials: the last one is told and its run ended
        with file_lock(args.lock), study_lock(args.storage, study.study_name):
            if stored(lambda: settings_clash(study, args.settings)):
                return SETTINGS_CHANGED_EXIT
            fail_stale(storage, study)
            c = count_trials(study)
            if c.finished >= spec.n_trials:
                return 0
            if c.finished + c.running >= spec.n_trials:
                if not shared:  # local workers: the supervisor looks after dead ones
                    return 0
                # an RDB study: the running trials may belong to workers on other hosts;
                # wait until they finish, or until their heartbeat goes stale and they
                # are failed and queued again (then this worker runs them)
                trial = None
            else:
                trial = ask(study, spec)
                if trial is None:
                    return SAMPLER_FAILED_EXIT
        if trial is None:
            time.sleep(WAIT_SECONDS)
            continue
        with heartbeat(storage, trial_id(storage, study.study_name, trial.number)):
            state = run_trial(trial, spec, args.extra, args.parent_run_id)
        failed_in_a_row = failed_in_a_row + 1 if state == TrialState.FAIL else 0
        if failed_in_a_row >= FAILS_IN_A_ROW:
            return FAILING_EXIT


def ask(study, spec):
    """study.ask(space), in two steps: the trial is claimed (its `worker` attribute set)
    before the sampler runs, so a sampler that raises (an argument it only reads once past
    its startup trials) leaves a FAIL trial with the error, not a RUNNING one for ever.
    Returns None then."""
    from bpstudy.errors import first_line
    from bpstudy.sweep.spec import suggest
    from bpstudy.sweep.storage import is_connection_error, stored
    from bpstudy.sweep.trial import set_attr, tell

    with warnings.catch_warnings():  # "heartbeat ... with Study.optimize": see heartbeat()
        warnings.simplefilter("ignore")
        # Not idempotent: retried after a lost connection, and a connection lost after
        # PostgreSQL committed the new trial but before its reply came makes a second
        # one. The first then stays RUNNING, with no worker attribute and no heartbeat,
        # so neither the supervisor nor fail_stale_trials (which skips trials that never
        # beat) fails it; the study counts it as running until it is failed by hand.
        # The window is one round trip; a refused connection (the usual outage) is safe.
        trial = stored(study.ask)
    # at once, so a worker killed from here on is found by its pid
    set_attr(trial, "worker", f"{socket.gethostname()}:{os.getpid()}")
    try:
        for name, dist in spec.space.items():
            stored(lambda n=name, d=dist: suggest(trial, n, d))
    except Exception as exc:
        if is_connection_error(exc):  # the database, not the sampler: as any storage outage
            raise
        error = f"sampler {spec.sampler['name']} failed: {type(exc).__name__}: {first_line(exc)}"
        set_attr(trial, "error", error[:2000])
        tell(trial, state=TrialState.FAIL)
        return None
    return trial


def heartbeat_interval(storage) -> int | None:
    """Seconds between heartbeats for a storage that keeps them (RDB storages: Optuna's
    public get_heartbeat_interval), else None."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


def fail_stale(storage, study) -> None:
    """RDB storages: fail (and retry) trials whose worker stopped beating. Study.optimize
    does this before each trial; ask/tell workers must do it themselves.

    Not right after an outage: the other workers could not beat either, and a worker
    that judged their beats by the time it was cut off failed their live trials as soon
    as the database came back. It waits until the storage has answered it for a grace
    period and a heartbeat interval, so that the live workers' beats are in again."""
    from bpstudy.sweep.storage import GRACE_SECONDS, OUTAGE, stored

    interval = heartbeat_interval(storage)
    if not interval or OUTAGE.answering_for() < GRACE_SECONDS + interval:
        return
    import optuna

    with warnings.catch_warnings():  # "experimental"
        warnings.simplefilter("ignore")
        stored(lambda: optuna.storages.fail_stale_trials(study))


@contextmanager
def heartbeat(storage, trial_id: int):
    """RDB storages: record the trial's heartbeat while it runs. Optuna does this only
    inside Study.optimize, so without it a dead remote worker's trial stays RUNNING."""
    from bpstudy.sweep.periodic import repeated
    from bpstudy.sweep.storage import stored

    interval = heartbeat_interval(storage)
    if not interval:
        yield
        return

    def beat(stop: threading.Event) -> None:
        # retried through an outage like any call (the trial's end stops the retries);
        # a beat that still fails is not worth a failed trial
        with contextlib.suppress(Exception):
            stored(lambda: storage.record_heartbeat(trial_id), sleep=stop.wait)

    with repeated(beat, interval, "bpstudy-heartbeat"):
        yield


def run_job(args: WorkerArgs) -> None:
    """A forked worker's life: run trials, then exit with 0, or 130 on Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGINT, interrupt.request)  # acted on at safe points only
    signal.signal(signal.SIGTERM, interrupt.request)
    from bpstudy.sweep.orphans import exit_with_command

    exit_with_command()  # a SIGKILLed command leaves no worker behind
    try:
        if args.tracking_uri:  # the store the supervisor resolved, for every trial
            os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
        Path(args.lock).touch()
        code = work(args)
    except KeyboardInterrupt:
        code = 130
    quick_exit(code)  # skip interpreter teardown (and multiprocessing's own exit path)
