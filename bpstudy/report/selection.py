"""Which trials a report looks at, and which parameter its gradient-flow lines follow.

`--where model.depth=40` keeps the trials whose sampled value prints as `40` (values are
compared as the report labels them, so `0.1`, `true` and `relu` match as typed).
The profile draws one panel per depth (`depths.py`); a study of more depths than it
draws is read one depth at a time this way. `--group` picks the parameter
that draws one line per value instead of the report's own choice (the activation, when
sampled). Each filtered report gets a folder and an artifact path of its own, so the
study's full report is never overwritten by a slice of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from optuna.trial import FrozenTrial

from bpstudy.errors import BpstudyError
from bpstudy.report.levels import format_value, sort_key
from bpstudy.report.table import PARAM_PREFIX


@dataclass(frozen=True)
class Selection:
    where: tuple[tuple[str, str], ...] = ()  # (parameter, value as labelled)
    group: str | None = None

    @property
    def slug(self) -> str:
        """A folder / artifact name for the filter, e.g. `model.depth=40`; '' for none."""
        text = "_".join(f"{k}={v}" for k, v in self.where)
        return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text)

    def describe(self) -> str:
        return " and ".join(f"{k}={v}" for k, v in self.where)


def parse_where(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BpstudyError(f"--where {item!r}: expected PARAM=VALUE, e.g. model.depth=40")
        out.append((key.strip(), _label(value.strip())))
    return tuple(out)


def _label(text: str) -> str:
    """Label a typed value the way the report labels sampled ones (40.0 -> 40, True -> true)."""
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return format_value(float(text))
    except ValueError:
        return text


def check(selection: Selection, trials: Sequence[FrozenTrial]) -> None:
    """Refuse a parameter the study does not sample, or a value no trial has, before any
    MLflow run is read (a value no trial has would make an empty report)."""
    params: dict[str, list] = {}
    for t in trials:
        for key, value in t.params.items():
            params.setdefault(key, []).append(value)
    names = ", ".join(sorted(params)) or "none (the study samples nothing)"
    wanted = [("--where", key) for key, _ in selection.where]
    wanted += [("--group", selection.group)] if selection.group is not None else []
    for option, key in wanted:
        if key not in params:
            raise BpstudyError(f"{option} {key}: not a parameter of this study; it samples {names}")
    for key, value in selection.where:
        present = sorted(set(map(format_value, params[key])), key=_label_key)
        if value not in present:
            raise BpstudyError(
                f"--where {key}={value}: no trial of this study has that value; "
                f"it has {', '.join(present)}"
            )


def _label_key(label: str):
    try:
        return sort_key(float(label))
    except ValueError:
        return sort_key(label)


def apply(table: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The rows that match every `--where` (checked beforehand by `check`)."""
    for key, value in selection.where:
        table = table[table[PARAM_PREFIX + key].map(format_value).eq(value)]
    return table.reset_index(drop=True)
