"""What the MLflow dashboard shows of bpstudy's runs, read back from real SQLite stores:
the experiment kind, run names, log10 companions and layer profiles, logged images, the
study's parent run (docs/dashboard.md). The browser's view: tests/test_dashboard.py."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import bpstudy
from bpstudy.tracking.naming import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

TINY = ["model.depth=3", "model.width=16", "trainer.epochs=2", "trainer.progress=none"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (making one takes seconds); each test its own experiment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def train(uri: str, *overrides: str, listeners=()):
    """One tracked run in-process (the CLI's path below its argument parsing)."""
    from bpstudy.tracking import tracked_train

    cfg = bpstudy.validate(bpstudy.compose([*TINY, f"tracking.uri={uri}", *overrides]))
    return tracked_train(cfg, bpstudy.load_data(cfg), listeners)


def test_an_experiment_bpstudy_creates_opens_in_the_model_training_view(store):
    uri, client = store
    train(uri, "tracking.experiment=made_here")
    exp = client.get_experiment_by_name("made_here")
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"


@pytest.mark.parametrize("kind", [None, "genai_development"])
def test_an_experiment_the_user_made_keeps_its_tags(store, kind):
    """Never overwritten, nor added to: the user may have chosen MLflow's GenAI view."""
    uri, client = store
    tags = {"owner": "me"} | ({EXPERIMENT_KIND_TAG: kind} if kind else {})
    client.create_experiment(f"mine_{kind}", tags=tags)
    train(uri, f"tracking.experiment=mine_{kind}")
    exp = client.get_experiment_by_name(f"mine_{kind}")
    assert len(client.search_runs([exp.experiment_id])) == 1
    assert exp.tags == tags
