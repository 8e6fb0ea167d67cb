"""The mean-field prediction beside a study's measurements (docs/theory.md): each trial's
`bpstudy.theory` Prediction, from the config its MLflow run recorded as params, and the
predicted profile of one line of the gradient-flow profile.

A line of the profile is a median over several runs. Its predicted line is drawn only
when every one of those runs has the same prediction (one activation, init, width,
depth, ... under backprop in a plain MLP); a line over runs that differ in what the
theory reads (a median over three inits) gets none, and the report says which key
differs, so that `--where` or `--group` on it gives the lines their predictions.

The report predicts from the config alone: the data's first-layer statistics are
bpstudy's standardised features (E‖x‖² = in_dim), where the run used its data's own (a
constant feature counts 0). For digits that moves the predicted first/last ratio by a few
thousandths of a decade (at most 0.004 over the edge_of_chaos study's 56 runs); the run's
own figure is its `theory/ratio_log10` metric.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bpstudy.config.schema import Config
from bpstudy.errors import ConfigError
from bpstudy.report.table import RunRecord
from bpstudy.theory import Prediction, predict_config

# the params a prediction reads: bpstudy.theory.predict_config uses these alone
THEORY_INPUTS = ("model.", "data.", "learning_rule.name")
MAX_NAMED = 3  # differing keys named in a note


@dataclass(frozen=True)
class RunTheory:
    """One trial's prediction, or why there is none (no run, a config that does not read)."""

    prediction: Prediction | None
    why_not: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)  # its THEORY_INPUTS params
    config: Config | None = None  # the run's, from its params


def run_theories(table: pd.DataFrame, runs: Mapping[str, RunRecord]) -> dict[Hashable, RunTheory]:
    """The RunTheory of each row of `table` (by index), from its run's params; one
    prediction per distinct setting (a grid of 60 trials has a few)."""
    from bpstudy.config.params import config_from_params

    known: dict[tuple, tuple[Prediction | None, str, Config | None]] = {}
    out: dict[Hashable, RunTheory] = {}
    for index, run_id in table["mlflow_run_id"].items():
        run = runs.get(run_id) if isinstance(run_id, str) else None
        if run is None or not run.params:
            out[index] = RunTheory(None, "no MLflow run with its config")
            continue
        settings = {k: v for k, v in run.params.items() if k.startswith(THEORY_INPUTS)}
        key = tuple(sorted(settings.items()))
        if key not in known:
            config = None
            try:
                config = config_from_params(run.params)
                known[key] = (predict_config(config), "", config)
            except ConfigError as exc:  # a csv's input size, or a config of another version
                known[key] = (None, f"its config gives no prediction: {exc}", config)
        prediction, why, config = known[key]
        out[index] = RunTheory(prediction, why, settings, config)
    return out


@dataclass(frozen=True)
class LinePrediction:
    """The predicted log10 ‖dW_l‖ − log10 ‖dW_L‖, l = 1 .. L, of one profile line, or
    why it has none."""

    profile: np.ndarray | None
    why_not: str = ""


def line_prediction(theories: Sequence[RunTheory]) -> LinePrediction:
    """The one prediction every run of a line shares; none (with the reason) otherwise."""
    if not theories:
        return LinePrediction(None, "no runs")
    for t in theories:
        if t.prediction is None:
            return LinePrediction(None, t.why_not)
        if not t.prediction.applicable:
            return LinePrediction(None, f"mean field does not apply: {t.prediction.reason}")
    first = np.asarray(theories[0].prediction.profile, dtype=float)
    for t in theories[1:]:
        other = np.asarray(t.prediction.profile, dtype=float)
        if other.shape != first.shape or not np.allclose(other, first, rtol=0, atol=1e-9):
            keys = differing(theories)
            named = ", ".join(keys[:MAX_NAMED]) + (" ..." if len(keys) > MAX_NAMED else "")
            return LinePrediction(None, f"its runs differ in {named or 'their configs'}")
    return LinePrediction(first)


def differing(theories: Sequence[RunTheory]) -> list[str]:
    """The THEORY_INPUTS keys whose values differ across the runs, sorted."""
    keys = sorted({k for t in theories for k in t.settings})
    return [k for k in keys if len({t.settings.get(k) for t in theories}) > 1]


def anchored(profile: np.ndarray, layers: np.ndarray, medians: np.ndarray) -> np.ndarray | None:
    """The predicted norms at `layers` (NaN past the profile's depth), through the measured
    median at the profile's last layer L: the theory says how the norms fall from there
    toward the input, not how large they are. None where that median is not positive."""
    depth = len(profile)
    at_top = medians[layers == depth]
    if at_top.size != 1 or not np.isfinite(at_top[0]) or at_top[0] <= 0:
        return None
    values = np.full(layers.shape, np.nan)
    inside = (layers >= 1) & (layers <= depth)
    values[inside] = at_top[0] * 10.0 ** profile[layers[inside] - 1]
    values[~(values > 0)] = np.nan  # a layer predicted dead (-inf) has no place on a log axis
    return values
