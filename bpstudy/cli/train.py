"""`bpstudy train`: a thin Hydra app around `bpstudy.train(cfg)`.

Before Hydra starts, every job the command line describes (one, or the combinations of a
`-m` sweep) is composed and validated, and each distinct data set is loaded once, so a bad
key, value or data file fails at once with one line and exit code 2, before any run starts
or any output folder is written. The job then trains on what was checked: the `Config`
validated for the same composed tree, and the data set loaded last if it is the same
(`shared_data`), so one run validates its config once and reads its data once.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.override_parser.types import ValueType
from omegaconf import DictConfig, OmegaConf

from bpstudy.cli.args import command_name
from bpstudy.cli.hydra_app import absolute_config_path, argument_parser, in_hydra_order
from bpstudy.config import Config
from bpstudy.config.compose import compose, glob_options, parse_overrides
from bpstudy.config.validate import to_container, validate
from bpstudy.errors import BpstudyError, ConfigError, first_line, redact
from bpstudy.paths import CONF_DIR, not_a_folder, starts_with
from bpstudy.shutdown import stdout_to_devnull

MAX_PREVALIDATED_JOBS = 256  # full combinations checked; beyond, each value still is once

# the jobs' configs that prevalidate validated, by their resolved tree (`tree_key`): the
# Hydra job that composes the same tree trains on it instead of validating it again
_validated: dict[str, Config] = {}


def jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs a command line describes (sweeps expanded).

    Mirrors Hydra's basic sweeper: one list of choices per key (a later override of the
    same key replaces an earlier one), jobs are their product. Beyond
    MAX_PREVALIDATED_JOBS combinations, every single value is still covered once (the
    others at their first value), so a typo in a long sweep fails before the first run.
    """
    if not multirun:
        return [overrides]
    choices: dict[str, list[str]] = {}
    for ov in parse_overrides(overrides):
        key = ov.get_key_element()
        if not ov.is_sweep_override():
            choices[key] = [ov.input_line]
        elif ov.value_type == ValueType.GLOB_CHOICE_SWEEP:
            try:
                names = glob_options(ov.key_or_group, ov.value())
            except ConfigError as exc:
                raise ConfigError(f"{ov.input_line}: {exc}") from None
            choices[key] = [f"{key}={v}" for v in names]
        elif ov.is_discrete_sweep():
            choices[key] = [f"{key}={v}" for v in ov.sweep_string_iterator()]
        else:
            raise ConfigError(
                f"{ov.input_line}: -m runs lists (a,b), range(...) and choice(...); "
                "interval(...) has no values to enumerate"
            )
        if not choices[key]:
            raise ConfigError(f"{ov.input_line}: the sweep has no values, so there is no job")
    lists = list(choices.values())
    combos = [list(c) for c in itertools.islice(itertools.product(*lists), MAX_PREVALIDATED_JOBS)]
    if len(combos) < MAX_PREVALIDATED_JOBS:
        return combos
    first = [values[0] for values in lists]
    for i, values in enumerate(lists):
        for v in values[1:]:
            combos.append([*first[:i], v, *first[i + 1 :]])
    return combos


