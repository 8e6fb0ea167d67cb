"""`bpstudy report` through the real CLI: a tiny real study (journal + embedded MLflow store
in tmp_path), the report folder it writes, and what it logs to the parent run.

The study: depth-20 nets at lr 1.0, a grid over activation x sigma_w with a median pruner.
sigma_w = 6 with relu goes NaN in its first steps (PRUNED, outcome diverged); the median
pruner stops tanh with sigma_w = 6, whose loss trails the first trial's (PRUNED by the
pruner); sigma_w = 1 completes.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from bpstudy.report.table import RunRecord, trials_table
from tests.conftest import file_modes_apply, listing

BPSTUDY = str(Path(sys.executable).with_name("bpstudy"))
pytestmark = pytest.mark.filterwarnings(  # MLflow's SQL store, not ours
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STUDY = "flow"
DEPTH = 20


def bpstudy(*args: str, cwd: Path, timeout: float = 300, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, BPSTUDY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def sweep_and_report(folder: Path, sweep: dict) -> subprocess.CompletedProcess:
    """Write `sweep` as a sweep file in `folder`, run it, then `bpstudy report` on it,
    both through the CLI: the report's CompletedProcess (the sweep must succeed)."""
    name = sweep["study_name"]
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    swept = bpstudy("sweep", f"{name}.yaml", "--progress", "lines", cwd=folder)
    assert swept.returncode == 0, swept.stderr
    return bpstudy("report", name, cwd=folder)


