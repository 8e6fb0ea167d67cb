"""MLflow tracking through the real CLI and real stores (SQLite files, an mlflow server)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

import bpstudy
from bpstudy.config.serialize import config_hash, flatten, to_dict
from bpstudy.tracking.ui import free_port, stop_group, wait_until_up
from bpstudy.training.diagnostics import STATS
from tests.conftest import listing, processes_marked, wait_until

TINY = ["model.depth=3", "model.width=16", "trainer.epochs=2", "trainer.progress=none"]


def interrupt(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Ctrl-C, as a terminal would send it, then wait for the process to end."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout)


def only_run(client: MlflowClient, experiment: str = "bpstudy"):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def test_every_design_name_is_logged(cli, tmp_path, store):
    uri, client = store
    out = cli("train", *TINY, "trainer.log_every=5", f"tracking.uri={uri}")
    assert out.returncode == 0, out.stderr
    run = only_run(client)
    assert run.info.status == "FINISHED"
    # artifacts live beside the SQLite store, not in ./mlruns of the working directory
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    metrics = set(run.data.metrics)
    per_layer = {f"{s}/L{i:02d}" for s in STATS for i in (1, 2, 3)}
    epoch = {"train/loss", "train/accuracy", "val/loss", "val/accuracy"}
    assert per_layer | epoch | {"lr", "grad_norm/ratio_log10"} <= metrics
    assert not any(k.endswith("/L04") or k.endswith("/L00") for k in metrics)
    # params: the resolved config flattened to dotted keys
    cfg_tree = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
    )
    cfg = bpstudy.validate(cfg_tree)
    expected_params = {k: str(v) for k, v in flatten(to_dict(cfg)).items()}
    config_params = {k: v for k, v in run.data.params.items() if not k.startswith("theory.")}
    assert config_params == expected_params
    assert {"theory.chi1", "theory.phase"} <= set(run.data.params)  # and the prediction
    assert run.data.params["model.depth"] == "3"
    # tags
    tags = run.data.tags
    assert tags["bpstudy.outcome"] in {"healthy", "vanishing", "exploding"}
    assert tags["bpstudy.version"] == bpstudy.__version__
    assert tags["bpstudy.config_hash"] == config_hash(cfg)
    # histories: epoch metrics once per epoch at the global step; layer stats every 5 steps
    steps_per_epoch = -(-bpstudy.load_data(cfg).X_train.shape[0] // 64)
    loss_hist = client.get_metric_history(run.info.run_id, "val/loss")
    assert sorted(m.step for m in loss_hist) == [steps_per_epoch, 2 * steps_per_epoch]
    grad_hist = client.get_metric_history(run.info.run_id, "grad_norm/L02")
    assert sorted(m.step for m in grad_hist) == list(range(0, 2 * steps_per_epoch, 5))
    # artifacts
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "diagnostics", "plots", "model"} <= names
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "art")))
    layers = pd.read_parquet(local / "diagnostics" / "layers.parquet")
    assert list(layers.columns) == ["step", "layer", *STATS]
    assert len(layers) == 3 * len(grad_hist)
    for png in ("grad_flow.png", "loss.png"):
        assert (local / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(local / "model" / "weights.npz", allow_pickle=False) as weights:
        assert {"hidden.0.W", "hidden.2.b", "output.W", "output.b"} <= set(weights.files)
        assert weights["hidden.0.W"].shape == (64, 16)


def test_unit_and_gradient_noise_stats_reach_mlflow(cli, tmp_path, store):
    """A real `bpstudy train` of a linear net: dead/Lii and saturation/Lii are exactly 0 at
    every logged step, and grad_snr/Lii and norm_test/Lii arrive as the run computed them
    (those of diagnostics/layers.parquet), positive and tied by norm_test = 1/sqrt((B-1) snr)."""
    uri, client = store
    out = cli(
        "train", *TINY, "model.activation=linear", "trainer.log_every=3", f"tracking.uri={uri}"
    )
    assert out.returncode == 0, out.stderr
    run = only_run(client)
    local = Path(client.download_artifacts(run.info.run_id, "diagnostics", str(tmp_path)))
    layers = pd.read_parquet(local / "layers.parquet").set_index(["step", "layer"])
    for layer in (1, 2, 3):
        history = {}
        for stat in ("dead", "saturation", "saturated_entries", "grad_snr", "norm_test"):
            points = client.get_metric_history(run.info.run_id, f"{stat}/L{layer:02d}")
            history[stat] = pd.Series({m.step: m.value for m in points}).sort_index()
            assert len(history[stat]) > 5
        for stat in ("dead", "saturation", "saturated_entries"):
            assert (history[stat] == 0.0).all(), stat
        for stat in ("grad_snr", "norm_test"):
            expected = layers.xs(layer, level="layer").loc[history[stat].index, stat]
            np.testing.assert_array_equal(history[stat].to_numpy(), expected.to_numpy())
            assert (history[stat] > 0).all(), stat
        snr, norm_test = history["grad_snr"], history["norm_test"]
        B = 64  # trainer.batch_size, that of step 0 (an epoch's last batch may be smaller)
        assert norm_test[0] == pytest.approx(1 / np.sqrt((B - 1) * snr[0]), rel=1e-9)


def test_max_points_per_metric_keeps_first_and_last(cli, tmp_path, store):
    uri, client = store
    out = cli(
        "train",
        *TINY,
        "trainer.log_every=1",
        "tracking.max_points_per_metric=5",
        f"tracking.uri={uri}",
    )
    assert out.returncode == 0, out.stderr
    run = only_run(client)
    total = int(run.data.tags["bpstudy.planned_steps"])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "act_std/L01"))
    assert len(steps) == 5 and steps[0] == 0 and steps[-1] == total - 1
    local = Path(client.download_artifacts(run.info.run_id, "diagnostics", str(tmp_path)))
    layers = pd.read_parquet(local / "layers.parquet")
    assert sorted(layers["step"].unique()) == list(range(total))  # full resolution kept


def test_tracking_disabled_and_env_uri(cli, tmp_path):
    out = cli("train", *TINY, "tracking.enabled=false")
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "mlflow.db").exists()
    env_db = tmp_path / "env.db"
    out = cli("train", *TINY, env={"MLFLOW_TRACKING_URI": f"sqlite:///{env_db}"})
    assert out.returncode == 0, out.stderr
    assert env_db.exists() and not (tmp_path / "mlflow.db").exists()
    out = cli("train", *TINY, "tracking.experiment=mine")
    assert out.returncode == 0, out.stderr
    only_run(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "mine")


def test_diverging_run_is_finished_with_outcome_diverged(cli, store):
    uri, client = store
    out = cli(
        "train", "model.depth=30", "model.activation=relu", "model.init.scheme=normal",
        "model.init.sigma_w=4", "optimizer.lr=1", "trainer.clip.mode=none", "trainer.epochs=3",
        "trainer.log_every=1", "trainer.progress=none", f"tracking.uri={uri}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["bpstudy.outcome"] == "diverged"
    step = int(run.data.tags["bpstudy.diverged_step"])
    hist = client.get_metric_history(run.info.run_id, "grad_norm/L01")
    assert hist and max(m.step for m in hist) == step - 1  # every point up to divergence


def test_vanishing_outcome_for_deep_sigmoid(cli, store):
    uri, client = store
    out = cli("train", "model.depth=30", "model.activation=sigmoid", "trainer.epochs=1",
              "trainer.progress=none", f"tracking.uri={uri}")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert only_run(client).data.tags["bpstudy.outcome"] == "vanishing"


def test_multirun_gives_one_run_per_job(cli, store):
    uri, client = store
    out = cli(
        "train",
        "-m",
        "model.activation=sigmoid,tanh,relu",
        *TINY,
        "trainer.epochs=1",
        f"tracking.uri={uri}",
    )
    assert out.returncode == 0, out.stderr
    exp = client.get_experiment_by_name("bpstudy")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.params["model.activation"] for r in runs) == ["relu", "sigmoid", "tanh"]


def test_multirun_with_chdir_keeps_one_default_store(cli, tmp_path):
    """hydra.job.chdir=true runs each job in its output folder: the default store was
    made there too, one per job, where neither `ui` nor `rerun` looks."""
    out = cli("train", "-m", "hydra.job.chdir=true", "model.activation=tanh,relu", *TINY,
              "trainer.epochs=1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("mlflow.db")] == [Path("mlflow.db")]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bpstudy").experiment_id])
    assert len(runs) == 2


def test_rerun_identical_then_altered(cli, tmp_path, store):
    uri, client = store
    out = cli("train", *TINY, "model.dropout=0.1", "trainer.log_every=3", f"tracking.uri={uri}")
    assert out.returncode == 0, out.stderr
    original = only_run(client).info.run_id
    out = cli("rerun", original, "--tracking-uri", uri)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "identical"
    assert "epoch 2/2 " in out.stderr  # progress lines know the run's length
    assert "Downloading artifacts" not in out.stderr  # MLflow's bar for one small file
    runs = client.search_runs([client.get_experiment_by_name("bpstudy").experiment_id])
    rerun_runs = [r for r in runs if r.data.tags.get("bpstudy.rerun_of") == original]
    assert len(rerun_runs) == 1
    # alter the recorded config: the rerun must report the first difference
    cfg_path = Path(client.download_artifacts(original, "config.yaml", str(tmp_path)))
    tree = yaml.safe_load(cfg_path.read_text())
    tree["optimizer"]["lr"] = 0.05
    cfg_path.write_text(yaml.safe_dump(tree))
    client.log_artifact(original, str(cfg_path))
    out = cli("rerun", original, "--tracking-uri", uri)
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert "differ" in last and "step" in last


def test_rerun_finds_relative_data_and_notices_changed_data(cli, tmp_path, store):
    """config.yaml keeps data.path as typed: a rerun from another folder reads the file
    the original read; a rerun on an edited file says the data changed."""
    uri, client = store
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir(), elsewhere.mkdir()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    rows = [f"{a:.6f},{b:.6f},{c:.6f},{int(a + b > 0)}" for a, b, c in X]
    data = here / "my.csv"
    data.write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    out = cli("train", *TINY, "data=csv", "data.path=my.csv", f"tracking.uri={uri}", cwd=here)
    assert out.returncode == 0, out.stderr
    original = only_run(client)
    assert original.data.tags["bpstudy.data_path"] == str(data.resolve())
    assert len(original.data.tags["bpstudy.data_hash"]) == 32
    out = cli("rerun", original.info.run_id, "--tracking-uri", uri, cwd=elsewhere)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "identical"
    data.write_text(data.read_text().replace(rows[5], rows[5].replace("0.", "1.", 1)))
    out = cli("rerun", original.info.run_id, "--tracking-uri", uri, cwd=here)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "note: the data differ from what the original trained on" in out.stdout


def test_rerun_compares_the_full_statistics_and_the_weights(cli, tmp_path, store):
    """MLflow holds a bounded number of points per metric; diagnostics/layers.parquet
    holds every logged step, and model/weights.npz the trained network: a difference
    there alone is still a difference."""
    uri, client = store
    out = cli("train", *TINY, "trainer.log_every=1", f"tracking.uri={uri}")
    assert out.returncode == 0, out.stderr
    original = only_run(client).info.run_id
    (tmp_path / "a").mkdir()
    layers = Path(
        client.download_artifacts(original, "diagnostics/layers.parquet", str(tmp_path / "a"))
    )
    weights = Path(client.download_artifacts(original, "model/weights.npz", str(tmp_path / "a")))
    kept = {p: p.read_bytes() for p in (layers, weights)}

    def rerun_after_logging(path: Path, folder: str) -> str:
        """Log `path` over the original's artifact; the rerun's last line."""
        client.log_artifact(original, str(path), folder)
        out = cli("rerun", original, "--tracking-uri", uri)
        last = out.stdout.strip().splitlines()[-1]
        assert out.returncode == (0 if last == "identical" else 1), out.stdout + out.stderr
        return last

    frame = pd.read_parquet(layers)
    row = frame.index[(frame["step"] == 7) & (frame["layer"] == 2)][0]
    frame.loc[row, "grad_norm"] *= 1 + 1e-6  # step 7 of 40 is not among MLflow's points
    frame.to_parquet(layers, index=False)
    last = rerun_after_logging(layers, "diagnostics")
    assert last.startswith("differs: diagnostics/layers.parquet: grad_norm of layer 2 at step 7")

    layers.write_bytes(kept[layers])
    client.log_artifact(original, str(layers), "diagnostics")
    arrays = dict(np.load(weights))
    arrays["output.b"] = arrays["output.b"] + np.float32(1e-3)
    np.savez(weights, **arrays)
    last = rerun_after_logging(weights, "model")
    assert last.startswith("differs: model/weights.npz: output.b differs (largest difference 0.001")

    weights.write_bytes(kept[weights])
    assert rerun_after_logging(weights, "model") == "identical"


def test_rerun_of_a_failed_run_compares_what_it_logged(cli, store):
    """A run that raised (here a listener, at step 8) ends FAILED with its statistics so
    far; its rerun trains as far and compares that. It said "epoch: logged by the rerun
    only" before."""
    uri, client = store

    class Boom(bpstudy.Listener):
        def on_update(self, trainer, step: int) -> None:
            if step == 8:  # a logged step (log_every=2)
                raise RuntimeError("boom at step 8")

    from bpstudy.tracking import tracked_train

    cfg = bpstudy.validate(bpstudy.compose([*TINY, "trainer.log_every=2", f"tracking.uri={uri}"]))
    with pytest.raises(RuntimeError):
        tracked_train(cfg, bpstudy.load_data(cfg), [Boom()])
    run = only_run(client)
    assert run.info.status == "FAILED"
    out = cli("rerun", run.info.run_id, "--tracking-uri", uri)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert "the original run FAILED (RuntimeError: boom at step 8)" in lines
    assert "the original failed: compared up to step 8" in lines
    assert lines[-1] == "identical"