def prevalidate(argv: list[str]) -> None:
    args, unknown = argument_parser().parse_known_args(argv)
    if unknown:
        raise BpstudyError(
            f"unrecognized arguments: {' '.join(unknown)}; see 'bpstudy train --help'"
        )
    check_hydra_options(args)
    if args.package and not args.cfg:  # Hydra ignores it without a word; the user meant something
        print(
            f"warning: --package {args.package} is ignored: it picks the part of the config "
            "that --cfg job|hydra|all shows",
            file=sys.stderr,
        )
    overrides = args.overrides or []
    _validated.clear()  # this command's jobs only
    if args.experimental_rerun:
        return  # the pickled config is the job's: Hydra reads it
    # the config tree as Hydra will compose it: the primary config (the shipped one, or the
    # user's own by --config-path and --config-name), --config-dir, hydra.searchpath
    tree = functools.partial(
        compose,
        conf_dir=Path(args.config_path) if args.config_path else CONF_DIR,
        config_name=primary_name(args),
        config_dir=Path(args.config_dir) if args.config_dir else None,
    )
    if args.help or args.hydra_help or args.info:
        if any(ov.is_sweep_override() for ov in parse_overrides(overrides)):
            raise BpstudyError("--help and --info show one job's config: give single values")
        validate(tree(overrides))  # the help shows the config they compose
        return
    multirun = args.multirun or any(o.replace(" ", "") == "hydra.mode=MULTIRUN" for o in overrides)
    configs = [_job_config(tree, job, overrides) for job in jobs(overrides, multirun)]
    if args.cfg and args.package and not multirun:
        cfg = tree(overrides, job_name="train", with_hydra=args.cfg != "job")
        if args.cfg == "hydra":  # as Hydra's get_sanitized_hydra_cfg shows it
            cfg = OmegaConf.masked_copy(cfg, ["hydra"])
            cfg.hydra = OmegaConf.masked_copy(
                cfg.hydra, [k for k in cfg.hydra if k not in ("help", "hydra_help")]
            )
        check_package(args.package, cfg, args.cfg)
    if not args.cfg:  # --cfg only prints the config: no data to read
        check_output_dir(overrides, multirun, tree)
        check_chdir(overrides, configs)
        from bpstudy.training.run import check_data, shared_data

        check_data(configs, load=shared_data)  # before Hydra writes anything; the run reuses it
        check_tracking(configs)


def _job_config(tree, job: list[str], overrides: list[str]) -> Config:
    """The validated config of one job; a -m job's error names the values it sweeps
    (a preset with a bad value did not say which job it came from)."""
    try:
        plain = to_container(tree(job))
        config = _validated[tree_key(plain)] = validate(plain)
        return config
    except ConfigError as exc:
        swept = [o for o in job if o not in overrides]
        if not swept or any(o in str(exc) for o in swept):
            raise
        raise ConfigError(f"the -m job {' '.join(swept)}: {exc}") from None


def tree_key(plain: dict) -> str:
    """A resolved config tree (Hydra's own node left out) as one string, keys sorted."""
    return json.dumps({k: v for k, v in plain.items() if k != "hydra"}, sort_keys=True, default=str)


def job_config(cfg: DictConfig) -> Config:
    """The Config of Hydra's job: the one prevalidate made for the same tree, else (a
    --experimental-rerun, a -m job past MAX_PREVALIDATED_JOBS) validated here."""
    plain = to_container(cfg)
    return _validated.get(tree_key(plain)) or validate(plain)


def primary_name(args: argparse.Namespace) -> str:
    return (args.config_name or "config").removesuffix(".yaml")


def check_hydra_options(args: argparse.Namespace) -> None:
    """Hydra's own options, whose misuse Hydra reports with a traceback and exit 1."""
    modes = [args.run, args.multirun, args.cfg, args.info, args.shell_completion]
    if sum(bool(m) for m in modes) > 1:
        raise BpstudyError(
            "give one of --run, --multirun (-m), --cfg, --info and --shell-completion; "
            "see 'bpstudy train --help'"
        )
    if args.resolve and not (args.cfg or args.help):
        raise BpstudyError("--resolve works only with --cfg or --help; see 'bpstudy train --help'")
    # the paths as Hydra reads them (no ~ expansion: the shell's job); os.path, whose
    # checks say False where pathlib's raise (a folder the user may not search)
    rerun = args.experimental_rerun
    if rerun and not os.path.isfile(rerun):
        raise BpstudyError(
            f"--experimental-rerun {rerun}: no such file (give a job's .hydra/config.pickle)"
        )
    if rerun and not starts_with(Path(rerun), b"\x80"):  # pickle protocol 2 and later
        raise BpstudyError(
            f"--experimental-rerun {rerun}: not a pickle (give a job's .hydra/config.pickle)"
        )
    if args.config_path and not os.path.isdir(args.config_path):
        raise BpstudyError(f"--config-path {args.config_path}: {not_a_folder(args.config_path)}")
    if args.config_dir and not os.path.isdir(args.config_dir):
        raise BpstudyError(f"--config-dir {args.config_dir}: {not_a_folder(args.config_dir)}")
    if args.config_name or args.config_path:
        name = primary_name(args)
        places = [Path(args.config_path)] if args.config_path else [CONF_DIR]
        places += [Path(args.config_dir)] if args.config_dir else []
        if not any(os.path.isfile(place / f"{name}.yaml") for place in places):
            found = sorted({p.stem for place in places for p in place.glob("*.yaml")})
            what = f"--config-name {args.config_name}" if args.config_name else "--config-path"
            there = f"primary configs: {', '.join(found)}" if found else "no .yaml file there"
            raise BpstudyError(
                f"{what}: no {name}.yaml in {' or '.join(str(p) for p in places)} ({there})"
            )


