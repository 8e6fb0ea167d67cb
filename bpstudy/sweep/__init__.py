"""Optuna sweeps: sweep files in Hydra's grammar, trials that call the same `train`,
local worker processes, pruning, resume, and MLflow parent/child runs."""

from __future__ import annotations

from bpstudy.sweep.spec import SweepError, SweepSpec, load_spec

__all__ = ["SweepError", "SweepSpec", "load_spec"]