@pytest.mark.slow
def test_rerun_uses_the_original_blas_thread_count(cli, store):
    # a sweep worker trains with cores / workers BLAS threads; OpenBLAS rounds a product
    # differently with another count, so the rerun must use the recorded one
    uri, client = store
    wide = ["model.depth=3", "model.width=128", "trainer.epochs=1", "trainer.progress=none"]
    one = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = cli("train", *wide, "trainer.log_every=1", f"tracking.uri={uri}", env=one)
    assert out.returncode == 0, out.stderr
    original = only_run(client)
    assert original.data.tags["bpstudy.blas_threads"] == "1"
    out = cli("rerun", original.info.run_id, "--tracking-uri", uri)  # all cores by default
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "identical"


def test_rerun_of_a_run_without_config_says_so_and_exits(cli, store):
    uri, client = store
    cli("train", *TINY, f"tracking.uri={uri}")
    exp = client.get_experiment_by_name("bpstudy").experiment_id
    bare = client.create_run(exp).info.run_id
    parent = client.create_run(exp, tags={"bpstudy.study": "s1"}).info.run_id
    for run_id, says in ((bare, "no config.yaml"), (parent, "parent run of study 's1'")):
        # MLflow's download leaves an idle thread pool behind: the exit must not wait on it
        out = cli("rerun", run_id, "--tracking-uri", uri, timeout=60)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr


