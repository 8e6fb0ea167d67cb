"""The space check: the config composed and validated at every choice and at both ends
of every range, and the command line's overrides checked against the sweep file, so a
bad key or value fails before the study starts, with the param that broke it."""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

from bpstudy.errors import BpstudyError, ConfigError
from bpstudy.sweep.spec import (
    METRICS,
    SweepError,
    SweepSpec,
    option_has_key,
    setting_a_param,
    trial_overrides,
)


def check_command_line(spec: SweepSpec, extra: tuple[str, ...] | list[str]) -> None:
    """The command line's overrides parse, and set no key the sweep file gives values to."""
    from bpstudy.config.compose import parse_overrides

    try:
        parsed = parse_overrides(list(extra))
    except ConfigError as exc:
        raise SweepError(f"command line: {exc}") from None
    override = setting_a_param(parsed, {**spec.fixed, **spec.space})
    if override is not None:
        raise SweepError(
            f"command line: {override.input_line}: {override.key_or_group} is a param of "
            f"{spec.path.name}, whose values would replace it in every trial; change it "
            "there, or drop the override"
        )


def _composes(overrides: list[str]) -> bool:
    from bpstudy.config.compose import compose
    from bpstudy.config.validate import validate

    try:
        validate(compose(overrides))
    except ConfigError:
        return False
    return True


def check_space(spec: SweepSpec, extra: tuple[str, ...] | list[str] = ()):
    """Compose and validate the config at every choice and at both ends of every range,
    so a bad key or value fails before the study starts. Returns the base config."""
    from bpstudy.config.compose import compose
    from bpstudy.config.validate import validate
    from bpstudy.training.run import check_data

    for metric in spec.metrics:
        if metric not in METRICS:
            raise SweepError(
                f"{spec.path}: metric '{metric}' is not allowed; allowed: {', '.join(METRICS)}"
            )
    check_command_line(spec, extra)
    base = {k: _candidates(d)[0] for k, d in spec.space.items()}
    checked = []  # every config composed below: their data sets are loaded once each

    def check(params: dict[str, Any], key: str | None):
        try:
            checked.append(validate(compose(trial_overrides(spec, params, extra))))
            return checked[-1]
        except ConfigError as exc:
            if key is None:
                key = culprit(params)
            if key is None and extra and _composes(trial_overrides(spec, params)):
                raise SweepError(f"command line: {exc}") from None
            where = f"params.{key}" if key else "overrides"
            raise SweepError(f"{spec.path}: {where}: {exc}") from None

    def culprit(params: dict[str, Any]) -> str | None:
        """The first param whose value breaks the base config (None: the overrides do)."""
        from dataclasses import replace

        values, tried = {**spec.fixed, **params}, {}
        for key in [None, *sorted(values, key=lambda k: "." in k)]:  # group choices first
            if key is not None:
                tried[key] = values[key]
            try:
                validate(compose(trial_overrides(replace(spec, fixed={}), tried, extra)))
            except ConfigError:
                return key
        return None

    config = check(base, None)
    for key, dist in spec.space.items():
        group, _, rest = key.partition(".")
        group_dist = spec.space.get(group)
        if rest and isinstance(group_dist, CategoricalDistribution):
            # conditional: check the key under an option of its group that has it
            options = [o for o in group_dist.choices if option_has_key(group, str(o), rest)]
            if not options:
                raise SweepError(
                    f"{spec.path}: params.{key}: '{rest}' is not a key of any {group} option in "
                    f"this sweep ({', '.join(map(str, group_dist.choices))})"
                )
            for value in _candidates(dist):
                check({**base, group: options[0], key: value}, key)
            continue
        for value in _candidates(dist)[1:]:
            check({**base, key: value}, key)
    try:
        tasks = check_data(checked)  # a missing data file would fail every trial in turn
    except BpstudyError as exc:
        raise SweepError(f"{spec.path}: {exc}") from None
    wants_accuracy = any("accuracy" in m for m in spec.metrics)
    if wants_accuracy and tasks[(config.data, config.trainer.dtype)] != "classification":
        raise SweepError(f"{spec.path}: metric accuracy needs a classification data set")
    return config


def _candidates(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high] if dist.low != dist.high else [dist.low]
