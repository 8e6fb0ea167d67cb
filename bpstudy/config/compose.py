"""Compose the packaged config tree with overrides, as `bpstudy train` does.

Hydra's own errors are several lines long and name Hydra internals; here each becomes
one `ConfigError` line naming the key or group and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bpstudy.errors import ConfigError
from bpstudy.paths import CONF_DIR

GROUPS = ("data", "model", "optimizer", "learning_rule", "trainer", "tracking", "experiment")


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def compose(overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """The packaged config composed with Hydra overrides (e.g. "model.depth=10")."""
    overrides = list(overrides)
    check_overrides(overrides, conf_dir)
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir), version_base="1.3", job_name="bpstudy"
        ):
            return hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(explain(exc, overrides, conf_dir)) from None


def check_overrides(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Catch what Hydra would report obscurely: bad grammar, unknown groups and options."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"cannot parse override: {first}") from None
    for ov in parsed:
        key = ov.key_or_group
        if ov.is_sweep_override():
            raise ConfigError(
                f"{ov.input_line} is a sweep; add -m (--multirun) to run each value, or quote it"
            )
        if key in GROUPS and "." not in key and ov.is_delete() is False:
            options = group_options(key, conf_dir)
            value = ov.value()
            if key == "experiment" and value is None:
                continue
            if isinstance(value, str) and value not in options:
                raise ConfigError(
                    f"{key}={value} is not a config option; allowed: {', '.join(options)}"
                )


def explain(exc: Exception, overrides: list[str], conf_dir: Path) -> str:
    """One line for a Hydra/OmegaConf composition error."""
    text = str(exc)
    cause = exc.__cause__
    full_key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if "not in struct" in text or (cause is not None and "not in struct" in str(cause)):
        bad = _failing_key(text) or full_key or "?"
        parent, _, _leaf = bad.rpartition(".")
        known = _known_keys(parent, conf_dir, overrides)
        hint = f"; {parent or 'the config'} has: {', '.join(known)}" if known else ""
        return f"unknown config key '{bad}'{hint}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"config error: {first}"


def _failing_key(text: str) -> str | None:
    # Hydra: "Could not override 'model.dept'."  /  "Could not append to config. An item is already at 'x'."
    for marker in ("Could not override '", "Could not delete from config. '"):
        if marker in text:
            return text.split(marker, 1)[1].split("'", 1)[0]
    return None


def _known_keys(parent: str, conf_dir: Path, overrides: list[str]) -> list[str]:
    """Keys under `parent` in the config composed with the group choices of `overrides`."""
    groups = [o for o in overrides if o.split("=", 1)[0] in GROUPS]
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir), version_base="1.3", job_name="bpstudy"
        ):
            cfg = hydra_compose(config_name="config", overrides=groups)
    except Exception:
        return []
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return list(node.keys()) if isinstance(node, DictConfig) else []
