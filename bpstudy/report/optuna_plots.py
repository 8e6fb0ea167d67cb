"""Optuna's own views of a study: parameter importances and optimisation history, as
matplotlib PNGs (`optuna.visualization.matplotlib`) and, when plotly is installed, as one
interactive HTML page (`optuna.visualization`). Without plotly the HTML is skipped: plotly
is not a bpstudy dependency.

Importances are fANOVA's (Optuna's default evaluator) with a fixed seed, so the numbers in
summary.md and in the picture agree and a second report gives the same ones. They need at
least two completed trials and one parameter that varies among them.
"""

from __future__ import annotations

import contextlib
import html
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

IMPORTANCE_SEED = 0


@dataclass(frozen=True)
class Objective:
    """Which objective the pictures show (the first, in a multi-objective study)."""

    name: str
    index: int = 0
    multi: bool = False

    def target(self) -> Callable[[FrozenTrial], float] | None:
        """None for a single objective: Optuna then knows the direction (and draws the
        best-value line in the history)."""
        if not self.multi:
            return None
        index = self.index
        return lambda t: t.values[index]


@contextlib.contextmanager
def _quiet():
    """Optuna's plotting and importance APIs announce themselves as experimental."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _evaluator():
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)


def _complete(study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and all(math.isfinite(v) for v in t.values)
    ]


def importances(study, objective: Objective) -> tuple[dict[str, float] | None, str]:
    """(parameter -> share of variance, '') or (None, why they were skipped)."""
    import optuna

    done = _complete(study)
    if len(done) < 2:
        return None, f"importances need at least 2 completed trials; the study has {len(done)}"
    varying = [
        name for name in important_params(done) if len({repr(t.params.get(name)) for t in done}) > 1
    ]
    if not varying:
        return None, "importances need a parameter that varies among the completed trials"
    try:
        with _quiet():
            found = optuna.importance.get_param_importances(
                study, evaluator=_evaluator(), params=varying, target=objective.target()
            )
    except (ValueError, RuntimeError) as exc:
        return None, f"importances could not be computed ({str(exc).splitlines()[0]})"
    return dict(found), ""


def important_params(done) -> list[str]:
    """Parameters to rank: those that applied in every completed trial. Optuna samples a
    conditional one (optimizer.momentum beside optimizer: choice(sgd, momentum)) in every
    trial, so fANOVA would credit it with what the group choice did where it was inert."""
    names = sorted({p for t in done for p in t.params})
    inactive = {p for t in done for p in t.user_attrs.get("inactive_params", ())}
    return [n for n in names if n not in inactive]


def _save(ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = ax.figure
    fig.set_size_inches(8, 4.5)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def importances_png(study, path: Path, objective: Objective) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from optuna.visualization.matplotlib import plot_param_importances

    with _quiet():
        ax = plot_param_importances(
            study,
            evaluator=_evaluator(),
            params=important_params(_complete(study)),
            target=objective.target(),
            target_name=objective.name,
        )
    return _save(ax, path)


def history_png(study, path: Path, objective: Objective) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from optuna.visualization.matplotlib import plot_optimization_history

    with _quiet():
        ax = plot_optimization_history(study, target=objective.target(), target_name=objective.name)
    return _save(ax, path)


def html_available() -> bool:
    """optuna.visualization draws with plotly, which bpstudy does not depend on."""
    from optuna.visualization import is_available

    return is_available()


def optuna_html(
    study,
    path: Path,
    objective: Objective,
    with_importances: bool,
    pair: tuple[str, str] | None = None,
) -> Path:
    """One self-contained page: history, importances, the contour of the two most
    important parameters, and slices of every parameter."""
    from optuna import visualization as vis

    target, name = objective.target(), objective.name
    with _quiet():
        figures = [
            (
                "optimisation history",
                vis.plot_optimization_history(study, target=target, target_name=name),
            ),
        ]
        if with_importances:
            figures.append(
                (
                    "parameter importances",
                    vis.plot_param_importances(
                        study, evaluator=_evaluator(), target=target, target_name=name
                    ),
                )
            )
        if pair is not None:
            figures.append(
                (
                    f"{name} over {pair[0]} and {pair[1]}",
                    vis.plot_contour(study, params=list(pair), target=target, target_name=name),
                )
            )
        figures.append(("slices", vis.plot_slice(study, target=target, target_name=name)))
    parts = []
    for i, (heading, fig) in enumerate(figures):
        body = fig.to_html(full_html=False, include_plotlyjs=i == 0)  # plotly.js once, inline
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    title = html.escape(f"study {study.study_name}: Optuna views")
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>\n<h1>{title}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
