"""One tracked run: check the store, train with the MLflow listener, end the run with
the right status however training ends (FINISHED, FAILED with the error, KILLED)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bpstudy.config.schema import Config
from bpstudy.data import Dataset
from bpstudy.theory import Prediction, predict
from bpstudy.tracking.naming import run_name as config_run_name
from bpstudy.tracking.store import client_for, experiment_id, resolve_uri
from bpstudy.tracking.tracker import MlflowTracker
from bpstudy.training.events import Listener
from bpstudy.training.outcome import Thresholds, classify
from bpstudy.training.run import make_trainer
from bpstudy.training.state import TrainResult
from bpstudy.training.verdict import Verdict, verdict_of


@dataclass
class TrackedResult:
    result: TrainResult
    outcome: str
    run_id: str | None
    tracking_uri: str | None
    experiment_id: str | None = None
    verdict: Verdict | None = None  # how training went (bpstudy.training.verdict)
    theory: Prediction | None = None  # the mean-field prediction at initialisation


def thresholds(cfg: Config) -> Thresholds:
    o = cfg.outcome
    return Thresholds(o.vanishing_log10, o.exploding_log10, o.vanishing_norm, o.exploding_norm)


def tracked_train(
    cfg: Config,
    data: Dataset,
    listeners: Sequence[Listener] = (),
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    on_run: Callable[[str], None] | None = None,
) -> TrackedResult:
    """Train `cfg` (validated) on `data` (its `load_data`, loaded by the caller); with
    tracking enabled, as one MLflow run (store checked first), named `run_name` or from
    its config (tracking.naming)."""
    theory = predict(cfg, data)  # about 1 ms, before the first step
    if not cfg.tracking.enabled:
        result = make_trainer(cfg, data, listeners).fit()
        outcome = classify(result, thresholds(cfg))
        verdict = verdict_of(result, cfg)
        return TrackedResult(result, outcome, None, None, verdict=verdict, theory=theory)
    uri = resolve_uri(cfg.tracking.uri)
    client = client_for(uri)  # unreachable or unwritable: fails here, before training
    exp = experiment_id(client, cfg.tracking.experiment)
    trainer_listeners = list(listeners)
    name = run_name or config_run_name(cfg)  # never MLflow's random one
    tracker = MlflowTracker(
        client, exp, cfg, name, parent_run_id, tags, thresholds(cfg), on_run, theory
    )
    trainer = make_trainer(cfg, data, [*trainer_listeners, tracker])
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        tracker.abort("KILLED")
        raise
    except Exception as exc:
        tracker.abort("FAILED", exc)
        raise
    return TrackedResult(result, tracker.outcome, tracker.run_id, uri, exp, tracker.verdict, theory)
