"""The study table: Optuna trials joined with their MLflow child runs, one row per trial.

Pure: it takes the trials and plain run records and returns a pandas DataFrame; reading
the storages is `studies.py` and `runs.py`, drawing is `figures.py`.

Columns, in order (Optuna's `params_` prefix for sampled values, MLflow's metric names):

| column | from |
| --- | --- |
| `number` | the trial number |
| `state` | COMPLETE, PRUNED, FAIL, RUNNING or WAITING (Optuna's), or INTERRUPTED: stopped by Ctrl-C and queued again (FAIL in Optuna) |
| `outcome` | healthy, vanishing, exploding, diverged, failed (user attr, else run tag), interrupted (Ctrl-C; queued again) |
| `training`, `symptoms` | the training verdict (learned, stalled, unstable, overfit, dead_units, saturated) and every symptom, comma-separated (user attr, else run tag; empty for a run that did not end) |
| `params_<key>` | every sampled value, e.g. `params_model.activation` |
| `objective` | the study's value (multi-objective: `objective_<metric>` each) |
| `diverged_step` | optimizer step at which the run went NaN/inf (empty otherwise) |
| `prune_reason`, `error` | why the trial was pruned / failed |
| `duration_s` | the trial's wall time |
| `mlflow_run_id`, `run_status` | the child run and its MLflow status |
| `train/loss`, `val/loss`, ... | each run's final (latest) value of every non-layer metric |
| `theory/ratio_log10` | the mean-field prediction of log10(first / last hidden layer's gradient norm) at initialisation, beside the measured `grad_norm/ratio_log10` (final here) |
| `theory.q_star`, `theory.chi1`, `theory.xi_c`, `theory.phase`, `theory.reason` | the run's mean-field params (docs/theory.md); phase `not applicable` with the reason where the theory does not describe the net |
| `grad_norm/L01`, ... | each run's final gradient norm per hidden layer (1 = input side) |
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from bpstudy.sweep.counts import INTERRUPTED_STATE, state_name
from bpstudy.sweep.interrupt import was_interrupted
from bpstudy.tracking.theory import THEORY_RATIO

PARAM_PREFIX = "params_"
GRAD_PREFIX = "grad_norm/L"
OBJECTIVE = "objective"
# the run-level metrics a reader looks for first; any other non-layer metric follows
FINAL_METRICS = (
    "train/loss",
    "train/accuracy",
    "val/loss",
    "val/accuracy",
    "test/loss",
    "test/accuracy",
    "grad_norm/ratio_log10",
    THEORY_RATIO,
    "lr",
    "epoch",
)
# the run's mean-field params (bpstudy.tracking.theory), numbers first
THEORY_NUMBERS = ("theory.q_star", "theory.chi1", "theory.xi_c")
THEORY_PARAMS = (*THEORY_NUMBERS, "theory.phase", "theory.reason")
_LAYER_METRIC = re.compile(r"/L\d+$")
_GRAD_COLUMN = re.compile(r"^grad_norm/L(\d+)$")


@dataclass(frozen=True)
class RunRecord:
    """What the table needs of one MLflow run: latest metric values, tags, status, and
    its params (the resolved config as dotted keys, and the theory.* ones)."""

    run_id: str
    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


def objective_columns(metric_names: Sequence[str]) -> list[str]:
    """`objective` for one objective; `objective_<metric>` each for several."""
    if len(metric_names) <= 1:
        return [OBJECTIVE]
    return [name if name.startswith(OBJECTIVE) else f"{OBJECTIVE}_{name}" for name in metric_names]


def evidence(table: pd.DataFrame) -> pd.DataFrame:
    """The trials that say something about their values: all but those the user
    interrupted (their values were queued and ran again as another trial)."""
    return table[~table["state"].eq(INTERRUPTED_STATE)]


def param_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(PARAM_PREFIX)]


def param_name(column: str) -> str:
    """params_model.depth -> model.depth"""
    return column.removeprefix(PARAM_PREFIX)


def grad_columns(table: pd.DataFrame) -> list[str]:
    """grad_norm/L01, grad_norm/L02, ... in layer order (input side first)."""
    cols = [c for c in table.columns if _GRAD_COLUMN.match(c)]
    return sorted(cols, key=layer_index)


def layer_index(column: str) -> int:
    """grad_norm/L07 -> 7"""
    found = _GRAD_COLUMN.match(column)
    if found is None:
        raise ValueError(f"not a per-layer gradient column: {column!r}")
    return int(found.group(1))


def _outcome(trial: FrozenTrial, run: RunRecord | None) -> str | None:
    if was_interrupted(trial):
        return "interrupted"  # stopped by the user, its values queued again: not a failure
    if trial.user_attrs.get("outcome"):
        return str(trial.user_attrs["outcome"])
    if run is not None and run.tags.get("bpstudy.outcome"):
        return run.tags["bpstudy.outcome"]
    return "failed" if trial.state == TrialState.FAIL else None


def _attr_or_tag(trial: FrozenTrial, run: RunRecord | None, key: str) -> str | None:
    """A trial's user attr `key`, else its run's tag bpstudy.<key>."""
    if key in trial.user_attrs:
        return str(trial.user_attrs[key])
    if run is not None and f"bpstudy.{key}" in run.tags:
        return run.tags[f"bpstudy.{key}"]
    return None


def _diverged_step(trial: FrozenTrial, run: RunRecord | None) -> int | None:
    step = trial.user_attrs.get("diverged_step")
    if step is None and run is not None:
        step = run.tags.get("bpstudy.diverged_step")
    try:
        return None if step is None else int(step)
    except (TypeError, ValueError):
        return None


def _finite_or_nan(value) -> float:
    return float(value) if value is not None else math.nan


def trials_table(
    trials: Sequence[FrozenTrial],
    runs: Mapping[str, RunRecord],
    metric_names: Sequence[str] = ("objective",),
) -> pd.DataFrame:
    """One row per trial, sorted by trial number; see the module docstring for columns.

    `runs` maps MLflow run ids to their records; a trial whose run is missing (tracking
    off, or the run deleted) keeps its Optuna columns and empty metric columns."""
    objectives = objective_columns(metric_names)
    params = sorted({name for t in trials for name in t.params})
    rows: list[dict] = []
    metric_keys: set[str] = set()
    theory_keys: set[str] = set()
    for trial in sorted(trials, key=lambda t: t.number):
        run_id = trial.user_attrs.get("mlflow_run_id")
        run = runs.get(run_id) if run_id else None
        row: dict = {
            "number": trial.number,
            "state": state_name(trial),
            "outcome": _outcome(trial, run),
            "training": _attr_or_tag(trial, run, "training"),
            "symptoms": _attr_or_tag(trial, run, "symptoms"),
        }
        inactive = set(trial.user_attrs.get("inactive_params", ()))
        for name in params:  # a value the chosen group option has no key for did nothing
            row[PARAM_PREFIX + name] = None if name in inactive else trial.params.get(name)
        values = trial.values if trial.state == TrialState.COMPLETE else None
        for i, col in enumerate(objectives):
            row[col] = _finite_or_nan(values[i]) if values and i < len(values) else math.nan
        row["diverged_step"] = _diverged_step(trial, run)
        row["prune_reason"] = trial.user_attrs.get("prune_reason") or (
            run.tags.get("bpstudy.stop_reason") if run is not None else None
        )
        row["error"] = trial.user_attrs.get("error") or (
            run.tags.get("bpstudy.error") if run is not None else None
        )
        row["duration_s"] = trial.duration.total_seconds() if trial.duration else math.nan
        row["mlflow_run_id"] = run_id
        row["run_status"] = run.status if run is not None else None
        if run is not None:
            for key, value in run.metrics.items():
                if key.startswith(GRAD_PREFIX) or not _LAYER_METRIC.search(key):
                    row[key] = float(value)
                    metric_keys.add(key)
            for key in THEORY_PARAMS:
                if key in run.params:
                    row[key] = run.params[key]
                    theory_keys.add(key)
        rows.append(row)

    fixed = [
        "number",
        "state",
        "outcome",
        "training",
        "symptoms",
        *(PARAM_PREFIX + p for p in params),
        *objectives,
    ]
    fixed += ["diverged_step", "prune_reason", "error", "duration_s", "mlflow_run_id", "run_status"]
    grads = sorted((k for k in metric_keys if _GRAD_COLUMN.match(k)), key=layer_index)
    others = sorted(k for k in metric_keys if k not in grads and k not in FINAL_METRICS)
    finals = [k for k in FINAL_METRICS if k in metric_keys] + others
    theory = list(THEORY_PARAMS) if theory_keys else []  # all, where any run has one
    table = pd.DataFrame(rows, columns=fixed + finals + theory + grads)
    table["number"] = table["number"].astype("int64")
    table["diverged_step"] = table["diverged_step"].astype("Int64")
    for col in [*objectives, "duration_s", *finals, *grads]:
        table[col] = table[col].astype("float64")
    for col in (c for c in THEORY_NUMBERS if c in theory):  # "inf": xi_c at the edge
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("float64")
    return table


__all__ = [
    "FINAL_METRICS",
    "GRAD_PREFIX",
    "OBJECTIVE",
    "PARAM_PREFIX",
    "THEORY_PARAMS",
    "RunRecord",
    "grad_columns",
    "layer_index",
    "objective_columns",
    "param_columns",
    "param_name",
    "trials_table",
]
