"""A short reading of what a study shows, in plain sentences, from the study table.

Pure: the table, the parameters' Optuna distributions and the importances in; sentences
out. The rules are simple and stated in each sentence (counts, medians, the log10 ratio
of the first to the last layer's gradient), so a reader can check them in trials.csv.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution

from bpstudy.report.depths import DEPTH, depths
from bpstudy.report.levels import MAX_LEVELS, format_value, sort_key
from bpstudy.report.table import PARAM_PREFIX, evidence, grad_columns
from bpstudy.tracking.theory import THEORY_RATIO

BAD_OUTCOMES = ("diverged", "exploding", "vanishing", "failed")
FLOW_LOG10 = 3.0  # orders of magnitude between first and last layer: the outcome tag's default
ROUGH_BELOW = 10  # fewer completed trials than this: importances are a rough guide
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
# what a study that samples them is about, in this order: one line / median per value
PREFERRED_GROUPS = ("learning_rule", "model.activation")


@dataclass(frozen=True)
class StudyFacts:
    """What the reading needs besides the table."""

    metric: str  # the objective's name, e.g. val/loss
    direction: str  # minimize | maximize (of the first objective)
    objective_column: str  # `objective`, or `objective_<metric>` in a multi-objective study
    distributions: Mapping[str, BaseDistribution]
    importances: Mapping[str, float] | None = None
    multi_objective: bool = False
    # the importances are Optuna's, over every completed trial of the study, not only
    # those a --where selection reads
    importance_trials: int = 0
    selected: bool = False


def varying_params(table: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Parameters that take more than one value across the trials."""
    return [n for n in names if table[PARAM_PREFIX + n].dropna().astype(str).nunique() > 1]


def categorical_params(table: pd.DataFrame, facts: StudyFacts) -> list[str]:
    """Parameters to count outcomes by: Optuna categoricals, and integers or stepped
    floats with few values (a continuous interval's few sampled values are no levels)."""
    out = []
    for name, dist in facts.distributions.items():
        n_values = table[PARAM_PREFIX + name].dropna().astype(str).nunique()
        discrete = getattr(dist, "step", None) is not None  # IntDistribution's is 1
        if isinstance(dist, CategoricalDistribution) or (discrete and 0 < n_values <= MAX_LEVELS):
            out.append(name)
    return out


def ranked_params(table: pd.DataFrame, facts: StudyFacts) -> list[str]:
    """Varying parameters, most important first (in sampling order without importances)."""
    names = varying_params(table, list(facts.distributions))
    if facts.importances:
        share = facts.importances
        names.sort(key=lambda n: -share.get(n, -1.0))
    return names


def main_group(table: pd.DataFrame, facts: StudyFacts) -> str | None:
    """The categorical parameter to draw one gradient-flow line per value of."""
    candidates = [p for p in ranked_params(table, facts) if p in categorical_params(table, facts)]
    preferred = [p for p in PREFERRED_GROUPS if p in candidates]
    return (preferred or candidates or [None])[0]


def best_rows(table: pd.DataFrame, facts: StudyFacts, n: int = 5) -> pd.DataFrame:
    done = table[table["state"].eq("COMPLETE") & np.isfinite(table[facts.objective_column])]
    return done.sort_values(
        facts.objective_column, ascending=facts.direction == "minimize", kind="stable"
    ).head(n)


def _params_text(row: pd.Series, names: Sequence[str]) -> str:
    """name=value of the values the trial used (an inactive conditional one is empty)."""
    return ", ".join(
        f"{n}={format_value(row[PARAM_PREFIX + n])}"
        for n in names
        if pd.notna(row[PARAM_PREFIX + n])
    )


