"""A validated config as plain data: a dict, dotted params, YAML, and a stable hash.

The hash covers what changes the numbers: everything except `tracking` and
`trainer.progress`, so the same training logged elsewhere keeps its hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import yaml

from bpstudy.config.schema import Config

NOT_HASHED = ("tracking", "trainer.progress")


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 3}} -> {"model.depth": 3}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_hash(cfg: Config) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of what affects training."""
    flat = {
        k: v
        for k, v in flatten(to_dict(cfg)).items()
        if not any(k == n or k.startswith(n + ".") for n in NOT_HASHED)
    }
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
