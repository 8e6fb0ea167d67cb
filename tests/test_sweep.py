"""`bpstudy sweep` through the real CLI: real Optuna storages and MLflow stores in tmp_path.

The study lives in `bpstudy.journal` beside `mlflow.db` in the working folder (tmp_path);
the tests read both back with Optuna and MlflowClient, as a user would.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from optuna.distributions import BaseDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from bpstudy.paths import SWEEPS_DIR
from bpstudy.sweep.interrupt import INTERRUPTED
from bpstudy.sweep.samplers import make_pruner, make_sampler
from bpstudy.sweep.space import check_space
from bpstudy.sweep.spec import load_spec
from tests.conftest import file_modes_apply, listing, processes_marked, wait_until

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
TINY = ["data=digits", "trainer.epochs=2", "model.width=16", "trainer.progress=none"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SHIPPED = sorted(SWEEPS_DIR.glob("*.yaml"))


# ---------------------------------------------------------------- helpers


def write_sweep(folder: Path, name: str = "tiny", **fields) -> Path:
    """A sweep file for tiny trials; `fields` replace or add top-level keys."""
    tree = {
        "study_name": name,
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": 2,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "overrides": list(TINY),
        "params": {"model.depth": "range(1, 4)", "optimizer.lr": "tag(log, interval(0.01, 0.5))"},
    }
    tree.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def journal_study(folder: Path, name: str) -> optuna.Study:
    path = folder / "bpstudy.journal"
    assert path.is_file(), "no study journal beside mlflow.db"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def mlflow_client(folder: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def all_runs(client: MlflowClient) -> list:
    exp = client.get_experiment_by_name("bpstudy")
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=5000)


def parent_and_children(client: MlflowClient, study_name: str):
    """The study's one parent run, and its child runs by trial number."""
    runs = all_runs(client)
    parents = [r for r in runs if r.data.tags.get("bpstudy.study") == study_name]
    assert len(parents) == 1, f"{len(parents)} parent runs for study {study_name}"
    parent = parents[0]
    children: dict[int, list] = {}
    for r in runs:
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id:
            assert r.data.tags["optuna.study"] == study_name
            children.setdefault(int(r.data.tags["optuna.trial"]), []).append(r)
    return parent, children


def assert_child_matches(trial, runs: list) -> None:
    """Exactly one child run for the trial: the one it recorded, with its values as params."""
    assert len(runs) == 1, f"trial {trial.number} has {len(runs)} child runs"
    run = runs[0]
    assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
    assert run.info.status == "FINISHED"
    for key, value in trial.params.items():
        assert run.data.params[key] == str(value), (trial.number, key)


def finished(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- shipped sweep files


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sweep_parses_and_maps_to_optuna(path):
    spec = load_spec(path.stem)  # by name, as `bpstudy sweep NAME` finds it
    assert spec.path.resolve() == path.resolve()
    assert spec.n_trials >= 1 and spec.metrics and spec.space
    assert all(isinstance(d, BaseDistribution) for d in spec.space.values())
    assert isinstance(make_sampler(spec), optuna.samplers.BaseSampler)
    assert isinstance(make_pruner(spec), optuna.pruners.BasePruner)
    check_space(spec)  # every choice and both ends of every range compose and validate


def test_shipped_sweeps_exist():
    assert "quickstart" in [p.stem for p in SHIPPED]


# ---------------------------------------------------------------- bad input: exit 2, one line

BASE = (
    "study_name: bad\nmetric: val/loss\nn_trials: 2\n"
    "overrides: [data=digits, trainer.epochs=2, model.width=16, trainer.progress=none]\n"
)
BAD_FILES = {
    # id: (file text, extra args, substrings the one stderr line must hold)
    "malformed_yaml": ("study_name: [bad\n  n_trials: 2\n", [], ["line 2", "malformed YAML"]),
    "unknown_top_key": (
        BASE + "colour: red\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["'colour'", "study_name"],
    ),
    "unknown_param_path": (
        BASE + "params: {model.nope: 'choice(1, 2)'}\n",
        [],
        ["params.model.nope"],
    ),
    "unknown_fixed_param": (
        BASE + "params: {model.depth: 'choice(1, 2)', trainer.bogus: 3}\n",
        [],
        ["params.trainer.bogus"],
    ),
    "unknown_override": (
        BASE.replace("data=digits,", "data=digits, model.nope=1,")
        + "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["overrides", "model.nope"],
    ),
    "bad_grammar": (
        BASE + "params: {model.depth: 'choice(1, 2'}\n",
        [],
        ["params.model.depth", "cannot parse"],
    ),
    "unknown_sampler": (
        BASE + "sampler: {name: annealing}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler 'annealing'", "tpe"],
    ),
    "unknown_sampler_argument": (
        BASE + "sampler: {name: tpe, warmup: 3}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler.warmup", "n_startup_trials"],
    ),
    "unknown_pruner": (
        BASE + "pruner: {name: patience}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["pruner 'patience'", "median"],
    ),
    "grid_over_interval": (
        BASE + "sampler: {name: grid}\nparams: {optimizer.lr: 'interval(0.01, 0.1)'}\n",
        [],
        ["params.optimizer.lr", "grid", "interval"],
    ),
    "value_not_allowed": (
        BASE + "params: {model.activation: 'choice(sigmoid, swish)'}\n",
        [],
        ["params.model.activation", "swish", "tanh"],
    ),
    "metric_not_allowed": (
        BASE.replace("val/loss", "val/f1") + "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["metric 'val/f1'", "val/accuracy"],
    ),
    "command_line_out_of_range": (
        BASE + "params: {model.depth: 'choice(1, 2)'}\n",
        ["model.width=-3"],
        ["command line", ">= 1"],
    ),
    "command_line_unknown_key": (
        BASE + "params: {model.depth: 'choice(1, 2)'}\n",
        ["model.nope=1"],
        ["command line", "'model.nope'"],
    ),
    "command_line_sets_a_swept_key": (  # the sampled value would replace it, silently
        BASE + "params: {model.activation: 'choice(tanh, relu)'}\n",
        ["model.activation=bogus"],
        ["command line", "bad.yaml"],
    ),
    "blank_study_name": (
        BASE.replace("study_name: bad", "study_name: ' '")
        + "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["'study_name' must not be blank"],
    ),
    "metric_and_metrics": (  # one pair was silently ignored
        BASE + "metrics: [val/loss, wall_time]\ndirections: [minimize, minimize]\n"
        "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["either metric/direction or metrics/directions"],
    ),
    "same_metric_twice": (  # the report crashed on it
        BASE.replace("metric: val/loss\n", "")
        + "metrics: [val/loss, val/loss]\ndirections: [minimize, minimize]\n"
        "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["names a metric twice"],
    ),
    "n_trials_text": (
        BASE.replace("n_trials: 2", "n_trials: abc") + "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["'n_trials' must be an integer, got abc"],  # it said "must be a int"
    ),
    "log_tag_on_a_choice": (  # the tag was ignored
        BASE + "params: {optimizer.lr: 'tag(log, choice(0.1, 0.01))'}\n",
        [],
        ["params.optimizer.lr", "tag(log, ...) applies to interval(...) only"],
    ),
    "unknown_tag": (
        BASE + "params: {optimizer.lr: 'tag(foo, interval(0.01, 0.1))'}\n",
        [],
        ["params.optimizer.lr", "unknown tag ['foo']"],
    ),
    "file_override_sets_a_param": (  # the sampled value silently won
        BASE.replace("model.width=16", "model.width=16, model.depth=4")
        + "params: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["overrides: model.depth=4", "also in params"],
    ),
    "none_pruner_argument": (
        BASE + "pruner: {name: none, foo: 1}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["pruner.foo is not an argument of NopPruner; it takes none"],
    ),
    # argument types, named by key (Optuna said "Cannot cast scalar from dtype('<U3')")
    "text_seed": (
        BASE + "sampler: {name: random, seed: abc}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler.seed=abc must be an integer or null"],
    ),
    "negative_seed": (
        BASE + "sampler: {name: tpe, seed: -1}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler.seed=-1", "2**32"],
    ),
    "text_pruner_argument": (
        BASE
        + "pruner: {name: median, n_warmup_steps: abc}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["pruner.n_warmup_steps=abc must be an integer"],
    ),
    "null_bool_argument": (
        BASE + "sampler: {name: tpe, group: null}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler.group=null must be a boolean (true/false)"],
    ),
    "callable_argument": (
        BASE + "sampler: {name: tpe, gamma: 0.1}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["sampler.gamma", "Python object"],
    ),
    "glob_of_a_key": (
        BASE + "params: {model.depth: 'glob(*)'}\n",
        [],
        ["params.model.depth", "glob(...) picks options of a config group"],
    ),
    "glob_matching_nothing": (
        BASE + "params: {optimizer: 'glob(zz*)'}\n",
        [],
        ["params.optimizer", "matches none of", "adam"],
    ),
    "hydra_key_as_param": (
        BASE + "params: {hydra.run.dir: 'choice(a, b)'}\n",
        [],
        ["params.hydra.run.dir", "not a Hydra job"],
    ),
    "pruner_with_two_objectives": (  # it was silently replaced by none
        BASE.replace("metric: val/loss\n", "")
        + "metrics: [val/loss, wall_time]\ndirections: [minimize, minimize]\n"
        + "pruner: {name: median, n_warmup_steps: 2}\nparams: {model.depth: 'choice(1, 2)'}\n",
        [],
        ["pruner median", "several objectives (val/loss, wall_time)", "none"],
    ),
    "nothing_to_sample": (  # its summary read "best val/loss ... (trial #0: )"
        BASE + "params: {model.depth: 2}\n",
        [],
        ["params: every value is fixed (model.depth)", "choice(...)"],
    ),
    "workers_zero": (BASE + "params: {model.depth: 'choice(1, 2)'}\n", ["--workers", "0"], []),
    "n_trials_zero": (BASE + "params: {model.depth: 'choice(1, 2)'}\n", ["--n-trials", "0"], []),
}


