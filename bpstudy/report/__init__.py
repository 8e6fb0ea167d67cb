"""Study reports: a study's Optuna trials joined with their MLflow runs, written as a CSV,
a Markdown summary and pictures, and logged to the study's parent run (docs/architecture.md §6).

    studies.py (Optuna storage) + runs.py (MLflow)     the I/O
    table.py                                           the join (pure)
    levels.py, depths.py                               values as levels; depth panels
    theory.py                                          each trial's mean-field prediction
    figures.py, edge_of_chaos.py, optuna_plots.py      the pictures
    reading.py, summary.py                             the text
    build.py                                           `bpstudy report`: all of it in order
"""

from __future__ import annotations

from bpstudy.report.build import Report, make_report
from bpstudy.report.table import RunRecord, trials_table

__all__ = ["Report", "RunRecord", "make_report", "trials_table"]
