"""Compose the packaged config tree with overrides, as `bpstudy train` does.

Hydra's own errors are several lines long and name Hydra internals; here each becomes
one `ConfigError` line naming the key or group and what is allowed. Overrides are checked
before Hydra sees them (grammar, group options, sweeps outside `-m`, `+` on a group that
already has a value), and whatever Hydra or OmegaConf still refuses is reduced to one line
by `explain`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from bpstudy.config.schema import GROUPS  # the one list; bpstudy.config.compose.GROUPS
from bpstudy.config.validate import key_owners
from bpstudy.errors import ConfigError, first_line, malformed_yaml
from bpstudy.paths import CONF_DIR, not_a_folder

__all__ = ["GROUPS", "compose", "explain", "glob_options", "group_options", "parse_overrides"]

OVERRIDE_SYNTAX = "write key=value and quote a value holding , [ ] ( ) { } = ~ or spaces"


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def glob_options(group: str, glob) -> list[str]:
    """The options of config group `group` that Hydra's glob(...) matches, as its basic
    sweeper picks them. ConfigError (without the override) if there are none."""
    if group not in GROUPS:
        raise ConfigError(
            f"glob(...) picks options of a config group ({', '.join(GROUPS)}) and {group} "
            "is not one; for a key, use choice(...)"
        )
    names = glob.filter(group_options(group))
    if not names:
        raise ConfigError(f"glob matches none of {', '.join(group_options(group))}")
    return names


def compose(
    overrides: list[str] | tuple[str, ...] = (),
    conf_dir: Path = CONF_DIR,
    job_name: str = "bpstudy",
    with_hydra: bool = False,
    config_name: str = "config",
    config_dir: Path | None = None,
) -> DictConfig:
    """The packaged config composed with Hydra overrides (e.g. "model.depth=10");
    `with_hydra`: with Hydra's own node (`hydra.run.dir` and the like) as a job sees it.
    A config tree of the user's own, as `bpstudy train` gets it: `conf_dir` and
    `config_name` (--config-path, --config-name), `config_dir` (--config-dir)."""
    overrides = list(overrides)
    shipped = conf_dir == CONF_DIR and config_name == "config"  # its primary config
    check_overrides(overrides, conf_dir, config_dir, known_options=shipped)
    try:
        with _initialized(conf_dir, job_name, config_dir):
            return hydra_compose(
                config_name=config_name, overrides=overrides, return_hydra_config=with_hydra
            )
    except Exception as exc:  # noqa: BLE001 - see below
        # The overrides already passed `check_overrides`, so what Hydra or OmegaConf still
        # refuses here (HydraException, OmegaConf errors, or a bare ValueError from the
        # defaults list) comes from the user's input: report it in one line.
        raise ConfigError(explain(exc, overrides, conf_dir, config_name, config_dir)) from None


@contextlib.contextmanager
def _initialized(conf_dir: Path, job_name: str, config_dir: Path | None):
    """Hydra set up on `conf_dir`, with `config_dir` where Hydra's app start puts
    --config-dir: after the primary config's folder, before hydra.searchpath's folders
    (hydra/_internal/utils.py, _run_hydra). The compose API has no such option."""
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3", job_name=job_name):
        if config_dir is not None:
            # private: Hydra 1.3's compose API has no option to place --config-dir where
            # its app start does (see the docstring), so `bpstudy train -cd DIR` would
            # compose another config than Hydra's own run of it; tests/
            # test_hydra_internals.py fails loudly when these two move.
            from hydra._internal.hydra import Hydra
            from hydra._internal.utils import create_config_search_path  # private: as above
            from hydra.core.config_search_path import SearchPathQuery
            from hydra.core.global_hydra import GlobalHydra

            path = create_config_search_path(str(conf_dir))
            path.prepend(
                provider="command-line",
                path=f"file://{os.path.abspath(config_dir)}",
                anchor=SearchPathQuery(provider="schema"),
            )
            GlobalHydra.instance().clear()  # the context's exit restores what was there
            Hydra.create_main_hydra2(task_name=job_name, config_search_path=path)
        yield


def parse_overrides(overrides: list[str]) -> list[Override]:
    """Hydra's parse of `overrides`, or a ConfigError naming the one that does not parse."""
    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed.extend(parser.parse_overrides([line]))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's line
            raise ConfigError(
                f"cannot parse override '{line}': {_parse_reason(str(exc))}; {OVERRIDE_SYNTAX}"
            ) from None
    for ov in parsed:
        if not ov.key_or_group:
            raise ConfigError(f"override '{ov.input_line}' has no key; {OVERRIDE_SYNTAX}")
    return parsed


