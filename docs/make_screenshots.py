"""Remake the dashboard screenshots in docs/figures/ (`make screenshots`).

They are the browser test's own: tests/test_dashboard.py runs `bpstudy ui` on a finished
4-trial study and drives MLflow's UI in headless Chromium; with DASHBOARD_SCREENSHOTS set,
it saves each screenshot there too. Needs Debian's chromium and chromium-driver.

    python docs/make_screenshots.py [--out docs/figures]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DASHBOARD_SCREENSHOTS": str(args.out.resolve())}
    test = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_dashboard.py",
    ]
    code = subprocess.call(test, cwd=REPO, env=env)
    if code == 0:
        for name in sorted(args.out.glob("dashboard_*.png")):
            print(name.relative_to(REPO) if name.is_relative_to(REPO) else name)
    sys.exit(code)


if __name__ == "__main__":
    main()
