"""`bpstudy report STUDY`: read the study and its MLflow runs, join them, write the report
folder, and log it to the study's parent run.

study (Optuna storage) + child runs (MLflow) -> table (`table.py`) -> trials.csv,
pictures (`figures.py`, `optuna_plots.py`), reading and summary.md (`reading.py`,
`summary.py`) -> the parent run's artifacts under report/ (`runs.py`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from optuna.distributions import FloatDistribution, IntDistribution

from bpstudy.errors import BpstudyError, redact
from bpstudy.report import edge_of_chaos, figures, optuna_plots
from bpstudy.report.depths import check_panels, check_sampled, describe_panels, panel_depths
from bpstudy.report.reading import StudyFacts, main_group, ranked_params, reading
from bpstudy.report.selection import Selection, apply, check
from bpstudy.report.studies import load_study
from bpstudy.report.summary import ARTIFACT_DIR, Picture, SummaryContext, summary_markdown
from bpstudy.report.table import evidence, grad_columns, objective_columns, trials_table
from bpstudy.report.theory import run_theories
from bpstudy.sweep.counts import TrialCounts, count_states, state_name
from bpstudy.sweep.storage import (
    PARENT_ATTR,
    default_storage_url,
    is_rdb,
    journal_path,
)

CSV, SUMMARY = "trials.csv", "summary.md"
PROFILE, IMPORTANCES, HISTORY, HTML = (
    "grad_flow_profile.png",
    "param_importances.png",
    "optimization_history.png",
    "optuna.html",
)
HEATMAP_GLOB = "*_heatmap.png"


@dataclass
class Report:
    study_name: str
    out_dir: Path
    files: list[Path]
    n_trials: int
    counts: TrialCounts
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    notes: list[str] = field(default_factory=list)
    artifact_dir: str = ARTIFACT_DIR


def default_out_dir(study_name: str) -> Path:
    """reports/<study>/ in the working directory (the name made safe for a folder)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip(".") or "study"
    return Path.cwd() / "reports" / safe


def _check_out(out: Path) -> None:
    """Before the trials are read (seconds): --out must be, or can become, a folder."""
    if out.exists() and not out.is_dir():
        raise BpstudyError(f"--out {out}: is a file, not a folder")
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BpstudyError(f"--out {out}: cannot create the folder ({existing} is not writable)")


def _prepare(out: Path) -> None:
    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpstudyError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    # a file of an earlier report that this one does not write again would mislead
    for old in [
        *(out / n for n in (CSV, SUMMARY, PROFILE, IMPORTANCES, HISTORY, HTML, edge_of_chaos.FILE)),
        *out.glob(HEATMAP_GLOB),
    ]:
        old.unlink(missing_ok=True)


