"""What the MLflow dashboard shows of bpstudy's runs, read back from real SQLite stores:
the experiment kind, run names, log10 companions and layer profiles, logged images, the
study's parent run (docs/dashboard.md). The browser's view: tests/test_dashboard.py."""

from __future__ import annotations

import dataclasses

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


# ------------------------------------------------------------------ run names


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ([], "d3 relu he_normal sgd"),
        (
            ["model.depth=30", "model.activation=sigmoid", "model.init.scheme=standard"],
            "d30 sigmoid standard sgd",
        ),
        (["optimizer=adam", "learning_rule=feedback_alignment"], "d3 relu he_normal adam fa"),
        (
            ["learning_rule=direct_feedback_alignment", "model.dropout=0.1"],
            "d3 relu he_normal sgd dropout=0.1 dfa",
        ),
        (
            ["model.batch_norm=true", "model.residual.enabled=true"],
            "d3 relu he_normal sgd bn residual",
        ),
    ],
)
def test_a_run_is_named_from_its_config(overrides, name):
    from bpstudy.tracking.naming import run_name

    assert run_name(bpstudy.validate(bpstudy.compose([*TINY, *overrides]))) == name


def test_a_trial_name_leads_with_its_sampled_values():
    from bpstudy.tracking.naming import trial_run_name

    params = {"model.depth": 30, "model.activation": "sigmoid", "optimizer.lr": 0.0031622,
              "model.init.scheme": "he_normal", "model.batch_norm": True}  # fmt: skip
    assert trial_run_name(12, params) == "#12 depth=30 act=sigmoid lr=3.2e-3 init=he_normal bn=true"
    # two keys that would read the same keep their full names
    assert trial_run_name(0, {"regularization.l1": 1e-4, "a.l1": 0.5, "optimizer": "adam"}) == (
        "#0 regularization.l1=1e-4 a.l1=0.5 opt=adam"
    )


def test_a_standalone_run_and_a_rerun_are_named_from_the_config(store):
    from bpstudy.tracking.rerun import rerun

    uri, client = store
    tracked = train(uri, "model.activation=tanh", "tracking.experiment=names")
    assert client.get_run(tracked.run_id).info.run_name == "d3 tanh he_normal sgd"
    again = rerun(tracked.run_id, uri)
    assert client.get_run(again.run_id).info.run_name == "d3 tanh he_normal sgd (rerun)"


def test_sweep_children_are_named_by_their_sampled_values(tiny_study):
    client = MlflowClient(tiny_study.uri)
    exp = client.get_experiment_by_name("bpstudy")
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND  # made by the sweep
    runs = client.search_runs([exp.experiment_id])
    names = {r.info.run_name for r in runs if "optuna.trial" in r.data.tags}
    expected = {f"depth={d} act={a}" for d in (2, 24) for a in ("sigmoid", "tanh")}
    assert {n.split(" ", 1)[1] for n in names} == expected
    for r in runs:
        if "optuna.trial" in r.data.tags:
            assert r.info.run_name.startswith(f"#{r.data.tags['optuna.trial']} ")


# ------------------------------------------------------------------ readable magnitudes


def history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_the_profile_metrics_are_the_logged_statistics_by_layer(store, tmp_path):
    """profile_by_layer/*: step = hidden layer, values = log10 grad_norm of
    diagnostics/layers.parquet at its first and last logged step; the prediction through
    the first step's last layer; log10 companions at the steps grad_norm was sent."""
    import numpy as np
    import pandas as pd

    from bpstudy.tracking import profiles

    uri, client = store
    tracked = train(uri, "model.depth=6", "model.activation=tanh", "trainer.log_every=3",
                    "tracking.experiment=profiles")  # fmt: skip
    run_id = tracked.run_id
    layers = pd.read_parquet(
        client.download_artifacts(run_id, "diagnostics/layers.parquet", str(tmp_path))
    )
    first, last = layers["step"].min(), layers["step"].max()
    assert first < last
    for key, step in ((profiles.PROFILE_FIRST, first), (profiles.PROFILE_LAST, last)):
        at = layers[layers["step"] == step].sort_values("layer")
        expected = dict(zip(at["layer"].astype(int), np.log10(at["grad_norm"]), strict=True))
        assert list(expected) == [1, 2, 3, 4, 5, 6]
        got = history(client, run_id, key)
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-12)
    predicted = history(client, run_id, profiles.PROFILE_PREDICTED)
    assert tracked.theory.applicable and len(tracked.theory.profile) == 6
    top = np.log10(layers[(layers["step"] == first) & (layers["layer"] == 6)]["grad_norm"].iloc[0])
    np.testing.assert_allclose(
        [predicted[k] for k in range(1, 7)], top + np.asarray(tracked.theory.profile)
    )
    for stat in profiles.LOG10_STATS:
        linear = history(client, run_id, f"{stat}/L02")
        logged = history(client, run_id, f"{stat}_log10/L02")
        assert logged.keys() == linear.keys() and len(logged) > 2
        np.testing.assert_allclose(
            [logged[s] for s in linear], np.log10(list(linear.values())), rtol=1e-12
        )


