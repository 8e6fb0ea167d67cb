"""What a sweep shows while it runs and when it ends: a progress bar (or a line per
change) and the study's best trial."""

from __future__ import annotations

import math
import sys

from bpstudy.sweep.counts import TrialCounts, count_trials
from bpstudy.sweep.spec import SweepSpec, format_value
from bpstudy.sweep.storage import stored


def describe_best(study, spec: SweepSpec) -> str | None:
    try:
        if spec.multi_objective:
            best = stored(lambda: study.best_trials)
            return f"{len(best)} Pareto-optimal trials" if best else None
        t = stored(lambda: study.best_trial)
    except ValueError:
        return None
    inactive = set(t.user_attrs.get("inactive_params", ()))  # sampled, but not used
    values = ", ".join(f"{k}={format_value(v)}" for k, v in t.params.items() if k not in inactive)
    return f"best {spec.metrics[0]} {t.value:.5g} (trial #{t.number}: {values})"


class Progress:
    def __init__(self, spec: SweepSpec, enabled: bool) -> None:
        self.spec, self.bar = spec, None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=spec.n_trials,
                unit="trial",
                desc=spec.study_name,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self.last = None

    def update(self, study) -> TrialCounts:
        c = count_trials(study)
        done = c.finished
        best = None
        if not self.spec.multi_objective and c.complete:
            try:
                best = stored(lambda: study.best_value)
            except ValueError:
                best = None
        status = {
            "complete": c.complete,
            "pruned": c.pruned,
            "failed": c.failed,
            "running": c.running,
        }
        if c.interrupted:  # by an earlier Ctrl-C: queued again, not failed
            status["interrupted"] = c.interrupted
        if best is not None and math.isfinite(best):
            status["best"] = f"{best:.4g}"
        if self.bar is not None:
            self.bar.n = min(done, self.spec.n_trials)
            self.bar.set_postfix(status, refresh=False)
            self.bar.refresh()
        elif (done, c.failed) != self.last:
            print(
                f"{self.spec.study_name}: {done}/{self.spec.n_trials} finished  "
                + "  ".join(f"{k} {v}" for k, v in status.items()),
                file=sys.stderr,
                flush=True,
            )
        self.last = (done, c.failed)
        return c

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
