"""What MLflow shows an experiment as: the experiment kind that opens bpstudy's
experiments in MLflow's model-training view (docs/dashboard.md).
"""

from __future__ import annotations

# MLflow 3's UI reads the experiment tag `mlflow.experimentKind` to choose between its
# GenAI view ("Evaluation runs", "Judges", "Prompts") and its model-training view (Runs,
# charts, Models): EXPERIMENT_KIND_TAG_KEY and ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in
# mlflow/server/js/src/experiment-tracking (utils/ExperimentKindUtils.ts, constants.ts),
# labelled "Machine learning" in its kind selector. MLflow's Python client has no constant
# for either (3.18); tests/test_dashboard.py checks that the UI opens in that view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def experiment_tags() -> dict[str, str]:
    """The tags of an experiment bpstudy creates (never set on one that exists)."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