def journal_study(folder: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(folder / "bpstudy.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path.name} not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > 2000, f"{path.name} is suspiciously small ({len(data)} bytes)"


# ---------------------------------------------------------------- a real study, reported


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Run the sweep and then `bpstudy report` once; tests below read the results."""
    folder = tmp_path_factory.mktemp("report")
    sweep = {
        "study_name": STUDY,
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": 4,
        "sampler": {"name": "grid", "seed": 0},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "overrides": [
            "data=digits",
            "trainer.epochs=2",
            "model.width=16",
            "trainer.progress=none",
            f"model.depth={DEPTH}",
            "model.init.scheme=normal",
            "optimizer.lr=1.0",
        ],
        "params": {
            "model.activation": "choice(tanh, relu)",
            "model.init.sigma_w": "choice(1.0, 6.0)",
        },
    }
    return folder, sweep_and_report(folder, sweep)


@pytest.mark.slow
def test_report_command_succeeds_and_says_where(reported):
    folder, out = reported
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    study = journal_study(folder, STUDY)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    assert str(folder / "reports" / STUDY) in out.stdout
    assert parent_id in out.stdout


@pytest.mark.slow
def test_table_has_one_row_per_trial_joined_with_its_run(reported):
    folder, out = reported
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(folder / "reports" / STUDY / "trials.csv")
    study = journal_study(folder, STUDY)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert list(table["number"]) == [t.number for t in trials] == [0, 1, 2, 3]

    expected = [
        "number",
        "state",
        "outcome",
        "training",
        "symptoms",
        "params_model.activation",
        "params_model.init.sigma_w",
        "objective",
        "diverged_step",
        "prune_reason",
        "error",
        "duration_s",
        "mlflow_run_id",
        "run_status",
        "train/loss",
        "val/loss",
        "val/accuracy",
        "test/loss",
    ]
    assert set(expected) <= set(table.columns), set(expected) - set(table.columns)
    grads = [f"grad_norm/L{i:02d}" for i in range(1, DEPTH + 1)]
    assert [c for c in table.columns if c.startswith("grad_norm/L")] == grads
    assert not [c for c in table.columns if c.startswith(("delta_norm/", "act_std/"))]

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    for trial, (_, row) in zip(trials, table.iterrows(), strict=True):
        assert row["state"] == trial.state.name
        assert row["outcome"] == trial.user_attrs["outcome"]
        assert row["training"] == trial.user_attrs["training"]  # the run's tag, as the trial's
        assert row["training"] == client.get_run(row["mlflow_run_id"]).data.tags["bpstudy.training"]
        assert row["params_model.activation"] == trial.params["model.activation"]
        assert row["params_model.init.sigma_w"] == trial.params["model.init.sigma_w"]
        assert row["mlflow_run_id"] == trial.user_attrs["mlflow_run_id"]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert row["run_status"] == run.info.status
        for col in grads:  # the run's latest value, from its metrics
            assert row[col] == pytest.approx(run.data.metrics[col], rel=1e-12, nan_ok=True)
        if trial.state == TrialState.COMPLETE:
            assert row["objective"] == pytest.approx(trial.value)
            assert row["val/loss"] == pytest.approx(run.data.metrics["val/loss"])
            assert pd.isna(row["diverged_step"])
        else:
            assert math.isnan(row["objective"])
            assert row["prune_reason"] == trial.user_attrs["prune_reason"]

    diverged = table[table["outcome"] == "diverged"]
    assert len(diverged) == 1, table[["number", "state", "outcome"]]
    assert diverged.iloc[0]["state"] == "PRUNED"
    assert diverged.iloc[0]["params_model.init.sigma_w"] == 6.0
    assert diverged.iloc[0]["diverged_step"] >= 0
    by_pruner = table[table["prune_reason"].fillna("").str.startswith("pruned by")]
    assert len(by_pruner) >= 1, "the median pruner stopped no trial"
    assert set(by_pruner["state"]) == {"PRUNED"}
    assert (table["state"] == "COMPLETE").sum() >= 1


@pytest.mark.slow
def test_report_files_exist_and_pictures_are_pngs(reported):
    folder, out = reported
    assert out.returncode == 0, out.stderr
    report = folder / "reports" / STUDY
    for name in (
        "grad_flow_profile.png",
        "val_loss_heatmap.png",
        "param_importances.png",
        "optimization_history.png",
    ):
        assert_png(report / name)
    summary = (report / "summary.md").read_text()
    assert summary.startswith(f"# Study report: {STUDY}")
    for heading in (
        "## What the study shows",
        "## Best trials",
        "## Outcomes by parameter",
        "### model.activation",
        "### model.init.sigma_w",
        "## Pictures",
    ):
        assert heading in summary
    assert "diverged" in summary
    assert "![" in summary and "(grad_flow_profile.png)" in summary
    try:
        import plotly  # noqa: F401
    except ImportError:  # plotly is not a dependency: the HTML is skipped, and said so
        assert not (report / "optuna.html").exists()
        assert "interactive HTML skipped" in summary and "plotly" in summary
    else:
        page = (report / "optuna.html").read_text()
        assert "optimisation history" in page and "parameter importances" in page
        assert "plotly" in page.lower()


@pytest.mark.slow
def test_parent_run_holds_the_report(reported):
    folder, out = reported
    assert out.returncode == 0, out.stderr
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    parent_id = journal_study(folder, STUDY).user_attrs["mlflow_parent_run_id"]
    logged = {Path(a.path).name: a for a in client.list_artifacts(parent_id, "report")}
    written = {p.name for p in (folder / "reports" / STUDY).iterdir()}
    assert set(logged) == written
    assert {"trials.csv", "summary.md", "grad_flow_profile.png"} <= set(logged)
    local = Path(
        client.download_artifacts(
            parent_id, "report/grad_flow_profile.png", str(folder / "download")
        )
    )
    assert local.read_bytes() == (folder / "reports" / STUDY / "grad_flow_profile.png").read_bytes()
    note = client.get_run(parent_id).data.tags["mlflow.note.content"]
    assert note.startswith(f"# Study report: {STUDY}")


@pytest.mark.slow
def test_report_from_elsewhere_finds_the_store_beside_the_journal(reported):
    folder, first = reported
    assert first.returncode == 0, first.stderr
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    out = bpstudy(
        "report",
        STUDY,
        "--storage",
        f"journal:{folder / 'bpstudy.journal'}",
        "--out",
        "again",
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr
    assert not (elsewhere / "mlflow.db").exists()
    again = pd.read_csv(elsewhere / "again" / "trials.csv")
    before = pd.read_csv(folder / "reports" / STUDY / "trials.csv")
    pd.testing.assert_frame_equal(again, before)


@pytest.mark.slow
def test_where_narrows_the_report_into_its_own_folder_and_artifacts(reported):
    folder, first = reported
    assert first.returncode == 0, first.stderr
    full = (folder / "reports" / STUDY / "trials.csv").read_bytes()
    out = bpstudy(
        "report",
        STUDY,
        "--where",
        "model.activation=tanh",
        "--group",
        "model.init.sigma_w",
        cwd=folder,
    )
    assert out.returncode == 0, out.stderr
    sliced = folder / "reports" / STUDY / "model.activation=tanh"
    table = pd.read_csv(sliced / "trials.csv")
    assert len(table) == 2 and set(table["params_model.activation"]) == {"tanh"}
    assert "(2 trials:" in out.stdout and "report/model.activation=tanh/" in out.stdout
    summary = (sliced / "summary.md").read_text()
    assert "trials shown: those with model.activation=tanh: 2 of 4" in summary
    assert_png(sliced / "grad_flow_profile.png")
    assert (folder / "reports" / STUDY / "trials.csv").read_bytes() == full  # untouched

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    parent_id = journal_study(folder, STUDY).user_attrs["mlflow_parent_run_id"]
    logged = {
        Path(a.path).name for a in client.list_artifacts(parent_id, "report/model.activation=tanh")
    }
    assert logged == {p.name for p in sliced.iterdir()}
    note = client.get_run(parent_id).data.tags["mlflow.note.content"]
    assert "trials shown" not in note  # the run's description stays the whole study's


# ---------------------------------------------------------------- theory beside measurement

THEORY_COLUMNS = ["theory.q_star", "theory.chi1", "theory.xi_c", "theory.phase", "theory.reason"]


def run_records(folder: Path, table: pd.DataFrame) -> dict[str, RunRecord]:
    """The trials' runs as the report reads them."""
    from bpstudy.report.runs import child_runs

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return child_runs(client, None, table["mlflow_run_id"].dropna())


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.activation=tanh", "model.init.scheme=normal", "model.init.sigma_w=1.3229"],
        [
            "data=teacher",
            "optimizer=adamw",
            "learning_rule=feedback_alignment",
            "model.dropout=0.1",
        ],
        ["data=csv", "data.path=x.csv", "data.target=3", "trainer.clip.mode=norm"],
    ],
)
def test_a_runs_params_give_its_config_back(overrides):
    """The report predicts from each run's params: str() of every resolved value, read
    back by the schema's types, is the same typed Config (floats bit for bit, None, bools,
    text that looks like a number)."""
    from bpstudy import compose
    from bpstudy.config.params import config_from_params
    from bpstudy.config.serialize import flatten, to_dict
    from bpstudy.config.validate import validate

    config = validate(compose(overrides))
    params = {k: str(v) for k, v in flatten(to_dict(config)).items()}
    assert config_from_params(params) == config


