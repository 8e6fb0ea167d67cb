"""The training verdict (bpstudy.training.verdict) against the labelled corpus
(tests/diagnosis_cases.yaml), its thresholds from config, and its tags and summary line
through the real CLI and MLflow store."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from bpstudy.config.compose import compose
from bpstudy.config.validate import validate
from bpstudy.training.run import train
from bpstudy.training.verdict import SYMPTOMS, verdict_of
from tests.diagnosis_corpus import QUIET, Got, load_cases, run_case

CASES = load_cases()


def test_the_corpus_covers_every_symptom_with_healthy_controls():
    assert len(CASES) >= 30
    named = {s for case in CASES for s in case.symptoms}
    assert named == set(SYMPTOMS)
    for symptom in SYMPTOMS:  # each alone, or first, somewhere: its own constructed case
        assert any(case.training == symptom for case in CASES), symptom
    controls = [c for c in CASES if c.training == "learned"]
    assert len(controls) >= 10 and all(not c.symptoms for c in controls)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_case_gets_its_verdicts(case):
    got = run_case(case)
    assert got == Got(case.outcome, case.training, case.symptoms), case.why


def verdict_for(*overrides: str):
    config = validate(compose(overrides=[*overrides, *QUIET]))
    return verdict_of(train(config), config)


def case_named(name: str):
    return next(c for c in CASES if c.name == name)


@pytest.mark.parametrize(
    ("case", "moved"),
    [
        ("bias_3", ["dead_share=0.9"]),
        ("deep_relu_he_20", ["unstable_spike_ratio=10.0"]),
        ("tiny_lr", ["stalled_loss_ratio=2.0", "stalled_accuracy_margin=0.0"]),
        ("digits_small_wide", ["overfit_accuracy_gap=0.5"]),
    ],
)
def test_a_threshold_from_config_decides_its_rule(case, moved):
    """The `outcome.*` keys are the ones the rule reads: moved past the case, it goes quiet."""
    c = case_named(case)
    assert verdict_for(*c.overrides).symptoms == c.symptoms
    quiet = verdict_for(*c.overrides, *(f"outcome.{m}" for m in moved))
    assert quiet.training == "learned", quiet


def test_the_training_verdict_is_a_tag_and_a_summary_line(cli, tmp_path):
    """The issue's first case: 5 sigmoid layers at chance are `healthy` by gradient flow,
    and `stalled` by the verdict."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = case_named("sigmoid_5")
    out = cli("train", *c.overrides, "trainer.progress=none", f"tracking.uri={uri}")
    assert out.returncode == 0, out.stderr
    assert "outcome: healthy" in out.stdout
    assert "training: stalled" in out.stdout
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bpstudy").experiment_id])
    tags = run.data.tags
    assert (tags["bpstudy.outcome"], tags["bpstudy.training"]) == ("healthy", "stalled")
    assert tags["bpstudy.symptoms"] == "stalled"


def test_several_symptoms_are_named_in_the_summary(cli):
    c = case_named("negative_bias")
    out = cli("train", *c.overrides, "trainer.progress=none", "tracking.enabled=false")
    assert out.returncode == 0, out.stderr
    assert "training: stalled (symptoms: stalled, dead_units)" in out.stdout
