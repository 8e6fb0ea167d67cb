"""The sweep file's sampler and pruner: Optuna's classes built from its `sampler:` and
`pruner:` mappings, their arguments checked where they enter.

Optuna finds many a bad argument only when it uses it (a text seed, a negative sigma0,
hyperband's min_resource 0), in a worker, trial after trial. Each argument is checked
here against the class's signature (`_check_argument`) and the bounds Optuna documents
(`LIMITS`); then `try_sampler_and_pruner` runs a few trials of the space on an in-memory
study, before any storage is written.
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bpstudy.errors import first_line, shown
from bpstudy.sweep.spec import SweepError, SweepSpec, suggest


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