def _best_sentence(table: pd.DataFrame, facts: StudyFacts) -> str:
    best = best_rows(table, facts, 1)
    if best.empty:
        return "No trial completed, so there is no best value yet."
    row = best.iloc[0]
    names = list(facts.distributions)
    word = "lowest" if facts.direction == "minimize" else "highest"
    outcome = f"; outcome {row['outcome']}" if isinstance(row["outcome"], str) else ""
    return (
        f"The {word} {facts.metric} is {row[facts.objective_column]:.4g}, at trial "
        f"#{int(row['number'])} ({_params_text(row, names)}{outcome})."
    )


OUTCOME_VERBS = {
    "diverged": "diverged",
    "exploding": "ended with exploding gradients",
    "vanishing": "ended with vanishing gradients",
    "failed": "failed",
}


def _outcome_sentences(table: pd.DataFrame, facts: StudyFacts) -> list[str]:
    """Per bad outcome: how many, and the parameter value(s) where it concentrates most
    (largest share of trials with that value minus share of the other trials)."""
    done = table[table["state"].isin(FINISHED)]
    out = []
    for outcome in BAD_OUTCOMES:
        hit = done["outcome"].eq(outcome)
        k = int(hit.sum())
        if not k:
            continue
        sentence = f"{k} of {len(done)} finished trials {OUTCOME_VERBS[outcome]}"
        found: list[tuple[float, str]] = []  # (share difference, text)
        for name in categorical_params(done, facts):
            column = done[PARAM_PREFIX + name].map(format_value)
            for value in column.unique():
                at = column.eq(value)
                if at.all():
                    continue
                a, b = int((hit & at).sum()), int(at.sum())
                c, d = int((hit & ~at).sum()), int((~at).sum())
                diff = a / b - c / d
                if diff > 0:
                    found.append((diff, f"{a} of {b} with {name}={value}, {c} of {d} otherwise"))
        if found:
            top = max(diff for diff, _ in found)
            strongest = [text for diff, text in found if math.isclose(diff, top)]
            sentence += ": " + "; equally ".join(strongest[:2])
        out.append(sentence + ".")
    stopped = done[done["prune_reason"].fillna("").str.startswith("pruned by")]
    if len(stopped):
        numbers = ", ".join(f"#{n}" for n in stopped["number"])
        out.append(f"The pruner stopped {len(stopped)} trials early ({numbers}).")
    if not out and len(done):
        out.append(
            f"None of the {len(done)} finished trials diverged, failed, or ended with "
            "vanishing or exploding gradients."
        )
    return out


def _importance_sentence(facts: StudyFacts) -> str | None:
    if not facts.importances:
        return None
    ranked = sorted(facts.importances.items(), key=lambda kv: -kv[1])
    parts = [f"{name} ({share:.0%})" for name, share in ranked[:3]]
    n = facts.importance_trials
    scope = "the whole study's" if facts.selected else "the"
    text = f"For {facts.metric}, fANOVA ranks {parts[0]} first"
    if len(parts) > 1:
        text += ", then " + ", ".join(parts[1:])
    text += f" (share of the explained variance over {scope} {plural(n, 'completed trial')}"
    if facts.selected:
        text += ", not only the selected ones"
    text += ")"
    if n < ROUGH_BELOW:
        text += f"; with {plural(n, 'completed trial')} this is a rough guide"
    return text + "."


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _by_group_sentence(table: pd.DataFrame, facts: StudyFacts, group: str | None) -> str | None:
    if group is None:
        return None
    done = table[table["state"].eq("COMPLETE") & np.isfinite(table[facts.objective_column])]
    if done.empty:
        return None
    medians = done.groupby(done[PARAM_PREFIX + group].map(format_value))[facts.objective_column]
    middle, size = medians.median(), medians.size()
    parts = [f"{value} {middle[value]:.4g} (n={size[value]})" for value in in_order(middle.index)]
    return f"Median {facts.metric} of completed trials by {group}: " + ", ".join(parts) + "."


def in_order(labels) -> list[str]:
    """Group labels as the tables order them: numbers by value (10, 20, 100; as text they
    read 10, 100, 20), others alphabetically."""
    labels = list(labels)
    try:
        return sorted(labels, key=float)
    except (TypeError, ValueError):
        return sorted(labels, key=str)


