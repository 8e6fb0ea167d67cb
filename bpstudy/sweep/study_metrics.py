"""What a study's MLflow parent run shows besides its children (docs/dashboard.md): the
sweep file as params, and the study's course as metrics by trial number.

Params (`sweep.*`): the objective, the sampler and pruner with their arguments, each
sampled key's space in the sweep grammar (`sweep.space.model.depth = choice(2, 24)`),
the fixed values and the overrides. MLflow's params cannot change, so those a resumed
study already shows are left as they are (n_trials, which a resume may change, is not
one of them: the description and sweep.json say it).

Metrics, MLflow step = trial number, over the trials numbered up to it, as the study held
them when a command's sweep ended (each step is logged once):
`study/best_value` (the best objective so far; single-objective studies),
`study/value` (that trial's objective, when it completed), `study/complete`,
`study/pruned`, `study/failed`, `study/interrupted` (trials by state) and
`study/outcome/OUTCOME` (trials by their bpstudy.outcome: healthy, vanishing, ...).
"""

from __future__ import annotations

import math
import time

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from bpstudy.errors import redact
from bpstudy.retry import retry
from bpstudy.sweep.counts import INTERRUPTED_STATE, state_name
from bpstudy.sweep.spec import SweepSpec, format_value
from bpstudy.sweep.storage import stored

PARAM_LIMIT = 6000  # MLflow's longest param value
PREFIX = "study"
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
          INTERRUPTED_STATE: "interrupted"}  # fmt: skip


def describe(dist: BaseDistribution) -> str:
    """An Optuna distribution in the sweep grammar that makes it."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(format_value(c) for c in dist.choices)})"
    if isinstance(dist, IntDistribution) and dist.step != 1:
        return f"range({dist.low}, {dist.high + dist.step}, step={dist.step})"
    if isinstance(dist, IntDistribution | FloatDistribution):
        text = f"interval({dist.low}, {dist.high})"
        return f"tag(log, {text})" if dist.log else text
    return repr(dist)


def spec_params(spec: SweepSpec) -> dict[str, str]:
    """The sweep file as the parent run's params."""
    params = {
        "sweep.metric": ", ".join(spec.metrics),
        "sweep.direction": ", ".join(spec.directions),
        "sweep.overrides": " ".join(spec.overrides),
    }
    for part in ("sampler", "pruner"):
        for key, value in getattr(spec, part).items():
            params[f"sweep.{part}.{key}"] = format_value(value)
    for key, dist in spec.space.items():
        params[f"sweep.space.{key}"] = describe(dist)
    for key, value in spec.fixed.items():
        params[f"sweep.fixed.{key}"] = format_value(value)
    return {k: redact(v)[:PARAM_LIMIT] for k, v in params.items()}  # an override may hold a URL


def log_spec_params(client, run_id: str, spec: SweepSpec) -> None:
    """The sweep's params the run does not hold yet (a parent run made before bpstudy
    logged them gets them on resume; one that has them keeps them). Two commands joining
    one study at once may both find them missing: MLflow's store reads then inserts, so
    the later insert fails on the store's unique key. It is asked again, and then finds
    them held."""
    from mlflow.entities import Param

    def log_missing() -> None:
        held = client.get_run(run_id).data.params
        new = [Param(k, v) for k, v in spec_params(spec).items() if k not in held]
        for lo in range(0, len(new), 100):
            client.log_batch(run_id, params=new[lo : lo + 100])

    retry(log_missing, seconds=30, retryable=logged_meanwhile, first_delay=0.05)


# what a unique key refused says: SQLite, PostgreSQL (psycopg), MySQL; through a tracking
# server the store's message comes back in the error's text
_DUPLICATE = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")


def logged_meanwhile(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, is a store's unique key refusing a row that
    another process inserted first."""
    while exc is not None:
        if any(text in str(exc) for text in _DUPLICATE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def study_points(trials: list[FrozenTrial], direction: str | None) -> dict[int, dict[str, float]]:
    """Trial number -> the metrics at that step (see the module's docstring); `direction`
    None for a multi-objective study (no best value)."""
    out: dict[int, dict[str, float]] = {}
    counts = dict.fromkeys(STATES.values(), 0)
    outcomes: dict[str, int] = {}
    best = math.nan
    for t in sorted(trials, key=lambda t: t.number):
        state = state_name(t)
        if state in STATES:
            counts[STATES[state]] += 1
        outcome = t.user_attrs.get("outcome")
        if outcome and t.state != TrialState.RUNNING:
            outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
        point = {f"{PREFIX}/{k}": float(v) for k, v in counts.items()}
        point |= {f"{PREFIX}/outcome/{k}": float(v) for k, v in outcomes.items()}
        if direction is not None and t.state == TrialState.COMPLETE and t.value is not None:
            value = float(t.value)
            point[f"{PREFIX}/value"] = value
            better = value < best if direction == "minimize" else value > best
            best = value if math.isnan(best) or better else best
        if direction is not None and not math.isnan(best):
            point[f"{PREFIX}/best_value"] = best
        out[t.number] = point
    return out


def log_study_metrics(client, run_id: str, study, spec: SweepSpec) -> int:
    """The study's metrics by trial number, for the trial numbers not logged before;
    returns how many points were sent."""
    from mlflow.entities import Metric

    from bpstudy.tracking.points import write_points

    trials = stored(lambda: study.get_trials(deepcopy=False))
    trials = [t for t in trials if t.state not in (TrialState.RUNNING, TrialState.WAITING)]
    direction = None if spec.multi_objective else spec.directions[0]
    done = {m.step for m in client.get_metric_history(run_id, f"{PREFIX}/complete")}
    now = int(time.time() * 1000)
    points = [
        Metric(key, value, now, number)
        for number, metrics in study_points(trials, direction).items()
        if number not in done
        for key, value in metrics.items()
    ]
    if points:
        write_points(client, run_id, points)
    return len(points)
