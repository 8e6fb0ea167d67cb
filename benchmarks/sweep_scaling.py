"""Trials per minute of a quickstart-like sweep with 1 and with 2 local workers, and the
ratio, each in a fresh working directory (embedded MLflow store and journal).

The space is quickstart's, made a grid of equal-cost trials (depth fixed at 10, two
learning rates, no pruning), so both settings do exactly the same work and the figure
measures process and thread placement, not sampling luck.

    python benchmarks/sweep_scaling.py [--repeats 3]

Target (issue 4): 2 workers >= 1.8 x the trials per minute of 1 worker on 2 cores.
The MLflow store is created before the clock starts (its first migration takes seconds).
A second ratio leaves out process start-up and shutdown (about 3 s of imports, checks
and study set-up that no worker count shortens): trials per minute from the first trial's
start to the last trial's end. Single runs here vary by 20% or more, so each setting runs
`--repeats` times, interleaved, and the ratios are of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bpstudy.paths import SWEEPS_DIR

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))


def sweep_file(folder: Path) -> Path:
    spec = yaml.safe_load((SWEEPS_DIR / "quickstart.yaml").read_text())
    spec["study_name"] = "scaling"
    spec["sampler"] = {"name": "grid", "seed": 0}
    spec["pruner"] = {"name": "none"}
    spec["params"]["model.depth"] = "10"
    spec["params"]["optimizer.lr"] = "choice(0.05, 0.2)"
    spec["n_trials"] = 3 * 3 * 2
    path = folder / "scaling.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(workers: int) -> tuple[float, float, int]:
    """(seconds end to end, seconds from the first trial's start to the last one's end,
    trials)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warm = [BPSTUDY, "train", "model.depth=1", "trainer.epochs=1", "trainer.progress=none"]
        subprocess.run(warm, cwd=folder, check=True, capture_output=True)
        path = sweep_file(folder)
        n_trials = yaml.safe_load(path.read_text())["n_trials"]
        start = time.perf_counter()
        cmd = [BPSTUDY, "sweep", str(path), "--workers", str(workers), "--progress", "lines"]
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        storage = JournalStorage(JournalFileBackend(str(folder / "bpstudy.journal")))
        trials = optuna.load_study(study_name="scaling", storage=storage).trials
        first = min(t.datetime_start for t in trials)
        last = max(t.datetime_complete for t in trials)
        return seconds, (last - first).total_seconds(), n_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'workers':>7} {'trials':>6} {'seconds':>8} {'trials/min':>10} {'steady/min':>10}")
    rates: dict[int, list[float]] = {1: [], 2: []}
    steady: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        for workers in (1, 2):
            seconds, busy, n = run(workers)
            rates[workers].append(n / seconds * 60)
            steady[workers].append(n / busy * 60)
            print(
                f"{workers:>7} {n:>6} {seconds:>8.1f} {rates[workers][-1]:>10.1f} "
                f"{steady[workers][-1]:>10.1f}",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_steady = {k: statistics.median(v) for k, v in steady.items()}
    print(
        f"median ratio 2 workers / 1 worker: {med[2] / med[1]:.2f} end to end (the target's figure)"
    )
    print(
        f"median ratio 2 workers / 1 worker: {med_steady[2] / med_steady[1]:.2f} from the first "
        "trial's start to the last one's end (without process start-up and shutdown)"
    )


if __name__ == "__main__":
    main()