def test_rerun_unknown_run_id(cli, store):
    uri, _ = store
    cli("train", *TINY, f"tracking.uri={uri}")
    out = cli("rerun", "0123456789abcdef0123456789abcdef", "--tracking-uri", uri)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "0123456789abcdef" in out.stderr
    out = cli("rerun", " ", "--tracking-uri", uri)  # said "run   is not in the store"
    assert out.returncode == 2
    assert (
        out.stderr
        == "bpstudy: error: rerun: the run id is empty; give a run id from the dashboard\n"
    )


@pytest.mark.parametrize("command", ["rerun", "ui"])
@pytest.mark.parametrize("where", ["default", "missing_file", "empty_file"])
def test_read_only_commands_make_no_store(cli, tmp_path, command, where):
    """`bpstudy rerun BADID` in a folder without a store made an empty mlflow.db."""
    busy = socket.socket()  # a ui that went on would stop at its port, not serve
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = str(busy.getsockname()[1])
    args = ["0123456789abcdef0123456789abcdef"] if command == "rerun" else ["--port", port]
    db = tmp_path / "runs.db"
    if where == "empty_file":
        db.write_bytes(b"")
    if where != "default":
        args += ["--tracking-uri", f"sqlite:///{db}"]
    before = listing(tmp_path)
    with busy:
        out = cli(command, *args, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no MLflow store at sqlite:///" in lines[0], out.stderr
    assert listing(tmp_path) == before
    if where == "empty_file":
        assert db.stat().st_size == 0


def test_unreachable_server_and_unwritable_store(cli, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    out = cli("train", *TINY, f"tracking.uri={url}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "outputs").exists()
    bad = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'm.db'}"
    out = cli("train", *TINY, f"tracking.uri={bad}")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and bad in out.stderr


def test_a_busy_server_is_asked_again_and_a_refusing_one_is_not(monkeypatch):
    """Among 32 workers logging to a 2-worker `mlflow server`, a sweep command starting
    timed out on /health and exited 2 "unreachable". A server that takes the connection
    but answers late is asked again; a port where nothing listens fails at once."""
    import http.server
    import threading

    from bpstudy.tracking import store

    monkeypatch.setattr(store, "HEALTH_TIMEOUT_SECONDS", 0.3)
    asked, answer_first = [], threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if len(asked) == 1:
                answer_first.wait(30)  # busy: the client gives up on this one first
            else:
                answer_first.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store.check_store(f"http://127.0.0.1:{server.server_port}")
    finally:
        answer_first.set()
        server.shutdown()
        server.server_close()
    assert asked == ["/health", "/health"]
    refused = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(store.TrackingError, match="unreachable"):
        store.check_store(refused)


@pytest.mark.parametrize(
    ("make_uri", "needle"),
    [
        (lambda d: f"sqlite:///{d}", "is a folder"),  # MLflow retried for minutes
        (lambda d: "sqlite:///", "names no file (an in-memory database)"),  # 344 lines
        (lambda d: "sqlite://relative.db", "three slashes"),
        (lambda d: "foo://bar", "unsupported scheme 'foo:'"),  # MLflow's registry text
        (lambda d: f"sqlite:///{d / 'data.csv'}", "is not an SQLite database"),
    ],
)
def test_bad_store_is_one_line_and_writes_nothing(cli, tmp_path, make_uri, needle):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    uri = make_uri(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = cli("train", *TINY, f"tracking.uri={uri}", timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and uri in lines[0], out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outputs/, no mlflow.db
    assert (tmp_path / "data.csv").read_text() == "a,b\n1,2\n"


def test_ui_refuses_a_file_that_is_not_a_store(cli, tmp_path):
    """It turned an empty data file into a 954 KB MLflow database."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = cli("ui", "--tracking-uri", f"sqlite:///{empty}", timeout=60)
    assert out.returncode == 2 and "no MLflow store" in out.stderr, out.stderr
    assert empty.stat().st_size == 0


def test_unreachable_database_store_is_one_line_at_once(cli, tmp_path):
    """MLflow itself retries an unreachable database for minutes, warning every few
    seconds, and Hydra's output folder was written meanwhile."""
    url = f"postgresql://u:secret@127.0.0.1:{free_port()}/x"
    out = cli("train", *TINY, timeout=60, env={"MLFLOW_TRACKING_URI": url})
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "cannot connect" in out.stderr
    assert "secret" not in out.stderr and "u:***@" in out.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_password_in_tracking_uri_is_refused(cli, tmp_path):
    """Hydra writes the job's overrides and config to its .hydra/ folder: the password
    would be kept there in clear. Its message names the ways that keep it out."""
    url = f"postgresql://u:secret@127.0.0.1:{free_port()}/x"
    out = cli("train", *TINY, f"tracking.uri={url}", timeout=60)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "tracking.uri=postgresql://u:***@" in line and "secret" not in line
    assert "PGPASSWORD" in line and "MLFLOW_TRACKING_URI" in line
    assert list(tmp_path.iterdir()) == []


def test_sigint_ends_the_run_killed(tmp_path, store, ctrl_c):
    uri, client = store
    exe = Path(sys.executable).with_name("bpstudy")
    proc = subprocess.Popen(
        [str(exe), "train", "trainer.epochs=100000", "model.depth=3", "trainer.progress=lines", f"tracking.uri={uri}"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:  # progress lines go to stderr: wait for training to run
            if line.startswith("epoch 2/"):
                break
        interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    run = only_run(client)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    assert f"mlflow run {run_id} ended KILLED" in proc.stderr.read()  # where to find it
    # logged when the run started: a stopped run can still be rerun
    names = [a.path for a in client.list_artifacts(run_id)]
    assert "config.yaml" in names
    # what was logged before the Ctrl-C is kept: every point, and the last one in MLflow
    layers = pd.read_parquet(
        client.download_artifacts(run_id, "diagnostics/layers.parquet", str(tmp_path))
    )
    steps = [m.step for m in client.get_metric_history(run_id, "grad_norm/L01")]
    assert layers["step"].nunique() > 2 and max(steps) == layers["step"].max() > 0
    # its rerun trains as far as it got, and compares that
    out = subprocess.run(
        [str(exe), "rerun", run_id, "--tracking-uri", uri],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    epochs = [m.step for m in client.get_metric_history(run_id, "epoch")]
    assert lines[-2:] == [  # as far as it got: its last statistics, or its last epoch's end
        f"the original was interrupted: compared up to step {max(steps + epochs)}",
        "identical",
    ]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    db, artifacts = tmp_path / "server.db", tmp_path / "server-artifacts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(url, proc):
            raise RuntimeError("mlflow server did not start")
        yield url
    finally:
        stop_group(proc, timeout=30)


def rest(url: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
    full = url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_training_against_an_mlflow_server(cli, mlflow_server):
    out = cli(
        "train",
        *TINY,
        "trainer.log_every=4",
        f"tracking.uri={mlflow_server}",
        "tracking.experiment=remote",
    )
    assert out.returncode == 0, out.stderr
    exp = rest(
        mlflow_server,
        "/api/2.0/mlflow/experiments/get-by-name",
        query={"experiment_name": "remote"},
    )
    runs = rest(
        mlflow_server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [exp["experiment"]["experiment_id"]]},
    )["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["bpstudy.outcome"] in {"healthy", "vanishing", "exploding"}
    run_id, exp_id = run["info"]["run_id"], exp["experiment"]["experiment_id"]
    # the run's page on the server, once: not MLflow's two lines, nor 'bpstudy ui'
    link = f"mlflow run {run_id}: {mlflow_server}/#/experiments/{exp_id}/runs/{run_id}"
    assert out.stdout.rstrip().splitlines()[-1] == link
    assert "View run" not in out.stdout and " ui " not in out.stdout
    hist = rest(mlflow_server, "/api/2.0/mlflow/metrics/get-history",
                query={"run_id": run["info"]["run_id"], "metric_key": "grad_norm/L01"})["metrics"]  # fmt: skip
    assert [int(m["step"]) for m in sorted(hist, key=lambda m: int(m["step"]))][:3] == [0, 4, 8]
    files = rest(
        mlflow_server,
        "/api/2.0/mlflow/artifacts/list",
        query={"run_id": run["info"]["run_id"], "path": "plots"},
    )
    assert {f["path"] for f in files["files"]} == {
        "plots/grad_flow.png",
        "plots/loss.png",
        "plots/grad_profile.png",
    }


@pytest.mark.slow
def test_ui_serves_the_store_and_stops_on_ctrl_c(cli, tmp_path, store, ctrl_c):
    uri, _ = store
    assert cli("train", *TINY, f"tracking.uri={uri}").returncode == 0
    port = free_port()
    exe = Path(sys.executable).with_name("bpstudy")
    proc = subprocess.Popen(
        [str(exe), "ui", "--port", str(port), "--tracking-uri", uri], start_new_session=True,
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        log = Path(line.rsplit("server log ", 1)[1].rstrip(")\n"))
        assert "Uvicorn running" in log.read_text()  # MLflow's start-up: in its log
        body = rest(
            f"http://127.0.0.1:{port}",
            "/ajax-api/2.0/mlflow/experiments/search",
            {"max_results": 10},
        )
        exp_id = next(e["experiment_id"] for e in body["experiments"] if e["name"] == "bpstudy")
        runs = rest(
            f"http://127.0.0.1:{port}",
            "/ajax-api/2.0/mlflow/runs/search",
            {"experiment_ids": [exp_id]},
        )
        run_id = runs["runs"][0]["info"]["run_id"]
        # the UI serves the run's heatmap, as the browser would fetch it
        query = urllib.parse.urlencode({"path": "plots/grad_flow.png", "run_uuid": run_id})
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/get-artifact?{query}", timeout=30
        ) as r:
            assert r.read(8) == b"\x89PNG\r\n\x1a\n"
        interrupt(proc)
    finally:
        stop_group(proc)  # whatever happened, leave no server behind
    assert proc.returncode == 0
    # the terminal saw the address line and the stop, none of MLflow's chatter
    assert proc.stdout.read() == "MLflow UI stopped\n"
    assert proc.stderr.read() == ""
    assert not log.exists()
    with socket.socket() as s:
        # SO_REUSEADDR: connections the server closed may sit in TIME_WAIT, which blocks a
        # plain bind; on Linux a bind with it still fails while anything listens there
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # the port is free again: the server stopped


def test_a_port_whose_server_just_stopped_is_free_again():
    """`bpstudy ui` stopped and started again keeps port 5000: the stopped server's
    closed connections (TIME_WAIT on its port, for a minute) left the port looking taken,
    and the next UI moved to a random one. A port something listens on is still taken."""
    from bpstudy.tracking.ui import port_is_free

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    assert not port_is_free(port)  # listening
    conn.close()  # the server's side closes first: its port's socket goes to TIME_WAIT
    client.recv(1)  # the close has reached the client (end of stream)
    client.close()
    server.close()
    assert port_is_free(port)


def test_a_second_stop_signal_does_not_cut_the_stopping_short():
    """Under stops_as_ctrl_c, SIGTERM raises KeyboardInterrupt; a SIGHUP or SIGTERM that
    follows while the servers stop (systemd sends both) is ignored (it raised a second
    KeyboardInterrupt out of the stopping, and a server was left running); afterwards
    the handlers are what they were."""
    from bpstudy.tracking.ui import stops_as_ctrl_c

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    stopping_finished = False
    with stops_as_ctrl_c():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # a point where Python runs the handler
            pytest.fail("SIGTERM did not interrupt")
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGHUP)  # as the servers stop
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)
            stopping_finished = True
    assert stopping_finished
    assert {sig: signal.getsignal(sig) for sig in before} == before


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_ui_on_a_server_stops_its_companion_on_kill_or_hangup(mlflow_server, tiny_study, sig):
    """With an MLflow server as the store, `ui --optuna` runs only optuna-dashboard, in a
    session of its own. A `kill` or a closed terminal, sent to bpstudy alone, must stop
    it too (SIGTERM left it running: only Ctrl-C and SIGHUP stopped it on this path)."""
    optuna_port = free_port()
    exe = Path(sys.executable).with_name("bpstudy")
    mark = {"BPSTUDY_TEST_MARK": f"companion-{optuna_port}"}  # finds it if it is orphaned
    marker = "BPSTUDY_TEST_MARK=" + mark["BPSTUDY_TEST_MARK"]
    proc = subprocess.Popen(
        [str(exe), "ui", "--tracking-uri", mlflow_server, "--optuna", "--storage",
         tiny_study.storage, "--optuna-port", str(optuna_port)],
        cwd=tiny_study.folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **mark},
    )  # fmt: skip
    try:
        assert "is an MLflow server" in proc.stdout.readline()
        assert f"http://127.0.0.1:{optuna_port}/" in proc.stdout.readline()  # it serves
        assert len(processes_marked(marker)) >= 2  # bpstudy and its companion
        proc.send_signal(sig)  # to bpstudy alone, as `kill` or the terminal would
        proc.wait(timeout=60)
        # the companion's own session got SIGTERM; what it started may take a moment
        wait_until(lambda: not processes_marked(marker), 30, "the companion to stop")
    finally:
        stop_group(proc)
        for pid in processes_marked(marker):  # a failed test leaves nothing behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0
    assert proc.stdout.read() == "optuna-dashboard stopped\n"


class Boom(bpstudy.Listener):
    def on_epoch_end(self, trainer, epoch, metrics):
        raise RuntimeError("listener exploded on purpose")


def test_an_exception_ends_the_run_failed_with_the_error(tmp_path, store):
    from bpstudy.tracking import tracked_train

    uri, client = store
    cfg = bpstudy.validate(bpstudy.compose([*TINY, f"tracking.uri={uri}"]))
    with pytest.raises(RuntimeError, match="on purpose"):
        tracked_train(cfg, bpstudy.load_data(cfg), [Boom()])
    run = only_run(client)
    assert run.info.status == "FAILED"
    assert run.data.tags["bpstudy.outcome"] == "failed"
    assert "listener exploded on purpose" in run.data.tags["bpstudy.error"]


class LeakyBoom(bpstudy.Listener):
    def on_epoch_end(self, trainer, epoch, metrics):
        raise RuntimeError("cannot reach postgresql://alice:Pw7secret@db:5432/optuna")


def test_the_error_tag_of_a_failed_run_hides_a_password(tmp_path, store):
    """An exception may quote a URL with its password; the bpstudy.error tag must not."""
    from bpstudy.tracking import tracked_train

    uri, client = store
    cfg = bpstudy.validate(bpstudy.compose([*TINY, f"tracking.uri={uri}"]))
    with pytest.raises(RuntimeError):
        tracked_train(cfg, bpstudy.load_data(cfg), [LeakyBoom()])
    error = only_run(client).data.tags["bpstudy.error"]
    assert "Pw7secret" not in error
    assert "postgresql://alice:***@db:5432/optuna" in error


@pytest.mark.parametrize(
    "args, says",
    [
        (["--port", "99999"], "--port 99999: a port is 1 to 65535"),
        (["--port", "0"], "--port 0: a port is 1 to 65535"),  # would poll port 0 for ever
        (["--tracking-uri", "foo"], "tracking store foo: MLflow's file store is deprecated"),
        (
            ["--tracking-uri", "http://127.0.0.1:{port}"],
            "tracking server http://127.0.0.1:{port} is",
        ),
    ],
)
def test_ui_bad_port_or_store_is_one_line(cli, args, says):
    port = free_port()  # nothing listens there
    args, says = [a.format(port=port) for a in args], says.format(port=port)
    out = cli("ui", *args, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"bpstudy: error: {says}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["two minutes", "-1"])
def test_a_bad_tracking_wait_is_one_line_exit_2(cli, tmp_path, value):
    """BPSTUDY_TRACKING_WAIT_SECONDS, read before a server is asked: a value that is no
    number of seconds >= 0 was quietly read as 0; now `train` says so and writes nothing."""
    uri = f"http://127.0.0.1:{free_port()}"  # never reached: the variable is read first
    out = cli("train", *TINY, f"tracking.uri={uri}",
              env={"BPSTUDY_TRACKING_WAIT_SECONDS": value})  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"bpstudy: error: BPSTUDY_TRACKING_WAIT_SECONDS={value!r}: give a number of "
        "seconds >= 0, or unset it\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_git_state_says_when_the_checkout_had_uncommitted_changes(tmp_path, monkeypatch):
    from bpstudy.tracking import gitinfo

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(gitinfo, "ROOT", tmp_path)
    clear = lambda: [fn.cache_clear() for fn in (gitinfo.git_sha, gitinfo.git_dirty)]  # noqa: E731
    clear()
    try:
        assert len(gitinfo.git_sha()) == 40 and not gitinfo.git_dirty()
        (tmp_path / "b.py").write_text("untracked\n")  # does not count
        clear()
        assert not gitinfo.git_dirty()
        (tmp_path / "a.py").write_text("x = 2\n")
        clear()
        assert gitinfo.git_dirty()
    finally:
        clear()  # the package's own checkout again, for the tests after this one


def test_a_store_killed_while_being_made_leaves_nothing_half_made(cli, tmp_path):
    """MLflow makes a new SQLite store's tables over a few seconds; a Ctrl-C in them left
    a half-made mlflow.db that every later command refused ("table logged_models already
    exists"). The store is now made under a temporary name and linked into place whole:
    a process killed while the temporary file exists leaves no mlflow.db."""
    from tests.conftest import wait_until

    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("bpstudy")), "train", *TINY],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: list(tmp_path.glob(".mlflow.db.*.tmp")) or proc.poll() is not None,
                   120, "the store being made")  # fmt: skip
        assert proc.poll() is None, "the run ended before its store was being made"
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the kill lands while the temporary store exists, or (rarely, on a busy machine) just
    # after it was linked into place whole: either way the next command must work
    for leftover in tmp_path.glob(".mlflow.db.*.tmp"):
        leftover.unlink()  # a SIGKILL runs no clean-up; Ctrl-C's finally removes it
    out = cli("train", *TINY)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "mlflow.db").is_file()


def test_rerun_of_a_run_still_running_says_so(cli, store):
    """A run whose process died before ending it stays RUNNING with no metrics; its rerun
    compared nothing with nothing and printed 'identical'."""
    uri, client = store
    assert cli("train", *TINY, f"tracking.uri={uri}").returncode == 0
    run_id = only_run(client).info.run_id
    client.update_run(run_id, status="RUNNING")
    out = cli("rerun", run_id, "--tracking-uri", uri)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"run {run_id} is RUNNING" in out.stderr and "identical" not in out.stdout


def test_rerun_of_a_run_killed_after_its_last_epoch_compares_all_of_it(cli, store):
    """A Ctrl-C after the last epoch (in the end-of-run logging) leaves a KILLED run that
    logged every epoch: its rerun stopped at the last statistics step (30 of 40 here)
    and said 'identical' for the part it compared."""
    uri, client = store
    assert cli("train", *TINY, f"tracking.uri={uri}").returncode == 0  # 2 epochs, 40 steps
    run_id = only_run(client).info.run_id
    client.update_run(run_id, status="KILLED")
    out = cli("rerun", run_id, "--tracking-uri", uri)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "compared up to step 40" in out.stdout and out.stdout.strip().endswith("identical")


def test_a_ctrl_c_during_the_end_of_a_run_waits_until_it_has_ended(ctrl_c):
    """abort() runs under signals_held: a Ctrl-C that cut the sender's join short let the
    final writes meet its SQLite write lock ("database is locked"), and the run stayed
    RUNNING for ever. Held signals reach the previous handler once the block is done."""
    from bpstudy.shutdown import signals_held

    done = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_held_too_long_goes_through(monkeypatch, ctrl_c):
    """A store that hangs must not make the run impossible to leave."""
    from bpstudy import shutdown

    monkeypatch.setattr(shutdown, "HOLD_SECONDS", 0.0)
    done = []
    with pytest.raises(KeyboardInterrupt), shutdown.signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("not reached")
    assert done == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ui_that_cannot_start_says_why_and_keeps_its_log(cli, tmp_path):
    """MLflow's output goes to a log file: when the server fails, the error line carries
    its last line and the file is kept for the rest."""
    import sqlite3

    db = tmp_path / "bad.db"  # a store whose schema version MLflow does not know
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("create table alembic_version (version_num varchar(32))")
        con.execute("insert into alembic_version values ('deadbeef')")
        con.commit()
    out = cli("ui", "--tracking-uri", f"sqlite:///{db}", "--port", str(free_port()), timeout=120)
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and "the MLflow UI did not start" in line, line
    assert "Can't locate revision identified by 'deadbeef'" in line
    log = Path(line.rsplit("its log: ", 1)[1])
    assert "deadbeef" in log.read_text()
    log.unlink()


@pytest.mark.slow
def test_a_sweep_resumes_on_the_same_server_by_another_address(cli, tmp_path, mlflow_server):
    """A study records its tracking store; the same MLflow server reached by another
    name (localhost for 127.0.0.1) is found to hold the parent run, so the resume goes on
    into that run rather than being refused as another store."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "study_name: s\nmetric: val/loss\ndirection: minimize\nn_trials: 1\n"
        "sampler: {name: random, seed: 0}\npruner: {name: none}\n"
        f"overrides: [{', '.join(TINY)}]\nparams:\n  optimizer.lr: choice(0.05, 0.1)\n"
    )
    first = cli("sweep", str(sweep), "--progress", "lines", f"tracking.uri={mlflow_server}")
    assert first.returncode == 0, first.stderr
    other = mlflow_server.replace("127.0.0.1", "localhost")
    more = cli(
        "sweep", str(sweep), "--n-trials", "2", "--progress", "lines", f"tracking.uri={other}"
    )
    assert more.returncode == 0, more.stderr
    parent = first.stdout.split("mlflow parent run ", 1)[1].split()[0]
    assert f"mlflow parent run {parent}" in more.stdout, more.stdout