def assert_one_line_error(out, *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bpstudy: error: "), lines[0]
    assert "Traceback" not in out.stderr
    assert out.stdout == ""
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def assert_nothing_started(folder: Path) -> None:
    """No study journal, and no MLflow run (half-written or not)."""
    assert not (folder / "bpstudy.journal").exists()
    if (folder / "mlflow.db").exists():
        assert all_runs(mlflow_client(folder)) == []


@contextlib.contextmanager
def background_sweep(folder: Path, path: Path, marker: str = ""):
    """`bpstudy sweep PATH --workers 2` running in its own process group (as a terminal's
    job would be), output in folder/stdout.txt and stderr.txt; yields the process and
    kills its group if the block leaves it running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BPSTUDY_TEST_MARK": marker}
    with (folder / "stdout.txt").open("w") as out_f, (folder / "stderr.txt").open("w") as err_f:
        proc = subprocess.Popen(
            [BPSTUDY, "sweep", str(path), "--workers", "2", "--progress", "lines"],
            cwd=folder, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def sweeps_at_once(folder: Path, path: Path, *extras: list[str]) -> list[tuple[int, str]]:
    """`bpstudy sweep PATH` started together in `folder`, one command per list of extra
    arguments; (exit code, stderr) of each, once all have ended."""
    procs = [
        subprocess.Popen(
            [BPSTUDY, "sweep", str(path), "--progress", "lines", *extra],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in extras
    ]
    ended = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        ended.append((p.returncode, err))
    return ended


def outputs(folder: Path) -> tuple[str, str]:
    return (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text()


def started_trials(folder: Path, study_name: str) -> list:
    """The study's RUNNING trials that have their MLflow run; [] before it exists."""
    journal = folder / "bpstudy.journal"
    if not journal.exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(journal)))
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # study not created yet
        return []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if "mlflow_run_id" in t.user_attrs]


def long_sweep(folder: Path, name: str, n_trials: int) -> Path:
    """A sweep whose trials take a few seconds each: long enough to catch one mid-run."""
    return write_sweep(
        folder,
        name,
        n_trials=n_trials,
        overrides=["data=digits", "trainer.epochs=200", "model.width=64", "trainer.progress=none"],
        params={"model.depth": "choice(2, 3)", "optimizer.lr": "interval(0.01, 0.1)"},
    )


def wait_for_started(folder: Path, study_name: str, k: int) -> list:
    """The study's k RUNNING trials, once k have their MLflow run."""

    def started():
        trials = started_trials(folder, study_name)
        return trials if len(trials) == k else None

    return wait_until(started, 180, f"{k} RUNNING trials with MLflow runs")


