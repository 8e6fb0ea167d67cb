"""The `bpstudy` command line: docs/architecture.md §7's error contract and the Hydra app's own paths.

Every user error -- a wrong config key, value, type or combination, a bad override or
sweep, missing or malformed data -- must end with exit code 2 and ONE line on stderr that
names the key or file, no traceback, and no Hydra output folder.

Each error case runs twice: in-process through `bpstudy.cli.main` (the function the
console script calls; fast, so every case runs by default) and through the real console
command in a subprocess (the `cli` fixture). A subprocess pays the full import time, so
only a few representative cases run by default; the rest are marked `slow`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bpstudy.cli import main
from bpstudy.cli.train import MAX_PREVALIDATED_JOBS, in_hydra_order, jobs, prevalidate
from bpstudy.errors import BpstudyError, ConfigError, DataError
from bpstudy.paths import CONF_DIR
from tests.conftest import file_modes_apply

# shrunken settings put before each case's own overrides (a case's own value wins), so a
# case that wrongly passes validation still trains for a moment, not for minutes
TINY = ("trainer.epochs=1", "model.depth=2", "trainer.progress=none", "tracking.enabled=false")

# (id, arguments after `bpstudy train`, texts the one error line must contain)
ERROR_CASES: list[tuple[str, list[str], list[str]]] = [
    # unknown keys, also when appended with + or ++
    ("unknown-key", ["model.dept=3"], ["model.dept", "depth", "width", "activation"]),
    ("unknown-top-level-key", ["foo=1"], ["'foo'", "model", "trainer"]),
    ("append-unknown-key", ["+model.foo=1"], ["model.foo", "depth"]),
    ("force-append-unknown-key", ["++model.foo=1"], ["model.foo", "depth"]),
    ("append-unknown-top-level", ["+foo=1"], ["'foo'; the config has: data, model, optimizer"]),
    ("unknown-hydra-callback", ["hydra.callbacks.x.y=1"], ["write +hydra.callbacks.x.y=VALUE"]),
    ("tilde-in-a-value", ["data.path=~/x.csv"], ["data.path=~/x.csv", "{ } = ~ or spaces"]),
    ("append-existing-key", ["+model.depth=3"], ["model.depth", "model.depth=3"]),
    ("key-of-another-optimizer", ["optimizer.momentum=0.5"], ["optimizer.momentum", "lr"]),
    ("key-of-another-data-set", ["data.path=x.csv"], ["data.path", "data=csv"]),
    ("unknown-hydra-key", ["hydra.foo=1"], ["hydra.foo"]),
    # wrong types
    ("int-given-text", ["model.depth=abc"], ["model.depth", "abc", "integer"]),
    ("int-given-float", ["model.depth=2.5"], ["model.depth", "2.5", "integer"]),
    ("bool-given-text", ["model.batch_norm=maybe"], ["model.batch_norm", "maybe", "true"]),
    ("int-given-null", ["model.depth=null"], ["model.depth=null must be an integer"]),
    ("int-given-bool", ["trainer.epochs=true"], ["trainer.epochs=true must be an integer"]),
    ("mapping-given-scalar", ["model.init=3"], ["model.init", "group of keys"]),
    # out of range
    ("depth-zero", ["model.depth=0"], ["model.depth", ">= 1"]),
    ("dropout-above-one", ["model.dropout=1.5"], ["model.dropout", "1.5", "< 1"]),
    ("negative-lr", ["optimizer.lr=-1"], ["optimizer.lr", "> 0"]),
    ("batch-size-zero", ["trainer.batch_size=0"], ["trainer.batch_size", ">= 1"]),
    ("noise-infinite", ["data=spirals", "data.noise=inf"], ["data.noise=inf", "finite"]),
    ("threshold-nan", ["outcome.vanishing_log10=nan"], ["outcome.vanishing_log10=nan", "finite"]),
    (
        "network-too-large",
        ["model.width=100000"],
        ["model.width=100000", "GiB", "this machine has"],
    ),
    (
        "data-too-large",
        ["data=spirals", "data.n_per_class=1000000000"],
        ["data.n_per_class", "GiB"],
    ),
    ("experiment-blank", ["tracking.experiment=''"], ["tracking.experiment=''", "non-blank"]),
    ("experiment-too-long", [f"tracking.experiment={'e' * 501}"], ["at most 500 characters"]),
    # values outside their choices
    ("bad-activation", ["model.activation=swish"], ["model.activation", "swish", "relu"]),
    ("bad-init-scheme", ["model.init.scheme=foo"], ["model.init.scheme", "he_normal"]),
    ("bad-dtype", ["trainer.dtype=float16"], ["trainer.dtype", "float32", "float64"]),
    ("bad-clip-mode", ["trainer.clip.mode=foo"], ["trainer.clip.mode", "norm", "value"]),
    ("bad-schedule", ["trainer.schedule.name=foo"], ["trainer.schedule.name", "cosine"]),
    # config group options
    ("bad-optimizer-option", ["optimizer=foo"], ["optimizer=foo", "adam", "sgd"]),
    ("bad-data-option", ["data=foo"], ["data=foo", "digits", "mnist"]),
    ("bad-experiment-option", ["experiment=nope"], ["experiment=nope", "deep_sigmoid"]),
    ("group-given-number", ["model=3"], ["model=3", "mlp"]),
    ("group-given-null", ["experiment=null"], ["experiment=null", "deep_sigmoid"]),
    ("append-group", ["+data=csv"], ["data", "data=csv"]),
    ("deleted-group", ["~data"], ["data", "digits"]),
    # combinations
    (
        "cross-entropy-on-regression",
        ["data=teacher", "model.loss=cross_entropy"],
        ["model.loss", "teacher", "mse"],
    ),
    ("warmup-without-steps", ["trainer.schedule.name=warmup"], ["trainer.schedule.warmup_steps"]),
    (
        "no-training-examples-left",
        ["data.val_fraction=0.6", "data.test_fraction=0.5"],
        ["data.val_fraction", "data.test_fraction"],
    ),
    (  # rounding left one training example of digits' 1797, and it trained
        "fractions-summing-to-one",
        ["data.val_fraction=0.5", "data.test_fraction=0.5"],
        ["data.val_fraction=0.5", "sum must be below 1"],
    ),
    # override syntax and sweeps
    ("sweep-without-m", ["model.depth=2,3"], ["model.depth=2,3", "-m"]),
    ("unparsable-override", ["model.depth=[1,"], ["model.depth"]),
    ("override-without-value", ["model.depth"], ["model.depth", "="]),
    ("sweep-with-bad-value", ["-m", "model.activation=tanh,swish"], ["model.activation", "swish"]),
    ("glob-of-a-key", ["-m", "model.depth=glob(*)"], ["picks options of a config group"]),
    ("glob-matching-nothing", ["-m", "optimizer=glob(zz*)"], ["glob matches none of", "adam"]),
    ("interval-sweep-with-m", ["-m", "optimizer.lr=interval(0.1,1)"], ["optimizer.lr", "interval"]),
    ("empty-sweep", ["-m", "model.width=range(0,0)"], ["model.width"]),
    (
        "relative-path-with-chdir",
        ["data=csv", "data.path=bad.csv", "hydra.job.chdir=true"],
        ["data.path=bad.csv", "absolute"],
    ),
    ("unknown-option", ["--frobnicate"], ["--frobnicate"]),
    ("bad-cfg-choice", ["--cfg", "everything"], ["--cfg", "job"]),
    # Hydra's own options and folders (each was a traceback, exit 1)
    ("run-dir-is-a-file", ["hydra.run.dir=afile"], ["hydra.run.dir=afile", "is a file"]),
    (
        "run-dir-under-a-file",
        ["hydra.run.dir=afile/x"],
        ["hydra.run.dir=afile/x", "cannot make the job's output folder afile/x (Not a directory)"],
    ),
    (
        "run-dir-in-proc",
        ["hydra.run.dir=/proc/x/${now:%H}"],
        ["cannot make the job's output folder /proc/x ("],
    ),
    (  # Hydra's OSError traceback, with a/ left behind
        "run-dir-name-too-long",
        [f"hydra.run.dir=a/{'x' * 300}/b"],
        ["cannot make the job's output folder", "(File name too long)"],
    ),
    (
        "sweep-subdir-in-proc",
        ["-m", "model.depth=1,2", "hydra.sweep.dir=sw", "hydra.sweep.subdir=/proc/x"],
        ["hydra.sweep.dir/subdir=/proc/x", "cannot make the job's output folder /proc/x"],
    ),
    (  # oc.env gives text: the message said only "'2' must be an integer"
        "env-interpolation-is-text",
        ["trainer.epochs=${oc.env:BPSTUDY_NO_SUCH_VARIABLE,2}"],
        ["trainer.epochs='2' must be an integer (it is text: ", "${oc.decode:...}, quoted"],
    ),
    (  # each interpolation failure below was a 100-line traceback
        "run-dir-unknown-resolver",
        ["hydra.run.dir=${bogus:x}"],
        ["hydra.run.dir=${bogus:x}: Unsupported interpolation type bogus"],
    ),
    (
        "run-dir-missing-environment-variable",
        ["hydra.run.dir=o/${oc.env:BPSTUDY_NO_SUCH_VARIABLE}"],
        ["hydra.run.dir=o/${oc.env:", "BPSTUDY_NO_SUCH_VARIABLE' not found"],
    ),
    (
        "run-dir-job-number-outside-m",
        ["hydra.run.dir=o/${hydra.job.num}"],
        ["hydra.run.dir=o/${hydra.job.num}", "Missing mandatory value: hydra.job.num"],
    ),
    (
        "sweep-dir-job-number",
        ["-m", "model.depth=1,2", "hydra.sweep.dir=o/${hydra.job.num}"],
        ["hydra.sweep.dir=o/${hydra.job.num}", "Missing mandatory value: hydra.job.num"],
    ),
    (
        "sweep-subdir-unknown-key",
        ["-m", "model.depth=1,2", "hydra.sweep.subdir=${hydra.job.num}_${nosuch.key}"],
        ["hydra.sweep.subdir=", "Interpolation key 'nosuch.key' not found"],
    ),
    (
        "rerun-file-not-a-pickle",
        ["--experimental-rerun", "bad.csv"],
        ["--experimental-rerun bad.csv: not a pickle"],
    ),
    (
        "missing-config-path",
        ["--config-path", "missing"],
        ["--config-path", "missing: no such folder"],
    ),
    (
        "sweep-dir-is-a-file",
        ["-m", "hydra.sweep.dir=afile", "model.depth=1,2"],
        ["hydra.sweep.dir=afile: afile is a file, not a folder"],
    ),
    ("unknown-config-name", ["--config-name", "nope"], ["--config-name nope", "config"]),
    ("missing-config-dir", ["--config-dir", "missing"], ["--config-dir missing", "folder"]),
    ("config-dir-a-file", ["--config-dir", "afile"], ["--config-dir afile: a file, not a folder"]),
    (
        "config-path-without-yaml",
        ["--config-path", "emptydir"],
        ["--config-path: no config.yaml in", "emptydir (no .yaml file there)"],
    ),
    # hydra.searchpath (Hydra: a traceback, a 13-line "could not find", or nothing)
    (
        "searchpath-scheme",
        ["hydra.searchpath=[bogus://x]"],
        ["hydra.searchpath: bogus://x: give file:// or pkg://"],
    ),
    (
        "searchpath-missing-folder",
        ["hydra.searchpath=[file://missing]", "experiment=mine"],
        ["hydra.searchpath: file://missing: no such folder"],
    ),
    (
        "searchpath-a-file",
        ["hydra.searchpath=[afile]"],
        ["hydra.searchpath: afile: a file, not a folder"],
    ),
    (
        "searchpath-twice",
        ["hydra.searchpath=[emptydir]", "hydra.searchpath=[emptydir]"],
        ["hydra.searchpath=[emptydir]: hydra.searchpath is given twice; give one list"],
    ),
    (
        "searchpath-missing-package",
        ["hydra.searchpath=[pkg://no_such_package.conf]"],
        ["pkg://no_such_package.conf: no package no_such_package.conf"],
    ),
    ("searchpath-not-a-list", ["hydra.searchpath=x"], ["hydra.searchpath=x: give a list"]),
    (
        "searchpath-with-plus",
        ["+hydra.searchpath=[emptydir]"],
        ["+hydra.searchpath=[emptydir]: Hydra reads only hydra.searchpath=[...], without '+'"],
    ),
    ("resolve-without-cfg", ["--resolve"], ["--resolve", "--cfg"]),
    ("multirun-and-cfg", ["-m", "--cfg", "job", "model.depth=1,2"], ["one of --run", "--cfg"]),
    ("rerun-missing-file", ["--experimental-rerun", "x.pickle"], ["x.pickle", "no such file"]),
    ("cfg-unknown-package", ["--cfg", "job", "--package", "nope"], ["--package nope", "model"]),
    (  # Hydra: "package 'model' not found in config", exit 1
        "cfg-hydra-package-outside-hydra",
        ["--cfg", "hydra", "--package", "model"],
        ["--package model: no such key in the config --cfg hydra shows (it has: hydra)"],
    ),
    (  # Hydra's 91-line traceback: the job number exists in -m jobs only
        "cfg-package-unresolvable",
        ["--cfg", "hydra", "--package", "hydra.sweep.subdir"],
        ["--package hydra.sweep.subdir: ", "Missing mandatory value: hydra.job.num"],
    ),
    (  # --cfg hydra does not show Hydra's help texts: Hydra refused it, exit 1
        "cfg-hydra-package-help",
        ["--cfg", "hydra", "--package", "hydra.help"],
        ["--package hydra.help: no such key in the config --cfg hydra shows (hydra has: run,"],
    ),
    (
        "cfg-all-unknown-package",
        ["--cfg", "all", "--package", "hydra.nope"],
        ["--package hydra.nope: no such key in the config --cfg all shows (hydra has: run,"],
    ),
    ("help-with-unknown-key", ["--help", "foo=1"], ["'foo'", "model"]),
    ("hydra-help-with-a-bad-value", ["--hydra-help", "model.depth=abc"], ["model.depth=abc"]),
    ("info-with-unknown-key", ["--info", "config", "foo=1"], ["'foo'", "model"]),
    ("help-with-a-sweep", ["--help", "-m", "model.depth=1,2"], ["--help", "single values"]),
    ("completion-without-action", ["-sc"], ["--shell-completion takes one ACTION=SHELL"]),
    # data
    ("csv-without-path", ["data=csv"], ["data.path", "data=csv"]),
    ("csv-missing-file", ["data=csv", "data.path=missing.csv"], ["missing.csv"]),
    ("csv-given-folder", ["data=csv", "data.path=emptydir"], ["emptydir", "folder"]),
    ("csv-non-numeric-feature", ["data=csv", "data.path=bad.csv"], ["bad.csv", "'a'", "numeric"]),
    ("npz-missing-key", ["data=npz", "data.path=d.npz"], ["d.npz", "'y'", "data.y_key"]),
    ("npz-missing-file", ["data=npz", "data.path=missing.npz"], ["missing.npz"]),
    ("mnist-empty-folder", ["data=mnist", "data.path=emptydir"], ["emptydir", "train-images"]),
]

# the cases that also run through the real console command by default
SUBPROCESS_DEFAULT = {
    "unknown-key",
    "csv-non-numeric-feature",
    "sweep-with-bad-value",
}


def write_data(folder: Path) -> None:
    """The files the data cases point at, in `folder` (the command's working folder)."""
    # column 'a' holds the text 'x' in data row 2
    (folder / "bad.csv").write_text("a,b,label\n1.0,2.0,0\nx,3.0,1\n4.0,5.0,0\n1.5,2.5,1\n")
    np.savez(folder / "d.npz", X=np.zeros((10, 2)), z=np.zeros(10))  # no array 'y'
    (folder / "emptydir").mkdir()
    (folder / "afile").write_text("")


def check_refused(code: int | None, stdout: str, stderr: str, folder: Path, needles) -> None:
    """docs/architecture.md §7: exit code 2, one line naming the key or file, nothing half-written."""
    lines = stderr.splitlines()
    assert code == 2, f"exit code {code}; stderr:\n{stderr}"
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].strip(), f"want one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("bpstudy: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    assert "status:" not in stdout, "a job ran"
    for name in ("outputs", "multirun"):
        assert not (folder / name).exists(), f"{name}/ was written for a refused command"
    written = {p.name for p in folder.iterdir()} - {"bad.csv", "d.npz", "emptydir", "afile"}
    assert not written, f"left behind by a refused command: {written}"