def check_package(package: str, cfg: DictConfig, shown: str = "job") -> None:
    """`--cfg SHOWN --package KEY` names a part of the config --cfg shows (Hydra: "package
    'x' not found in config", exit 1)."""
    from omegaconf.errors import OmegaConfBaseException

    try:  # as Hydra selects it, resolving a value it is (${hydra.job.num}: -m jobs only)
        if package == "_global_" or OmegaConf.select(cfg, package) is not None:
            return
    except OmegaConfBaseException as exc:
        raise ConfigError(f"--package {package}: {first_line(exc)}") from None
    parent, _, leaf = package.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, DictConfig) and leaf in node:  # Hydra cannot show a null
        raise ConfigError(f"--package {package}: its value is null; --package shows a group")
    while parent and not isinstance(OmegaConf.select(cfg, parent), DictConfig):
        parent = parent.rpartition(".")[0]  # the deepest part that is there, listed
    node = OmegaConf.select(cfg, parent) if parent else cfg
    raise ConfigError(
        f"--package {package}: no such key in the config --cfg {shown} shows "
        f"({parent or 'it'} has: {', '.join(str(k) for k in node)})"
    )


def check_output_dir(overrides: list[str], multirun: bool, tree=compose) -> None:
    """The job's output folder (hydra.run.dir; with -m, hydra.sweep.dir and its subdir)
    resolves and can be made: Hydra otherwise fails after its start with a traceback. The
    folders are made and removed again, up to the first interpolation (${now:...} and the
    like)."""
    parsed = parse_overrides(overrides)
    read = ("hydra.sweep.dir", "hydra.sweep.subdir") if multirun else ("hydra.run.dir",)
    for ov in parsed:
        if ov.key_or_group in read and "${" in str(ov.value()):
            # a -m job has its number; the sweep's own folder is resolved before any job
            per_job = multirun and ov.key_or_group != "hydra.sweep.dir"
            numbered = ["hydra.job.num=0", "hydra.job.id=0"] if per_job else []
            job = jobs(overrides, multirun)[0] + numbered
            cfg = tree(job, job_name="train", with_hydra=True)
            _resolve_hydra_key(ov.key_or_group, ov.input_line, cfg)

    def value_of(key: str, default: str) -> str:
        given = [ov for ov in parsed if ov.key_or_group == key]
        return str(given[-1].value()) if given else default

    if multirun:
        key = "hydra.sweep.dir"
        value = shown = value_of(key, "multirun/")
        subdir = value_of("hydra.sweep.subdir", "${hydra.job.num}")
        if "${" not in value:  # the subdir is made inside it (an absolute one replaces it)
            value = os.path.join(value, subdir)
            if any(ov.key_or_group == "hydra.sweep.subdir" for ov in parsed):
                key, shown = "hydra.sweep.dir/subdir", value
    else:
        key = "hydra.run.dir"
        value = shown = value_of(key, "outputs/")
    literal = value.split("${")[0]
    if literal != value and not literal.endswith("/"):
        literal = os.path.dirname(literal)
    _try_to_make(Path(literal or "."), f"{key}={shown}")  # a quoted ~ is a folder named ~