@pytest.mark.slow
def test_table_has_each_runs_theory_columns(reported):
    """trials.csv holds each run's theory.* params and its predicted ratio, and the values
    are mean field's: tanh at sigma_w = 1, sigma_b = 0 is critical (q* = 0, chi1 =
    sigma_w^2 tanh'(0)^2 = 1); relu at sigma_w = 1 ordered (chi1 = 1/2); sigma_w = 6
    chaotic."""
    folder, out = reported
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(folder / "reports" / STUDY / "trials.csv")
    columns = list(table.columns)
    assert set(THEORY_COLUMNS) <= set(columns)
    assert columns.index("theory/ratio_log10") == columns.index("grad_norm/ratio_log10") + 1
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    for _, row in table.iterrows():
        run = client.get_run(row["mlflow_run_id"]).data
        assert row["theory.phase"] == run.params["theory.phase"]
        for key in ("theory.q_star", "theory.chi1", "theory.xi_c"):
            assert row[key] == pytest.approx(float(run.params[key]), rel=1e-12), key
        assert row["theory/ratio_log10"] == pytest.approx(run.metrics["theory/ratio_log10"])
    by = {
        (r["params_model.activation"], r["params_model.init.sigma_w"]): r
        for _, r in table.iterrows()
    }
    assert by["tanh", 1.0]["theory.q_star"] == 0.0 and by["tanh", 1.0]["theory.chi1"] == 1.0
    assert by["tanh", 1.0]["theory.phase"] == "critical"
    assert by["relu", 1.0]["theory.chi1"] == pytest.approx(0.5, rel=1e-12)
    assert by["relu", 1.0]["theory.phase"] == "ordered"
    assert {by["tanh", 6.0]["theory.phase"], by["relu", 6.0]["theory.phase"]} == {"chaotic"}
    assert pd.isna(table["theory.reason"]).all()  # a plain MLP under backprop: it applies


