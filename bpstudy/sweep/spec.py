"""A sweep file: one Optuna study over a search space written in Hydra's sweep grammar.

    study_name: vanishing_gradients
    metric: val/loss              # objective: this metric's best value over the run
    direction: minimize           # or `directions: [minimize, minimize]` with `metrics: [...]`
    n_trials: 60
    sampler: {name: tpe, seed: 0} # tpe | random | grid | cmaes | qmc | gp
    pruner: {name: median, n_warmup_steps: 3}  # median | hyperband | successive_halving | none
    overrides: [data=digits, trainer.epochs=20]
    params:
      model.depth: range(2, 42, step=4)
      model.activation: choice(sigmoid, tanh, relu)
      optimizer.lr: tag(log, interval(1e-4, 1e-1))

Hydra's own override parser reads `params`; each expression maps onto an Optuna
distribution: choice -> categorical, integer range -> IntDistribution with step,
interval -> FloatDistribution (IntDistribution for integer bounds), `log` tag -> log scale.
The file is checked here as it is read; its sampler and pruner arguments in
bpstudy.sweep.samplers, its space against the configs in bpstudy.sweep.space: all before
a study is created or a trial runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bpstudy.config.compose import GROUPS
from bpstudy.errors import ConfigError, malformed_yaml, os_reason, shown
from bpstudy.paths import SWEEPS_DIR

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc", "gp")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
KEYS = (
    "study_name", "metric", "metrics", "direction", "directions", "n_trials",
    "sampler", "pruner", "overrides", "params",
)  # fmt: skip
WALL_TIME = "wall_time"  # a metric every run has: seconds of training


class SweepError(ConfigError):
    """A malformed sweep file (or sweep option)."""


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    study_name: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    n_trials: int
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    overrides: tuple[str, ...]
    space: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # params with a single value

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1


def shipped_sweeps() -> str:
    """The names in the shipped sweeps/ folder, for messages: 'exploding, quickstart, ...'"""
    return ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))


def find_sweep(name_or_path: str) -> Path:
    """A sweep file by path, or by name in the shipped sweeps/ folder."""
    path = Path(name_or_path).expanduser()
    try:
        if path.is_file():
            return path
    except OSError as exc:  # a folder on the way that cannot be searched
        raise SweepError(f"{path}: cannot read ({os_reason(exc)})") from None
    for candidate in (SWEEPS_DIR / f"{name_or_path}.yaml", SWEEPS_DIR / name_or_path):
        if candidate.is_file():
            return candidate
    raise SweepError(
        f"no sweep file '{name_or_path}' (not a file; shipped sweeps: {shipped_sweeps()})"
    )


def load_spec(name_or_path: str) -> SweepSpec:
    path = find_sweep(name_or_path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a UTF-8 text file, so not a sweep file") from None
    except yaml.YAMLError as exc:
        raise SweepError(malformed_yaml(exc, path)) from None
    except OSError as exc:  # unreadable: e.g. another user's file, mode 600
        raise SweepError(f"{path}: cannot read ({os_reason(exc)})") from None
    if not isinstance(tree, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with keys {', '.join(KEYS)}")
    return parse_spec(tree, path)


def _need(tree: dict, key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in tree:
        raise SweepError(f"{path}: missing key '{key}'")
    value = tree[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise SweepError(f"{path}: '{key}' must be {names}, got {shown(value)}")
    return value


TYPE_NAMES = {int: "an integer", str: "a text", list: "a list", dict: "a mapping"}


def parse_spec(tree: dict, path: Path) -> SweepSpec:
    for key in tree:
        if key not in KEYS:
            raise SweepError(f"{path}: unknown key '{key}'; allowed: {', '.join(KEYS)}")
    name = str(_need(tree, "study_name", str, path))
    if not name.strip():
        raise SweepError(f"{path}: 'study_name' must not be blank")
    n_trials = _need(tree, "n_trials", int, path)
    if n_trials < 1:
        raise SweepError(f"{path}: 'n_trials' must be >= 1, got {n_trials}")
    metrics, directions = _objectives(tree, path)
    sampler = _named(tree.get("sampler", {"name": "tpe"}), "sampler", SAMPLERS, path)
    several = len(metrics) > 1  # Optuna prunes single-objective studies only
    pruner = _named(tree.get("pruner", {"name": "none" if several else "median"}), "pruner",
                    PRUNERS, path)  # fmt: skip
    if several and pruner["name"] != "none":
        raise SweepError(
            f"{path}: pruner {pruner['name']}: Optuna cannot prune a study with several "
            f"objectives ({', '.join(metrics)}); leave pruner out or set it to none"
        )
    overrides = tree.get("overrides", []) or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise SweepError(f"{path}: 'overrides' must be a list of Hydra overrides like data=digits")
    params = tree.get("params") or {}
    if not isinstance(params, dict) or not params:
        raise SweepError(f"{path}: 'params' must map config keys to sweep expressions")
    space, fixed, intervals = parse_params(params, path)
    if not space:  # every trial would train the same config, seed and all
        raise SweepError(
            f"{path}: params: every value is fixed ({', '.join(fixed)}), so every trial would "
            "be the same run; give choice(...), range(...) or interval(...), or use bpstudy train"
        )
    _no_override_of_params(overrides, {**space, **fixed}, path)
    if sampler["name"] == "grid":
        for key in intervals:
            raise SweepError(
                f"{path}: params.{key}: the grid sampler takes choice(...) and range(...) only, not interval(...)"
            )
    return SweepSpec(
        path, name, metrics, directions, n_trials, sampler, pruner, tuple(overrides), space, fixed
    )


def _objectives(tree: dict, path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "directions" in tree or "metrics" in tree:
        for single in ("metric", "direction"):
            if single in tree:  # one of the two pairs would be ignored
                raise SweepError(
                    f"{path}: give either metric/direction or metrics/directions, not both"
                )
        metrics = _need(tree, "metrics", list, path)
        directions = _need(tree, "directions", list, path)
        if len(metrics) != len(directions) or not metrics:
            raise SweepError(f"{path}: 'metrics' and 'directions' must be lists of the same length")
        if len(set(map(str, metrics))) != len(metrics):
            raise SweepError(f"{path}: 'metrics' names a metric twice: {metrics}")
    else:
        metrics = [_need(tree, "metric", str, path)]
        directions = [tree.get("direction", "minimize")]
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise SweepError(f"{path}: direction '{d}' is not allowed; allowed: minimize, maximize")
    return tuple(str(m) for m in metrics), tuple(directions)


def _named(node: Any, what: str, allowed: tuple[str, ...], path: Path) -> dict[str, Any]:
    if isinstance(node, str):
        node = {"name": node}
    if not isinstance(node, dict) or node.get("name") not in allowed:
        if isinstance(node, dict) and node.get("name") is None:
            raise SweepError(f"{path}: {what}.name is missing; allowed: {', '.join(allowed)}")
        got = shown(node.get("name") if isinstance(node, dict) else node)
        raise SweepError(f"{path}: {what} '{got}' is not allowed; allowed: {', '.join(allowed)}")
    return dict(node)


def parse_params(
    params: dict, path: Path
) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
    """(space, fixed values, keys written as interval(...))."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    intervals: list[str] = []
    for key, expr in params.items():
        if str(key).lstrip("+~").split(".")[0] == "hydra":
            raise SweepError(
                f"{path}: params.{key}: a trial is not a Hydra job; params are config keys "
                "(bpstudy train --cfg job lists them)"
            )
        if isinstance(expr, list):  # a YAML list is a choice
            text = f"choice({', '.join(format_value(v) for v in expr)})"
        else:
            text = expr if isinstance(expr, str) else format_value(expr)
        try:
            (override,) = parser.parse_overrides([f"{key}={text}"])
        except Exception as exc:  # noqa: BLE001 - Hydra raises several kinds; all mean bad grammar
            reason = str(exc).strip().splitlines()[0]
            raise SweepError(f"{path}: params.{key}: cannot parse '{text}' ({reason})") from None
        value = override.value()
        if isinstance(value, Glob):  # as on Hydra's command line: the group's options
            value = _glob_choice(value, key, path)
        try:
            dist = to_distribution(value, integer_bounds=bool(_INT_INTERVAL.search(text)))
        except ValueError as exc:
            raise SweepError(f"{path}: params.{key}: {exc}") from None
        if dist is None:
            fixed[key] = value
        else:
            space[key] = dist
        if isinstance(value, IntervalSweep):
            intervals.append(key)
    return space, fixed, intervals