@pytest.mark.parametrize("args, needles", [pytest.param(a, n, id=i) for i, a, n in ERROR_CASES])
def test_error_in_process(args, needles, tmp_path, monkeypatch, capsys):
    write_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TINY, *args])
    out, err = capsys.readouterr()
    check_refused(exit_info.value.code, out, err, tmp_path, needles)


@pytest.mark.parametrize(
    "args, needles",
    [
        pytest.param(a, n, id=i, marks=() if i in SUBPROCESS_DEFAULT else pytest.mark.slow)
        for i, a, n in ERROR_CASES
    ],
)
def test_error_through_console_command(args, needles, cli, tmp_path):
    write_data(tmp_path)
    proc = cli("train", *TINY, *args)
    check_refused(proc.returncode, proc.stdout, proc.stderr, tmp_path, needles)


@pytest.mark.parametrize("kind", ["csv", "npz", "folder"])
def test_unreadable_data_file_is_one_line(kind, cli, tmp_path):
    """chmod 0 data: one line naming the file and "permission denied", with file modes
    binding the command (as root they would not)."""
    write_data(tmp_path)
    data = tmp_path / ("good.npz" if kind == "npz" else "good.csv")
    if kind == "npz":
        np.savez(data, X=np.zeros((10, 2)), y=np.zeros(10))
    else:
        data.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    locked = data
    if kind == "folder":  # the file is readable, the folder it is in cannot be searched
        locked = tmp_path / "emptydir"
        data = data.rename(locked / data.name)
    locked.chmod(0)
    try:
        proc = cli("train", *TINY, f"data={'npz' if kind == 'npz' else 'csv'}",
                   f"data.path={data}", prefix=file_modes_apply())  # fmt: skip
    finally:
        locked.chmod(0o700)
    if kind != "folder":
        data.unlink()  # not a file the command wrote
    check_refused(proc.returncode, proc.stdout, proc.stderr, tmp_path,
                  [data.name, "permission denied"])  # fmt: skip


