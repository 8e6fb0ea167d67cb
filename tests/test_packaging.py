"""The wheel ships conf/ and sweeps/: installed (not editable) into a fresh venv, the
console command works from another directory."""

from __future__ import annotations

import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_install_runs_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    wheel = next(dist.glob("bpstudy-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "bpstudy/conf/config.yaml" in names
    assert "bpstudy/conf/model/mlp.yaml" in names
    assert any(n.startswith("bpstudy/sweeps/") for n in names)

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # dependencies come from this environment's site-packages (a plain path entry, so its
    # editable-install hook for the source tree is not run); bpstudy itself from the wheel
    fresh_site = Path(
        subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    (fresh_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import bpstudy, bpstudy.paths as p; print(bpstudy.__file__); print(p.CONF_DIR)"],
        cwd=elsewhere, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(venv)) and where[1].startswith(str(venv))

    out = subprocess.run(
        [str(venv / "bin" / "bpstudy"), "train", "--cfg", "job", "model.depth=7"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "depth: 7" in out.stdout and "activation:" in out.stdout
    out = subprocess.run(
        [str(venv / "bin" / "bpstudy"), "train", "model.depth=2", "trainer.epochs=1",
         "trainer.progress=none", "tracking.enabled=false"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "status: finished" in out.stdout