def _parse_reason(text: str) -> str:
    """The informative line of Hydra's parse error (drops the caret and the docs link)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("See https://", "Error parsing override")):
            continue
        if set(line) == {"^"}:
            continue
        if line.startswith("LexerNoViableAltException"):
            return "unexpected character"
        return line.replace("missing EQUAL", "missing '='")
    return "bad syntax"


SEARCHPATH_EXAMPLE = "e.g. hydra.searchpath=[file:///abs/folder,pkg://my_package.conf]"


def searchpath_folders(parsed: list[Override]) -> list[Path]:
    """The folders a `hydra.searchpath=[...]` override adds to the config tree, each
    checked: Hydra warns of a missing one, fails later with a 13-line "could not find"
    or a traceback (another scheme), and ignores `+hydra.searchpath` altogether."""
    import importlib.resources
    import importlib.util

    folders: list[Path] = []
    given = [ov for ov in parsed if ov.key_or_group.lstrip("+") == "hydra.searchpath"]
    if len(given) > 1:  # Hydra reads the first and drops the others
        raise ConfigError(
            f"{given[1].input_line}: hydra.searchpath is given twice; give one list "
            f"({SEARCHPATH_EXAMPLE})"
        )
    for ov in given:
        if ov.is_add() or ov.is_force_add():
            raise ConfigError(
                f"{ov.input_line}: Hydra reads only hydra.searchpath=[...], without '+'"
            )
        entries = ov.value()
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ConfigError(f"{ov.input_line}: give a list of folders, {SEARCHPATH_EXAMPLE}")
        for entry in entries:
            scheme, sep, rest = entry.partition("://")
            scheme, rest = (scheme, rest) if sep else ("file", entry)
            if scheme == "file":
                folder = Path(rest)
            elif scheme == "pkg":
                module = rest.replace("/", ".").rstrip(".")  # as Hydra reads it
                try:
                    found = importlib.util.find_spec(module) is not None
                except (ImportError, ValueError):
                    found = False
                if not found:
                    raise ConfigError(f"hydra.searchpath: {entry}: no package {module}")
                folder = Path(str(importlib.resources.files(module)))
            else:
                raise ConfigError(
                    f"hydra.searchpath: {entry}: give file:// or pkg://, {SEARCHPATH_EXAMPLE}"
                )
            if not folder.is_dir():
                raise ConfigError(f"hydra.searchpath: {entry}: {not_a_folder(folder)}")
            folders.append(folder)
    return folders


def check_overrides(
    overrides: list[str],
    conf_dir: Path = CONF_DIR,
    config_dir: Path | None = None,
    known_options: bool = True,
) -> None:
    """Catch what Hydra would report obscurely: bad grammar, unknown groups and options.
    The options are `known_options` with the shipped primary config (in its folder,
    --config-dir's and hydra.searchpath's); one of the user's own may name folders of its
    own (its hydra.searchpath), so there Hydra's answer (one line by `explain`) decides."""
    parsed = parse_overrides(overrides)
    folders = [conf_dir, *([config_dir] if config_dir else []), *searchpath_folders(parsed)]
    for ov in parsed:
        key = ov.key_or_group
        if ov.is_sweep_override():
            raise ConfigError(
                f"{ov.input_line} is a sweep; add -m (--multirun) to run each value, or quote it"
            )
        if key not in GROUPS or ov.package is not None or ov.is_delete():
            continue
        options = sorted({o for d in folders for o in group_options(key, d)})
        allowed = f"allowed: {', '.join(options)}"
        if ov.is_add() or ov.is_force_add():
            value = ov.get_value_element_as_str()
            raise ConfigError(
                f"{ov.input_line}: config group {key} already has a value; "
                f"choose an option without '+': {key}={value} ({allowed})"
            )
        value = ov.value()
        if value is None:
            hint = "; leave experiment out to run without one" if key == "experiment" else ""
            raise ConfigError(f"{key}=null is not a config option; {allowed}{hint}")
        for choice in value if isinstance(value, list) else [value]:
            if not isinstance(choice, str) or (known_options and choice not in options):
                raise ConfigError(f"{key}={choice} is not a config option; {allowed}")


