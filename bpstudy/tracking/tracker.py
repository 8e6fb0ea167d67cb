"""MLflow tracking as a listener of the training loop (docs/architecture.md §4).

Every logged statistic is kept in memory (the loop's Diagnostics) and saved once as
`diagnostics/layers.parquet`; MLflow's metric store gets the epoch metrics in full and,
per step-level metric, at most `tracking.max_points_per_metric` points evenly spaced over
the planned run (always the first and the last logged step). Points go out in batches
from a background thread, so the store's speed (thousands of points per second) does not
hold up training.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bpstudy.config.schema import Config
from bpstudy.config.serialize import config_hash, flatten, to_dict, to_yaml
from bpstudy.errors import redact
from bpstudy.shutdown import signals_held
from bpstudy.theory import Prediction
from bpstudy.tracking import profiles
from bpstudy.tracking.images import log_images
from bpstudy.tracking.sender import Sender
from bpstudy.tracking.theory import THEORY_RATIO, theory_params
from bpstudy.training.events import Listener
from bpstudy.training.outcome import Thresholds, classify
from bpstudy.training.verdict import Verdict, verdict_of

THREADS_TAG = "bpstudy.blas_threads"
STUDY_TAG = "bpstudy.study"  # on a sweep's parent run: the study's name
DATA_HASH_TAG = "bpstudy.data_hash"  # Dataset.fingerprint() of the run's data
DATA_PATH_TAG = "bpstudy.data_path"  # data.path, absolute


def blas_threads() -> int | None:
    """The BLAS thread count in use (the largest, if several BLAS libraries are loaded)."""
    from threadpoolctl import threadpool_info

    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else None


def metric_key(stat: str, layer: int) -> str:
    """grad_norm, 3 -> grad_norm/L03 (two digits, from 01)."""
    return f"{stat}/L{layer:02d}"


def planned_steps(total_steps: int, log_every: int, max_points: int) -> set[int]:
    """Logged steps to send: evenly spaced, first and last included."""
    logged = np.arange(0, max(total_steps, 1), log_every)
    if logged.size <= max_points:
        return set(logged.tolist())
    pick = np.unique(np.round(np.linspace(0, logged.size - 1, max_points)).astype(int))
    return set(logged[pick].tolist())


def save_diagnostics(root: Path, layer_stats, step_stats) -> None:
    """Every logged statistic, under root/diagnostics/ (the run's artifact path). As
    DataFrame.to_parquet(index=False), but converted in this thread: pyarrow's pool of
    threads waits for cores that BLAS's threads still hold just after training (twice the
    time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "diagnostics").mkdir(exist_ok=True)
    for name, frame in (("layers", layer_stats), ("steps", step_stats)):
        table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
        pq.write_table(table, root / "diagnostics" / f"{name}.parquet")