def sweep_to_files(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`bpstudy sweep ARGS` with its output in files, not pipes (which a surviving child
    would hold open, hiding it), then a check that it left no process of its own behind:
    the workers it starts ahead of the checks must be gone with it."""
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    out_path, err_path = folder / "sweep.out", folder / "sweep.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        code = subprocess.run(
            [BPSTUDY, "sweep", *args], cwd=folder, stdout=out, stderr=err, timeout=300,
            stdin=subprocess.DEVNULL, env={**os.environ, "BPSTUDY_TEST_MARK": marker},
        ).returncode  # fmt: skip
    assert processes_marked(marker) == []
    return subprocess.CompletedProcess(args, code, out_path.read_text(), err_path.read_text())


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_sweep_input_is_one_line_exit_2(cli, tmp_path, case):
    text, args, needles = BAD_FILES[case]
    (tmp_path / "bad.yaml").write_text(text)
    out = sweep_to_files(tmp_path, "bad.yaml", *args, "--progress", "lines")
    line = assert_one_line_error(out, *needles)
    if args:  # a bad option or override: the message names it (an override by its key)
        assert args[0].partition("=")[0] in line
    else:  # a bad file: the message names it
        assert "bad.yaml" in line
    assert_nothing_started(tmp_path)


def test_missing_data_fails_before_the_study(cli, tmp_path):
    """Checked up front like the config: it would fail every trial, one after another."""
    path = write_sweep(tmp_path, "nodata")
    out = cli("sweep", str(path), "data=csv", "data.path=missing.csv", "--progress", "lines")
    assert_one_line_error(out, "data.path=missing.csv", "no such file")
    assert list(tmp_path.iterdir()) == [path]


def test_no_sweep_given_lists_shipped_sweeps(cli, tmp_path):
    out = cli("sweep", "--workers", "2")
    line = assert_one_line_error(out, "give a sweep")
    assert "overrides" not in line  # they are optional: argparse said both were required
    for path in SHIPPED:
        assert path.stem in line
    assert list(tmp_path.iterdir()) == []


def test_unknown_sweep_name_lists_shipped_sweeps(cli, tmp_path):
    out = cli("sweep", "no_such_sweep", "--progress", "lines")
    line = assert_one_line_error(out, "no_such_sweep")
    for path in SHIPPED:
        assert path.stem in line
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize(
    "kind",
    [
        "postgresql",
        "journal_in_missing_folder",
        "no_scheme",
        "folder",
        "not_a_journal",
        "redis",
        "bad_port",
    ],
)
def test_unreachable_storage_is_one_line_exit_2(cli, tmp_path, kind):
    path = write_sweep(tmp_path, "bad")
    if kind == "postgresql":
        url = f"postgresql://u:p@127.0.0.1:{free_port()}/db"
    elif kind == "no_scheme":
        url = "study.journal"  # a typo'd URL must not quietly become a journal file
    elif kind == "folder":  # 'Is a directory', with mlflow.db left behind
        url = f"journal:{tmp_path}"
    elif kind == "not_a_journal":  # a JSONDecodeError traceback
        url = f"journal:{path}"
    elif kind == "redis":  # "Can't load plugin: sqlalchemy.dialects:redis"
        url = "redis://127.0.0.1/0"
    elif kind == "bad_port":  # a ValueError traceback from SQLAlchemy's URL parser
        url = "postgresql://u:p@127.0.0.1:abc/db"
    else:
        url = f"journal:{tmp_path / 'missing' / 'study.journal'}"
    out = cli("sweep", str(path), "--storage", url, "--progress", "lines")
    line = assert_one_line_error(out, "--storage", url.split("@")[-1])
    if kind == "journal_in_missing_folder":
        assert "does not exist" in line
    if kind == "no_scheme":
        assert "journal:PATH" in line and "postgresql://" in line
    if kind == "folder":
        assert "give a journal file" in line
    if kind == "not_a_journal":
        assert "is not an Optuna journal file" in line
    if kind == "redis":
        assert "redis:// is not a database SQLAlchemy knows" in line and "journal:PATH" in line
    if kind == "bad_port":
        assert "not a valid URL" in line and "u:***@" in line
    assert_nothing_started(tmp_path)
    assert not (tmp_path / "missing").exists()
    assert list(tmp_path.iterdir()) == [path]  # no mlflow.db either


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BPSTUDY_HEARTBEAT_SECONDS", "ten"),
        ("BPSTUDY_HEARTBEAT_GRACE_SECONDS", "0"),
        ("BPSTUDY_STORAGE_RETRY_SECONDS", "-5"),
    ],
)
def test_a_bad_storage_tuning_variable_is_one_line_exit_2(cli, tmp_path, name, value):
    """docs/reference.md's storage variables: a value that is no number of seconds > 0
    was quietly replaced by the default; now it is refused before anything is written."""
    path = write_sweep(tmp_path, "bad")
    out = cli("sweep", str(path), "--progress", "lines", env={name: value})
    assert_one_line_error(out, f"{name}={value!r}", "seconds > 0")
    assert_nothing_started(tmp_path)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("kind", ["sweep_file", "folder_of_the_sweep_file", "data_file", "journal"])
def test_unreadable_file_is_one_line_exit_2(cli, tmp_path, kind):
    """A PermissionError was a 26-line traceback (exit 1), an unreadable journal "not an
    Optuna journal file". Run with file modes binding, as root they would not."""
    path = write_sweep(tmp_path, "locked")
    args: list[str] = []
    locked = path
    if kind == "folder_of_the_sweep_file":
        locked = tmp_path / "private"
        locked.mkdir()
        path = path.rename(locked / path.name)
    elif kind == "data_file":
        locked = tmp_path / "data.csv"
        locked.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
        args = ["data=csv", f"data.path={locked}"]
    elif kind == "journal":
        locked = tmp_path / "study.journal"
        locked.write_text("")
        args = ["--storage", f"journal:{locked}"]
    locked.chmod(0)
    before = listing(tmp_path)
    try:
        out = cli("sweep", str(path), *args, "--progress", "lines", prefix=file_modes_apply())
    finally:
        locked.chmod(0o700)
    line = assert_one_line_error(out, locked.name, "permission denied")
    assert listing(tmp_path) == before, line  # no mlflow.db, no journal, no lock file


# ---------------------------------------------------------------- a diverging region


def test_diverging_trials_are_pruned_as_diverged(cli, tmp_path):
    # sigma_w 6.0 at depth 20 with lr 1.0 goes NaN in its first steps; 1.0 trains
    path = write_sweep(
        tmp_path,
        "diverge",
        sampler={"name": "grid", "seed": 0},
        overrides=[
            *TINY,
            "model.depth=20",
            "model.activation=relu",
            "model.init.scheme=normal",
            "optimizer.lr=1.0",
        ],
        params={"model.init.sigma_w": "choice(1.0, 6.0)"},
    )
    out = cli("sweep", str(path), "--progress", "lines")
    assert out.returncode == 0, out.stderr
    # the grid runs out with the last trial: no worker may crash on Optuna's Study.stop()
    assert "Traceback" not in out.stderr
    assert "1 complete, 1 pruned, 0 failed" in out.stdout
    study = journal_study(tmp_path, "diverge")
    by_sigma = {t.params["model.init.sigma_w"]: t for t in study.trials}
    assert sorted(by_sigma) == [1.0, 6.0] and len(study.trials) == 2
    bad, good = by_sigma[6.0], by_sigma[1.0]
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["outcome"] == "diverged"
    assert isinstance(bad.user_attrs["diverged_step"], int) and bad.user_attrs["diverged_step"] >= 0
    assert bad.user_attrs["prune_reason"].startswith("diverged")
    assert good.state == TrialState.COMPLETE and math.isfinite(good.value)
    assert good.user_attrs["outcome"] != "diverged"
    _, children = parent_and_children(mlflow_client(tmp_path), "diverge")
    for trial in (bad, good):
        assert_child_matches(trial, children[trial.number])
    assert children[bad.number][0].data.tags["bpstudy.outcome"] == "diverged"


# ---------------------------------------------------------------- parallel workers


@pytest.mark.slow
def test_two_workers_eight_trials(cli, tmp_path):
    path = write_sweep(
        tmp_path,
        "eight",
        n_trials=8,
        params={
            "model.depth": "range(1, 4)",
            "model.activation": "choice(tanh, relu)",
            "optimizer.lr": "tag(log, interval(0.01, 0.5))",
        },
    )
    # an override after the options, as the command's usage line shows it
    out = cli("sweep", str(path), "--workers", "2", "--progress", "lines", "trainer.batch_size=48")
    assert out.returncode == 0, out.stderr
    assert "8 complete, 0 pruned, 0 failed" in out.stdout
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["eight"]
    study = journal_study(tmp_path, "eight")
    trials = study.trials
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 8  # no repeated values
    client = mlflow_client(tmp_path)
    parent, children = parent_and_children(client, "eight")
    assert parent.info.status == "FINISHED"
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert parent.info.run_id in out.stdout
    assert sorted(children) == list(range(8))
    for t in trials:
        assert_child_matches(t, children[t.number])
        assert children[t.number][0].data.params["trainer.batch_size"] == "48"
    assert len(all_runs(client)) == 9  # 8 children + the parent, nothing else


@pytest.mark.slow
def test_grid_with_two_workers_and_a_resume_runs_every_cell_once(cli, tmp_path):
    path = write_sweep(
        tmp_path,
        "cells",
        n_trials=12,
        sampler={"name": "grid", "seed": 3},
        params={
            "model.depth": "choice(1, 2, 3)",
            "model.activation": "choice(tanh, relu)",
            "optimizer.lr": "choice(0.01, 0.1)",
        },
    )
    first = cli("sweep", str(path), "--workers", "2", "--n-trials", "5", "--progress", "lines")
    assert first.returncode == 0, first.stderr
    second = cli("sweep", str(path), "--workers", "2", "--progress", "lines")
    assert second.returncode == 0, second.stderr
    assert "12 complete, 0 pruned, 0 failed" in second.stdout
    trials = journal_study(tmp_path, "cells").trials
    cells = [tuple(sorted(t.params.items())) for t in trials]
    assert len(trials) == 12 and len(set(cells)) == 12
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


@pytest.mark.slow
def test_resume_adds_only_the_missing_trials(cli, tmp_path):
    path = write_sweep(tmp_path, "resume", n_trials=2)
    first = cli("sweep", str(path), "--progress", "lines")
    assert first.returncode == 0, first.stderr
    before = {t.number: t for t in journal_study(tmp_path, "resume").trials}
    assert len(before) == 2
    parent_before, _ = parent_and_children(mlflow_client(tmp_path), "resume")

    second = cli("sweep", str(path), "--n-trials", "4", "--workers", "2", "--progress", "lines")
    assert second.returncode == 0, second.stderr
    assert "4 complete, 0 pruned, 0 failed" in second.stdout
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["resume"]
    study = journal_study(tmp_path, "resume")
    trials = study.trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for number, old in before.items():  # the first two are untouched
        assert trials[number].params == old.params
        assert trials[number].datetime_complete == old.datetime_complete
        assert trials[number].user_attrs["mlflow_run_id"] == old.user_attrs["mlflow_run_id"]
    # a seeded sampler must not replay the values the study already holds
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    client = mlflow_client(tmp_path)
    parent, children = parent_and_children(client, "resume")
    assert parent.info.run_id == parent_before.info.run_id
    assert parent.info.status == "FINISHED"
    assert sorted(children) == [0, 1, 2, 3]
    for t in trials:
        assert_child_matches(t, children[t.number])
    assert len(all_runs(client)) == 5

    # a third invocation with nothing missing adds nothing
    third = cli("sweep", str(path), "--n-trials", "4", "--progress", "lines")
    assert third.returncode == 0, third.stderr
    assert len(journal_study(tmp_path, "resume").trials) == 4
    assert len(all_runs(client)) == 5


# ---------------------------------------------------------------- a worker SIGKILLed mid-trial


@pytest.mark.slow
def test_sigkilled_worker_trial_fails_and_is_retried(tmp_path):
    n = 3
    path = long_sweep(tmp_path, "killed", n)
    with background_sweep(tmp_path, path) as proc:

        def early_trial():  # early in its run: far from finishing before the signal lands
            young = [
                t for t in started_trials(tmp_path, "killed") if len(t.intermediate_values) < 50
            ]
            return young[0] if young else None

        victim = wait_until(early_trial, 180, "a RUNNING trial with an MLflow run")
        pid = int(victim.user_attrs["worker"].rpartition(":")[2])
        assert pid != proc.pid  # a worker, not the supervisor
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=240)
    stdout, stderr = outputs(tmp_path)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr

    study = journal_study(tmp_path, "killed")
    trials = study.trials
    assert len(finished(study)) == n
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL
    assert "died" in dead.user_attrs["error"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retries) == 1
    assert retries[0].state in FINISHED
    assert retries[0].params == dead.params
    assert [t for t in trials if t.state == TrialState.FAIL] == [dead]
    assert "1 failed" in stdout

    client = mlflow_client(tmp_path)
    dead_run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED"
    assert dead_run.data.tags["bpstudy.outcome"] == "failed"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent, children = parent_and_children(client, "killed")
    assert parent.info.status == "FINISHED"
    for t in finished(study):
        assert_child_matches(t, children[t.number])


