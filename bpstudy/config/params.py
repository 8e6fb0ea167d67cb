"""A logged run's typed config, back from its MLflow params.

A run's params are its resolved config flattened to dotted keys, each value as text
(`str(value)`: `True`, `None`, `0.001`, `relu`). Read with the schema's types, they give
the typed Config again without downloading the run's config.yaml: the report predicts
each trial's mean-field profile from what its search already returned. Keys the params
lack keep the schema's defaults; what does not validate is a ConfigError, as at the edge.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from bpstudy.config.schema import CHOSEN_BY_NAME, Config
from bpstudy.errors import ConfigError


def config_from_params(params: Mapping[str, str]) -> Config:
    """The validated Config whose flattened params are `params` (dotted key -> text)."""
    from bpstudy.config.validate import validate  # loads OmegaConf: the edge's module

    hints = typing.get_type_hints(Config)
    tree: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        options = CHOSEN_BY_NAME.get(f.name)
        if options is None:
            cls = hints[f.name]
        else:  # a group whose option the run's `<group>.name` param chose
            name = params.get(f"{f.name}.name")
            cls = options.get(name or "")
            if cls is None:
                raise ConfigError(
                    f"{f.name}.name={name!r} in the run's params is not one of {', '.join(options)}"
                )
        tree[f.name] = _node(cls, params, f.name + ".")
    return validate(tree)


def _node(cls: type, params: Mapping[str, str], prefix: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    node: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key, tp = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(tp):
            node[f.name] = _node(tp, params, key + ".")
        elif key in params:
            node[f.name] = parse(tp, params[key])
    return node


def parse(tp: Any, text: str) -> Any:
    """`text` (as str() wrote it) as a value of type `tp`; text that is not one stays text,
    for validation to name the key."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if text == "None" and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return parse(inner[0], text) if len(inner) == 1 else text
    if origin is Literal:
        return next((c for c in typing.get_args(tp) if str(c) == text), text)
    if tp is bool:
        return {"True": True, "False": False}.get(text, text)
    for number in (int, float):
        if tp is number:
            try:
                return number(text)
            except ValueError:
                return text
    return text