@pytest.mark.slow
def test_profile_draws_the_prediction_where_a_lines_runs_share_it(reported):
    """One line per activation mixes sigma_w = 1 and 6: no predicted line, and the summary
    says why. One line per sigma_w (tanh only) is one config each: its dashed line is
    bpstudy.theory's profile of that config, through the line's last layer."""
    import matplotlib.pyplot as plt

    from bpstudy import compose
    from bpstudy.report.figures import grad_flow_profile_figure
    from bpstudy.report.theory import run_theories
    from bpstudy.theory import predict

    folder, out = reported
    assert out.returncode == 0, out.stderr
    summary = (folder / "reports" / STUDY / "summary.md").read_text()
    # relu's weight-gradient profile is flat for every sigma_w (delta and h scale
    # inversely), so its two runs share a prediction; its last layer is dead at sigma_w = 1
    assert "no mean-field line for model.activation=tanh (depth 20): its runs differ in " \
        "model.init.sigma_w" in summary  # fmt: skip
    assert "no mean-field line for model.activation=relu (depth 20): its last layer's " \
        "median is 0" in summary  # fmt: skip
    assert "mean-field prediction at initialisation" not in summary
    (reading,) = [line for line in summary.splitlines() if "first over its last" in line]
    assert "mean field predicts" in reading

    sliced = bpstudy(
        "report", STUDY, "--where", "model.activation=tanh", "--group", "model.init.sigma_w",
        "--out", "tanh", cwd=folder,
    )  # fmt: skip
    assert sliced.returncode == 0, sliced.stderr
    summary = (folder / "tanh" / "summary.md").read_text()
    assert "dashed: the mean-field prediction at initialisation, through the line's last " \
        "layer (2 lines)" in summary  # fmt: skip
    assert "no mean-field line" not in summary

    table = pd.read_csv(folder / "tanh" / "trials.csv")
    theories = run_theories(table, run_records(folder, table))
    fig = grad_flow_profile_figure(table, "model.init.sigma_w", theory=theories)
    try:
        (ax,) = fig.axes
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata())]
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        assert len(dashed) == len(solid) == 2
        first_over_last = []
        for sigma_w, line, measured in zip((1.0, 6.0), dashed, solid, strict=True):
            cfg = compose(
                [
                    "data=digits", "model.width=16", f"model.depth={DEPTH}",
                    "model.activation=tanh", "model.init.scheme=normal",
                    f"model.init.sigma_w={sigma_w}",
                ]
            )  # fmt: skip
            profile = np.array(predict(cfg).profile)
            top = measured.get_ydata()[-1]  # the measured median at layer 20
            assert list(line.get_xdata()) == list(range(1, DEPTH + 1))
            np.testing.assert_allclose(line.get_ydata(), top * 10.0**profile, rtol=1e-9)
            first_over_last.append(line.get_ydata()[0] / top)
        # critical sigma_w = 1 keeps the norms within a decade; chaotic 6 grows them downward
        assert 0.1 < first_over_last[0] < 10 < 1000 < first_over_last[1]
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- a study over depths


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's header chunk."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_a_profile_over_two_depths_draws_one_panel_per_depth(tmp_path):
    """A median of layer i over nets of depths 2 and 3 mixes nets that have a layer 3 with
    nets that do not (the false cliff at the shallow depth's end): the profile is one panel
    per depth, and the summary names the depth of every profile it reads."""
    sweep = {
        "study_name": "depths",
        "metric": "val/loss",
        "direction": "minimize",
        "n_trials": 4,
        "sampler": {"name": "grid", "seed": 0},
        "pruner": {"name": "none"},
        "overrides": ["data=digits", "trainer.epochs=1", "model.width=8", "trainer.progress=none"],
        "params": {"model.depth": "choice(2, 3)", "model.activation": "choice(tanh, sigmoid)"},
    }
    out = sweep_and_report(tmp_path, sweep)
    assert out.returncode == 0, out.stderr
    report = tmp_path / "reports" / "depths"

    summary = (report / "summary.md").read_text()
    assert "one panel per depth (2, 3), one line per model.activation" in summary
    (reading,) = [line for line in summary.splitlines() if "first over its last" in line]
    for name in ("sigmoid, depth 2:", "tanh, depth 2:", "sigmoid, depth 3:", "tanh, depth 3:"):
        assert name in reading, reading
    assert reading.index("depth 2") < reading.index("depth 3")

    import matplotlib.pyplot as plt

    from bpstudy.report.figures import grad_flow_profile_figure

    table = pd.read_csv(report / "trials.csv")
    fig = grad_flow_profile_figure(table, "model.activation")
    try:
        assert [ax.get_title() for ax in fig.axes] == ["depth 2", "depth 3"]
        for ax, depth in zip(fig.axes, (2, 3), strict=True):  # each over its own layers
            xs = [x for line in ax.get_lines() for x in line.get_xdata()]
            assert max(xs) == depth, (depth, xs)
        drawn = fig.get_size_inches() * fig.dpi
    finally:
        plt.close(fig)
    assert_png(report / "grad_flow_profile.png")  # and the PNG is that figure
    assert png_size(report / "grad_flow_profile.png") == tuple(drawn.round().astype(int))


def test_a_profile_of_too_many_depths_is_refused_with_the_way_out(tmp_path):
    """13 depths would be 13 panels, past the 12 that stay readable: exit 2 with one line
    that names --where model.depth=D, and nothing written; with it, the report is drawn."""
    from mlflow.entities import Metric

    journal = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
    study = optuna.create_study(study_name="deep", storage=journal)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("bpstudy")
    dist = {"model.depth": optuna.distributions.IntDistribution(2, 14)}
    for depth in range(2, 15):
        run_id = client.create_run(experiment).info.run_id
        norms = [Metric(f"grad_norm/L{i:02d}", 0.1 / i, 0, 10) for i in range(1, depth + 1)]
        client.log_batch(run_id, metrics=norms)
        client.set_terminated(run_id, "FINISHED")
        attrs = {"mlflow_run_id": run_id, "outcome": "healthy"}
        study.add_trial(
            create_trial(
                params={"model.depth": depth}, distributions=dist, value=1.0, user_attrs=attrs
            )
        )
    before = listing(tmp_path)
    out = bpstudy("report", "deep", cwd=tmp_path)
    assert_one_line_error(out, "13 panels", "--where model.depth=D")
    assert listing(tmp_path) == before

    one = bpstudy("report", "deep", "--where", "model.depth=7", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    summary = (tmp_path / "reports" / "deep" / "model.depth=7" / "summary.md").read_text()
    assert "depth 7: log10 ratio" in summary


# ---------------------------------------------------------------- errors: exit 2, one line


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bpstudy: error: ")
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("kind", ["journal", "rdb"])
def test_unknown_study_lists_the_known_ones(tmp_path, kind):
    if kind == "journal":
        url = f"journal:{tmp_path / 'bpstudy.journal'}"
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
        args = []  # the default storage of the working folder
    else:
        url = f"sqlite:///{tmp_path / 'studies.db'}"
        storage = url
        args = ["--storage", url]
    for name in ("beta", "alpha"):
        optuna.create_study(study_name=name, storage=storage)
    out = bpstudy("report", "nope", *args, cwd=tmp_path)
    line = assert_one_line_error(out, "'nope'", "alpha, beta")
    assert url in line
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_report_without_a_storage_creates_nothing(tmp_path):
    out = bpstudy("report", "nope", cwd=tmp_path)
    assert_one_line_error(out, "'nope'", "known studies: none")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["missing_file", "empty_file", "other_tables"])
