"""Optuna sweeps: sweep files in Hydra's grammar, trials that call the same `train`,
local worker processes, pruning, resume, and MLflow parent/child runs.

Nothing is imported here: `bpstudy sweep` starts its workers' fork server
(bpstudy.sweep.pool) before it loads Optuna or Hydra."""