# ---------------------------------------------------------------- what must work


def test_the_text_hint_comes_only_where_decoding_helps():
    """'yes' decodes to text and '2.0' to a float: oc.decode would not make them pass."""
    from bpstudy.config.validate import convert

    for tp, value, helps in [(int, "2", True), (int, "2.0", False), (float, "1e-3", True),
                             (bool, "True", True), (bool, "yes", False), (int, "abc", False)]:  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            convert(tp, value, "k")
        assert ("oc.decode" in str(refused.value)) == helps, (tp, value, str(refused.value))


def test_cfg_job_prints_the_composed_config(cli, tmp_path):
    proc = cli("train", "--cfg", "job", "model.depth=7")
    assert proc.returncode == 0, proc.stderr
    assert "model:" in proc.stdout and "depth: 7" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_does_not_read_data():
    """--cfg only prints: a data file that is not there yet is no reason to refuse."""
    prevalidate(["--cfg", "job", "data=csv", "data.path=later.csv"])
    with pytest.raises(DataError, match=r"later\.csv"):
        prevalidate(["data=csv", "data.path=later.csv"])


def test_long_sweep_still_checks_every_value():
    """Past MAX_PREVALIDATED_JOBS combinations, each value is still composed once."""
    sweep = ["model.activation=relu,swish", "model.width=range(1,30)", "model.depth=range(1,10)"]
    expanded = jobs(sweep, multirun=True)
    assert MAX_PREVALIDATED_JOBS < 29 * 9  # the first combinations are all relu
    assert any("model.activation=swish" in job for job in expanded)
    assert any("model.width=29" in job for job in expanded)
    assert len(expanded) < 29 * 9 * 2