class MlflowTracker(Listener):
    def __init__(
        self,
        client,
        experiment_id: str,
        cfg: Config,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        thresholds: Thresholds | None = None,
        on_run: Callable[[str], None] | None = None,
        theory: Prediction | None = None,
    ) -> None:
        self.client, self.experiment_id, self.cfg = client, experiment_id, cfg
        self.run_name, self.parent_run_id = run_name, parent_run_id
        self.extra_tags = dict(tags or {})
        self.thresholds = thresholds or Thresholds()
        self.on_run = on_run  # told the run id as soon as the run exists (sweeps record it)
        self.theory = theory
        self.max_points = cfg.tracking.max_points_per_metric
        self.run_id: str | None = None
        self.outcome: str | None = None
        self.verdict: Verdict | None = None
        self._sender: Sender | None = None
        self._trainer = None  # for what an interrupted run can still log
        self._artifacts_logged = False  # diagnostics/ and the rest, by on_train_end
        self._send_steps: set[int] = set()
        self._last_sent_step: int | None = None
        self._first_profile_sent = self._last_profile_sent = False

    # ------------------------------------------------------------ helpers

    def _metrics_at(self, trainer, step: int) -> list:
        from mlflow.entities import Metric

        diag = trainer.diagnostics
        row, (_, lr, _, ratio) = diag.rows[-1], diag.scalars[-1]
        now = int(time.time() * 1000)
        out = [
            Metric("lr", float(lr), now, step),
            Metric("grad_norm/ratio_log10", float(ratio), now, step),
        ]
        for i in range(row.shape[0]):
            for j, stat in enumerate(diag.columns):
                out.append(Metric(metric_key(stat, i + 1), float(row[i, j]), now, step))
        if diag.step_columns:  # the rule's own step scalars (settle/*)
            extra = zip(diag.step_columns, diag.step_extra[-1], strict=True)
            out += [Metric(k, float(v), now, step) for k, v in extra]
        out += profiles.log10_companions(row, diag.columns, now, step)
        if not self._first_profile_sent:  # the first logged step: the profile at the start
            self._first_profile_sent = True
            out += profiles.profile(row, diag.columns, profiles.PROFILE_FIRST, now)
            if self.theory is not None and self.theory.applicable:
                out += profiles.predicted_profile(row, diag.columns, self.theory.profile, now)
        return out

    def _send_last_profile(self, trainer) -> None:
        """The profile at the last logged step (step = layer)."""
        diag = trainer.diagnostics
        if diag.rows and not self._last_profile_sent:
            self._last_profile_sent = True
            now = int(time.time() * 1000)
            self._send(profiles.profile(diag.rows[-1], diag.columns, profiles.PROFILE_LAST, now))

    def _send(self, metrics: list) -> None:
        self._sender.put(metrics)

    # ------------------------------------------------------------ events

    def on_train_start(self, trainer) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from bpstudy import __version__
        from bpstudy.tracking.gitinfo import git_dirty, git_sha

        tags = {
            "bpstudy.version": __version__,
            "bpstudy.config_hash": config_hash(self.cfg),
            **self.extra_tags,
        }
        sha = git_sha()
        if sha:
            tags["bpstudy.git_sha"] = sha
            if git_dirty():  # the commit alone does not say what ran
                tags["bpstudy.git_dirty"] = "true"
        tags[DATA_HASH_TAG] = trainer.data.fingerprint()
        path = getattr(self.cfg.data, "path", "")
        if path:  # where a relative data.path pointed, for a rerun from elsewhere
            tags[DATA_PATH_TAG] = str(Path(path).expanduser().resolve())
        threads = blas_threads()
        if threads:  # BLAS sums in another order with another thread count
            tags[THREADS_TAG] = str(threads)
        if self.parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = self.parent_run_id
        d, t = trainer.data, trainer.settings
        total = t.epochs * t.steps_per_epoch(d.X_train.shape[0])
        tags["bpstudy.planned_steps"] = str(total)
        self._trainer = trainer
        run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        if self.on_run is not None:
            self.on_run(self.run_id)
        # a tracking.uri's password (a sweep's worker, a rerun) is no param, nor in config.yaml
        params = [Param(k, redact(str(v))) for k, v in flatten(to_dict(self.cfg)).items()]
        if self.theory is not None:
            params += [Param(k, v) for k, v in theory_params(self.theory).items()]
        for lo in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[lo : lo + 100])
        # now, not with the other artifacts: a run stopped by Ctrl-C or an error still holds
        # what it takes to rerun it
        self.client.log_text(self.run_id, redact(to_yaml(self.cfg)), "config.yaml")
        self._send_steps = planned_steps(total, t.log_every, self.max_points)
        self._sender = Sender(self.client, self.run_id)
        self._sender.start()
        if self.theory is not None and math.isfinite(self.theory.ratio_log10):
            now = int(time.time() * 1000)
            self._send([Metric(THEORY_RATIO, self.theory.ratio_log10, now, 0)])

    def on_update(self, trainer, step: int) -> None:
        if step in self._send_steps:
            self._send(self._metrics_at(trainer, step))
            self._last_sent_step = step

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        out = [Metric(k, float(v), now, trainer.step) for k, v in metrics.items()]
        out.append(Metric("epoch", float(epoch), now, trainer.step))
        self._send(out)

    def _send_last_step(self, trainer) -> None:
        """The last logged step's statistics, if the even spacing did not send them."""
        diag = trainer.diagnostics
        if diag.steps and diag.steps[-1] != self._last_sent_step:
            self._send(self._metrics_at(trainer, diag.steps[-1]))
            self._last_sent_step = diag.steps[-1]

    def on_train_end(self, trainer, result) -> None:
        self._send_last_step(trainer)
        self._send_last_profile(trainer)
        self.outcome = classify(result, self.thresholds)
        self.verdict = verdict_of(result, self.cfg)
        self._finish_metrics(result)
        self._sender.finish()  # its last batch goes out while the pictures are drawn
        self._sender.warm.wait()
        with tempfile.TemporaryDirectory(prefix="bpstudy-") as tmp:
            self._write_artifacts(trainer, result, Path(tmp))
            self._sender.join()
            if self._sender.error is not None:
                raise self._sender.error
            self.client.log_artifacts(self.run_id, tmp)
            # and where the charts are: the run's chart view shows logged images
            pictures = sorted((Path(tmp) / "plots").glob("*.png"))
            log_images(self.client, self.run_id, pictures, "plots", result.steps)
        self._artifacts_logged = True
        self._end(result)

    def _finish_metrics(self, result) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        final = [
            Metric(k, float(v), now, result.steps)
            for k, v in result.metrics.items()
            if k.startswith("test/")
        ]
        # the rule's counts over the whole run (settle/unsettled: never silent)
        final += [Metric(k, float(v), now, result.steps) for k, v in result.rule_totals.items()]
        if final:
            self._send(final)

    def _write_artifacts(self, trainer, result, root: Path) -> None:
        """The run's files under root: diagnostics, pictures, weights."""
        from bpstudy.tracking.plots import alignment_png, grad_flow_png, grad_profile_png, loss_png

        for sub in ("diagnostics", "plots", "model"):
            (root / sub).mkdir()
        save_diagnostics(root, result.layer_stats, result.step_stats)
        title = f"{self.cfg.model.depth} x {self.cfg.model.width} {self.cfg.model.activation}, init {self.cfg.model.init.scheme} ({self.outcome})"
        grad_flow_png(
            result.layer_stats, root / "plots" / "grad_flow.png", title=f"gradient flow: {title}"
        )
        loss_png(result.history, root / "plots" / "loss.png", title=f"loss: {title}")
        applies = self.theory is not None and self.theory.applicable
        grad_profile_png(
            result.layer_stats,
            np.asarray(self.theory.profile) if applies else None,
            root / "plots" / "grad_profile.png",
            title=f"measured and predicted: {title}",
        )
        if "alignment" in result.layer_stats:
            alignment_png(
                result.layer_stats,
                root / "plots" / "alignment.png",
                title=f"{self.cfg.learning_rule.name}: {title}",
            )
        np.savez(root / "model" / "weights.npz", **trainer.net.state())

    def _end(self, result) -> None:
        from mlflow.entities import RunTag

        tags = [
            RunTag("bpstudy.outcome", self.outcome),
            RunTag("bpstudy.training", self.verdict.training),
            RunTag("bpstudy.symptoms", self.verdict.symptoms_tag),
            RunTag("bpstudy.status", result.status),
        ]
        if result.diverged:
            tags.append(RunTag("bpstudy.diverged_step", str(result.diverged_step)))
            tags.append(RunTag("bpstudy.diverged_reason", result.diverged_reason or ""))
        if result.stop_reason:
            tags.append(RunTag("bpstudy.stop_reason", result.stop_reason))
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, "FINISHED")

    def _keep_what_was_logged(self) -> None:
        """An interrupted or failed run keeps its statistics so far: the last logged
        step's points, and every point in diagnostics/*.parquet. Best effort: whatever
        goes wrong here, the run must still end."""
        trainer = self._trainer
        try:
            if self._sender.is_alive():  # on_train_end has it finish before the artifacts
                self._send_last_step(trainer)
                self._send_last_profile(trainer)
            if self._artifacts_logged:
                return
            diag = trainer.diagnostics
            with tempfile.TemporaryDirectory(prefix="bpstudy-") as tmp:
                root = Path(tmp)
                save_diagnostics(root, diag.layer_frame(), diag.step_frame())
                self.client.log_artifacts(self.run_id, str(root))
        except Exception:  # noqa: BLE001 - the run's end matters more
            pass

    def abort(self, status: str, error: BaseException | None = None) -> None:
        """End the run KILLED (Ctrl-C) or FAILED (an exception), with the error as a tag.
        A Ctrl-C (or SIGTERM) arriving meanwhile waits until the run has ended: one that
        cut the sender's join short let the final writes meet its SQLite write lock
        ("database is locked"), and the run stayed RUNNING for ever."""
        if self.run_id is None:
            return
        with signals_held():
            self._abort(status, error)

    def _abort(self, status: str, error: BaseException | None) -> None:
        from mlflow.entities import RunTag

        if self._sender is not None:  # interrupted in on_train_end too: after the sender
            self._keep_what_was_logged()
            if self._sender.is_alive():
                self._sender.close()
        tags = [RunTag("bpstudy.status", status.lower())]
        if status == "FAILED":
            tags.append(RunTag("bpstudy.outcome", "failed"))
        if error is not None:
            text = redact(f"{type(error).__name__}: {error}")  # it may quote a URL
            tags.append(RunTag("bpstudy.error", text[:5000]))
        try:
            self.client.log_batch(self.run_id, tags=tags)
        finally:
            self.client.set_terminated(self.run_id, status)
