"""Config: the typed schema, Hydra composition, and validation at the edge."""

from __future__ import annotations

from bpstudy.config.compose import compose
from bpstudy.config.schema import Config
from bpstudy.config.validate import validate

__all__ = ["Config", "compose", "validate"]