def run_flow_ratios(values: np.ndarray) -> np.ndarray:
    """log10(first / last hidden layer's final gradient norm) of each run (row), each
    between its own first and last layer: depth may vary across trials, and a median of
    layer 1 over every run against the deepest layer over the few runs that have it says
    nothing of any run. -inf: zero at layer 1; +inf: zero at the last; NaN: no layers."""
    finite = np.isfinite(values)
    rows = np.arange(values.shape[0])
    first = values[rows, finite.argmax(axis=1)]
    last = values[rows, values.shape[1] - 1 - finite[:, ::-1].argmax(axis=1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.log10(first / last)
    ratios[~finite.any(axis=1)] = np.nan
    return ratios


def _flow_kind(r: float) -> str:
    if r == -math.inf:
        return "zero at layer 1 (dead units)"
    if r == math.inf:
        return "zero at the last hidden layer"
    if r < -FLOW_LOG10:
        return f"log10 ratio {r:+.1f} (vanishing toward the input)"
    if r > FLOW_LOG10:
        return f"log10 ratio {r:+.1f} (growing toward the input)"
    return f"log10 ratio {r:+.1f} (within {FLOW_LOG10:.0f} orders of magnitude)"


def _profile_label(depth: float, value, group: str | None) -> str:
    """The profile a run belongs to: 'sigmoid, depth 8'; 'depth 8' without a group, or
    when grouped by the depth itself."""
    label = f"depth {depth:.0f}"
    return f"{format_value(value)}, {label}" if group and group != DEPTH else label


def _flow_sentence(table: pd.DataFrame, group: str | None) -> str | None:
    grads = grad_columns(table)
    rows = table[~table["outcome"].eq("diverged")]
    if not grads or rows.empty:
        return None
    values = np.array(rows[grads], dtype=float)  # a copy: pandas may hand out a read-only view
    values[~np.isfinite(values)] = np.nan
    ratios = pd.Series(run_flow_ratios(values), index=rows.index).dropna()
    if ratios.empty:
        return None
    # one profile per depth and value: across depths the first-to-last distance differs
    rows = rows.loc[ratios.index]
    by = rows[PARAM_PREFIX + group] if group else pd.Series(None, index=rows.index)
    theory = rows.get(THEORY_RATIO, pd.Series(np.nan, index=rows.index))
    # label: (order, measured ratios, predicted ratios at initialisation)
    profiles: dict[str, tuple[tuple, list[float], list[float]]] = {}
    for depth, value, ratio, predicted in zip(depths(rows), by, ratios, theory, strict=True):
        order = (depth, sort_key(value))
        found = profiles.setdefault(_profile_label(depth, value, group), (order, [], []))
        found[1].append(ratio)
        if np.isfinite(predicted):
            found[2].append(predicted)
    parts = [
        f"{label}: {_flow_kind(float(np.median(r)))} (n={len(r)}"
        + (f"; mean field predicts {float(np.median(p)):+.1f} at initialisation)" if p else ")")
        for label, (_, r, p) in sorted(profiles.items(), key=lambda kv: kv[1][0])
    ]
    return (
        "Final gradient norm of each run's first over its last hidden layer (median over the "
        "runs that did not diverge): " + "; ".join(parts) + "."
    )


def reading(table: pd.DataFrame, facts: StudyFacts, group: str | None) -> list[str]:
    """A few sentences on what the study shows (interrupted trials left out)."""
    table = evidence(table)
    if table.empty:
        return ["The study holds no trials yet."]
    sentences = [
        s
        for s in (
            _best_sentence(table, facts),
            *_outcome_sentences(table, facts),
            _importance_sentence(facts),
            _by_group_sentence(table, facts, group),
            _flow_sentence(table, group),
        )
        if s
    ]
    if facts.multi_objective:
        sentences.append(
            f"This study has several objectives; the ranking and pictures use the first, "
            f"{facts.metric}."
        )
    return sentences
