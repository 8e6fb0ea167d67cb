"""Config: the typed schema (`schema`), Hydra composition (`compose`), and validation at
the edge (`validate`).

This file imports only the schema: the layers below the edge (data, training) import
`bpstudy.config.schema`, which runs this file, and must not load Hydra and OmegaConf with
it (tests/test_architecture.py checks). Compose and validate from their modules.
"""

from __future__ import annotations

from bpstudy.config.schema import Config

__all__ = ["Config"]
