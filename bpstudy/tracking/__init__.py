"""MLflow tracking: the store, the run listener, plots, rerun and the UI."""

from __future__ import annotations

from bpstudy.tracking.run import TrackedResult, tracked_train
from bpstudy.tracking.store import TrackingError, resolve_uri

__all__ = ["TrackedResult", "TrackingError", "resolve_uri", "tracked_train"]