def _glob_choice(value: Glob, key: str, path: Path) -> ChoiceSweep:
    """glob(...) of a config group: a choice of the options it matches."""
    from bpstudy.config.compose import glob_options

    try:
        return ChoiceSweep(list=glob_options(key, value))
    except ConfigError as exc:
        raise SweepError(f"{path}: params.{key}: {exc}") from None


_INT_INTERVAL = re.compile(r"interval\(\s*[-+]?\d+\s*,\s*[-+]?\d+\s*\)")


def to_distribution(value: Any, integer_bounds: bool = False) -> BaseDistribution | None:
    """Hydra sweep value -> Optuna distribution (None for a plain value).

    Hydra reads interval bounds as floats; `integer_bounds` (written without a decimal
    point, as in interval(8, 64)) makes it an integer distribution."""
    tags = set(getattr(value, "tags", None) or ())
    if tags - {"log"}:
        raise ValueError(f"unknown tag {sorted(tags - {'log'})}; the one tag is log")
    log = "log" in tags
    if log and not isinstance(value, IntervalSweep):
        raise ValueError("tag(log, ...) applies to interval(...) only")
    if isinstance(value, ChoiceSweep):
        choices = tuple(value.list)
        if not choices:
            raise ValueError("choice() needs at least one value")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if not all(math.isfinite(v) for v in (start, stop, step)):
            raise ValueError(f"range({start}, {stop}, step={step}) needs finite numbers")
        n = math.ceil((stop - start) / step) if step else 0
        if n > MAX_RANGE_VALUES:
            raise ValueError(
                f"range({start}, {stop}, step={step}) has {n} values (at most "
                f"{MAX_RANGE_VALUES}); use interval({start}, {stop}) for a continuous range"
            )
        if all(isinstance(v, int) for v in (start, stop, step)):
            values = range(start, stop, step)
            if not values:
                raise ValueError(f"range({start}, {stop}, step={step}) is empty")
            return (
                IntDistribution(values[0], values[-1], step=abs(step))
                if step > 0
                else CategoricalDistribution(tuple(values))
            )
        values, x = [], start
        while (step > 0 and x < stop) or (step < 0 and x > stop):
            values.append(round(x, 12))
            x += step
        if not values:
            raise ValueError(f"range({start}, {stop}, step={step}) is empty")
        return CategoricalDistribution(tuple(values))
    if isinstance(value, IntervalSweep):
        lo, hi = value.start, value.end
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"interval({lo}, {hi}) needs finite bounds")
        if lo >= hi:
            raise ValueError(f"interval({lo}, {hi}) needs low < high")
        if log and lo <= 0:
            raise ValueError(f"a log interval needs low > 0, got {lo}")
        if integer_bounds:
            return IntDistribution(int(lo), int(hi), log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    if isinstance(value, list | dict):
        raise ValueError(
            f"expected choice(...), range(...), interval(...) or a single value, got {value!r}"
        )
    return None


MAX_RANGE_VALUES = 10_000  # a range(...) is a list of choices; more is an interval


def suggest(trial, name: str, dist: BaseDistribution):
    """The public Trial.suggest_* call for `dist`."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


METRICS = ("val/loss", "val/accuracy", "train/loss", "train/accuracy", WALL_TIME)


def format_value(value: Any) -> str:
    """A Python value as a Hydra override value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def trial_overrides(
    spec: SweepSpec, params: dict[str, Any], extra: tuple[str, ...] | list[str] = ()
) -> list[str]:
    """Sweep overrides, then the command line's, then fixed and sampled values (those that
    apply to the chosen group options)."""
    values, _ = active_params(spec, params)
    return [*spec.overrides, *extra, *(f"{k}={format_value(v)}" for k, v in values.items())]


def active_params(spec: SweepSpec, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split values into those that apply and those that do not: `optimizer.momentum`
    applies only in trials whose `optimizer` choice has that key (a conditional space)."""
    values = {**spec.fixed, **params}
    chosen = {g: str(values[g]) for g in GROUPS if g in values}
    active, inactive = {}, []
    for key, value in values.items():
        group, _, rest = key.partition(".")
        if rest and group in chosen and not option_has_key(group, chosen[group], rest):
            inactive.append(key)
        else:
            active[key] = value
    return active, inactive


def option_has_key(group: str, option: str, dotted: str) -> bool:
    from bpstudy.paths import CONF_DIR

    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return False
    node: Any = yaml.safe_load(path.read_text()) or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def setting_a_param(parsed, owned):
    """The first parsed override that sets a key the sweep samples or fixes: that value
    would silently be replaced in every trial. None if there is none."""
    return next((o for o in parsed if o.key_or_group in owned), None)


def _no_override_of_params(overrides: list[str], owned, path: Path) -> None:
    """The file's fixed overrides set no key its params sample."""
    from bpstudy.config.compose import parse_overrides

    try:
        parsed = parse_overrides(list(overrides))
    except ConfigError:
        return  # reported, with its place, when the overrides are composed
    override = setting_a_param(parsed, owned)
    if override is not None:
        raise SweepError(
            f"{path}: overrides: {override.input_line}: {override.key_or_group} is also in "
            "params, whose values would replace it in every trial; keep one of the two"
        )