def test_train_help_lists_the_config_groups(cli):
    proc = cli("train", "--help")
    assert proc.returncode == 0, proc.stderr
    for group, option in [("data", "digits"), ("optimizer", "adam"), ("experiment", "exploding")]:
        assert group in proc.stdout and option in proc.stdout


def test_multirun_runs_each_job(cli, tmp_path):
    """Options may come between the overrides (here -m after two of them), as with
    `bpstudy sweep`: Hydra's parser alone refused the words after -m."""
    proc = cli(
        "train", "trainer.epochs=1", "model.depth=2", "-m", "model.activation=tanh,relu",
        "trainer.progress=none", "tracking.enabled=false",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("status: finished") == 2, proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(list((tmp_path / "multirun").glob("*/*/*/.hydra"))) == 2


def test_output_folders_with_interpolations_that_resolve_still_run(cli, tmp_path):
    """The pre-check resolves hydra.* values as Hydra does at the job's start: the job's
    name and override_dirname, and with -m the job's number, are known there."""
    proc = cli("train", *TINY, "hydra.run.dir=o/${hydra.job.name}/${model.depth}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "train" / "2" / ".hydra").is_dir()
    # keys Hydra does not read in this mode are left alone, as Hydra leaves them
    keep = ["hydra.sweep.subdir=j${hydra.job.num}", "hydra.help.header=${oc.env:BPSTUDY_NOPE}"]
    proc = cli("train", *TINY, *keep, "hydra.run.dir=o2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o2" / ".hydra").is_dir()
    proc = cli(
        "train", *TINY, "-m", "model.width=3,4", "hydra.sweep.dir=sw",
        "hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "sw").iterdir())
    assert names[2] == "multirun.yaml", names
    assert names[0].startswith("0_") and "model.width=3" in names[0], names
    assert names[1].startswith("1_") and "model.width=4" in names[1], names


def test_overrides_move_before_the_options_which_keep_their_values():
    argv = ["a=1", "--cfg", "job", "b=2", "-p", "model", "-m", "~c", "--info", "config", "+d=4"]
    assert in_hydra_order(argv) == [
        "a=1", "b=2", "~c", "+d=4", "--cfg", "job", "-p", "model", "-m", "--info", "config",
    ]  # fmt: skip
    # --info's value is optional: a trailing --info takes none; an abbreviation stays
    assert in_hydra_order(["model.depth=3", "--info"]) == ["model.depth=3", "--info"]
    assert in_hydra_order(["x=1", "--pack", "model", "--cfg", "job"])[:3] == [
        "x=1",
        "--pack",
        "model",
    ]


def test_a_trailing_info_and_an_abbreviated_option_still_work(cli, tmp_path):
    """Both worked before the overrides could stand among the options."""
    proc = cli("train", "model.depth=33", "--info")
    assert proc.returncode == 0 and "depth: 33" in proc.stdout, proc.stderr
    proc = cli("train", "model.depth=7", "--pack", "model", "--cfg", "job")
    assert proc.returncode == 0 and "depth: 7" in proc.stdout, proc.stderr


def test_the_jobs_log_file_keeps_the_epochs_and_the_summary(cli, tmp_path):
    proc = cli("train", "trainer.epochs=2", "model.depth=2", "trainer.progress=lines",
               "tracking.enabled=false")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (log,) = (tmp_path / "outputs").glob("*/*/train.log")
    text = log.read_text()
    assert "epoch 1/2  step" in text and "epoch 2/2  step" in text
    assert "status: finished  epochs: 2" in text
    # the terminal is as before: epoch lines once, on stderr; the summary on stdout
    assert proc.stderr.count("epoch 2/2") == 1 and "[INFO]" not in proc.stderr + proc.stdout
    assert proc.stdout.count("status: finished") == 1
    # the preset is a default like any other: Hydra's own still replace it whole
    for preset in ("disabled", "none", "stdout"):
        proc = cli("train", *TINY, f"hydra/job_logging={preset}")
        assert proc.returncode == 0, proc.stderr


def test_no_command_prints_usage_to_stderr(cli):
    proc = cli()
    assert proc.returncode == 2
    assert "usage: bpstudy" in proc.stderr and "train" in proc.stderr
    assert proc.stdout == ""


def test_naming_the_shipped_config_still_checks_before_the_job(cli, tmp_path):
    """--config-name config is the default: its bad values left outputs/ behind."""
    proc = cli("train", "--config-name", "config", "model.depth=0")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "model.depth" in proc.stderr and not (tmp_path / "outputs").exists()


def test_a_users_config_folder_on_hydras_searchpath_adds_presets(cli, tmp_path):
    """Hydra's way to add config options, as with --config-dir: the pre-check knew only
    the shipped options and refused experiment=mine ("not a config option")."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nmodel:\n  depth: 3\n  width: 7\n"
    )
    proc = cli(
        "train", f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "experiment=mine",
        "trainer.epochs=1", "trainer.progress=none", "tracking.enabled=false", "--cfg", "job",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "width: 7" in proc.stdout
    # a package path as Hydra reads it: a trailing / is no part of the module's name
    proc = cli("train", "hydra.searchpath=[pkg://bpstudy/]", "--cfg", "job", "-p", "model")
    assert proc.returncode == 0 and "depth: 5" in proc.stdout, proc.stderr


def test_package_without_cfg_is_said_to_be_ignored(cli):
    """Hydra ignores --package without --cfg silently (walk-through 10 F17); the command
    goes on as Hydra's does, with one warning line."""
    proc = cli("train", "--package", "model", "--help")
    assert proc.returncode == 0 and "bpstudy train" in proc.stdout, proc.stderr
    assert proc.stderr.strip() == (
        "warning: --package model is ignored: it picks the part of the config that "
        "--cfg job|hydra|all shows"
    )
    proc = cli("train", "--cfg", "job", "--package", "model")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_a_users_own_config_tree_is_checked_before_the_job(cli, tmp_path):
    """--config-dir, --config-path and --config-name skipped the pre-check: a bad value
    there left outputs/ behind, and a config that is not bpstudy's listed no keys."""
    work = tmp_path / "work"  # the command's folder: nothing may be written there
    work.mkdir()
    presets = tmp_path / "presets"
    (presets / "experiment").mkdir(parents=True)
    (presets / "experiment" / "good.yaml").write_text("# @package _global_\nmodel: {width: 7}\n")
    (presets / "experiment" / "bad.yaml").write_text("# @package _global_\nmodel: {widht: 7}\n")
    (presets / "other.yaml").write_text("foo: 1\n")
    (presets / "partial.yaml").write_text("model: {depth: 3}\n")
    (presets / "model").mkdir()
    (presets / "model" / "short.yaml").write_text("depth: 3\n")
    (presets / "optimizer").mkdir()
    (presets / "optimizer" / "noname.yaml").write_text("lr: 0.03\n")
    (presets / "experiment" / "broken.yaml").write_text("# @package _global_\nmodel: {depth: [\n")
    (presets / "experiment" / "nodefault.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /optimizer: nosuch\n"
    )
    own = tmp_path / "own"
    shutil.copytree(CONF_DIR, own)
    refused = {
        ("-cd", "../presets", "experiment=bad"): "unknown config key 'model.widht'; model has:",
        ("-cd", "../presets", "-m", "experiment=good,bad"): "the -m job experiment=bad: "
        "unknown config key 'model.widht'",
        ("-cd", "../presets", "experiment=nope"): "experiment=nope is not a config option; "
        "allowed: bad, broken, deep_relu_he",
        ("-cd", "../presets", "-cn", "other"): "unknown config key 'foo'; not a bpstudy "
        "config, which has: data, optimizer",
        ("-cp", "../own", "model.depth=0"): "model.depth=0 is out of range",
        # the keys listed are the user's primary config's, not bpstudy's
        ("-cd", "../presets", "-cn", "partial", "model.width=8"): "unknown config key "
        "'model.width'; model has: depth (bpstudy's own config has model.width; the primary "
        "config 'partial' leaves it out)",
        # or by a group option of theirs, under bpstudy's own primary config
        ("-cd", "../presets", "model=short", "model.width=8"): "unknown config key "
        "'model.width'; model has: depth (bpstudy's own model options have model.width; "
        "model=short leaves it out)",
        ("-cd", "../presets", "optimizer=noname"): "optimizer.name is missing: each option of "
        "the optimizer group (a file optimizer/NAME.yaml of yours too) sets name: to one of sgd",
        ("-cd", "../presets", "experiment=broken"): "experiment/broken.yaml: line 3 malformed "
        "YAML (expected the node content, but found '<stream end>')",
        ("-cd", "../presets", "experiment=nodefault"): "Could not find 'optimizer/nosuch'; "
        "allowed: adagrad, adam, adamw, momentum, noname, rmsprop, sgd",
        ("-cp", "../own", "-cd", "../presets", "experiment=bad", "--cfg", "job"): "model.widht",
    }
    for args, message in refused.items():
        proc = cli("train", *args, cwd=work)
        check_refused(proc.returncode, proc.stdout, proc.stderr, work, [message])
    args = ("-cp", "../own", "-cd", "../presets", "experiment=good")
    proc = cli("train", *TINY, *args, cwd=work)
    assert proc.returncode == 0, proc.stderr
    job = next((work / "outputs").glob("*/*/.hydra"))
    assert "width: 7" in (job / "config.yaml").read_text()


def test_the_check_composes_a_users_tree_in_hydras_order(cli, tmp_path):
    """Hydra reads the primary config's folder before --config-dir, and a searchpath
    the user's own primary config names: the check had swapped the first two (refusing
    a shadowed option Hydra never reads) and knew only a searchpath given on the
    command line (refusing an option from the config's own)."""
    mine = tmp_path / "mine"
    (mine / "optimizer").mkdir(parents=True)
    (mine / "config.yaml").write_text(
        (CONF_DIR / "config.yaml").read_text().replace("l1: 0.0", "l1: -1.0")
    )
    (mine / "optimizer" / "sgd.yaml").write_text("name: sgd\nlr: -5\n")
    extra = tmp_path / "extra"
    (extra / "optimizer").mkdir(parents=True)
    (extra / "optimizer" / "slow.yaml").write_text("name: momentum\nlr: 0.05\n")
    own = tmp_path / "own"
    shutil.copytree(CONF_DIR, own)
    config = (own / "config.yaml").read_text()
    assert config.count("\nhydra:\n") == 1
    (own / "config.yaml").write_text(
        config.replace("\nhydra:\n", f"\nhydra:\n  searchpath: ['file://{extra}']\n")
    )
    assert "l1: -1.0" in (mine / "config.yaml").read_text()
    work = tmp_path / "work"
    work.mkdir()
    shown = {
        ("-cd", "../mine", "-p", "regularization"): "l1: 0.0",  # the shipped config.yaml
        ("-cd", "../mine", "-p", "optimizer"): "lr: 0.1",  # the shipped sgd.yaml
        ("-cp", "../own", "optimizer=slow", "-p", "optimizer"): "name: momentum",
        ("-cp", "../own", "-cd", "../mine", "optimizer=slow", "-p", "optimizer"): "lr: 0.05",
    }
    for args, text in shown.items():
        proc = cli("train", "--cfg", "job", *args, cwd=work)
        assert proc.returncode == 0 and text in proc.stdout, (args, proc.stderr)
    proc = cli("train", "--cfg", "job", "-cp", "../own", "optimizer=nosuch", cwd=work)
    check_refused(
        proc.returncode, proc.stdout, proc.stderr, work,
        ["Could not find 'optimizer/nosuch'; allowed: adagrad", "sgd, slow"],
    )  # fmt: skip


def test_unknown_command_is_one_error_line(cli):
    proc = cli("frobnicate")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpstudy: error:")
    assert "frobnicate" in lines[0] and "train" in lines[0] and "--help" in lines[0]


def test_top_level_help_goes_to_stdout(capsys):
    main(["--help"])
    out, err = capsys.readouterr()
    assert "usage: bpstudy" in out and err == ""


@pytest.mark.parametrize(
    ("folder", "cwd", "printed"),
    [
        ("venv/bin", ".", "venv/bin/bpstudy"),
        (".", ".", "./bpstudy"),  # a bare name would be looked up on PATH
        ("my tools/bin", ".", "'my tools/bin/bpstudy'"),  # pasted into a shell as one word
        ("venv/bin", "elsewhere", "{root}/venv/bin/bpstudy"),
    ],
)
def test_printed_command_runs_the_same_bpstudy_from_a_shell_here(
    tmp_path, monkeypatch, folder, cwd, printed
):
    import shlex

    from bpstudy.cli.args import command_name

    script = tmp_path / folder / "bpstudy"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/sh\n")
    (tmp_path / cwd).mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / cwd)
    monkeypatch.setenv("PATH", "/nonexistent")  # not on PATH: the path is needed
    monkeypatch.setattr("sys.argv", [str(script), "sweep"])
    expected = printed.format(root=tmp_path.resolve())
    assert command_name() == (shlex.quote(expected) if "{root}" in printed else expected)


@pytest.mark.parametrize(
    "override, says",
    [
        ("model.residual=true", "model.residual is a group of keys (enabled)"),
        ("modell.depth=3", "the config has: data, model, optimizer"),
    ],
)
def test_a_wrong_key_path_says_where_it_goes_wrong(cli, override, says):
    proc = cli("train", *TINY, override)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr


def test_tab_completion_in_bash_completes_train_overrides(tmp_path):
    """Hydra's completion script, installed as its docs say, asks `bpstudy -sc query=bash`
    (the program, not `bpstudy train`): the subcommand is completed, then train's keys
    and group options. Before, `-sc install=bash` registered the words `bpstudy` and
    `train` and every TAB ran a query bpstudy did not understand."""
    if shutil.which("bash") is None:
        pytest.fail("bash is needed for this test")
    script = textwrap.dedent(
        """
        eval "$(bpstudy train -sc install=bash)"
        complete -p bpstudy
        tab() {
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=($COMP_LINE)
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            [[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}
            hydra_bash_completion; echo "${COMPREPLY[*]}"
        }
        tab "bpstudy sw"
        tab "bpstudy train optimizer=ad"
        tab "bpstudy train model.activ"
        tab "bpstudy train -m data=sp"
        tab "bpstudy train model.depth=3 -m optimizer=ad"
        tab "bpstudy train --cfg "
        tab "bpstudy sweep qu"
        """
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("-F hydra_bash_completion bpstudy"), lines[0]
    assert lines[1] == "sweep"
    assert lines[2].split() == ["optimizer=adagrad", "optimizer=adam", "optimizer=adamw"]
    assert lines[3] == "model.activation="
    assert lines[4] == "data=spirals"
    assert lines[5].split() == ["optimizer=adagrad", "optimizer=adam", "optimizer=adamw"]
    assert lines[6] == ""  # a line Hydra cannot parse yet: nothing, and nothing on stderr
    assert lines[7] == "quickstart"  # a shipped sweep's name
    assert out.stderr == "", out.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "code"),
    [(["train", "--hydra-help"], 141), (["train", "--info"], 0), (["-sc", "install=bash"], 141)],
)
def test_output_cut_short_by_its_reader_is_not_an_error(tmp_path, args, code):
    """`bpstudy train --hydra-help | head -1`: a BrokenPipeError traceback before; now
    the exit a shell gives a command whose reader went away (128 + SIGPIPE). --info
    writes through Hydra's logging, which printed a "Logging error" traceback per line;
    its records are dropped now (the command itself succeeded). The completion script
    (`bpstudy -sc install=bash | head -3`) was Hydra's print, whose traceback Hydra shows."""
    exe = Path(sys.executable).with_name("bpstudy")
    proc = subprocess.Popen(
        [str(exe), *args], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == code, stderr
    assert stderr == "", stderr


def test_completion_takes_one_action_for_a_known_shell():
    from bpstudy.cli.completion import parse

    assert parse(["install=bash"]) == ("install", "bash")
    assert parse(["-sc", "query=fish"]) == ("query", "fish")
    for bad, says in ((["install=tcsh"], "got install=tcsh"), ([], "got nothing"),
                      (["install=bash", "-cp", "x"], "nothing else; got also -cp x")):  # fmt: skip
        with pytest.raises(BpstudyError, match=says):
            parse(bad)


# `bpstudy train` in its own process, with each validation and each data load counted
# (the real functions still run): validate is wrapped before any module imports it
COUNTING_TRAIN = textwrap.dedent("""
    import atexit, importlib, sys
    v = importlib.import_module("bpstudy.config.validate")
    d = importlib.import_module("bpstudy.data")

    calls = {"validate": 0, "load": 0}

    def counted(key, real):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)
        return wrapper

    v.validate = counted("validate", v.validate)
    for name, loader in list(d._LOADERS.items()):
        d._LOADERS[name] = counted("load", loader)
    atexit.register(lambda: print("counted", calls["validate"], calls["load"], file=sys.stderr))
    from bpstudy.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.parametrize(
    ("overrides", "validations", "loads"),
    [
        ([], 1, 1),  # one run: checked before Hydra starts, trained on what was checked
        (["-m", "model.depth=2,3"], 2, 1),  # one validation per job, one data set
        (["-m", "trainer.seed=0,1"], 2, 2),  # the seed splits the data: read per seed
    ],
)
def test_train_validates_each_job_once_and_reads_its_data_once(
    tmp_path, overrides, validations, loads
):
    if overrides:  # untracked: the jobs' MLflow runs would only cost time here
        args = ["train", *TINY, f"hydra.sweep.dir={tmp_path / 'multirun'}", *overrides]
    else:  # the default path: tracked, into a store of the test's own
        store = f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"
        args = ["train", *TINY[:-1], store, f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(
        [sys.executable, "-c", COUNTING_TRAIN, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"counted {validations} {loads}" in out.stderr.splitlines()
