"""summary.md: the study report as Markdown (pure: the table and facts in, text out).

Sections: a header (study, storage, MLflow parent run, objective, trial counts), what the
study shows (`reading.py`), the best trials, outcome counts by each categorical parameter,
the pictures, notes on anything skipped, and the columns of trials.csv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bpstudy.report.levels import format_value, sort_key
from bpstudy.report.reading import StudyFacts, best_rows, categorical_params
from bpstudy.report.table import PARAM_PREFIX, grad_columns, objective_columns
from bpstudy.sweep.counts import INTERRUPTED_STATE, count_states

OUTCOME_ORDER = ("healthy", "vanishing", "exploding", "diverged", "failed", "interrupted")
STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", INTERRUPTED_STATE, "RUNNING", "WAITING")
ARTIFACT_DIR = "report"  # the report's folder in the parent run's artifacts
HEADING = "# Study report"  # MLflow's run description is replaced only under this heading


@dataclass(frozen=True)
class Picture:
    file: str
    caption: str


@dataclass(frozen=True)
class SummaryContext:
    study_name: str
    storage: str  # password redacted
    tracking_uri: str | None
    parent_run_id: str | None
    metric_names: Sequence[str]
    directions: Sequence[str]
    generated: str  # when, and by which bpstudy version
    pictures: Sequence[Picture] = ()
    notes: Sequence[str] = ()
    pareto: Sequence[int] | None = None  # multi-objective: Pareto-optimal trial numbers
    files: Sequence[str] = field(default_factory=lambda: ("trials.csv", "summary.md"))
    artifact_dir: str = ARTIFACT_DIR  # where the parent run holds this report
    shown: str | None = None  # which trials, when --where narrowed them


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        text = value if isinstance(value, str) else format_value(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _counts(series: pd.Series, order: Sequence[str]) -> str:
    counts = series.dropna().value_counts()
    known = [f"{counts[k]} {k.lower()}" for k in order if k in counts]
    other = [f"{n} {k}" for k, n in counts.items() if k not in order]
    return ", ".join(known + other) or "none"


def _trial_counts(table: pd.DataFrame) -> str:
    """As `bpstudy sweep` ends with them (interrupted apart from failed), and any running
    or waiting (an interrupted trial's values, queued again)."""
    c = count_states(table["state"])
    others = [f"{n} {what}" for n, what in ((c.running, "running"), (c.waiting, "waiting")) if n]
    return ", ".join([c.describe(), *others])


def _header(table: pd.DataFrame, ctx: SummaryContext) -> list[str]:
    objectives = ", ".join(
        f"{m} ({d})" for m, d in zip(ctx.metric_names, ctx.directions, strict=True)
    )
    lines = [
        f"{HEADING}: {ctx.study_name}",
        "",
        f"- storage: `{ctx.storage}`",
    ]
    if ctx.parent_run_id:
        lines.append(
            f"- MLflow: parent run `{ctx.parent_run_id}` in `{ctx.tracking_uri}` "
            f"(this report is in its artifacts under `{ctx.artifact_dir}/`)"
        )
    else:
        lines.append("- MLflow: the study has no parent run (tracking was off); nothing logged")
    lines += [
        f"- objective: {objectives}; each trial's best value over its run",
        *([f"- trials shown: {ctx.shown}"] if ctx.shown else []),
        f"- trials: {len(table)} ({_trial_counts(table)})",
        f"- outcomes: {_counts(table['outcome'], OUTCOME_ORDER)}",
        f"- written {ctx.generated}",
    ]
    return lines


def _best_section(table: pd.DataFrame, ctx: SummaryContext, facts: StudyFacts) -> list[str]:
    objectives = objective_columns(ctx.metric_names)
    names = list(facts.distributions)
    extra = [c for c in ("val/accuracy", "test/accuracy") if c in table.columns]
    if ctx.pareto is not None:
        title = "## Pareto-optimal trials"
        rows = table[table["number"].isin(ctx.pareto)]
    else:
        title = "## Best trials"
        rows = best_rows(table, facts)
    if rows.empty:
        return [title, "", "No trial has completed yet."]
    header = ["trial", *ctx.metric_names, *names, "outcome", "training", *extra]
    body = [
        [
            int(r["number"]),
            *(r[c] for c in objectives),
            *(r[PARAM_PREFIX + n] for n in names),
            r["outcome"] or "",
            r.get("training") or "",
            *(r[c] for c in extra),
        ]
        for _, r in rows.iterrows()
    ]
    return [title, "", markdown_table(header, body)]


def _outcome_section(table: pd.DataFrame, ctx: SummaryContext, facts: StudyFacts) -> list[str]:
    lines = ["## Outcomes by parameter", ""]
    names = categorical_params(table, facts)
    if not names:
        return [*lines, "No categorical parameter (or one with few values) to count by."]
    # interrupted is a state column already (the outcome of exactly those trials)
    outcomes = [o for o in OUTCOME_ORDER if o != "interrupted" and table["outcome"].eq(o).any()]
    outcomes += sorted(set(table["outcome"].dropna()) - set(OUTCOME_ORDER))
    states = [s for s in STATE_ORDER if table["state"].eq(s).any()]
    objective = facts.objective_column
    header = [
        "value",
        "trials",
        *(s.lower() for s in states),
        *outcomes,
        f"median {facts.metric}",
        f"best {facts.metric}",
    ]
    best = np.nanmin if facts.direction == "minimize" else np.nanmax
    for name in names:
        column = table[PARAM_PREFIX + name]
        body = []
        for value in sorted(column.dropna().unique().tolist(), key=sort_key):
            rows = table[column.eq(value)]
            done = rows.loc[rows["state"].eq("COMPLETE"), objective].dropna()
            body.append(
                [
                    value,
                    len(rows),
                    *(int(rows["state"].eq(s).sum()) for s in states),
                    *(int(rows["outcome"].eq(o).sum()) for o in outcomes),
                    done.median() if len(done) else "",
                    best(done) if len(done) else "",
                ]
            )
        lines += [f"### {name}", "", markdown_table(header, body), ""]
    lines.append(
        "Outcome is the run's tag (healthy, vanishing, exploding, diverged, failed); a trial "
        "the pruner stopped keeps the outcome of its run so far. An interrupted trial was "
        "stopped by Ctrl-C and its values queued to run again: it is no failure. Objective "
        "columns count completed trials only."
    )
    return lines


def _pictures_section(ctx: SummaryContext, embed_images: bool) -> list[str]:
    if not ctx.pictures:
        return []
    lines = ["## Pictures", ""]
    for p in ctx.pictures:
        if embed_images and p.file.endswith(".png"):
            lines += [f"![{p.caption}]({p.file})", "", f"*{p.caption}* (`{p.file}`)", ""]
        elif embed_images:
            lines += [f"- [{p.file}]({p.file}): {p.caption}"]
        else:
            lines += [f"- `{ctx.artifact_dir}/{p.file}`: {p.caption}"]
    return lines


def _files_section(table: pd.DataFrame, ctx: SummaryContext) -> list[str]:
    grads = grad_columns(table)
    layer_text = f"`{grads[0]}` ... `{grads[-1]}`" if grads else "none (no MLflow runs)"
    return [
        "## Files",
        "",
        f"- `trials.csv`: one row per trial, {len(table.columns)} columns: trial `number`, "
        "`state`, `outcome`, the sampled values as `params_<key>`, the objective, "
        "`diverged_step`, `prune_reason`, `error`, `duration_s`, `mlflow_run_id`, "
        "`run_status`, each run's final metrics under their MLflow names"
        + (
            " (`theory/ratio_log10`: the mean-field first/last ratio predicted at "
            "initialisation), its mean-field params `theory.q_star`, `theory.chi1`, "
            "`theory.xi_c`, `theory.phase`, `theory.reason`,"
            if "theory.phase" in table
            else ","
        )
        + f" and the final per-layer gradient norms {layer_text} (layer 1 = input side)",
        "- files written: " + ", ".join(f"`{f}`" for f in ctx.files),
    ]


def summary_markdown(
    table: pd.DataFrame,
    ctx: SummaryContext,
    facts: StudyFacts,
    sentences: Sequence[str],
    embed_images: bool = True,
) -> str:
    """The report as Markdown; `embed_images=False` lists the pictures by artifact path
    instead (for MLflow's run description, where relative image links do not resolve)."""
    parts = [
        "\n".join(_header(table, ctx)),
        "\n".join(["## What the study shows", "", *(f"- {s}" for s in sentences)]),
        "\n".join(_best_section(table, ctx, facts)),
        "\n".join(_outcome_section(table, ctx, facts)),
    ]
    pictures = _pictures_section(ctx, embed_images)
    if pictures:
        parts.append("\n".join(pictures).rstrip())
    if ctx.notes:
        parts.append("\n".join(["## Notes", "", *(f"- {n}" for n in ctx.notes)]))
    parts.append("\n".join(_files_section(table, ctx)))
    return "\n\n".join(parts) + "\n"
