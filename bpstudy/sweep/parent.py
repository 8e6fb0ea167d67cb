"""The study's MLflow parent run, its experiment and its tracking store.

Each trial's run is nested under one parent run per study: found by tag on resume,
created once otherwise (commands started together on several hosts keep the earliest).
A tracked study resumes tracked, into the store and the experiment that hold its parent
run; `ParentRun` ends the run however the command ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from dataclasses import dataclass

from bpstudy.errors import BpstudyError, first_line, redact, without_password
from bpstudy.sweep.spec import SweepSpec
from bpstudy.sweep.storage import PARENT_ATTR, STORE_ATTR, is_rdb, stored
from bpstudy.sweep.study_metrics import log_spec_params, log_study_metrics
from bpstudy.tracking.tracker import STUDY_TAG


@dataclass
class ParentRun:
    """The study's parent run, known from the moment it exists or is resumed (RUNNING),
    so that however the command ends, it ends the run."""

    client: object = None
    run_id: str | None = None
    experiment_id: str | None = None

    def record(self, study, spec: SweepSpec, loud: bool) -> None:
        """The study's metrics by trial number (sweep.study_metrics), as the sweep ends.
        A store that fails here costs a finished sweep nothing but a warning line (`loud`)
        and the points, which the next command logs: they are a summary, not the results."""
        if self.client is None or self.run_id is None or study is None:
            return
        try:
            log_study_metrics(self.client, self.run_id, study, spec)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if loud:
                print(f"warning: the parent run's study metrics were not logged: "
                      f"{redact(first_line(exc))}", file=sys.stderr, flush=True)  # fmt: skip

    def end(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            with _quiet_unless(status == "FINISHED"):
                self.client.set_terminated(self.run_id, status)


def parent_run(
    client, experiment_id: str, spec: SweepSpec, storage_url: str, parent: ParentRun
) -> str:
    """The study's MLflow parent run: found by tag on resume, created once otherwise;
    recorded in `parent` as soon as it is RUNNING."""
    where = storage_url if not is_rdb(storage_url) else redact(storage_url)
    found = _parent_runs(client, experiment_id, spec.study_name, storage_url)
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
    found = _parent_runs(client, experiment_id, spec.study_name, storage_url)
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


def _parent_runs(client, experiment_id: str, study: str, storage_url: str) -> list:
    """The study's parent runs, earliest first, tagged with its storage as shown (a
    password as ***) or as given the other way: a study resumed with its password in
    PGPASSWORD, after a URL that held it (or back), keeps its parent run."""
    shown = redact(storage_url) if is_rdb(storage_url) else storage_url
    bare = without_password(shown)
    masked = _USER_AT.sub(r"\1:***@", bare, count=1)
    for where in dict.fromkeys((shown, bare, masked)):
        query = f"tags.`{STUDY_TAG}` = '{study}' and tags.`bpstudy.study_storage` = '{where}'"
        found = client.search_runs(
            [experiment_id], filter_string=query, order_by=["attributes.start_time ASC"]
        )
        if found:
            return found
    return []


_USER_AT = re.compile(r"(//[^/:@\s]+)@")  # //user@, without a password


def open_parent_run(parent: ParentRun, client, study, spec: SweepSpec, experiment: str,
                    storage_url: str, tracking_uri: str) -> str:  # fmt: skip
    """The study's parent run in `experiment` (the one that holds it, on resume), recorded
    in `parent` and in the study's user attributes with its store."""
    from bpstudy.tracking.store import experiment_id

    check_experiment(client, study, spec, experiment)
    parent.experiment_id = experiment_id(client, experiment)
    run_id = parent_run(client, parent.experiment_id, spec, storage_url, parent)
    log_spec_params(client, run_id, spec)  # the sweep file, as the run's params
    stored(lambda: study.set_user_attr(PARENT_ATTR, run_id))
    stored(lambda: study.set_user_attr(STORE_ATTR, store_id(tracking_uri)))
    return run_id


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
    same = without_password(store_id(tracking_uri)) == without_password(stored)
    if same or _server_holds_run(tracking_uri, stored, run_id):
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

    run_id = stored(lambda: study.user_attrs).get(PARENT_ATTR)
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


@contextlib.contextmanager
def _quiet_unless(loud: bool):
    """Let errors through only when nothing else is on its way out: a failure to end the
    parent run must not hide the error that ended the sweep."""
    if loud:
        yield
        return
    with contextlib.suppress(Exception):
        yield