@pytest.mark.slow
def test_a_trial_failed_by_another_worker_is_kept_and_its_worker_goes_on(tmp_path):
    """Issue 22, finding 2: a worker whose live trial another worker had failed (stale
    after an outage) died with UpdateFinishedTrialError tracebacks, its work lost. Here
    the trial is failed from outside, as that other worker would."""
    from bpstudy.sweep.storage import open_storage

    n = 3
    path = long_sweep(tmp_path, "taken", n)
    with background_sweep(tmp_path, path) as proc:
        victim = wait_until(
            lambda: next((t for t in started_trials(tmp_path, "taken")
                          if 3 <= len(t.intermediate_values) < 50), None),
            180, "a RUNNING trial early in its run",
        )  # fmt: skip
        storage = open_storage(f"journal:{tmp_path / 'bpstudy.journal'}")  # the workers' lock
        optuna.load_study(study_name="taken", storage=storage).tell(
            victim.number, state=TrialState.FAIL
        )
        proc.wait(timeout=300)
    _, stderr = outputs(tmp_path)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    said = [line for line in stderr.splitlines() if f"trial #{victim.number} " in line]
    assert len(said) == 1 and "failed by another worker" in said[0], stderr

    study = journal_study(tmp_path, "taken")
    kept = [t for t in study.trials if t.user_attrs.get("taken_from") == victim.number]
    assert len(kept) == 1 and f"kept as trial #{kept[0].number}" in said[0]
    assert kept[0].state == TrialState.COMPLETE and kept[0].params == victim.params
    assert len(kept[0].intermediate_values) == 200  # every epoch, those after the fail too
    assert kept[0].user_attrs["mlflow_run_id"] == victim.user_attrs["mlflow_run_id"]
    assert study.trials[victim.number].state == TrialState.FAIL
    assert len(finished(study)) == n
    run = mlflow_client(tmp_path).get_run(victim.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert f"kept as trial #{kept[0].number}" in run.data.tags["bpstudy.error"]


@pytest.mark.slow
def test_a_killed_fork_server_stops_the_sweep_cleanly(tmp_path):
    """The workers' fork server SIGKILLed (OOM killer) while both workers are mid-trial:
    their exit codes, which come through it, are lost, but the supervisor sees they still
    run, stops them and exits 1 with one line; nothing is left RUNNING and the same
    command then finishes the study."""
    n = 2
    path = long_sweep(tmp_path, "serverless", n)
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:
        running = wait_for_started(tmp_path, "serverless", 2)
        worker = int(running[0].user_attrs["worker"].rpartition(":")[2])
        server = int(Path(f"/proc/{worker}/stat").read_text().rpartition(")")[2].split()[1])
        assert server != proc.pid  # the workers' parent is the fork server
        os.kill(server, signal.SIGKILL)
        proc.wait(timeout=120)
    _, stderr = outputs(tmp_path)
    assert proc.returncode == 1, stderr
    assert "fork server died" in stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    assert processes_marked(marker) == []

    study = journal_study(tmp_path, "serverless")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    client = mlflow_client(tmp_path)
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent, _ = parent_and_children(client, "serverless")
    assert parent.info.status == "FAILED"

    again = sweep_to_files(tmp_path, str(path), "--workers", "2", "--progress", "lines")
    assert again.returncode == 0, again.stderr
    assert len(finished(journal_study(tmp_path, "serverless"))) == n


@pytest.mark.slow
def test_a_sigkilled_command_leaves_no_process_and_its_trials_run_again(tmp_path):
    """The command itself SIGKILLed (`kill -9`, the OOM killer) while both its workers
    are early in their trials: its workers, their fork server and the resource tracker
    end within seconds (the workers went on with their trials and the next ones, and
    kept the other two alive). The trials are left RUNNING; the same command then fails
    them, runs their values again and finishes the study."""
    n = 3
    path = long_sweep(tmp_path, "orphans", n)
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:

        def two_early_trials():  # far from finishing before the signal lands
            started = started_trials(tmp_path, "orphans")
            young = [t for t in started if len(t.intermediate_values) < 50]
            return young if len(young) == 2 else None

        killed = wait_until(two_early_trials, 180, "2 RUNNING trials early in their runs")
        family = set(processes_marked(marker))
        workers = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in killed}
        server = {int(Path(f"/proc/{w}/stat").read_text().rpartition(")")[2].split()[1])
                  for w in workers}  # fmt: skip
        assert len(server) == 1 and server != {proc.pid}  # the workers' parent
        # the command, the resource tracker, the fork server and the two workers
        assert len(family) == 5 and workers | server | {proc.pid} <= family, family
        os.kill(proc.pid, signal.SIGKILL)  # the command alone: its group lives on
        proc.wait(timeout=10)
        wait_until(lambda: not processes_marked(marker), 10, "the command's processes to end")
    study = journal_study(tmp_path, "orphans")
    for t in killed:  # stopped with their command, not finished by orphans
        assert study.trials[t.number].state == TrialState.RUNNING

    again = sweep_to_files(tmp_path, str(path), "--workers", "2", "--progress", "lines")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    study = journal_study(tmp_path, "orphans")
    trials = study.trials
    assert len(finished(study)) == n
    assert sorted(t.number for t in trials if t.state == TrialState.FAIL) == sorted(
        t.number for t in killed
    )
    assert [t for t in trials if t.state not in FINISHED and t.state != TrialState.FAIL] == []
    client = mlflow_client(tmp_path)
    for t in killed:
        dead = trials[t.number]
        assert "died" in dead.user_attrs["error"]
        (retry,) = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert retry.state in FINISHED and retry.params == t.params
        assert client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FAILED"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent, _ = parent_and_children(client, "orphans")
    assert parent.info.status == "FINISHED"


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals",
    [["SIGINT"], ["SIGTERM"], ["SIGINT", 0.05, "SIGINT"]],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice-at-once"],
)
def test_ctrl_c_ends_runs_killed_and_the_study_resumes(tmp_path, signals, ctrl_c):
    """Ctrl-C, sent as a terminal sends it (to the whole process group) while both
    workers are mid-trial: exit 130, no process left, the interrupted trials queued again
    and their runs KILLED; the same command then finishes the study. SIGTERM (timeout,
    SLURM, systemd) does the same. Two close together (`timeout -s INT` signals the command
    and then its group; signals that arrive before the first is handled merge anyway) are
    one stop."""
    n = 2
    path = long_sweep(tmp_path, "stopped", n)
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:
        interrupted = wait_for_started(tmp_path, "stopped", 2)
        for name in signals:
            if isinstance(name, float):
                time.sleep(name)  # what is tested: a second signal this much later
                continue
            os.killpg(proc.pid, getattr(signal, name))  # as a terminal's Ctrl-C reaches its job
        proc.wait(timeout=120)
    stdout, stderr = outputs(tmp_path)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout
    assert "Traceback" not in stderr
    assert processes_marked(marker) == []

    study = journal_study(tmp_path, "stopped")
    trials = {t.number: t for t in study.trials}
    client = mlflow_client(tmp_path)
    for t in interrupted:
        assert trials[t.number].state == TrialState.FAIL
        assert trials[t.number].user_attrs["error"] == INTERRUPTED
        assert client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    retried = sorted(t.user_attrs["retry_of"] for t in queued)
    assert retried == sorted(t.number for t in interrupted)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent, _ = parent_and_children(client, "stopped")
    assert parent.info.status == "KILLED"

    again = sweep_to_files(tmp_path, str(path), "--workers", "2", "--progress", "lines")
    assert again.returncode == 0, again.stderr
    study = journal_study(tmp_path, "stopped")
    assert len(finished(study)) == n
    for t in interrupted:
        (retry,) = [r for r in study.trials if r.user_attrs.get("retry_of") == t.number]
        assert retry.state in FINISHED
        assert retry.params == t.params
    parent, _ = parent_and_children(mlflow_client(tmp_path), "stopped")
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_an_interrupted_trial_is_counted_as_interrupted_not_failed(cli, tmp_path, ctrl_c):
    """A trial stopped by Ctrl-C is FAIL in Optuna, its values queued again: nothing
    failed. The sweep's last line, the report's counts and summary, and its trials.csv
    call it interrupted (they said '2 failed' and state FAIL)."""
    path = long_sweep(tmp_path, "counted", 2)
    with background_sweep(tmp_path, path) as proc:
        stopped = wait_for_started(tmp_path, "counted", 2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    stdout, stderr = outputs(tmp_path)
    assert proc.returncode == 130, stderr
    study = journal_study(tmp_path, "counted")
    numbers = sorted(t.number for t in stopped)
    assert [t.user_attrs.get("error") for t in study.trials if t.number in numbers] == [
        INTERRUPTED
    ] * 2
    assert "study counted: 0 complete, 0 pruned, 0 failed, 2 interrupted" in stdout

    report = cli("report", "counted")
    assert report.returncode == 0, report.stderr
    assert "0 failed, 2 interrupted" in report.stdout
    folder = tmp_path / "reports" / "counted"
    table = pd.read_csv(folder / "trials.csv").set_index("number")
    assert list(table.loc[numbers, "state"]) == ["INTERRUPTED"] * 2
    assert list(table.loc[numbers, "outcome"]) == ["interrupted"] * 2
    assert not table["state"].eq("FAIL").any()
    summary = (folder / "summary.md").read_text()
    assert "- trials: 4 (0 complete, 0 pruned, 0 failed, 2 interrupted, 2 waiting)" in summary


@pytest.mark.slow
def test_a_second_ctrl_c_later_kills_workers_stuck_in_a_long_step(tmp_path, ctrl_c):
    """The workers act on Ctrl-C at their next safe point (a logging step, an epoch's
    end); in a step of seconds that is a wait. A second Ctrl-C past the half second that
    merges duplicates SIGKILLs them: their runs end FAILED (not KILLED), nothing is left
    RUNNING, the parent run ends KILLED and the study resumes."""
    path = write_sweep(
        tmp_path,
        "stuck",
        n_trials=2,
        overrides=[
            "data=digits",
            "trainer.epochs=2",
            "model.depth=4",
            "model.width=3072",
            "trainer.batch_size=1024",
            "trainer.log_every=1000",
            "trainer.progress=none",
        ],
        params={"optimizer.lr": "interval(0.001, 0.01)"},
    )  # fmt: skip: steps of about 2 s at 1 BLAS thread, checked for Ctrl-C only at step 0
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:
        interrupted = wait_for_started(tmp_path, "stuck", 2)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(1.0)  # what is tested: past the half second, inside the long step
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    _, stderr = outputs(tmp_path)
    assert proc.returncode == 130, stderr
    assert processes_marked(marker) == []
    client = mlflow_client(tmp_path)
    for t in interrupted:
        assert client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FAILED"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent, _ = parent_and_children(client, "stuck")
    assert parent.info.status == "KILLED"
    again = sweep_to_files(tmp_path, str(path), "--workers", "2", "--progress", "lines")
    assert again.returncode == 0, again.stderr
    assert len(finished(journal_study(tmp_path, "stuck"))) == 2


def test_the_fork_servers_warm_up_imports_what_trials_need():
    """multiprocessing ignores an ImportError in a fork server's preload, so a broken
    warm-up would pass unnoticed, each worker's first trial paying seconds of imports."""
    code = (
        "import sys, signal\n"
        "import bpstudy.sweep.warm\n"
        "need = ('mlflow', 'hydra', 'matplotlib', 'sqlalchemy.orm', 'bpstudy.sweep.trial')\n"
        "print([m for m in need if m not in sys.modules])\n"
        "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


def server_warming_up(marker: str) -> int | None:
    """The fork server of the command marked `marker`, once its warm-up imports have
    reached numpy (seconds before they end)."""
    for pid in processes_marked(marker):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            maps = Path(f"/proc/{pid}/maps").read_bytes()
            if b"multiprocessing.forkserver" in command and b"_multiarray_umath" in maps:
                return pid
    return None


@pytest.mark.slow
@pytest.mark.parametrize("target", ["server", "group"])
def test_ctrl_c_while_the_workers_fork_server_warms_up(tmp_path, target, ctrl_c):
    """SIGINT while the workers' fork server is still importing (seconds of warm-up, while
    the supervisor sets up). To the server alone: it ignores it and the sweep finishes.
    To the whole process group, as a terminal's Ctrl-C: exit 130 with one line. Either
    way no process prints a traceback and nothing is left running."""
    path = write_sweep(tmp_path, "early", n_trials=2)
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:
        server = wait_until(
            lambda: server_warming_up(marker), 60, "the fork server's warm-up", poll=0.01
        )
        if target == "server":
            os.kill(server, signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    _, stderr = outputs(tmp_path)
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
    assert processes_marked(marker) == []
    if target == "server":
        assert proc.returncode == 0, stderr
        assert len(finished(journal_study(tmp_path, "early"))) == 2
    else:
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "bpstudy: interrupted"


@pytest.mark.slow
def test_a_command_sigkilled_while_the_fork_server_warms_up_leaves_no_process(tmp_path):
    """The fork server would finish its seconds of warm-up imports before it looked at
    its pipe from the command (8.5 s measured): it ends at once instead."""
    path = write_sweep(tmp_path, "early", n_trials=2)
    marker = f"bpstudy-test-{uuid.uuid4().hex}"
    with background_sweep(tmp_path, path, marker) as proc:
        wait_until(lambda: server_warming_up(marker), 60, "the fork server's warm-up", poll=0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: not processes_marked(marker), 3, "the command's processes to end")


# ---------------------------------------------------------------- RDB storage: heartbeats


@pytest.mark.slow
def test_rdb_trial_of_a_lost_remote_worker_is_failed_and_retried(cli, tmp_path):
    """A trial left RUNNING by a worker on another machine (its heartbeat long stale) is
    failed by the workers, its values run again, and its MLflow run ends FAILED."""
    path = write_sweep(tmp_path, "hb", n_trials=2)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    client = mlflow_client(tmp_path)
    lost_run = client.create_run(client.create_experiment("bpstudy")).info.run_id
    with warnings.catch_warnings():  # heartbeats are "experimental"
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
        study = optuna.create_study(study_name="hb", storage=storage, direction="minimize")
        lost = study.ask(load_spec(str(path)).space)
    lost.set_user_attr("worker", "another-machine:1")
    lost.set_user_attr("mlflow_run_id", lost_run)
    storage.record_heartbeat(lost._trial_id)
    storage.engine.dispose()
    with sqlite3.connect(tmp_path / "study.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00.000000'")

    out = cli("sweep", str(path), "--storage", url, "--progress", "lines")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "Warning" not in out.stderr, out.stderr  # Optuna's heartbeat/deprecation notices
    study = optuna.load_study(study_name="hb", storage=url)
    trials = study.trials
    assert trials[lost.number].state == TrialState.FAIL
    done = finished(study)
    assert len(done) == 2
    with warnings.catch_warnings():  # "experimental"
        warnings.simplefilter("ignore")
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
        retried = [t for t in done if retry_of(t) == lost.number]
    assert len(retried) == 1 and retried[0].params == trials[lost.number].params
    assert client.get_run(lost_run).info.status == "FAILED"
    _, children = parent_and_children(client, "hb")
    for t in done:
        assert_child_matches(t, children[t.number])


# ---------------------------------------------------------------- the shipped quickstart


@pytest.mark.slow
def test_quickstart_end_to_end(cli, tmp_path):
    n = 4  # the shipped file as it is, with fewer trials to keep the suite short
    out = cli("sweep", "quickstart", "--workers", "2", "--n-trials", str(n), "--progress", "lines")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "best val/loss" in out.stdout
    study = journal_study(tmp_path, "quickstart")
    assert len(finished(study)) == n
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    spec = load_spec("quickstart")
    for t in study.trials:
        assert set(t.params) == set(spec.space)
    parent, children = parent_and_children(mlflow_client(tmp_path), "quickstart")
    assert parent.info.status == "FINISHED"
    for t in finished(study):
        assert_child_matches(t, children[t.number])
    # the dashboard command it prints works as printed, in a shell without the venv
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("open the dashboard: ")]
    command = line.removeprefix("open the dashboard: ").split()
    assert command[1] == "ui"
    venv_bin = Path(BPSTUDY).parent.resolve()
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != venv_bin]
    shown = subprocess.run(
        [*command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": os.pathsep.join(path)},
    )  # fmt: skip
    assert shown.returncode == 0 and "usage: bpstudy ui" in shown.stdout, shown.stderr


@pytest.mark.slow
def test_trials_that_keep_failing_stop_the_sweep(tmp_path):
    """Every trial failing (here: the tracking server gone mid-sweep) is not a sweep that
    should go on for ever: after FAILS_IN_A_ROW in one worker the command stops with exit
    1 and the last trial's error; nothing is left RUNNING and the study is resumable."""
    from bpstudy.sweep.worker import FAILS_IN_A_ROW
    from bpstudy.tracking.ui import stop_group, wait_until_up

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(url, server), "mlflow server did not start"
        path = write_sweep(tmp_path, "orphaned", n_trials=200)
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "BPSTUDY_TRACKING_WAIT_SECONDS": "0",
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}  # fmt: skip
        with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err:
            proc = subprocess.Popen(
                [BPSTUDY, "sweep", str(path), "--progress", "lines"], cwd=tmp_path, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )  # fmt: skip
        try:
            journal = tmp_path / "bpstudy.journal"
            wait_until(
                lambda: journal.is_file() and finished(journal_study(tmp_path, "orphaned")),
                180,
                "a finished trial",
            )
            stop_group(server, timeout=30)  # every trial from here on fails
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        stop_group(server, timeout=30)
    stderr = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 1, stderr
    assert f"{FAILS_IN_A_ROW} trials in a row failed" in stderr, stderr
    study = journal_study(tmp_path, "orphaned")
    assert len(finished(study)) < 200
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert FAILS_IN_A_ROW <= len(failed) < 2 * FAILS_IN_A_ROW + 2
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_a_sampler_that_fails_past_its_startup_trials_stops_the_sweep(cli, tmp_path):
    """TPE reads n_ei_candidates only once past its random startup trials, after the
    up-front dry run (10**13 candidates: a MemoryError). Before: a worker traceback, exit 0, and a trial RUNNING for ever,
    so that the study could never finish. Now: that trial is FAIL with the sampler's
    error, the command says so in one line (exit 1), and once the file is fixed the same
    command finishes the study."""
    sampler = {"name": "tpe", "seed": 0, "n_startup_trials": 3}
    path = write_sweep(tmp_path, n_trials=5, sampler={**sampler, "n_ei_candidates": 10**13})
    out = cli("sweep", str(path), "--progress", "lines")
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert "sampler tpe failed: " in line and "tiny.yaml's sampler" in line, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    study = journal_study(tmp_path, "tiny")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.FAIL], states
    assert study.trials[3].user_attrs["error"].startswith("sampler tpe failed")
    runs = [r for r in all_runs(mlflow_client(tmp_path)) if "optuna.trial" in r.data.tags]
    assert sorted(r.data.tags["optuna.trial"] for r in runs) == ["0", "1", "2"]

    write_sweep(tmp_path, n_trials=5, sampler=sampler)
    out = cli("sweep", str(path), "--progress", "lines")
    assert out.returncode == 0, out.stderr
    study = journal_study(tmp_path, "tiny")
    assert len(finished(study)) == 5
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_commands_on_other_hosts_seed_their_workers_elsewhere():
    """Two machines that join one PostgreSQL study at the same moment see the same trial
    count: their seeded samplers must still not propose the same values (a walk-through
    saw six trials run three settings twice). A local study stays reproducible."""
    from bpstudy.sweep.supervisor import seed_base

    pg = "postgresql://u@db/optuna"
    assert seed_base(0, pg, "node1", 100) != seed_base(0, pg, "node2", 100)
    assert seed_base(0, pg, "node1", 100) != seed_base(0, pg, "node1", 101)
    journal = "journal:/tmp/x/bpstudy.journal"
    assert seed_base(3, journal, "node1", 100) == seed_base(3, journal, "node2", 200) == 3027


