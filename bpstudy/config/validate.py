"""Turn a composed config tree into the typed `Config`, once, at the edge.

Every problem becomes a `ConfigError` with one line that names the dotted key and what is
allowed: unknown keys (with the known ones listed), wrong types, enum values outside
their choices, numbers outside their range, and combinations that cannot work.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from typing import Any, Literal, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bpstudy.config import schema
from bpstudy.config.schema import ENERGY_RULES, Config, resolve_loss
from bpstudy.errors import ConfigError, shown
from bpstudy.vocabulary import ENERGY_ACTIVATIONS

# the top-level keys of the config: the groups whose dataclass the node's `name` chooses
# (in GROUPS' order), then the other fields of Config, each of one dataclass
_BY_NAME = {g: schema.CHOSEN_BY_NAME[g] for g in schema.GROUPS if g in schema.CHOSEN_BY_NAME}
_PLAIN = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name not in _BY_NAME
}


def to_container(cfg: DictConfig | dict) -> dict:
    """Resolved plain dict of a composed config (interpolations resolved)."""
    if isinstance(cfg, dict):
        return cfg
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "?"
        if key == "data.path":
            raise path_required(OmegaConf.select(cfg, "data.name", default="?")) from None
        raise ConfigError(f"{key} is required (it has no default); give {key}=VALUE") from None
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config key {key}: {first}") from None


def key_owners(group: str, key: str) -> list[str]:
    """Options of config group `group` whose config has `key`, e.g. ("optimizer",
    "momentum") -> ["momentum"]; empty for groups that have no options."""
    options = _BY_NAME.get(group, {})
    return [
        name for name, cls in options.items() if key in {f.name for f in dataclasses.fields(cls)}
    ]


def validate(cfg: DictConfig | dict | Config) -> Config:
    """Check the whole config and return it typed. Raises ConfigError."""
    if isinstance(cfg, Config):
        return cfg
    tree = to_container(cfg)
    tree = {k: v for k, v in tree.items() if k != "hydra"}
    known = [*_BY_NAME, *_PLAIN]
    for key in tree:
        if key not in known:
            listed = ", ".join(k for k in tree if k in known)  # as compose lists them
            if not listed:  # a primary config of the user's own (--config-name)
                raise ConfigError(
                    f"unknown config key '{key}'; not a bpstudy config, which has: "
                    + ", ".join(known)
                )
            raise ConfigError(f"unknown config key '{key}'; the config has: {listed}")
    parts: dict[str, Any] = {}
    for group, options in _BY_NAME.items():
        node = tree.get(group)
        if not isinstance(node, dict):
            raise ConfigError(
                f"config group '{group}' is missing; choose one of: {', '.join(options)}"
            )
        name = node.get("name")
        if name is None:  # an option of the user's own that does not say what it is
            raise ConfigError(
                f"{group}.name is missing: each option of the {group} group (a file "
                f"{group}/NAME.yaml of yours too) sets name: to one of {', '.join(options)}"
            )
        if name not in options:
            raise ConfigError(
                f"{group}.name={name!r} is not allowed; allowed: {', '.join(options)}"
            )
        parts[group] = build(options[name], node, group)
    for group, cls in _PLAIN.items():
        parts[group] = build(cls, tree.get(group) or {}, group)
    config = Config(**parts)
    check_combinations(config)
    return config


def build(cls: type, node: Any, path: str) -> Any:
    """Build dataclass `cls` from a plain dict, checking keys, types and ranges."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(node, dict):
        raise ConfigError(
            f"{path} is a group of keys ({', '.join(fields)}), not a value (got {node!r}); "
            f"set one of them, e.g. {path}.{next(iter(fields))}=..."
        )
    for key in node:
        if key not in fields:
            owners = key_owners(path, str(key))
            hint = f" ({key} is a key of {' and '.join(f'{path}={o}' for o in owners)})"
            raise ConfigError(
                f"unknown config key '{path}.{key}'; {path} has: {', '.join(fields)}"
                + (hint if owners else "")
            )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in node:
            continue
        key = f"{path}.{name}"
        values[name] = _check_range(convert(hints[name], node[name], key), f.metadata, key)
    return cls(**values)


def convert(tp: Any, value: Any, key: str) -> Any:
    """Coerce `value` to type `tp` (no silent float -> int truncation, no str -> bool)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, key) if len(inner) == 1 else value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(
                f"{key}={shown(value)} must be true or false{_text_hint(value, bool)}"
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={shown(value)} must be an integer{_text_hint(value, int)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}={shown(value)} must be a number{_text_hint(value, float)}")
        if not math.isfinite(value):  # noise=inf trained and read as 'diverged at step 0'
            raise ConfigError(f"{key}={value} must be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}={shown(value)} must be a string")
        return str(value)
    return value


def _text_hint(value: Any, tp: type) -> str:
    """For text that ${oc.decode:...} turns into the wanted type ('2' for an int): where
    such text comes from. ${oc.env:...} always gives text, so `epochs: ${oc.env:EPOCHS,2}`
    was refused as '2' without a word on why."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    decodes = {
        int: re.fullmatch(r"[+-]?\d+", text) is not None,
        float: re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text) is not None,
        bool: text.lower() in ("true", "false"),
    }
    if not decodes.get(tp, False):
        return ""
    return (
        " (it is text: a quoted value, or an interpolation such as ${oc.env:...}; wrap that"
        " in ${oc.decode:...}, quoted on the command line)"
    )


