"""The Hydra app behind `bpstudy train`, and how its command line is read.

`run` is the `@hydra.main` app (one job: validate, train with tracking, print the
summary); the helpers read argv as Hydra's own parser does, so that `bpstudy train` and
its shell completion (completion.py) see the same options and overrides.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

import hydra

# private: Hydra 1.3 has no public way to get the argument parser @hydra.main uses (its
# options, -m, --cfg, --info, -cp/-cn, and the overrides as one positional); building a
# copy of it by hand would drift from Hydra's. tests/test_hydra_internals.py fails loudly
# when it moves.
from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig

from bpstudy.cli.args import command_name
from bpstudy.config import validate
from bpstudy.errors import BpstudyError
from bpstudy.paths import CONF_DIR
from bpstudy.shutdown import stdout_to_devnull


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


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    from bpstudy.tracking import tracked_train
    from bpstudy.training.progress import EpochLog, Progress
    from bpstudy.training.summary import render

    runs: list[str] = []
    try:
        c = validate(cfg)
        listeners = [Progress(c.trainer.progress, c.trainer.epochs), EpochLog()]
        tracked = tracked_train(c, listeners, on_run=runs.append)
    except BpstudyError as exc:
        print(f"bpstudy: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        if runs:  # where the statistics so far are, and how to run it again
            line = (
                f"mlflow run {runs[0]} ended KILLED ({command_name()} rerun {runs[0]} retrains it)"
            )
            logging.getLogger("bpstudy.train").info("%s", line)
            print(line, file=sys.stderr, flush=True)
        raise
    result = tracked.result
    summary = render(result, tracked.outcome)
    log = logging.getLogger("bpstudy.train")
    log.info("%s", summary)
    if tracked.run_id:
        log.info("mlflow run %s in %s", tracked.run_id, tracked.tracking_uri)
    try:
        print(summary, flush=True)
        if tracked.run_id:
            print(run_line(tracked), flush=True)
    except BrokenPipeError:  # piped into e.g. `head`, which has exited: not an error
        stdout_to_devnull()
    return result.metrics.get("val/loss")


def run_line(tracked) -> str:
    """Where to look at the run: its page on an MLflow server, or the store for `ui`."""
    from bpstudy.tracking.store import run_link

    link = run_link(tracked.tracking_uri, tracked.experiment_id, tracked.run_id)
    if link:
        return f"mlflow run {tracked.run_id}: {link}"
    return f"mlflow run {tracked.run_id} in {tracked.tracking_uri} ({command_name()} ui to browse)"