@pytest.mark.slow
def test_two_commands_setting_up_one_study_at_once_with_other_settings(tmp_path):
    """Both saw a new study with no trials, each set its own settings, and the study got
    trials of 2 and of 3 epochs. Now exactly one of them runs trials."""
    path = write_sweep(tmp_path, "clash", n_trials=4)
    ended = sweeps_at_once(tmp_path, path, ["trainer.epochs=2"], ["trainer.epochs=3"])
    ok = [err for code, err in ended if code == 0]
    refused = [err for code, err in ended if code == 2]  # at its set-up, or by its worker
    assert len(ok) == 1 and len(refused) == 1, ended
    assert "trainer.epochs=" in refused[0] and "comparable" in refused[0], refused[0]
    assert len(refused[0].strip().splitlines()) == 1, refused[0]
    trials = journal_study(tmp_path, "clash").trials
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
    client = mlflow_client(tmp_path)
    epochs = {client.get_run(t.user_attrs["mlflow_run_id"]).data.params["trainer.epochs"]
              for t in trials}  # fmt: skip
    assert len(epochs) == 1, epochs
    parent = client.get_run(journal_study(tmp_path, "clash").user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED"  # the refused command left it to the other


def test_a_worker_sees_settings_another_command_set_meanwhile(tmp_path):
    """What a worker checks under its lock before each trial (the race above, when the
    other command's set-up came second)."""
    from bpstudy.sweep.storage import SETTINGS_ATTR
    from bpstudy.sweep.study import settings_clash

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    mine = {"config": {"trainer.epochs": 2, "model.width": 16}, "space": {}}
    assert not settings_clash(study, mine)  # nothing stored: a study from elsewhere
    study.set_user_attr(SETTINGS_ATTR, mine)
    assert not settings_clash(study, mine)
    assert not settings_clash(study, None)  # none given (WorkerArgs default)
    study.set_user_attr(SETTINGS_ATTR, {**mine, "config": {"trainer.epochs": 3}})
    assert settings_clash(study, mine)


def test_commands_joining_a_journal_study_at_one_count_are_ranked(tmp_path):
    """Among the commands still running: the first at a count is rank 0 (a study run by
    one command at a time keeps the seeds it always had), the next rank 1."""
    from bpstudy.sweep.supervisor import join_rank, seed_base

    url = f"journal:{tmp_path / 'bpstudy.journal'}"
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(url[len("journal:") :]))
    )
    lock, host = str(tmp_path / "lock"), socket.gethostname()
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        a, b = (p.pid for p in sleepers)
        assert join_rank(study, lock, url, 0, host, a) == 0
        assert join_rank(study, lock, url, 0, host, b) == 1
        assert join_rank(study, lock, url, 4, host, a) == 0  # another count
        sleepers[0].kill()
        sleepers[0].wait()
        assert join_rank(study, lock, url, 0, host, os.getpid()) == 1  # a's ended: b is left
        assert join_rank(study, lock, url, 0, "elsewhere", 1) == 2  # on a shared journal
        assert join_rank(study, lock, url, 0, host, 7) == 3  # that host's is taken as live
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
    assert seed_base(0, url, "h", 1, 0) == 0 and seed_base(0, url, "h", 2, 1) != 0
    assert join_rank(study, lock, "postgresql://u@db/optuna", 0, host, 1) == 0


