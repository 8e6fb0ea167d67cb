"""Wall time of one run with MLflow tracking (embedded SQLite) over the same run without.

Depth 50, width 128, batch 64, 1000 optimizer steps (digits, 50 epochs), once with
`trainer.log_every=1` and once with the default settings. The store is created by a
warm-up run first (a new mlflow.db costs a few seconds of table migrations once).

    python benchmarks/tracking_overhead.py [--repeats 3]

Targets (issue 3): default settings <= 1.05 x; log_every=1 <= 1.25 x. The same run took
8 to 13 s from one try to the next on this machine (a shared VM) when this was written,
and about 3 s in December 2026; so each setting runs
interleaved repeats and three ratios are printed: of the medians, of the fastest runs
(the least disturbed, the usual estimate of what the code itself costs), and the median of
each repeat's own ratio (a tracked run over the untracked one just before it: a slow
spell of the machine hits both); use --repeats 7 or more for the 5% one. The last column
is what tracking adds to a run, in seconds (the median of the same pairs' differences):
the figure that stays put when the machine's speed does not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import bpstudy
from bpstudy.tracking import tracked_train
from bpstudy.training.run import load_data

BASE = [
    "model.depth=50",
    "model.width=128",
    "trainer.batch_size=64",
    "trainer.epochs=50",
    "trainer.progress=none",
]


def wall(cfg) -> float:
    start = time.perf_counter()
    tracked_train(cfg, load_data(cfg))  # the data's load timed too, as a run pays it
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        warm = bpstudy.validate(
            bpstudy.compose([*BASE[:3], "trainer.epochs=1", "trainer.progress=none"])
        )
        tracked_train(warm, load_data(warm))
        print(
            f"{'setting':>14} {'off s':>7} {'on s':>7} {'ratio':>6} {'best':>6} {'paired':>6}"
            f" {'+s/run':>7}"
        )
        for label, extra in (("default", []), ("log_every=1", ["trainer.log_every=1"])):
            off = bpstudy.validate(bpstudy.compose([*BASE, *extra, "tracking.enabled=false"]))
            on = bpstudy.validate(bpstudy.compose([*BASE, *extra]))
            t_off, t_on = [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                t_off.append(wall(off))
                t_on.append(wall(on))
            a, b = statistics.median(t_off), statistics.median(t_on)
            spread = (
                f"(off {min(t_off):.1f}-{max(t_off):.1f} s, on {min(t_on):.1f}-{max(t_on):.1f} s)"
            )
            best = min(t_on) / min(t_off)
            pairs = list(zip(t_on, t_off, strict=True))
            paired = statistics.median(on / off for on, off in pairs)
            added = statistics.median(on - off for on, off in pairs)
            print(
                f"{label:>14} {a:>7.2f} {b:>7.2f} {b / a:>6.2f} {best:>6.2f} {paired:>6.2f} "
                f"{added:>7.2f}  "
                f"{spread}",
                flush=True,
            )


if __name__ == "__main__":
    main()
