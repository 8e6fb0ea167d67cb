"""`bpstudy train`: a thin Hydra app around `bpstudy.train(cfg)`.

Before Hydra starts, every job the command line describes (one, or each combination of a
`-m` sweep) is composed and validated, so a bad key or value fails at once with one line
and exit code 2, before any run starts or any output folder is written.
"""

from __future__ import annotations

import itertools
import sys

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from bpstudy.config import compose, validate
from bpstudy.errors import BpstudyError, ConfigError
from bpstudy.paths import CONF_DIR

MAX_PREVALIDATED_JOBS = 256


def jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs a command line describes (sweeps expanded)."""
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    if not multirun:
        return [overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"cannot parse override: {str(exc).splitlines()[0]}") from None
    choices = []
    for ov in parsed:
        if ov.is_sweep_override():
            key = ov.get_key_element()
            choices.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            choices.append([ov.input_line])
    return [list(c) for c in itertools.islice(itertools.product(*choices), MAX_PREVALIDATED_JOBS)]


def prevalidate(argv: list[str]) -> None:
    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.shell_completion or args.info:
        return
    if args.config_path or args.config_dir or args.config_name or args.experimental_rerun:
        return  # the user's own config tree: validated inside the job
    for overrides in jobs(args.overrides or [], args.multirun):
        validate(compose(overrides))


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    from bpstudy.training import train
    from bpstudy.training.progress import Progress
    from bpstudy.training.summary import render

    try:
        c = validate(cfg)
        result = train(c, [Progress(c.trainer.progress, c.trainer.epochs)])
    except BpstudyError as exc:
        print(f"bpstudy: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print(render(result), flush=True)
    return result.metrics.get("val/loss")


def main(argv: list[str]) -> None:
    prevalidate(argv)
    sys.argv = ["bpstudy train", *argv]
    run()