@pytest.mark.slow
def test_a_no_op_rerun_leaves_the_next_resumes_seeds_alone(cli, tmp_path):
    """A command that ran no trial (the study was complete) once left its rank behind,
    and the next resume at that count drew other values than it would have."""
    drawn = []
    for reruns in (0, 1):
        folder = tmp_path / f"reruns{reruns}"
        folder.mkdir()
        path = write_sweep(folder, "again", n_trials=2)
        for _ in range(1 + reruns):
            assert cli("sweep", str(path), cwd=folder).returncode == 0
        out = cli("sweep", str(path), "--n-trials", "3", cwd=folder)
        assert out.returncode == 0, out.stderr
        drawn.append(journal_study(folder, "again").trials[2].params)
    assert drawn[0] == drawn[1]


@pytest.mark.slow
def test_two_commands_that_join_one_local_study_at_once_sample_apart(tmp_path):
    """Two commands started together on one journal study both see it with no trials; a
    seeded sampler in each replayed the same draws (every trial ran twice)."""
    path = write_sweep(tmp_path, "together", n_trials=6)
    for code, err in sweeps_at_once(tmp_path, path, [], []):
        assert code == 0, err
    trials = journal_study(tmp_path, "together").trials
    assert len(trials) == 6 and {t.state for t in trials} == {TrialState.COMPLETE}
    # (which command took how many trials is timing: one may take all six on a busy host)
    assert len({t.params["optimizer.lr"] for t in trials}) == 6, [t.params for t in trials]


