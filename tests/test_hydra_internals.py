"""The Hydra internals bpstudy uses, where Hydra 1.3 has no public route (each use says
why at its line): if a Hydra release moves one, these fail naming it, instead of
`bpstudy train` breaking in a user's hands."""

from __future__ import annotations

import importlib
import inspect

import pytest

# (module, name, parameters the call sites pass)
USED = [
    ("hydra._internal.utils", "get_args_parser", ()),  # bpstudy/cli/hydra_app.py
    ("hydra._internal.utils", "create_config_search_path", ("search_path_dir",)),
    ("hydra._internal.hydra", "Hydra", ()),  # bpstudy/config/compose.py
]


@pytest.mark.parametrize(("module", "name", "params"), USED)
def test_the_hydra_internal_bpstudy_uses_is_still_there(module, name, params):
    found = getattr(importlib.import_module(module), name, None)
    assert found is not None, f"Hydra no longer has {module}.{name}: bpstudy uses it"
    signature = inspect.signature(found)
    missing = [p for p in params if p not in signature.parameters]
    assert not missing, f"Hydra's {module}.{name} lost its parameter(s) {missing}"


def test_create_main_hydra2_takes_what_compose_passes():
    from hydra._internal.hydra import Hydra

    params = inspect.signature(Hydra.create_main_hydra2).parameters
    assert {"task_name", "config_search_path"} <= set(params), (
        "Hydra.create_main_hydra2 changed its parameters: bpstudy/config/compose.py "
        f"passes task_name and config_search_path; it now takes {list(params)}"
    )


def test_the_argument_parser_reads_the_options_bpstudy_train_relies_on():
    from bpstudy.cli.hydra_app import argument_parser

    args, unknown = argument_parser().parse_known_args(
        ["-m", "--cfg", "job", "-cp", "/x", "-cn", "c", "model.depth=3"]
    )
    assert (args.multirun, args.cfg, args.config_path, args.config_name) == (
        True, "job", "/x", "c"
    ), "Hydra's argument parser reads -m/--cfg/-cp/-cn differently now"  # fmt: skip
    assert args.overrides == ["model.depth=3"] and unknown == []
