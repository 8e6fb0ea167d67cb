"""What MLflow shows a run and an experiment as: run names that say what a run is, and
the experiment kind that opens bpstudy's experiments in MLflow's model-training view
(docs/dashboard.md).

Without a name, MLflow gives a run a random one (`rare-smelt-547`), and the runs table
cannot tell two runs apart. A run is named from its config ("d30 sigmoid standard sgd");
a sweep trial leads with its number and sampled values ("#12 depth=30 act=sigmoid
lr=3e-3"), which the study's parent run already puts in context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bpstudy.config.schema import Config

# MLflow 3's UI reads the experiment tag `mlflow.experimentKind` to choose between its
# GenAI view ("Evaluation runs", "Judges", "Prompts") and its model-training view (Runs,
# charts, Models): EXPERIMENT_KIND_TAG_KEY and ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in
# mlflow/server/js/src/experiment-tracking (utils/ExperimentKindUtils.ts, constants.ts),
# labelled "Machine learning" in its kind selector. MLflow's Python client has no constant
# for either (3.18); tests/test_dashboard.py checks that the UI opens in that view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"

# short forms for a run name, where the full word would crowd the runs table
_RULES = {
    "backprop": "",
    "feedback_alignment": "fa",
    "direct_feedback_alignment": "dfa",
    "contrastive_hebbian": "chl",
    "equilibrium_propagation": "eqprop",
}
_KEYS = {
    "activation": "act",
    "scheme": "init",
    "learning_rule": "rule",
    "optimizer": "opt",
    "batch_norm": "bn",
    "residual.enabled": "residual",
}


def experiment_tags() -> dict[str, str]:
    """The tags of an experiment bpstudy creates (never set on one that exists)."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}


def run_name(cfg: Config) -> str:
    """ "d30 sigmoid standard sgd": depth, activation, init, optimizer, then what differs
    from a plain MLP trained by backprop (batch norm, residual, dropout, the rule)."""
    m = cfg.model
    parts = [f"d{m.depth}", m.activation, m.init.scheme, cfg.optimizer.name]
    if m.batch_norm:
        parts.append("bn")
    if m.residual.enabled:
        parts.append("residual")
    if m.dropout:
        parts.append(f"dropout={short_value(m.dropout)}")
    rule = cfg.learning_rule.name
    short = _RULES.get(rule, rule)
    if short:
        parts.append(short)
    return " ".join(parts)


def trial_run_name(number: int, params: Mapping[str, Any]) -> str:
    """ "#12 depth=30 act=sigmoid lr=3e-3": the trial's number, then its sampled values in
    the sweep file's order, each under the last part of its key (the full key where two
    would read the same)."""
    shorts = {key: short_key(key) for key in params}
    taken: dict[str, int] = {}
    for s in shorts.values():
        taken[s] = taken.get(s, 0) + 1
    parts = [f"#{number}"]
    for key, value in params.items():
        name = shorts[key] if taken[shorts[key]] == 1 else key
        parts.append(f"{name}={short_value(value)}")
    return " ".join(parts)


def short_key(key: str) -> str:
    """model.activation -> act, model.init.scheme -> init, optimizer.lr -> lr."""
    for long, short in _KEYS.items():
        if key == long or key.endswith(f".{long}"):
            return short
    return key.rsplit(".", 1)[-1]


def short_value(value: Any) -> str:
    """3 -> 3, 0.0031622 -> 3.2e-3, 0.25 -> 0.25, True -> true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value == 0 or 1e-2 <= abs(value) < 1e4:
            return f"{value:.3g}"
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    return str(value)