def test_a_rerun_of_a_run_logged_without_the_derived_metrics_is_identical(store, monkeypatch):
    """A run logged before bpstudy logged log10 companions and profiles: the rerun logs
    them, and compares the statistics they derive from."""
    from bpstudy.tracking import profiles
    from bpstudy.tracking.rerun import rerun

    uri, client = store
    with monkeypatch.context() as patched:
        for name in ("log10_companions", "profile", "predicted_profile"):
            patched.setattr(profiles, name, lambda *args, **kwargs: [])
        old = train(uri, "tracking.experiment=old_runs")
    assert not any(profiles.is_derived(k) for k in client.get_run(old.run_id).data.metrics)
    again = rerun(old.run_id, uri)
    assert any(profiles.is_derived(k) for k in client.get_run(again.run_id).data.metrics)
    assert again.difference is None


# ------------------------------------------------------------------ pictures as images


def logged_images(client, run_id: str) -> dict[str, set[int]]:
    """MLflow's logged images of a run: key -> steps (from images/KEY+step+S+...png, the
    files its UI reads; '~' stands for '/' in a key)."""
    found: dict[str, set[int]] = {}
    for a in client.list_artifacts(run_id, "images"):
        name = a.path.rsplit("/", 1)[-1]
        if name.endswith(".png"):
            key, _, step, *_ = name.split("+")
            found.setdefault(key.replace("~", "/"), set()).add(int(step))
    return found


@pytest.mark.parametrize(
    ("rule", "keys"),
    [
        ("backprop", {"plots/grad_flow", "plots/loss", "plots/grad_profile"}),
        (
            "feedback_alignment",
            {"plots/grad_flow", "plots/loss", "plots/grad_profile", "plots/alignment"},
        ),
    ],
)
def test_a_runs_pictures_are_logged_images_and_stay_artifacts(store, rule, keys):
    uri, client = store
    tracked = train(uri, f"learning_rule={rule}", f"tracking.experiment=images_{rule}")
    run = client.get_run(tracked.run_id)
    assert logged_images(client, tracked.run_id) == {k: {tracked.result.steps} for k in keys}
    assert run.data.tags["mlflow.loggedImages"] == "True"  # what the UI looks for
    plots = {a.path for a in client.list_artifacts(tracked.run_id, "plots")}
    assert plots == {f"{k}.png" for k in keys}


# ------------------------------------------------------------------ the parent run


def test_the_parent_run_holds_the_sweep_and_the_studys_course(tiny_study):
    import optuna

    from bpstudy.sweep.storage import PARENT_ATTR, open_storage

    study = optuna.load_study(study_name="tiny", storage=open_storage(tiny_study.storage))
    client = MlflowClient(tiny_study.uri)
    parent = client.get_run(study.user_attrs[PARENT_ATTR])
    params = parent.data.params
    assert params["sweep.space.model.depth"] == "choice(2, 24)"
    assert params["sweep.space.model.activation"] == "choice(sigmoid, tanh)"
    assert params["sweep.sampler.name"] == "grid" and params["sweep.pruner.name"] == "none"
    assert params["sweep.metric"] == "val/loss" and params["sweep.direction"] == "minimize"
    assert "optimizer.lr=0.003" in params["sweep.overrides"]
    # metrics by trial number, against the study's own trials
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    best = []
    for t in trials:
        best.append(min(best[-1], t.value) if best else t.value)
    outcomes = {t.user_attrs["outcome"] for t in trials}
    assert set(outcomes) == {"healthy", "vanishing"}
    assert history(client, parent.info.run_id, "study/best_value") == dict(enumerate(best))
    assert history(client, parent.info.run_id, "study/value") == {t.number: t.value for t in trials}
    assert history(client, parent.info.run_id, "study/complete") == {n: n + 1.0 for n in range(4)}
    assert history(client, parent.info.run_id, "study/pruned") == dict.fromkeys(range(4), 0.0)
    for outcome in outcomes:
        running, expected = 0, {}  # trials so far with this outcome, from the first one
        for t in trials:
            running += t.user_attrs["outcome"] == outcome
            if running:
                expected[t.number] = float(running)
        assert history(client, parent.info.run_id, f"study/outcome/{outcome}") == expected
    # the report's pictures as images, step = the trials it read; still artifacts
    images = logged_images(client, parent.info.run_id)
    assert {"report/grad_flow_profile", "report/optimization_history"} <= set(images)
    assert all(steps == {4} for steps in images.values())
    reported = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"{k}.png" for k in images} <= reported