def _tracking_uri(tracking_uri: str | None, storage: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the embedded store beside a journal
    given with --storage (where `bpstudy sweep` puts them both), else mlflow.db here."""
    from bpstudy.tracking.store import EMBEDDED_DB, resolve_uri

    if tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or not storage or is_rdb(storage):
        return resolve_uri(tracking_uri)
    beside = journal_path(storage).resolve().parent / EMBEDDED_DB
    return f"sqlite:///{beside}" if beside.is_file() else resolve_uri(None)


def _objective_names(study, from_sweep: list[str] | None) -> list[str]:
    n = len(study.directions)
    for names in (from_sweep, study.metric_names):
        if names and len(names) == n:
            return list(names)
    return ["objective"] if n == 1 else [f"objective_{i}" for i in range(n)]


@dataclass
class _Sources:
    """The study and what MLflow holds of it."""

    study: object
    trials: list
    client: object = None
    parent: object = None  # the parent run (mlflow Run), when the study has one
    runs: dict = field(default_factory=dict)
    metric_names: list[str] | None = None  # from the parent run's sweep.json
    notes: list[str] = field(default_factory=list)


def _read(
    study_name: str, storage_url: str, uri: str, say: Callable[[str], None], selection: Selection
) -> _Sources:
    study = load_study(study_name, storage_url)
    trials = study.get_trials(deepcopy=False)
    check(selection, trials)
    check_sampled(evidence(apply(trials_table(trials, {}), selection)), selection.group)
    src = _Sources(study, trials)
    parent_id = study.user_attrs.get(PARENT_ATTR)
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials if t.user_attrs.get("mlflow_run_id")]
    if not parent_id and not run_ids:
        src.notes.append("no trial has an MLflow run (tracking was off): no metric columns")
        return src
    from bpstudy.report import runs as mlflow_runs

    src.client = mlflow_runs.connect(uri)
    say(f"report {study_name}: {len(trials)} trials; reading their MLflow runs from {redact(uri)}")
    if parent_id:
        src.parent = mlflow_runs.parent_run(src.client, parent_id, redact(uri))
        src.metric_names = mlflow_runs.sweep_metrics(src.client, parent_id)
    src.runs = mlflow_runs.child_runs(src.client, src.parent, run_ids)
    missing = len(set(run_ids) - set(src.runs))
    if missing:
        src.notes.append(
            f"{missing} trials' MLflow runs are missing from {redact(uri)}; their metric "
            "columns are empty"
        )
    return src


def _facts(src: _Sources, metric_names: list[str], notes: list[str], selected: bool) -> StudyFacts:
    distributions: dict = {}
    for t in src.trials:
        distributions.update(t.distributions)
    objective = _objective(metric_names)
    importances, why_not = optuna_plots.importances(src.study, objective)
    if why_not:
        notes.append(f"parameter importances skipped: {why_not}")
    return StudyFacts(
        metric=metric_names[0],
        direction=src.study.directions[0].name.lower(),
        objective_column=objective_columns(metric_names)[0],
        distributions=dict(sorted(distributions.items())),
        importances=importances,
        multi_objective=len(metric_names) > 1,
        importance_trials=count_states(state_name(t) for t in src.trials).complete,
        selected=selected,
    )


def _objective(metric_names: list[str]) -> optuna_plots.Objective:
    return optuna_plots.Objective(metric_names[0], multi=len(metric_names) > 1)


def make_report(
    study_name: str,
    storage: str | None = None,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    selection: Selection | None = None,
) -> Report:
    """Write the report of `study_name` to `out` and log it to the study's parent run;
    `selection` narrows it to some trials (see `selection.py`)."""
    selection = selection or Selection()
    if out:
        _check_out(Path(out).expanduser().resolve())
    uri = _tracking_uri(tracking_uri, storage)
    storage_url = storage or default_storage_url(uri)
    src = _read(study_name, storage_url, uri, say, selection)
    notes = src.notes
    metric_names = _objective_names(src.study, src.metric_names)
    table = trials_table(src.trials, src.runs, metric_names)
    facts = _facts(src, metric_names, notes, selected=bool(selection.where))
    n_all = len(table)
    table = apply(table, selection)
    shown = None
    if selection.where:
        shown = f"those with {selection.describe()}: {len(table)} of {n_all}"
        notes.append(
            "parameter importances and the optimisation history are over the whole study, "
            f"not only the trials with {selection.describe()}"
        )
    group = selection.group or main_group(table, facts)
    check_panels(evidence(table), group)  # before the folder is touched
    artifact_dir = f"{ARTIFACT_DIR}/{selection.slug}" if selection.where else ARTIFACT_DIR

    out_dir = Path(out).expanduser().resolve() if out else default_out_dir(study_name)
    if selection.where and not out:
        out_dir = out_dir / selection.slug
    _prepare(out_dir)
    say(f"report {study_name}: drawing pictures in {out_dir}")
    written = [out_dir / CSV]
    table.to_csv(written[0], index=False)
    theories = run_theories(table, src.runs)
    pictures = _draw(
        src.study, table, facts, group, _objective(metric_names), out_dir, notes, theories
    )
    written += [out_dir / p.file for p in pictures]
    written.insert(1, out_dir / SUMMARY)

    parent_id = src.parent.info.run_id if src.parent is not None else None
    ctx = SummaryContext(
        study_name=study_name,
        storage=redact(storage_url),
        tracking_uri=redact(uri) if parent_id else None,
        parent_run_id=parent_id,
        metric_names=metric_names,
        directions=[d.name.lower() for d in src.study.directions],
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC by bpstudy {_version()}",
        pictures=pictures,
        notes=notes,
        pareto=sorted(t.number for t in src.study.best_trials) if facts.multi_objective else None,
        files=[p.name for p in written],
        artifact_dir=artifact_dir,
        shown=shown,
    )
    sentences = reading(table, facts, group)
    (out_dir / SUMMARY).write_text(summary_markdown(table, ctx, facts, sentences))

    if parent_id:
        from bpstudy.report import runs as mlflow_runs

        say(f"report {study_name}: logging {len(written)} files to parent run {parent_id}")
        note = summary_markdown(table, ctx, facts, sentences, embed_images=False)
        mlflow_runs.log_report(src.client, src.parent, written, note, artifact_dir,
                               describe=not selection.where, step=len(src.trials))  # fmt: skip
    return Report(
        study_name=study_name,
        out_dir=out_dir,
        files=written,
        n_trials=len(table),
        artifact_dir=artifact_dir,
        counts=count_states(table["state"]),
        parent_run_id=parent_id,
        tracking_uri=ctx.tracking_uri,
        notes=notes,
    )


def _draw(
    study, table, facts: StudyFacts, group, objective, out_dir: Path, notes: list[str], theories
):
    """Every picture this study allows; what it does not is said in `notes`."""
    pictures: list[Picture] = []
    table = evidence(table)  # medians over what the trials' values did, not interruptions
    if grad_columns(table) and table[grad_columns(table)].notna().any().any():
        lines = f"one line per {group}" if group else ""
        by = ", ".join(p for p in (describe_panels(panel_depths(table, group)), lines) if p)
        figures.grad_flow_profile_png(
            table,
            out_dir / PROFILE,
            group,
            title=f"{study.study_name}: gradient-flow profile",
            theory=theories,
        )
        n_predicted, why_not = figures.theory_notes(table, group, theories)
        predicted = (
            f"; dashed: the mean-field prediction at initialisation, through the line's "
            f"last layer ({n_predicted} {'line' if n_predicted == 1 else 'lines'})"
            if n_predicted
            else ""
        )
        notes.extend(why_not)
        pictures.append(
            Picture(
                PROFILE,
                f"gradient-flow profile: median final grad norm by hidden "
                f"layer (log scale), {by or 'all trials'}; dotted: diverged runs{predicted}",
            )
        )
    else:
        notes.append("gradient-flow profile skipped: no run logged per-layer gradient norms")

    if "val/loss" in table and table["val/loss"].notna().any():
        value, what = "val/loss", "final val/loss"
    else:  # no MLflow runs: the objective (each trial's best value) instead
        value, what = facts.objective_column, f"{facts.metric} (objective)"
    ranked = ranked_params(table, facts)
    if ranked:
        x, y = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        log = frozenset(
            n
            for n, d in facts.distributions.items()
            if isinstance(d, FloatDistribution | IntDistribution) and d.log
        )
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", value) + "_heatmap.png"
        figures.loss_heatmap_png(
            table, out_dir / name, value, x, y, log, title=f"{study.study_name}: {what}"
        )
        pair = "the two most important parameters" if facts.importances else "two parameters"
        pictures.append(
            Picture(
                name,
                f"{what} of completed trials (median per cell; pruned and diverged ones "
                f"counted) over {pair}: {x}" + (f" x {y}" if y else ""),
            )
        )
    else:
        notes.append("heatmap skipped: no parameter varies across the trials")

    _edge_of_chaos(study, table, theories, out_dir, pictures, notes)

    if facts.importances:
        optuna_plots.importances_png(study, out_dir / IMPORTANCES, objective)
        pictures.append(
            Picture(IMPORTANCES, f"Optuna's parameter importances for {facts.metric} (fANOVA)")
        )
    has_complete = table["state"].eq("COMPLETE").any()
    if has_complete:
        optuna_plots.history_png(study, out_dir / HISTORY, objective)
        pictures.append(Picture(HISTORY, f"Optuna's optimisation history of {facts.metric}"))
    else:
        notes.append("optimisation history skipped: no completed trial")

    if not optuna_plots.html_available():
        notes.append(
            "interactive HTML skipped: Optuna draws it with plotly, which is not "
            "installed (`pip install 'bpstudy[plots]'` or `pip install plotly`, then report again)"
        )
    elif not has_complete:
        notes.append("interactive HTML skipped: no completed trial")
    else:
        pair = (ranked[0], ranked[1]) if len(ranked) > 1 else None
        optuna_plots.optuna_html(study, out_dir / HTML, objective, bool(facts.importances), pair)
        pictures.append(
            Picture(HTML, "interactive Optuna views (history, importances, contour, slices)")
        )
    return pictures


def _edge_of_chaos(study, table, theories, out_dir: Path, pictures: list, notes: list) -> None:
    """Schoenholz et al.'s picture, where the study varies sigma_w and depth (normal init)."""
    why = edge_of_chaos.why_not(table, theories)
    if why:
        if edge_of_chaos.varied(table):  # a study of neither has no use for the word
            notes.append(f"edge-of-chaos picture skipped: {why}")
        return
    _, theory = edge_of_chaos.edge_of_chaos_png(
        table, theories, out_dir / edge_of_chaos.FILE, title=f"{study.study_name}: edge of chaos"
    )
    pictures.append(
        Picture(
            edge_of_chaos.FILE,
            f"final {edge_of_chaos.VALUE} over σw² x depth (median per cell), with the "
            f"mean-field depth scale ξ_c ({theory}): dashed "
            f"{edge_of_chaos.TRAINABLE_XI:g} ξ_c, Schoenholz et al. 2017's trainable depth; "
            "dotted ξ_c",
        )
    )


def _version() -> str:
    from bpstudy import __version__

    return __version__