@pytest.mark.slow
def test_rerun_of_a_pruned_trial_stops_where_it_was_pruned(cli, tmp_path):
    """A pruned trial's run is retrained to the epoch the pruner stopped it at, and its
    histories compare whole: identical (they differed in length; and the pruned epoch's
    own metrics never reached MLflow, the pruner stopping the loop before the tracker
    saw that epoch)."""
    out = cli("sweep", "quickstart", "--workers", "2", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    study = journal_study(tmp_path, "quickstart")
    pruned = [
        t for t in study.trials
        if t.state == TrialState.PRUNED and t.user_attrs.get("prune_reason", "").startswith("pruned")
    ]  # fmt: skip
    assert pruned, "quickstart pruned nothing"
    trial = pruned[0]
    run = mlflow_client(tmp_path).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.metrics["epoch"] == max(trial.intermediate_values)  # pruned epoch logged
    out = cli("rerun", run.info.run_id)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "identical"


@pytest.mark.parametrize(
    "change",
    [
        {"direction": "maximize"},
        {"metric": "train/loss"},
        {"metric": None, "direction": None, "metrics": ["val/loss", "wall_time"],
         "directions": ["minimize", "minimize"]},
    ],
)  # fmt: skip
def test_resuming_with_another_objective_is_refused(cli, tmp_path, change):
    """Optuna loads a stored study whatever directions are asked for: a file switched to
    two objectives failed every trial at tell time, for ever; another metric or direction
    labelled the stored values with the new name."""
    path = write_sweep(tmp_path)
    assert cli("sweep", str(path), "--progress", "lines").returncode == 0
    trials = len(journal_study(tmp_path, "tiny").trials)
    tree = yaml.safe_load(path.read_text())
    tree.update(change)
    path.write_text(yaml.safe_dump({k: v for k, v in tree.items() if v is not None}))
    out = cli("sweep", str(path), "--n-trials", "4", "--progress", "lines")
    assert_one_line_error(out, "study 'tiny' optimises val/loss (minimize); tiny.yaml asks for")
    assert len(journal_study(tmp_path, "tiny").trials) == trials


@pytest.mark.parametrize(
    ("args", "change", "says"),
    [
        (["trainer.epochs=3"], {}, "trainer.epochs=2, this command trainer.epochs=3"),
        (["model.dropout=0.1"], {}, "model.dropout=0.0, this command model.dropout=0.1"),
        ([], {"params": {"model.depth": "range(1, 5)", "optimizer.lr": "tag(log, interval(0.01, 0.5))"}},
         "params.model.depth IntDistribution(high=3"),
        ([], {"params": {"model.depth": "range(1, 4)"}}, "params.optimizer.lr FloatDistribution"),
    ],
)  # fmt: skip
def test_resuming_with_other_settings_is_refused(cli, tmp_path, args, change, says):
    """A resume with trainer.epochs=3 where the first trials had 2 (a walk-through's
    case) mixed incomparable trials in one study, its best and its report, silently. The
    same command with more trials still resumes."""
    path = write_sweep(tmp_path)
    assert cli("sweep", str(path), "--progress", "lines").returncode == 0
    assert cli("sweep", str(path), "--n-trials", "3", "--progress", "lines").returncode == 0
    trials = len(journal_study(tmp_path, "tiny").trials)
    tree = yaml.safe_load(path.read_text())
    tree.update(change)
    path.write_text(yaml.safe_dump(tree))
    out = cli("sweep", str(path), "--n-trials", "4", *args, "--progress", "lines")
    assert_one_line_error(out, "study 'tiny' was run with", says, "not be comparable")
    assert len(journal_study(tmp_path, "tiny").trials) == trials


def test_settings_compare_by_value_and_leave_out_how_runs_are_shown(tmp_path):
    """The composed config of the fixed part, by value: restating a value or a default
    (regularization.l2=0.0, optimizer=sgd) is no change; trainer.progress and tracking.*
    (a URI may hold a password) are not settings; the searched keys are the space's."""
    from bpstudy.sweep.study import _config_change, study_settings

    spec = load_spec(str(write_sweep(tmp_path)))

    def settings(*extra):
        return study_settings(spec, check_space(spec, list(extra)))

    plain = settings()
    assert plain == settings("model.width=16", "regularization.l2=0.0", "optimizer=sgd",
                             "trainer.progress=lines", "tracking.uri=sqlite:////x/y.db")  # fmt: skip
    assert not any(k.startswith("tracking") for k in plain["config"])
    assert "model.depth" not in plain["config"] and "model.depth" in plain["space"]
    other = settings("trainer.epochs=3")
    assert _config_change(plain["config"], other["config"]) == (
        "trainer.epochs=2, this command trainer.epochs=3"
    )


@pytest.mark.slow
def test_an_override_moved_into_the_file_still_resumes(cli, tmp_path):
    path = write_sweep(tmp_path)
    out = cli("sweep", str(path), "model.width=8", "trainer.progress=none", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    tree = yaml.safe_load(path.read_text())
    tree["overrides"] = [o for o in tree["overrides"] if not o.startswith("model.width")]
    tree["overrides"].append("model.width=8")
    path.write_text(yaml.safe_dump(tree))
    out = cli("sweep", str(path), "--n-trials", "3", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    assert len(finished(journal_study(tmp_path, "tiny"))) == 3


def test_glob_in_params_is_a_choice_of_the_groups_options(tmp_path):
    """As on Hydra's command line (`optimizer=glob(ada*)`)."""
    path = write_sweep(tmp_path, params={"optimizer": "glob(ada*)", "model.depth": "range(1, 3)"})
    spec = load_spec(str(path))
    assert spec.space["optimizer"].choices == ("adagrad", "adam", "adamw")


def test_an_experimental_sampler_adds_no_warning_lines(cli, tmp_path):
    """qmc's ExperimentalWarning (two lines per process, four processes) came before the
    one error line of a bad sweep, and among the progress lines of a good one."""
    path = write_sweep(tmp_path, sampler={"name": "qmc", "seed": 0})
    out = cli("sweep", str(path), "--workers", "2", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stderr.splitlines() if not line.startswith("tiny: ")] == []


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "qmc"])
def test_every_shipped_sampler_runs_on_a_space(tmp_path, sampler):
    """README lists them; cmaes needs the cmaes package (a dependency for that reason)."""
    from bpstudy.sweep.samplers import try_sampler_and_pruner
    from bpstudy.sweep.spec import load_spec

    path = write_sweep(tmp_path, sampler={"name": sampler, "seed": 0})
    try_sampler_and_pruner(load_spec(str(path)))  # raises SweepError if it cannot


@pytest.mark.parametrize(
    ("sampler", "pruner", "needle"),
    [
        (
            {"name": "tpe", "n_startup_trials": 1, "n_ei_candidates": 10**13},
            {"name": "none"},
            "MemoryError: Unable to allocate",
        ),
    ],
)
def test_arguments_that_fail_only_in_a_trial_are_refused_up_front(
    cli, tmp_path, sampler, pruner, needle
):
    """Before: a worker traceback, exit 0 and trials RUNNING for ever; or ten full
    trainings failed in a row."""
    path = write_sweep(tmp_path, sampler=sampler, pruner=pruner)
    out = cli("sweep", str(path), "--progress", "lines")
    assert_one_line_error(out, "tiny.yaml: sampler", "fail on this space", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


@pytest.mark.parametrize(
    ("sampler", "pruner", "message"),
    [
        ({"name": "random"}, {"name": "hyperband", "min_resource": 0}, "pruner.min_resource=0 must be >= 1"),
        ({"name": "random"}, {"name": "hyperband", "reduction_factor": 1}, "pruner.reduction_factor=1 must be >= 2"),
        ({"name": "random"}, {"name": "hyperband", "min_resource": 5, "max_resource": 3}, "pruner.max_resource=3 must be >= pruner.min_resource (5)"),
        ({"name": "tpe", "n_startup_trials": -3}, {"name": "none"}, "sampler.n_startup_trials=-3 must be >= 0"),
        ({"name": "tpe", "n_ei_candidates": 0}, {"name": "none"}, "sampler.n_ei_candidates=0 must be >= 1"),
        ({"name": "cmaes", "sigma0": -1}, {"name": "none"}, "sampler.sigma0=-1 must be > 0"),
        ({"name": "cmaes", "sigma0": float("inf")}, {"name": "none"}, "sampler.sigma0=.inf must be a finite number > 0"),
        ({"name": "tpe", "prior_weight": float("nan")}, {"name": "none"}, "sampler.prior_weight=.nan must be a finite number > 0"),
        ({"name": "cmaes", "popsize": 1}, {"name": "none"}, "sampler.popsize=1 must be >= 2"),
        ({"name": "cmaes", "x0": {"model.depth": 2, "optimizer.lr": 2.0}}, {"name": "none"}, "sampler.x0.optimizer.lr=2.0 must be a number from 0.01 to 0.5"),
        ({"name": "cmaes", "x0": {"model.depth": 2}}, {"name": "none"}, "sampler.x0 needs a start for every numeric param; missing: optimizer.lr"),
        ({"name": "cmaes", "x0": {"model.depth": 2, "optimizer.lr": 0.1, "model.width": 3}}, {"name": "none"}, "sampler.x0.model.width is not a numeric param; they are: model.depth, optimizer.lr"),
        ({"name": "cmaes", "restart_strategy": "bogus"}, {"name": "none"}, "sampler.restart_strategy=bogus is not one of [null, ipop, bipop]"),
        ({"name": "random"}, {"name": "median", "n_warmup_steps": -1}, "pruner.n_warmup_steps=-1 must be >= 0"),
        ({"name": "random"}, {"name": "median", "interval_steps": 0}, "pruner.interval_steps=0 must be >= 1"),
        ({"name": "random"}, {"name": "successive_halving", "min_resource": 0}, "pruner.min_resource=0 must be >= 1"),
        ({"name": "random"}, {"name": "successive_halving", "min_resource": "fast"}, "pruner.min_resource=fast must be an integer or 'auto'"),
        ({"name": "random"}, {"name": "hyperband", "max_resource": 2.5}, "pruner.max_resource=2.5 must be an integer or 'auto'"),
    ],
)  # fmt: skip
def test_an_argument_out_of_its_range_is_named(cli, tmp_path, sampler, pruner, message):
    """Optuna checks these late or never: hyperband's min_resource 0 failed the dry run
    as a bare "ZeroDivisionError", a negative n_startup_trials or sigma0 passed."""
    path = write_sweep(tmp_path, sampler=sampler, pruner=pruner)
    out = cli("sweep", str(path), "--progress", "lines")
    assert_one_line_error(out, f"tiny.yaml: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_a_deprecated_argument_is_one_warning_line(cli, tmp_path):
    """Optuna's FutureWarning came twice (the supervisor's study and the worker's), two
    lines each with a site-packages path."""
    path = write_sweep(tmp_path, sampler={"name": "cmaes", "sigma0": 0.5, "seed": 0})
    out = cli("sweep", str(path), "--workers", "2", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    others = [line for line in out.stderr.splitlines() if not line.startswith("tiny: ")]
    assert len(others) == 1, out.stderr
    assert others[0].startswith("warning: ") and "tiny.yaml: sampler: `sigma0`" in others[0]
    assert "deprecated" in others[0]
    # a command refused after the file's check shows its error line only
    out = cli("sweep", str(path), "--storage", "nosuch://x", "--progress", "lines")
    assert_one_line_error(out, "nosuch://x")


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        (
            "range(1, 1000000000)",
            "has 999999999 values (at most 10000); use interval(1, 1000000000)",
        ),
        ("range(0.01, 0.5, step=0.0000000001)", "use interval(0.01, 0.5)"),
        ("interval(0.01, inf)", "needs finite bounds"),
    ],
)
def test_huge_or_infinite_ranges_are_refused(cli, tmp_path, param, needle):
    """range(1, 1e9) was a MemoryError; a tiny float step built its list for minutes."""
    path = write_sweep(
        tmp_path, params={"optimizer.lr" if "0.01" in param else "model.depth": param}
    )
    out = cli("sweep", str(path), "--progress", "lines", timeout=60)
    assert_one_line_error(out, needle)


def test_a_sweep_file_that_is_not_text_is_one_line(cli, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    out = cli("sweep", str(path), "--progress", "lines")
    assert_one_line_error(out, "not a UTF-8 text file")


def test_the_best_line_shows_only_the_values_the_trial_used():
    """An adamw trial was shown with optimizer.momentum=0.70 (sampled, inert), and
    booleans as Python's True rather than the override's true."""
    from types import SimpleNamespace

    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from bpstudy.sweep.progress import describe_best

    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={"optimizer": "adamw", "optimizer.momentum": 0.7, "model.batch_norm": True},
            distributions={
                "optimizer": CategoricalDistribution(["adamw", "momentum"]),
                "optimizer.momentum": FloatDistribution(0.5, 0.99),
                "model.batch_norm": CategoricalDistribution([True, False]),
            },
            user_attrs={"inactive_params": ["optimizer.momentum"]},
            value=0.25,
        )
    )
    spec = SimpleNamespace(metrics=("val/loss",), multi_objective=False)
    assert describe_best(study, spec) == (
        "best val/loss 0.25 (trial #0: optimizer=adamw, model.batch_norm=true)"
    )


def test_a_resume_in_another_mlflow_experiment_is_refused(cli, tmp_path):
    """It made a second parent run in that experiment, holding the new trials only, and
    `bpstudy report` then logged to that one (walk-through 9, F12)."""
    path = write_sweep(tmp_path)
    assert cli("sweep", str(path), "--progress", "lines").returncode == 0
    parent = parent_and_children(mlflow_client(tmp_path), "tiny")[0]
    out = cli(
        "sweep", str(path), "--n-trials", "3", "--progress", "lines", "tracking.experiment=other"
    )
    assert_one_line_error(
        out,
        "tracking.experiment=other: study 'tiny' logs to MLflow experiment 'bpstudy' "
        f"(parent run {parent.info.run_id}); resume it with tracking.experiment=bpstudy",
    )
    client = mlflow_client(tmp_path)
    assert client.get_experiment_by_name("other") is None
    assert len(finished(journal_study(tmp_path, "tiny"))) == 2
    out = cli("sweep", str(path), "--n-trials", "3", "--progress", "lines")
    assert out.returncode == 0, out.stderr
    assert parent_and_children(client, "tiny")[0].info.run_id == parent.info.run_id


def test_a_resume_into_another_store_or_untracked_is_refused(cli, tmp_path):
    """Another store got a second parent run with the new trials only, and report found
    the first trials' runs in neither; with tracking off, trials came without runs
    (walk-through 10, F11). The same store by another address still resumes."""
    path = write_sweep(tmp_path)
    assert cli("sweep", str(path), "--progress", "lines").returncode == 0
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    more = ("sweep", str(path), "--n-trials", "3", "--progress", "lines")
    out = cli(*more, "tracking.uri=sqlite:///other.db")
    assert_one_line_error(
        out, f"tracking.uri=sqlite:///other.db: study 'tiny' logs to the MLflow store {store}"
    )
    assert not (tmp_path / "other.db").exists()
    (tmp_path / "empty.db").touch()  # an existing file is not opened to look
    out = cli(*more, "tracking.uri=sqlite:///empty.db")
    assert_one_line_error(out, "tracking.uri=sqlite:///empty.db: study 'tiny' logs to")
    assert (tmp_path / "empty.db").stat().st_size == 0
    # the same spelling from another folder is another file: refused too
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    storage = f"journal:{tmp_path / 'bpstudy.journal'}"
    out = cli(*more, "--storage", storage, "tracking.uri=sqlite:///mlflow.db", cwd=elsewhere)
    assert_one_line_error(out, f"study 'tiny' logs to the MLflow store {store}")
    assert list(elsewhere.iterdir()) == []
    out = cli(*more, "tracking.enabled=false")
    assert_one_line_error(
        out, f"tracking.enabled=false: study 'tiny' logs its trials to MLflow ({store})"
    )
    assert len(journal_study(tmp_path, "tiny").trials) == 2
    out = cli(*more, "tracking.uri=sqlite:///mlflow.db")  # relative: the same file
    assert out.returncode == 0, out.stderr
    assert len(finished(journal_study(tmp_path, "tiny"))) == 3


def test_notes_on_a_pruner_that_never_prunes_and_on_cmaes_choices(cli, tmp_path):
    """Both ran without a word: a pruner whose first step lies past the last epoch, and
    CMA-ES on a space with a choice, which Optuna's logger said once per trial among the
    progress lines (walk-through 10, F15 and F6)."""
    path = write_sweep(
        tmp_path,
        n_trials=3,
        sampler={"name": "cmaes", "seed": 0},
        pruner={"name": "median", "n_warmup_steps": 3},
        params={"model.activation": "choice(relu, tanh)", "optimizer.lr": "interval(0.01, 0.5)"},
    )
    out = cli("sweep", str(path), "--progress", "lines")  # TINY trains 2 epochs
    assert out.returncode == 0, out.stderr
    others = [line for line in out.stderr.splitlines() if not line.startswith("tiny: ")]
    assert others == [
        f"warning: {path}: sampler cmaes takes numbers only: model.activation sampled at "
        "random (independently)",
        f"warning: {path}: pruner.n_warmup_steps=3 with trainer.epochs=2: trials report once "
        "per epoch (1 to 2), so the pruner never prunes",
    ], out.stderr


def counting(calls: list, real):
    """`real`, still doing its work, with each call noted in `calls`."""

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    return wrapper


def test_a_trial_validates_once_and_a_worker_reads_its_data_once(tmp_path, monkeypatch):
    """Each trial validates its config once; trials of one worker on the same data set
    (data, dtype, seed) read it once, and another seed reads it again."""
    import bpstudy.data
    from bpstudy.sweep import trial as trial_module
    from bpstudy.sweep.spec import suggest
    from bpstudy.training import run as training_run

    validated, loaded = [], []
    monkeypatch.setattr(trial_module, "validate", counting(validated, trial_module.validate))
    monkeypatch.setitem(bpstudy.data._LOADERS, "digits", counting(loaded, bpstudy.data._LOADERS["digits"]))  # fmt: skip
    monkeypatch.setattr(training_run, "_last", None)  # what an earlier test left
    monkeypatch.chdir(tmp_path)
    spec = load_spec("quickstart")
    study = optuna.create_study()
    states = []
    for extra in ([], [], ["trainer.seed=7"]):
        trial = study.ask()
        for name, dist in spec.space.items():
            suggest(trial, name, dist)
        extra = ["trainer.epochs=1", "tracking.enabled=false", *extra]
        states.append(trial_module.run_trial(trial, spec, extra, parent_run_id=None))
        assert len(validated) == len(states)  # once per trial
    assert all(s in FINISHED for s in states), [t.user_attrs for t in study.trials]
    assert len(loaded) == 2  # the second trial reused the first's; the seed-7 one did not


def test_retry_ends_when_its_sleep_says_the_wait_was_cut_short():
    """The heartbeat retries a beat through an outage, and the trial's end (an Event set)
    must end those retries at once instead of after RETRY_SECONDS."""
    import threading

    from bpstudy.retry import retry

    calls, stop = [], threading.Event()

    def beat() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()  # the trial ends during the second try
        raise ConnectionError("down")

    started = time.monotonic()
    with pytest.raises(ConnectionError):
        retry(beat, seconds=60, retryable=lambda e: True, first_delay=0.01, sleep=stop.wait)
    assert len(calls) == 2 and time.monotonic() - started < 5


def test_a_trial_attr_is_stored_without_a_password(tmp_path):
    """A failed trial's error and traceback may quote a URL with its password."""
    from bpstudy.sweep.storage import open_storage
    from bpstudy.sweep.trial import set_attr

    storage = open_storage(f"journal:{tmp_path / 'study.log'}")
    study = optuna.create_study(storage=storage, study_name="secrets")
    trial = study.ask()
    set_attr(trial, "error", "OperationalError: postgresql://alice:Pw7secret@db/optuna refused")
    stored = optuna.load_study(study_name="secrets", storage=storage).trials[0].user_attrs
    assert stored["error"] == "OperationalError: postgresql://alice:***@db/optuna refused"