def explain(
    exc: Exception,
    overrides: list[str],
    conf_dir: Path = CONF_DIR,
    config_name: str = "config",
    config_dir: Path | None = None,
) -> str:
    """One line for a Hydra/OmegaConf composition error, in the tree it composed."""
    import yaml

    if isinstance(exc, yaml.YAMLError):  # a preset of the user's (a shipped one parses)
        return malformed_yaml(exc)
    text = str(exc).strip()
    if "Could not find '" in text and "Available options in '" in text:
        # a defaults list's option (in a preset): Hydra's 10 lines, with the search path
        lines = text.splitlines()
        options = [x.strip() for x in lines if x.startswith("\t") and "provider=" not in x]
        return f"{lines[0].rstrip('.')}; allowed: {', '.join(options)}"
    cause = exc.__cause__
    bad = _failing_key(text) or getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if "An item is already at '" in text:
        key = text.split("An item is already at '", 1)[1].split("'", 1)[0]
        value = _override_value(key, overrides)
        return f"+{key}={value}: {key} already exists; set it without '+': {key}={value}"
    unknown = isinstance(cause, ConfigAttributeError | ConfigKeyError) or "not in struct" in text
    if bad and unknown:
        return unknown_key_message(bad, conf_dir, overrides, config_name, config_dir)
    detail = cause if cause is not None and str(cause).strip() else exc
    first = first_line(detail)
    if bad and bad not in first:
        return f"{bad}: {first}"
    return f"config error: {first}"


def unknown_key_message(
    key: str,
    conf_dir: Path = CONF_DIR,
    overrides: list[str] = (),
    config_name: str = "config",
    config_dir: Path | None = None,
) -> str:
    """The one line for an unknown key: the keys its parent has, and which option of the
    parent's group has it, e.g. "unknown config key 'model.dept'; model has: depth, ...".
    With a primary config of the user's own, its keys, and whether bpstudy's has the key."""
    tree = (conf_dir, config_name, config_dir)
    parent, _, leaf = key.rpartition(".")
    known = _known_keys(parent, tree, list(overrides))
    while not known and parent:  # 'modell.depth': say where the path first goes wrong
        parent, _, leaf = parent.rpartition(".")
        known = _known_keys(parent, tree, list(overrides))
    hint = f"; {parent or 'the config'} has: {', '.join(known)}" if known else ""
    hint += _left_out_by_user(parent, leaf, tree, list(overrides))
    owners = key_owners(parent, leaf)
    if owners:
        hint += f" ({leaf} is a key of {' and '.join(f'{parent}={o}' for o in owners)})"
    if key.startswith("hydra.") and not key.startswith("+"):  # Hydra's own, open-ended
        hint += f"; to add a key to Hydra's config, write +{key}=VALUE"
    return f"unknown config key '{key}'{hint}"


def _left_out_by_user(parent: str, leaf: str, tree: tuple, overrides: list[str]) -> str:
    """Who left out a key bpstudy's own config has: the user's primary config, or a group
    option of theirs (a model/NAME.yaml without `width:`)."""
    conf_dir, config_name, _ = tree
    group = parent.split(".", 1)[0]
    chosen = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == group]
    if (conf_dir, config_name) != SHIPPED[:2]:
        ours, who = "config has", f"the primary config '{config_name}'"
    elif group in GROUPS and chosen and chosen[-1] not in group_options(group):
        ours, who = f"{group} options have", f"{group}={chosen[-1]}"
    else:
        return ""
    if leaf not in _known_keys(parent, SHIPPED, []):
        return ""
    return f" (bpstudy's own {ours} {parent + '.' if parent else ''}{leaf}; {who} leaves it out)"


def _failing_key(text: str) -> str | None:
    # Hydra: "Could not override 'model.dept'."  /  "Could not delete from config. 'x' ..."
    for marker in ("Could not override '", "Could not delete from config. '"):
        if marker in text:
            return text.split(marker, 1)[1].split("'", 1)[0]
    return None


def _override_value(key: str, overrides: list[str]) -> str:
    """The value of the `+key=value` override (Hydra names only the key)."""
    for line in overrides:
        name, sep, value = line.partition("=")
        if sep and name.startswith("+") and name.lstrip("+") == key:
            return value
    return "VALUE"


SHIPPED = (CONF_DIR, "config", None)  # bpstudy's own tree: conf_dir, config_name, config_dir


def _known_keys(parent: str, tree: tuple, overrides: list[str]) -> list[str]:
    """Keys under `parent` in the config of `tree` (a SHIPPED-like triple) composed with
    the group choices of `overrides`."""
    conf_dir, config_name, config_dir = tree
    groups = [o for o in overrides if o.split("=", 1)[0] in GROUPS]
    try:
        with _initialized(conf_dir, "bpstudy", config_dir):
            cfg = hydra_compose(
                config_name=config_name,
                overrides=groups,
                return_hydra_config=parent.split(".", 1)[0] == "hydra",
            )
    except Exception:  # noqa: BLE001 - only a hint; the main error is reported anyway
        return []
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return []
    return [k for k in node if isinstance(k, str) and (parent or k != "hydra")]