def _check_range(value: Any, meta: typing.Mapping, key: str) -> Any:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    bounds = [
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ]
    for name, ok, _sign in bounds:
        if name in meta and not ok(value, meta[name]):
            rule = " and ".join(f"{s} {meta[n]}" for n, _, s in bounds if n in meta)
            raise ConfigError(f"{key}={value} is out of range; allowed: {rule}")
    return value


MAX_EXPERIMENT_NAME = 500
GIB = 2**30


def _check_size(cfg: Config) -> None:
    """A network too large for this machine's memory: one line before anything starts
    (model.width=100000 was a 149 GiB allocation error, after mlflow.db and outputs/)."""
    m, d = cfg.model, cfg.data
    have = _physical_memory()
    if not have:
        return
    itemsize = 4 if cfg.trainer.dtype == "float32" else 8
    # hidden weights; the parameters, their gradient and update, and up to two optimizer
    # states are vectors of this length
    need = (m.depth - 1) * m.width * m.width * itemsize * 5
    if need > have:
        raise ConfigError(
            f"model.depth={m.depth} x model.width={m.width} needs about {need / GIB:.0f} GiB "
            f"for its weights, gradients and optimizer state; this machine has {have / GIB:.0f} GiB"
        )
    # a synthetic data set is made in float64 before the split (the kernel killed the
    # process that asked for data.n_per_class=1000000000)
    if d.name == "spirals":
        rows, cols, what = d.n_per_class * d.n_classes, 2, f"data.n_per_class={d.n_per_class}"
    elif d.name == "teacher":
        rows, cols, what = d.n_samples, d.in_dim + d.width, f"data.n_samples={d.n_samples}"
    else:
        return
    need = rows * cols * 8 * 4
    if need > have / 2:
        raise ConfigError(
            f"{what} makes a data set of about {need / GIB:.0f} GiB in memory; this machine "
            f"has {have / GIB:.0f} GiB"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def path_required(data_name: str) -> ConfigError:
    """The error for a data set read from a file whose data.path is not given (`???` in
    its YAML, or empty)."""
    return ConfigError(f"data.path is required for data={data_name}; give data.path=PATH")


def check_combinations(cfg: Config) -> None:
    """Combinations that each key alone allows but that cannot work together."""
    d, m = cfg.data, cfg.model
    if d.name == "teacher":  # the one data set whose task the config says
        resolve_loss(m.loss, "regression", d.name)
    if d.name in ("csv", "npz", "mnist") and not d.path:
        raise path_required(d.name)
    test_fraction = getattr(d, "test_fraction", 0.0)  # mnist has its own test set
    if d.val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction={d.val_fraction} and data.test_fraction={test_fraction} "
            "leave no training split: their sum must be below 1"
        )
    _check_size(cfg)
    name = cfg.tracking.experiment
    if not name.strip() or len(name) > MAX_EXPERIMENT_NAME:
        raise ConfigError(
            f"tracking.experiment={name[:40]!r}{'...' if len(name) > 40 else ''} must be a "
            f"non-blank name of at most {MAX_EXPERIMENT_NAME} characters (MLflow's limit)"
        )
    if cfg.trainer.schedule.name == "warmup" and cfg.trainer.schedule.warmup_steps == 0:
        raise ConfigError("trainer.schedule.name=warmup needs trainer.schedule.warmup_steps > 0")
    if cfg.learning_rule.name == "direct_feedback_alignment" and m.residual.enabled:
        raise ConfigError(
            "learning_rule=direct_feedback_alignment does not apply with "
            "model.residual.enabled=true: it sends the output error straight to every hidden "
            "layer, so no error travels down the skip connections; use "
            "learning_rule=feedback_alignment or backprop, or model.residual.enabled=false"
        )
    if cfg.learning_rule.name in ENERGY_RULES:
        check_energy_rule(cfg)


def check_energy_rule(cfg: Config) -> None:
    """What an energy-based rule's layered network does not define (energy.py says why)."""
    m, r = cfg.model, cfg.learning_rule
    rule = f"learning_rule={r.name}"
    refused = [
        (m.batch_norm, "model.batch_norm=true", "false", "its energy has no batch statistics"),
        (m.dropout > 0, f"model.dropout={m.dropout}", "0", "both phases settle one network"),
        (
            m.residual.enabled,
            "model.residual.enabled=true",
            "false",
            "its energy has no skip connections",
        ),
        (
            m.activation not in ENERGY_ACTIVATIONS,
            f"model.activation={m.activation}",
            " | ".join(ENERGY_ACTIVATIONS),
            "its energy needs a bounded, strictly increasing activation",
        ),
        (
            m.loss == "cross_entropy",
            "model.loss=cross_entropy",
            "mse | auto",
            "it pulls the output toward the target, which trains the squared error",
        ),
    ]
    for bad, what, allowed, why in refused:
        if bad:
            key = what.split("=")[0]
            raise ConfigError(
                f"{rule} does not apply with {what} ({why}); allowed: {key}={allowed}"
            )
    if r.name == "equilibrium_propagation" and r.symmetric_nudging and r.beta >= 1:
        raise ConfigError(
            f"learning_rule.beta={r.beta} with learning_rule.symmetric_nudging=true must be "
            "below 1 (at -beta the output's energy is no longer convex); allowed: 0 < beta < 1"
        )
