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
Everything is checked here, before a study is created or a trial runs.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
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

from bpstudy.errors import BpstudyError, ConfigError, first_line, malformed_yaml, shown
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
    if path.is_file():
        return path
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


def make_sampler(spec: SweepSpec, notes: list[str] | None = None):
    """The sweep file's sampler. Optuna's warnings about its arguments go to `notes`, if
    given, else nowhere: the supervisor's check shows them once, not every process."""
    import optuna

    args = {k: v for k, v in spec.sampler.items() if k != "name"}
    name = spec.sampler["name"]
    if name == "grid":
        if "search_space" in args:
            raise SweepError(
                f"{spec.path}: sampler.search_space: a grid sampler's grid is the params"
            )
        grid = {}
        for key, dist in spec.space.items():
            if isinstance(dist, CategoricalDistribution):
                grid[key] = list(dist.choices)
            else:
                grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        args = {"search_space": grid, **args}
        return _construct(optuna.samplers.GridSampler, "sampler", spec.path, args, notes)
    classes = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "qmc": optuna.samplers.QMCSampler,
        "gp": optuna.samplers.GPSampler,
    }
    if name == "gp":
        try:
            import torch  # noqa: F401 - Optuna's GPSampler needs it
        except ImportError:
            raise SweepError(
                f"{spec.path}: sampler 'gp' needs PyTorch (pip install torch); use tpe or cmaes"
            ) from None
    if name == "cmaes" and args.get("x0") is not None:
        _check_x0(spec, args["x0"])
    choices = [k for k, d in spec.space.items() if isinstance(d, CategoricalDistribution)]
    if name in ("cmaes", "qmc") and choices and "warn_independent_sampling" not in args:
        # Optuna's logger says so once per trial, among the progress lines: said once here
        args["warn_independent_sampling"] = False
        if notes is not None:
            notes.append(
                f"warning: {spec.path}: sampler {name} takes numbers only: "
                f"{', '.join(choices)} sampled at random (independently)"
            )
    return _construct(classes[name], "sampler", spec.path, args, notes)