def _resolve_hydra_key(key: str, given: str, cfg: DictConfig) -> None:
    """Resolve `key` as Hydra does when the job starts (its own node in place; with -m,
    the overrides number the job): an unknown resolver, a missing environment variable
    or key was a 100-line traceback there."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    HydraConfig.instance().set_config(cfg)  # for ${hydra:...}
    try:
        OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{given}: {first_line(exc)}") from None


def _try_to_make(folder: Path, what: str) -> None:
    """Make the missing folders down to `folder`, then remove them: a real try, for
    root passes os.access, and /proc, a read-only mount or a name too long refuse."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"{what}: {folder} is a file, not a folder")
    missing = []
    for p in (folder, *folder.parents):
        if os.path.exists(p):
            break
        missing.append(p)
    made = []
    try:
        for p in reversed(missing):
            os.mkdir(p)
            made.append(p)
        if not missing:
            os.rmdir(tempfile.mkdtemp(prefix=".bpstudy-", dir=folder))
    except OSError as exc:
        where = missing[len(made)] if len(made) < len(missing) else folder
        raise ConfigError(
            f"{what}: cannot make the job's output folder {where} "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    finally:
        for p in reversed(made):
            os.rmdir(p)


def check_tracking(configs: list[Config]) -> None:
    """An unreachable tracking server or unwritable store fails before Hydra starts, as does
    a password in tracking.uri, which Hydra would write to the job's .hydra/ files."""
    from bpstudy.tracking.store import check_store, resolve_uri

    for uri in {c.tracking.uri for c in configs if c.tracking.uri}:
        if redact(uri) != uri:
            raise ConfigError(
                f"tracking.uri={redact(uri)}: a password here is written to the job's .hydra/ "
                "files; leave it out of the URL (libpq reads PGPASSWORD or ~/.pgpass) or give "
                "the whole URL in $MLFLOW_TRACKING_URI"
            )
    for uri in {resolve_uri(c.tracking.uri) for c in configs if c.tracking.enabled}:
        check_store(uri)


def check_chdir(overrides: list[str], configs: list[Config]) -> None:
    """A relative data.path would be read from inside the job's output folder."""
    chdir = [ov for ov in parse_overrides(overrides) if ov.key_or_group == "hydra.job.chdir"]
    if not chdir or chdir[-1].value() is not True:
        return
    for c in configs:
        path = getattr(c.data, "path", "")
        if path and not Path(path).expanduser().is_absolute():
            raise ConfigError(
                f"data.path={path} is relative, but hydra.job.chdir=true runs each job in "
                "its output folder; give an absolute data.path"
            )


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    from bpstudy.tracking import tracked_train
    from bpstudy.tracking.theory import theory_line
    from bpstudy.training.progress import EpochLog, Progress
    from bpstudy.training.run import shared_data
    from bpstudy.training.summary import render

    runs: list[str] = []
    try:
        c = job_config(cfg)
        listeners = [Progress(c.trainer.progress, c.trainer.epochs), EpochLog()]
        tracked = tracked_train(c, shared_data(c), listeners, on_run=runs.append)
    except BpstudyError as exc:
        print(f"bpstudy: error: {redact(str(exc))}", file=sys.stderr)
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
    notes = [theory_line(tracked.theory, result.step_stats)] if tracked.theory else []
    summary = render(result, tracked.outcome, tracked.verdict, notes)
    log = logging.getLogger("bpstudy.train")
    log.info("%s", summary)
    if tracked.run_id:
        log.info("mlflow run %s in %s", tracked.run_id, redact(tracked.tracking_uri))
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
    where = redact(tracked.tracking_uri)
    return f"mlflow run {tracked.run_id} in {where} ({command_name()} ui to browse)"


def main(argv: list[str]) -> None:
    argv = absolute_config_path(in_hydra_order(argv))
    prevalidate(argv)
    sys.argv = ["bpstudy train", *argv]
    run()
