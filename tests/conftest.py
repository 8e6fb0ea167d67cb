"""Shared fixtures: shrunken configs, a per-test working folder, the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import bpstudy

REPO = Path(__file__).resolve().parents[1]
SMALL = ["model.depth=3", "model.width=16", "trainer.epochs=2", "trainer.progress=none"]


# What the launching shell's environment must not change: a user's MLflow server or run,
# bpstudy's own knobs, Hydra's full tracebacks, a completion line.
FOREIGN_ENV = ("MLFLOW_", "BPSTUDY_", "OPTUNA_", "HYDRA_FULL_ERROR", "COMP_LINE", "COMP_POINT")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    """Each test starts without the variables of FOREIGN_ENV (a test sets what it needs):
    with MLFLOW_TRACKING_URI set in the shell, runs went to that store, not to tmp_path."""
    for key in [k for k in os.environ if k.startswith(FOREIGN_ENV)]:
        monkeypatch.delenv(key)


@contextlib.contextmanager
def ctrl_c_as_in_a_terminal():
    """SIGINT as a terminal's foreground job has it, inside the block: it raises
    KeyboardInterrupt here, and every process started meanwhile begins with SIGINT at its
    default (exec resets a handled signal to default; an ignored one stays ignored). A
    suite started as a background job (`make test &` in a script) has SIGINT ignored from
    the start, and so had every command it ran: a Ctrl-C sent by a test did nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, left as it is now
            signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c():
    """For a test that sends Ctrl-C, to itself or to a command it starts."""
    with ctrl_c_as_in_a_terminal():
        yield


@pytest.fixture
def small_cfg():
    """compose(...) with a shrunken default run; extra overrides win."""

    def make(*overrides: str):
        return bpstudy.compose([*SMALL, *overrides])

    return make


@pytest.fixture
def cli(tmp_path):
    """Run the real `bpstudy` console command in tmp_path; returns CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None,
            prefix: list[str] | tuple[str, ...] = ()):  # fmt: skip
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        exe = Path(sys.executable).with_name("bpstudy")
        return subprocess.run(
            [*prefix, str(exe), *args],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )

    return run


def file_modes_apply() -> list[str]:
    """A command prefix under which file modes bind the command, so that a file made
    unreadable (chmod 0) cannot be read: as root, `setpriv` drops the capabilities that let
    root read and search anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); as another user
    there is nothing to drop. Not `user="nobody"`: the interpreter may live where nobody
    may enter (here /root/.pyenv, mode 700). Skips the test without setpriv."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): root reads any file")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def listing(folder: Path) -> list[str]:
    """Every path under `folder`, relative, sorted: what a command left behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def trainer_for(cfg, listeners=(), data=None):
    """`make_trainer` for a composed config: validated once, its data loaded unless given."""
    from bpstudy.training.run import load_data, make_trainer

    config = bpstudy.validate(cfg)
    return make_trainer(config, data if data is not None else load_data(config), listeners)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error of two arrays, ||a - b|| / (||a|| + ||b||), safe at zero.

    Norm-wise rather than per entry: entries that are nearly zero carry the finite
    difference's round-off (~1e-10) and would dominate an entrywise ratio."""
    return float(np.linalg.norm(a - b) / max(1e-12, np.linalg.norm(a) + np.linalg.norm(b)))


def wait_until(condition, timeout: float, what: str, poll: float = 0.1):
    """Poll `condition()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def processes_marked(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (a command's children). A
    zombie's environment reads empty: an ended process that no one reaped is not live."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours
            if marker.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
    return pids


# A finished 4-trial study, for the tests of what MLflow shows of a study
# (tests/test_mlflow_layout.py, tests/test_dashboard.py): a 2 x 2 grid of depth x
# activation, whose deep trials' gradients vanish (sigmoid and tanh, standard init).
TINY_STUDY = """\
study_name: tiny
metric: val/loss
direction: minimize
n_trials: 4
sampler: {name: grid, seed: 0}
pruner: {name: none}
overrides: [data=digits, model.width=16, model.init.scheme=standard, optimizer.lr=0.003,
            trainer.epochs=2, trainer.log_every=5, trainer.progress=none]
params:
  model.depth: choice(2, 24)
  model.activation: choice(sigmoid, tanh)
"""


@dataclass
class TinyStudy:
    folder: Path  # the working folder: mlflow.db, bpstudy.journal, reports/tiny/
    uri: str  # its MLflow store
    storage: str  # its Optuna storage


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> TinyStudy:
    """`bpstudy sweep` then `bpstudy report` on TINY_STUDY, through the real CLI, once per
    session (about 20 s); tests read it, none writes to it."""
    folder = tmp_path_factory.mktemp("tiny_study")
    (folder / "tiny.yaml").write_text(TINY_STUDY)
    exe = Path(sys.executable).with_name("bpstudy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    for args in (["sweep", "tiny.yaml", "--workers", "2"], ["report", "tiny"]):
        out = subprocess.run([str(exe), *args], cwd=folder, capture_output=True, text=True,
                             timeout=300, stdin=subprocess.DEVNULL, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
    return TinyStudy(
        folder, f"sqlite:///{folder / 'mlflow.db'}", f"journal:{folder / 'bpstudy.journal'}"
    )