def _check_x0(spec: SweepSpec, x0: Any) -> None:
    """CMA-ES's start point: a value inside each numeric param's bounds, for each of them
    (Optuna: a bare AssertionError at the first CMA-ES trial, "invalid bounds"; a key
    that is not a param was ignored)."""
    where = f"{spec.path}: sampler.x0"
    numeric = {
        k: d for k, d in spec.space.items() if isinstance(d, IntDistribution | FloatDistribution)
    }
    if not isinstance(x0, dict):
        example = next(iter(numeric), "optimizer.lr")
        raise SweepError(f"{where} maps each numeric param to its start, e.g. {{{example}: ...}}")
    for key, value in x0.items():
        if key not in numeric:
            raise SweepError(
                f"{where}.{key} is not a numeric param; they are: {', '.join(numeric)}"
            )
        dist = numeric[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not dist.low <= value <= dist.high:
            bounds = f"from {shown(dist.low)} to {shown(dist.high)}"
            raise SweepError(f"{where}.{key}={shown(value)} must be a number {bounds}")
    missing = [k for k in numeric if k not in x0]
    if missing:
        raise SweepError(
            f"{where} needs a start for every numeric param; missing: {', '.join(missing)}"
        )


# the pruner's first step at which it may prune; a trial reports at epochs 1 to E
PRUNER_FIRST_STEP = {
    "median": "n_warmup_steps",
    "hyperband": "min_resource",
    "successive_halving": "min_resource",
}


def pruner_notes(spec: SweepSpec, epochs: int) -> list[str]:
    """A pruner that can never prune a trial of `epochs` epochs: said, not refused (the
    file may be meant for longer trials)."""
    name = spec.pruner["name"]
    key = PRUNER_FIRST_STEP.get(name)
    value = spec.pruner.get(key) if key else None
    # the epochs are the fixed config's unless a param sets them (a group's option may)
    swept = "trainer.epochs" in spec.space or any("." not in k for k in spec.space)
    if swept or not isinstance(value, int):
        return []
    first = value
    if name == "successive_halving":  # its first rung is further out
        rate = spec.pruner.get("min_early_stopping_rate", 0)
        first = value * spec.pruner.get("reduction_factor", 4) ** rate
    if first <= epochs:
        return []
    return [
        f"warning: {spec.path}: pruner.{key}={value} with trainer.epochs={epochs}: "
        f"trials report once per epoch (1 to {epochs}), so the pruner never prunes"
    ]


def make_pruner(spec: SweepSpec, notes: list[str] | None = None):
    import optuna

    args = {k: v for k, v in spec.pruner.items() if k != "name"}
    classes = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    return _construct(classes[spec.pruner["name"]], "pruner", spec.path, args, notes)


def _construct(cls, what: str, path: Path, kwargs: dict[str, Any], notes: list[str] | None) -> Any:
    import optuna

    params = inspect.signature(cls.__init__).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    allowed = [p.name for p in params if p.name != "self" and p.kind not in variadic]
    for key in kwargs:
        if key not in allowed:
            raise SweepError(
                f"{path}: {what}.{key} is not an argument of {cls.__name__}; "
                + (f"allowed: {', '.join(allowed)}" if allowed else "it takes none")
            )
    signature = {p.name: p for p in params}
    for key, value in kwargs.items():
        arg = signature[key]
        _check_argument(f"{path}: {what}.{key}", value, arg.annotation, arg.default)
        _check_limit(f"{path}: {what}.{key}", value, LIMITS.get(cls.__name__, {}).get(key))
    if cls.__name__ == "HyperbandPruner":
        low, high = kwargs.get("min_resource", 1), kwargs.get("max_resource", "auto")
        if isinstance(high, int) and high < low:
            raise SweepError(
                f"{path}: {what}.max_resource={high} must be >= {what}.min_resource ({low})"
            )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            # "QMCSampler is experimental": the file chose it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            made = cls(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise SweepError(f"{path}: {what}: {first_line(exc)}") from None
    if notes is not None:  # Optuna's FutureWarning names its own file, once per process
        notes.extend(f"warning: {path}: {what}: {first_line(w.message)}" for w in caught)
    return made


# bounds Optuna documents but checks late or never: hyperband's min_resource 0 failed in
# the first pruning as "ZeroDivisionError", a negative sigma0 or n_startup_trials passed
LIMITS: dict[str, dict[str, tuple]] = {  # class: argument: (">=" | ">", bound) or ("in", ...)
    "TPESampler": {
        "n_startup_trials": (">=", 0),
        "n_ei_candidates": (">=", 1),
        "prior_weight": (">", 0),  # 0: numpy's divide-by-zero warnings, a dozen lines a trial
    },
    "CmaEsSampler": {
        "n_startup_trials": (">=", 0),
        "sigma0": (">", 0),
        "popsize": (">=", 2),  # 1: "invalid learning rate for the rank-one update"
        "restart_strategy": ("in", None, "ipop", "bipop"),
    },
    "GPSampler": {"n_startup_trials": (">=", 0)},
    "QMCSampler": {"qmc_type": ("in", "sobol", "halton")},
    "MedianPruner": {
        "n_startup_trials": (">=", 0),
        "n_warmup_steps": (">=", 0),
        "interval_steps": (">=", 1),
        "n_min_trials": (">=", 1),
    },
    "HyperbandPruner": {
        "min_resource": (">=", 1),
        "max_resource": (">=", 1),
        "reduction_factor": (">=", 2),
        "bootstrap_count": (">=", 0),  # negative: taken, and read as 0
    },
    "SuccessiveHalvingPruner": {
        "min_resource": (">=", 1),
        "reduction_factor": (">=", 2),
        "min_early_stopping_rate": (">=", 0),
        "bootstrap_count": (">=", 0),
    },
}


def _check_limit(where: str, value, limit: tuple | None) -> None:
    if limit is None:
        return
    kind, *bound = limit
    if kind == "in":
        if value not in bound:
            raise SweepError(f"{where}={shown(value)} is not one of {shown(list(bound))}")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return  # "auto", or a type _check_argument let through
    if not math.isfinite(value):  # .nan passes every comparison below
        raise SweepError(f"{where}={shown(value)} must be a finite number {kind} {bound[0]}")
    if (value < bound[0]) if kind == ">=" else (value <= bound[0]):
        raise SweepError(f"{where}={shown(value)} must be {kind} {shown(bound[0])}")


# the argument types a sweep file can give (YAML scalars), as Optuna annotates them
SCALAR_TYPES = {"int": "an integer", "float": "a number", "bool": "a boolean (true/false)",
                "str": "a text", "None": "null"}  # fmt: skip
OBJECT_TYPES = ("Callable", "Sampler", "FrozenTrial")  # Python objects: not from YAML
SEED_RANGE = (0, 2**32 - 1)  # numpy's


def _check_argument(where: str, value, annotation, default=None) -> None:
    """A sampler's or pruner's argument has the type its signature names; Optuna itself
    finds a wrong one only when it uses it (a text seed: "Cannot cast scalar from
    dtype('<U3')", a text n_warmup_steps: "'<' not supported"), without the key. Where a
    number's default is a text (the pruners' `'auto'`), that text is the one allowed."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if value is None and "None" in text:  # the default of an optional argument
        return
    if any(word in text for word in OBJECT_TYPES):
        raise SweepError(f"{where}: takes a Python object ({text}); a sweep file cannot give one")
    kinds = [part.strip() for part in text.split("|")]
    if not kinds or not all(k in SCALAR_TYPES for k in kinds):
        return  # a richer type (x0's dict): the dry run tries it
    fits = {
        "None": value is None,
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }
    keyword = isinstance(default, str) and len(kinds) > 1  # "str | int" = 'auto'
    if keyword:
        fits["str"] = value == default
    if not any(fits[k] for k in kinds):
        words = [SCALAR_TYPES[k] for k in kinds if not (keyword and k == "str")]
        words += [f"'{default}'"] if keyword else []
        wanted = " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
        raise SweepError(f"{where}={shown(value)} must be {wanted}")
    if where.endswith(".seed") and fits["int"] and not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise SweepError(f"{where}={value} must be between 0 and 2**32 - 1")


MAX_RANGE_VALUES = 10_000  # a range(...) is a list of choices; more is an interval
DRY_TRIALS = 3  # enough for CMA-ES to start (after its one startup trial)


def try_sampler_and_pruner(spec: SweepSpec) -> list[str]:
    """Ask, report, prune and tell a few trials of the space on an in-memory study, with
    the sweep's own sampler and pruner. Some arguments are only used there (a text
    n_startup_trials, a negative sigma0, hyperband's reduction_factor 1, an infinite
    interval): found in a worker, they failed it with a traceback and left its trial
    RUNNING, or failed trial after trial, with the study already written. Returns the
    warning lines about the arguments, for the caller to show once the command goes on."""

    import optuna

    def objective(trial):
        number = trial.number
        for name, dist in spec.space.items():  # as a worker's study.ask(space) does
            suggest(trial, name, dist)
        if not spec.multi_objective:
            for step in range(3):
                trial.report(1.0 + number + step, step)
                trial.should_prune()  # pruned or not, the pruner has run
        values = [1.0 + number] * len(spec.metrics)
        return values if spec.multi_objective else values[0]

    notes: list[str] = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)  # its study and failed trials: ours
    try:
        with warnings.catch_warnings():  # experimental samplers say so: not news here
            warnings.simplefilter("ignore")
            study = optuna.create_study(
                sampler=make_sampler(spec, notes),
                pruner=make_pruner(spec, notes),
                directions=list(spec.directions),
            )
            # inside optimize, as in a study: a grid sampler stops the study once its grid
            # is done, which Optuna allows only there
            study.optimize(objective, n_trials=DRY_TRIALS)
    except SweepError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever Optuna says, it is the sweep file's
        raise SweepError(
            f"{spec.path}: sampler {spec.sampler['name']} / pruner {spec.pruner['name']} "
            f"fail on this space: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    return notes


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
    chosen = {g: str(values[g]) for g in _groups() if g in values}
    active, inactive = {}, []
    for key, value in values.items():
        group, _, rest = key.partition(".")
        if rest and group in chosen and not option_has_key(group, chosen[group], rest):
            inactive.append(key)
        else:
            active[key] = value
    return active, inactive


def _groups() -> list[str]:
    from bpstudy.paths import CONF_DIR

    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


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


def _setting_a_param(parsed, owned):
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
    override = _setting_a_param(parsed, owned)
    if override is not None:
        raise SweepError(
            f"{path}: overrides: {override.input_line}: {override.key_or_group} is also in "
            "params, whose values would replace it in every trial; keep one of the two"
        )


def check_command_line(spec: SweepSpec, extra: tuple[str, ...] | list[str]) -> None:
    """The command line's overrides parse, and set no key the sweep file gives values to."""
    from bpstudy.config.compose import parse_overrides

    try:
        parsed = parse_overrides(list(extra))
    except ConfigError as exc:
        raise SweepError(f"command line: {exc}") from None
    override = _setting_a_param(parsed, {**spec.fixed, **spec.space})
    if override is not None:
        raise SweepError(
            f"command line: {override.input_line}: {override.key_or_group} is a param of "
            f"{spec.path.name}, whose values would replace it in every trial; change it "
            "there, or drop the override"
        )


def _composes(overrides: list[str]) -> bool:
    from bpstudy.config import compose, validate

    try:
        validate(compose(overrides))
    except ConfigError:
        return False
    return True


def check_space(spec: SweepSpec, extra: tuple[str, ...] | list[str] = ()):
    """Compose and validate the config at every choice and at both ends of every range,
    so a bad key or value fails before the study starts. Returns the base config."""
    from bpstudy.config import compose, validate
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
