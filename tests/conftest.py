"""Shared fixtures: shrunken configs, a per-test working folder, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bpstudy

REPO = Path(__file__).resolve().parents[1]
SMALL = ["model.depth=3", "model.width=16", "trainer.epochs=2", "trainer.progress=none"]


@pytest.fixture
def small_cfg():
    """compose(...) with a shrunken default run; extra overrides win."""

    def make(*overrides: str):
        return bpstudy.compose([*SMALL, *overrides])

    return make


@pytest.fixture
def cli(tmp_path):
    """Run the real `bpstudy` console command in tmp_path; returns CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        exe = Path(sys.executable).with_name("bpstudy")
        return subprocess.run(
            [str(exe), *args],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )

    return run


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