def test_a_space_is_described_in_the_sweep_grammar(tmp_path):
    from bpstudy.sweep.spec import load_spec
    from bpstudy.sweep.study_metrics import spec_params

    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "study_name: s\nmetric: val/loss\ndirection: minimize\nn_trials: 2\n"
        "sampler: {name: tpe, seed: 3}\npruner: {name: median, n_warmup_steps: 2}\n"
        "overrides: [trainer.epochs=1]\nparams:\n  model.depth: range(2, 42, step=4)\n"
        "  model.width: interval(8, 64)\n  optimizer.lr: tag(log, interval(1e-4, 0.1))\n"
        "  model.dropout: interval(0.0, 0.5)\n  model.batch_norm: choice(true, false)\n"
        "  trainer.batch_size: 32\n"
    )
    spec = load_spec(str(sweep))
    params = spec_params(spec)
    leaky = dataclasses.replace(spec, overrides=("tracking.uri=postgresql://al:Pw7secret@db/x",))
    assert "Pw7secret" not in spec_params(leaky)["sweep.overrides"]  # no password in a param
    assert params == {
        "sweep.metric": "val/loss",
        "sweep.direction": "minimize",
        "sweep.overrides": "trainer.epochs=1",
        "sweep.sampler.name": "tpe",
        "sweep.sampler.seed": "3",
        "sweep.pruner.name": "median",
        "sweep.pruner.n_warmup_steps": "2",
        "sweep.space.model.depth": "range(2, 42, step=4)",
        "sweep.space.model.width": "interval(8, 64)",
        "sweep.space.optimizer.lr": "tag(log, interval(0.0001, 0.1))",
        "sweep.space.model.dropout": "interval(0.0, 0.5)",
        "sweep.space.model.batch_norm": "choice(true, false)",
        "sweep.fixed.trainer.batch_size": "32",
    }


def tiny_spec(tmp_path):
    """The spec of a two-trial sweep file in tmp_path."""
    from bpstudy.sweep.spec import load_spec

    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "study_name: s\nmetric: val/loss\ndirection: minimize\nn_trials: 2\n"
        "params:\n  model.depth: range(1, 3)\n"
    )
    return load_spec(str(sweep))


def test_spec_params_another_command_logged_meanwhile_are_taken_as_logged(store, tmp_path):
    """Two commands joining one study at once both found the parent run without the
    sweep's params and both logged them: MLflow's store reads the run's params, then
    inserts the new ones, and the later insert failed on the store's unique key; that
    command exited 1 with a traceback (a CI run of
    test_two_commands_that_join_one_local_study_at_once_sample_apart). Here the other
    command's params land just before this one's insert, on a real store."""
    from sqlalchemy import event

    from bpstudy.sweep.study_metrics import log_spec_params, spec_params
    from bpstudy.tracking.mlflow_internals import sql_store

    uri, client = store
    spec = tiny_spec(tmp_path)
    run_id = client.create_run(client.create_experiment("joined at once")).info.run_id
    this = MlflowClient(uri)
    inserts = []

    def other_command_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PARAMS"):
            inserts.append(statement)
            if len(inserts) == 1:
                log_spec_params(MlflowClient(uri), run_id, spec)  # another engine, committed

    engine = sql_store(this).engine
    event.listen(engine, "before_cursor_execute", other_command_first)
    try:
        log_spec_params(this, run_id, spec)
    finally:
        event.remove(engine, "before_cursor_execute", other_command_first)
    # the other command's insert, then this one's, refused; asked again, it found them
    assert len(inserts) == 2
    assert client.get_run(run_id).data.params == spec_params(spec)


def test_a_store_failing_as_a_finished_sweep_logs_its_metrics_is_one_warning(
    store, tmp_path, capsys
):
    """The parent run's study metrics are logged as the sweep ends; a store error there
    turned a finished sweep into a failed command with a traceback. Now: one warning line,
    and the next command logs them."""
    import optuna

    from bpstudy.sweep.parent import ParentRun

    _, client = store
    spec = tiny_spec(tmp_path)
    study = optuna.create_study(study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    run_id = "0" * 32  # a run the store does not hold: it refuses what is logged to it
    capsys.readouterr()  # Optuna's own line about the new study
    ParentRun(client, run_id).record(study, spec, loud=True)
    err = capsys.readouterr().err
    assert err.startswith("warning: the parent run's study metrics were not logged: ")
    assert err.count("\n") == 1, err
    ParentRun(client, run_id).record(study, spec, loud=False)  # a sweep that failed: quiet
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ bpstudy ui --optuna


def test_ui_optuna_without_a_storage_is_one_line_and_writes_nothing(cli, tmp_path):
    from tests.conftest import listing

    before = listing(tmp_path)
    out = cli("ui", "--optuna", timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"bpstudy: error: --optuna: no Optuna storage at journal:{tmp_path / 'bpstudy.journal'}; "
        "run 'bpstudy sweep' here first, or pass --storage URL\n"
    )
    out = cli("ui", "--storage", "journal:x.journal", timeout=60)
    assert out.returncode == 2 and "go with --optuna" in out.stderr
    for port in ("70000", "0"):  # 70000 was an OverflowError traceback; 0 a 120 s wait
        out = cli("ui", "--optuna", "--optuna-port", port, timeout=60)
        assert out.returncode == 2, out.stderr
        assert out.stderr == (
            f"bpstudy: error: --optuna-port {port}: a port is 1 to 65535 (omit it for 8080 "
            "or a free one)\n"
        )
    assert listing(tmp_path) == before