def test_report_on_a_database_without_studies_creates_nothing(tmp_path, kind):
    """Opening an RDB storage makes Optuna's tables (13 were left in an empty PostgreSQL
    database); connecting to SQLite makes the file. tests/test_secrets.py: PostgreSQL."""
    import sqlite3

    db = tmp_path / "studies.db"
    if kind == "empty_file":
        db.write_bytes(b"")
    elif kind == "other_tables":
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("CREATE TABLE mine (x INTEGER)")
    before = listing(tmp_path)
    size = db.stat().st_size if db.exists() else None
    out = bpstudy("report", "nope", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert_one_line_error(out, "'nope'", "holds no Optuna study", "known studies: none")
    assert listing(tmp_path) == before
    if kind != "missing_file":
        assert db.stat().st_size == size
        with contextlib.closing(sqlite3.connect(db)) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert tables == ({"mine"} if kind == "other_tables" else set())


def test_report_on_an_unreadable_journal_says_permission_denied(tmp_path):
    """It said "not an Optuna journal file"; run with file modes binding (see conftest)."""
    journal = tmp_path / "bpstudy.journal"
    optuna.create_study(
        study_name="locked", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    journal.chmod(0)
    before = listing(tmp_path)
    try:
        out = bpstudy("report", "locked", cwd=tmp_path, prefix=file_modes_apply())
    finally:
        journal.chmod(0o600)
    assert_one_line_error(out, "bpstudy.journal", "permission denied")
    assert listing(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--where", "model.depth=4"],
            ["--where model.depth", "model.activation, model.init.sigma_w"],
        ),
        (["--where", "model.activation=sigmoid"], ["model.activation=sigmoid", "relu, tanh"]),
        (["--where", "model.activation"], ["--where 'model.activation'", "PARAM=VALUE"]),
        (
            ["--group", "optimizer.lr"],
            ["--group optimizer.lr", "model.activation, model.init.sigma_w"],
        ),
        # found before the trials are read: it was a second line after the progress line
        (["--out", "flow.yaml"], ["--out", "flow.yaml: is a file, not a folder"]),
    ],
)
def test_bad_where_or_group_is_one_line(reported, args, needles):
    folder, first = reported
    assert first.returncode == 0, first.stderr
    before = sorted(p.name for p in (folder / "reports" / STUDY).iterdir())
    out = bpstudy("report", STUDY, *args, cwd=folder)
    assert_one_line_error(out, *needles)
    assert sorted(p.name for p in (folder / "reports" / STUDY).iterdir()) == before


# ---------------------------------------------------------------- a study without MLflow


