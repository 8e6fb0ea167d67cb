"""How `bpstudy train`'s command line is read: as Hydra's own parser reads it, so that
the command (train.py, whose `run` is the @hydra.main app: Hydra names the job after that
file) and its shell completion (completion.py) see the same options and overrides.
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

# private: Hydra 1.3 has no public way to get the argument parser @hydra.main uses (its
# options, -m, --cfg, --info, -cp/-cn, and the overrides as one positional); building a
# copy of it by hand would drift from Hydra's. tests/test_hydra_internals.py fails loudly
# when it moves.
from hydra._internal.utils import get_args_parser

from bpstudy.errors import BpstudyError


def argument_parser() -> argparse.ArgumentParser:
    """Hydra's argument parser, reporting a bad option in one line instead of usage text."""
    parser = get_args_parser()
    parser.prog = "bpstudy train"

    def error(message: str) -> NoReturn:
        raise BpstudyError(f"{message}; see 'bpstudy train --help'")

    parser.error = error  # type: ignore[method-assign]
    return parser


def in_hydra_order(argv: list[str]) -> list[str]:
    """The overrides first, then the options. Hydra's parser takes the overrides as one
    run of words, so `train model.depth=3 -m model.activation=a,b` was "unrecognized
    arguments"; `bpstudy sweep` takes them interleaved, and so does train now. argparse's
    intermixed parse tells the overrides from option values (--info's is optional, so
    the options go last); the words keep their spelling (an abbreviated --pack stays)."""
    options, overrides = split_overrides(argv)
    return overrides + options


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the options with their values, the overrides), each in the order given."""
    args, _ = argument_parser().parse_known_intermixed_args(argv)
    overrides = list(args.overrides or [])
    options = list(argv)
    for override in overrides:
        options.remove(override)  # an equal option value elsewhere: the same words result
    return options, overrides


def absolute_config_path(argv: list[str]) -> list[str]:
    """A relative --config-path/-cp made absolute from the working folder: Hydra would read
    it against the folder of the module holding @hydra.main, which is inside bpstudy."""
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in ("--config-path", "-cp") and not os.path.isabs(out[i + 1]):
            out[i + 1] = os.path.abspath(out[i + 1])
    for i, word in enumerate(out):
        for flag in ("--config-path=", "-cp="):
            if word.startswith(flag) and not os.path.isabs(word[len(flag) :]):
                out[i] = flag + os.path.abspath(word[len(flag) :])
    return out