def test_study_without_mlflow_reports_what_it_can(tmp_path):
    """Tracking off: the Optuna columns only, nothing logged, and the skipped parts named."""
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "bpstudy.journal")))
    study = optuna.create_study(study_name="bare", storage=journal)
    dist = {
        "model.depth": CategoricalDistribution((2, 4)),
        "optimizer.lr": FloatDistribution(0.01, 1.0, log=True),
    }
    study.add_trial(
        create_trial(params={"model.depth": 2, "optimizer.lr": 0.1}, distributions=dist, value=0.5)
    )
    study.add_trial(
        create_trial(
            params={"model.depth": 4, "optimizer.lr": 0.5},
            distributions=dist,
            state=TrialState.FAIL,
            user_attrs={"error": "ValueError: boom"},
        )
    )
    out = bpstudy("report", "bare", "--out", "here", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "not logged to MLflow" in out.stdout
    assert not (tmp_path / "mlflow.db").exists()
    table = pd.read_csv(tmp_path / "here" / "trials.csv")
    assert list(table["state"]) == ["COMPLETE", "FAIL"]
    assert list(table["outcome"].fillna("")) == ["", "failed"]
    assert table.loc[1, "error"] == "ValueError: boom"
    summary = (tmp_path / "here" / "summary.md").read_text()
    assert "importances skipped" in summary and "at least 2 completed trials" in summary
    assert "gradient-flow profile skipped" in summary
    assert not (tmp_path / "here" / "grad_flow_profile.png").exists()
    assert_png(tmp_path / "here" / "optimization_history.png")
    assert_png(tmp_path / "here" / "objective_heatmap.png")
    assert not (tmp_path / "here" / "param_importances.png").exists()


# ---------------------------------------------------------------- the join itself


def test_join_keeps_every_trial_and_falls_back_to_run_tags():
    dist = {"model.activation": CategoricalDistribution(("tanh", "relu"))}
    start = datetime(2025, 1, 1)
    trials = [
        create_trial(
            params={"model.activation": "tanh"},
            distributions=dist,
            values=[1.0, 2.0],
            user_attrs={"mlflow_run_id": "a", "outcome": "healthy"},
        ),
        create_trial(
            params={"model.activation": "relu"},
            distributions=dist,
            state=TrialState.PRUNED,
            user_attrs={"mlflow_run_id": "b"},
        ),
        create_trial(
            params={"model.activation": "relu"},
            distributions=dist,
            state=TrialState.FAIL,
            user_attrs={"mlflow_run_id": "gone"},
        ),
    ]
    for number, trial in enumerate(trials):
        trial.number = number
        trial.datetime_start, trial.datetime_complete = start, start + timedelta(seconds=3)
    runs = {
        "a": RunRecord(
            "a",
            "FINISHED",
            {"val/loss": 1.0, "grad_norm/L02": 0.5, "grad_norm/L01": 0.1, "act_std/L01": 3.0},
        ),
        "b": RunRecord(
            "b",
            "FINISHED",
            {"grad_norm/L01": math.inf},
            {"bpstudy.outcome": "diverged", "bpstudy.diverged_step": "7"},
        ),
    }
    table = trials_table(trials, runs, ["val/loss", "wall_time"])
    assert list(table["number"]) == [0, 1, 2]
    assert list(table["outcome"]) == ["healthy", "diverged", "failed"]
    assert list(table["objective_val/loss"].fillna(-1)) == [1.0, -1, -1]
    assert list(table["objective_wall_time"].fillna(-1)) == [2.0, -1, -1]
    assert table["diverged_step"].tolist()[1] == 7
    assert list(table["duration_s"]) == [3.0, 3.0, 3.0]
    assert list(table["run_status"].fillna("")) == ["FINISHED", "FINISHED", ""]
    assert [c for c in table.columns if "/L" in c] == ["grad_norm/L01", "grad_norm/L02"]
    assert math.isinf(table.loc[1, "grad_norm/L01"]) and math.isnan(table.loc[1, "val/loss"])


def test_trials_the_user_interrupted_are_not_read_as_failures():
    """A Ctrl-C'd trial is FAIL in Optuna, its values queued again: the report names it
    'interrupted' and leaves it out of what it concludes about the values."""
    from bpstudy.report.reading import StudyFacts, reading
    from bpstudy.sweep.interrupt import INTERRUPTED

    dist = {"model.depth": CategoricalDistribution((2, 40))}

    def trial(number, depth, **kw):
        t = create_trial(params={"model.depth": depth}, distributions=dist, **kw)
        t.number = number
        return t

    trials = [
        trial(0, 2, value=1.0, user_attrs={"outcome": "healthy"}),
        trial(1, 2, value=1.1, user_attrs={"outcome": "healthy"}),
        trial(2, 40, state=TrialState.FAIL, user_attrs={"error": INTERRUPTED}),
        trial(3, 40, value=0.9, user_attrs={"outcome": "healthy", "retry_of": 2}),
        trial(4, 2, state=TrialState.FAIL, user_attrs={"error": "ValueError: boom"}),
    ]
    for t in trials:
        t.user_attrs["mlflow_run_id"] = f"run{t.number}"
    # the interrupted trial's run logged layer norms too (its points are flushed on Ctrl-C)
    norms = {"grad_norm/L01": 1.0, "grad_norm/L02": 10.0}
    runs = {"run0": RunRecord("run0", "FINISHED", dict(norms))}
    runs["run2"] = RunRecord("run2", "KILLED", {"grad_norm/L01": 1e-9, "grad_norm/L02": 1e9})
    table = trials_table(trials, runs)
    assert list(table["outcome"]) == ["healthy", "healthy", "interrupted", "healthy", "failed"]
    assert list(table["state"]) == ["COMPLETE", "COMPLETE", "INTERRUPTED", "COMPLETE", "FAIL"]
    facts = StudyFacts("val/loss", "minimize", "objective", dist)
    text = " ".join(reading(table, facts, None))
    assert "1 of 4 finished trials failed" in text, text
    assert "interrupted" not in text
    assert "depth 2: log10 ratio -1.0" in text, text  # with run2's norms: -9.0


def test_flow_sentence_reads_each_run_between_its_own_first_and_last_layer():
    """Depth varies across trials: two shallow runs with even gradients and one deep run
    whose every layer is small must not read as 'growing toward the input' (layer 1's
    median over all three against the last layer of the deep one alone: +7)."""
    from bpstudy.report.reading import StudyFacts, reading, run_flow_ratios

    nan = math.nan
    norms = [[1.0, 1.0, nan, nan], [2.0, 1.0, nan, nan], [1e-7, 1e-7, 1e-7, 1e-7]]
    dist = {"model.depth": CategoricalDistribution((2, 4))}
    trials, runs = [], {}
    for number, row in enumerate(norms):
        depth = sum(not math.isnan(v) for v in row)
        t = create_trial(params={"model.depth": depth}, distributions=dist, value=1.0 + number)
        t.number, t.user_attrs["mlflow_run_id"] = number, f"run{number}"
        t.user_attrs["outcome"] = "healthy"
        trials.append(t)
        layers = {f"grad_norm/L0{i + 1}": v for i, v in enumerate(row) if not math.isnan(v)}
        runs[f"run{number}"] = RunRecord(f"run{number}", "FINISHED", layers)
    table = trials_table(trials, runs)
    ratios = run_flow_ratios(np.array(norms))
    assert ratios == pytest.approx([0.0, math.log10(2), 0.0])
    facts = StudyFacts("val/loss", "minimize", "objective", dist)
    text = " ".join(reading(table, facts, None))
    within = "(within 3 orders of magnitude)"
    assert (
        f"depth 2: log10 ratio +0.2 {within} (n=2); depth 4: log10 ratio +0.0 {within} (n=1)."
        in text
    ), text
    assert run_flow_ratios(np.array([[0.0, 1.0], [1.0, 0.0], [nan, nan]])).tolist()[:2] == [
        -math.inf,
        math.inf,
    ]


def test_group_sentences_order_numbers_by_value():
    """Depths 10, 20, 100 read "10, 100, 20" in the sentences (as text), while the
    tables below sort them by value."""
    from bpstudy.report.reading import StudyFacts, in_order, reading

    assert in_order(["10", "100", "20"]) == ["10", "20", "100"]
    assert in_order(["tanh", "relu"]) == ["relu", "tanh"]
    dist = {"model.depth": CategoricalDistribution((10, 20, 100))}
    trials, runs = [], {}
    for number, depth in enumerate((100, 10, 20)):
        t = create_trial(params={"model.depth": depth}, distributions=dist, value=1.0 + number)
        t.number, t.user_attrs["mlflow_run_id"] = number, f"run{number}"
        t.user_attrs["outcome"] = "healthy"
        trials.append(t)
        runs[f"run{number}"] = RunRecord(
            f"run{number}", "FINISHED", {"grad_norm/L01": 1.0, "grad_norm/L02": 1.0}
        )
    table = trials_table(trials, runs)
    facts = StudyFacts("val/loss", "minimize", "objective", dist)
    text = " ".join(reading(table, facts, "model.depth"))
    assert "by model.depth: 10 2 (n=1), 20 3 (n=1), 100 1 (n=1)." in text, text
    assert text.index("10: log10") < text.index("20: log10") < text.index("100: log10"), text


def test_importance_sentence_says_it_is_over_the_whole_study_under_where():
    """Optuna's importances are the study's: a --where report must not quote them as if
    they were of its few selected trials (nor count those)."""
    from bpstudy.report.reading import StudyFacts, _importance_sentence

    shares = {"model.depth": 0.5, "model.activation": 0.3, "optimizer.lr": 0.2}
    whole = StudyFacts("val/loss", "minimize", "objective", {}, shares, importance_trials=30)
    text = _importance_sentence(whole)
    assert "ranks model.depth (50%) first" in text
    assert "over the 30 completed trials)" in text and "rough guide" not in text
    where = StudyFacts(
        "val/loss", "minimize", "objective", {}, shares, importance_trials=1, selected=True
    )
    text = _importance_sentence(where)
    assert "over the whole study's 1 completed trial, not only the selected ones" in text
    assert "with 1 completed trial this is a rough guide" in text


def test_inert_conditional_values_and_continuous_params_are_not_read_as_levels():
    """optimizer.momentum beside optimizer: choice(sgd, momentum) is sampled in every trial
    but applies only to momentum trials: elsewhere the table leaves it empty, the reading
    does not quote it, and the importances leave it out. A continuous interval's few
    sampled values are no levels to count outcomes by."""
    from bpstudy.report.optuna_plots import Objective, importances
    from bpstudy.report.reading import StudyFacts, categorical_params, reading

    dist = {
        "optimizer": CategoricalDistribution(("sgd", "momentum")),
        "optimizer.momentum": FloatDistribution(0.5, 0.99),
        "optimizer.lr": FloatDistribution(0.01, 0.5, log=True),
    }
    study = optuna.create_study()
    for number in range(8):
        name = ("sgd", "momentum")[number % 2]
        attrs = {"outcome": "healthy", "mlflow_run_id": f"r{number}"}
        if name == "sgd":
            attrs["inactive_params"] = ["optimizer.momentum"]
        lr = 0.01 * (number + 1)
        params = {"optimizer": name, "optimizer.momentum": 0.5 + number / 20, "optimizer.lr": lr}
        value = 1.0 + (number % 2) + number / 100  # sgd better; momentum's value irrelevant
        study.add_trial(
            create_trial(params=params, distributions=dist, value=value, user_attrs=attrs)
        )
    trials = study.get_trials()
    table = trials_table(trials, {})
    sgd = table["params_optimizer"].eq("sgd")
    assert table.loc[sgd, "params_optimizer.momentum"].isna().all()
    assert table.loc[~sgd, "params_optimizer.momentum"].notna().all()
    facts = StudyFacts("val/loss", "minimize", "objective", dist)
    assert categorical_params(table, facts) == ["optimizer"]  # not lr (continuous), 4 values
    best = reading(table, facts, None)[0]
    assert "trial #0 (optimizer=sgd, optimizer.lr=0.01; outcome" in best, best
    shares, why = importances(study, Objective("val/loss"))
    assert why == "" and set(shares) == {"optimizer", "optimizer.lr"}, (shares, why)


def test_heatmap_cells_take_completed_trials_and_count_the_others():
    """A pruned trial's val/loss is of the epoch it stopped at: it must not sit in the
    cell's median beside completed trials' final values, nor fill a cell of its own."""
    from bpstudy.report.figures import heatmap_cells

    table = pd.DataFrame(
        {
            "params_model.depth": [2, 2, 2, 10, 10],
            "state": ["COMPLETE", "PRUNED", "PRUNED", "PRUNED", "PRUNED"],
            "outcome": ["healthy", "healthy", "diverged", "healthy", "healthy"],
            "val/loss": [0.5, 2.0, math.inf, 2.3, 2.2],
        }
    )
    grid, notes, x_labels, _ = heatmap_cells(table, "val/loss", "model.depth")
    assert x_labels == ["2", "10"]
    assert grid[0, 0] == 0.5 and notes[0][0] == "0.5\nn=1\n1 diverged\n1 pruned"
    assert np.isnan(grid[0, 1]) and notes[0][1] == "2 pruned"


def test_a_study_of_learning_rules_is_read_by_rule():
    from bpstudy.report.reading import StudyFacts, main_group

    dist = {
        "learning_rule": CategoricalDistribution(("backprop", "feedback_alignment")),
        "model.activation": CategoricalDistribution(("tanh", "relu")),
    }
    rows = [("backprop", "tanh"), ("feedback_alignment", "relu"), ("backprop", "relu")]
    table = pd.DataFrame(
        {
            "params_learning_rule": [r for r, _ in rows],
            "params_model.activation": [a for _, a in rows],
        }
    )
    assert (
        main_group(table, StudyFacts("val/loss", "minimize", "objective", dist)) == "learning_rule"
    )
    only_activation = {"model.activation": dist["model.activation"]}
    facts = StudyFacts("val/loss", "minimize", "objective", only_activation)
    assert main_group(table, facts) == "model.activation"


# ---------------------------------------------------------------- the edge-of-chaos study

SHIPPED_EOC = Path(__file__).resolve().parents[1] / "sweeps" / "edge_of_chaos.yaml"


@pytest.mark.slow
def test_edge_of_chaos_miniature_draws_the_heatmap_with_the_depth_scale(tmp_path):
    """The shipped sweeps/edge_of_chaos.yaml in miniature (2 sigma_w x 3 depths, width 8,
    one epoch), swept and reported through the CLI: the heatmap is drawn, its caption
    names the edge chi1 = 1 where mean field puts it for tanh at sigma_b^2 = 0.05, and
    trials.csv holds each run's theory: ordered at sigma_w^2 = 1, chaotic at 4."""
    from bpstudy import compose
    from bpstudy.config.validate import validate
    from bpstudy.report.edge_of_chaos import depth_scales

    sweep = yaml.safe_load(SHIPPED_EOC.read_text())
    kept = [o for o in sweep["overrides"] if not o.startswith(("model.width", "trainer.epochs"))]
    sweep |= {
        "study_name": "eoc",
        "n_trials": 6,
        "overrides": [*kept, "model.width=8", "trainer.epochs=1", "trainer.log_every=5"],
        "params": {"model.init.sigma_w": "choice(1.0, 2.0)", "model.depth": "choice(2, 3, 4)"},
    }
    out = sweep_and_report(tmp_path, sweep)
    assert out.returncode == 0, out.stderr
    report = tmp_path / "reports" / "eoc"

    assert_png(report / "edge_of_chaos.png")
    summary = (report / "summary.md").read_text()
    assert "(edge_of_chaos.png)" in summary
    caption = next(line for line in summary.splitlines() if "over σw² x depth" in line)
    assert "tanh, σb² = 0.05; χ1 = 1 at σw² = 1.76" in caption, caption
    assert "6 ξ_c" in caption and "edge-of-chaos picture skipped" not in summary

    table = pd.read_csv(report / "trials.csv")
    assert len(table) == 6 and {*THEORY_COLUMNS, "theory/ratio_log10"} <= set(table.columns)
    phases = table.groupby("params_model.init.sigma_w")["theory.phase"].unique()
    assert list(phases[1.0]) == ["ordered"] and list(phases[2.0]) == ["chaotic"]
    xi = table.groupby("params_model.init.sigma_w")["theory.xi_c"].unique()

    # the drawn curve's xi_c is the runs' own, and bpstudy.theory's
    cfg = compose(["model.activation=tanh", "model.init.scheme=normal",
                           "model.init.sigma_b=0.2236068", "model.width=8"])  # fmt: skip
    curve, chi1 = depth_scales(validate(cfg), np.array([1.0, 4.0]))
    np.testing.assert_allclose(curve, [xi[1.0][0], xi[2.0][0]], rtol=1e-5)
    assert chi1[0] < 1 < chi1[1]


@pytest.mark.slow
def test_a_study_not_over_sigma_w_and_depth_says_why_it_has_no_edge_of_chaos_picture(reported):
    folder, out = reported
    assert out.returncode == 0, out.stderr
    summary = (folder / "reports" / STUDY / "summary.md").read_text()
    assert (
        "edge-of-chaos picture skipped: the study does not vary both model.init.sigma_w and "
        "model.depth (it varies only model.init.sigma_w)"
    ) in summary
    assert not (folder / "reports" / STUDY / "edge_of_chaos.png").exists()
