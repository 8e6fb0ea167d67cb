"""Shell completion (bash, zsh, fish) for `bpstudy train`'s overrides, by Hydra's own plugins.

    eval "$(bpstudy train -sc install=bash)"

Hydra's script registers the program's name and, on TAB, runs `PROGRAM -sc query=SHELL`
with the command line in COMP_LINE. For a console script with subcommands the program is
`bpstudy`, so every query arrives at `bpstudy -sc`: the subcommand word is completed
here, and a `train` line is handed to Hydra without its `train` word, as if `bpstudy
train` were a Hydra app of its own; `bpstudy sweep` gets the shipped sweeps' names. The
other commands get nothing from here (bash and zsh then offer file names; Hydra's fish
script does not).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from bpstudy.errors import BpstudyError

OPTIONS = ("-sc", "--shell-completion")
SHELLS = ("bash", "zsh", "fish")
ACTIONS = ("install", "uninstall", "query")


def parse(argv: list[str]) -> tuple[str, str]:
    """(action, shell) from what follows -sc: one `install=SHELL`, `uninstall=SHELL` or
    `query=SHELL`."""
    words = [a for a in argv if a not in OPTIONS]
    if len(words) > 1:
        raise BpstudyError(
            f"--shell-completion takes one ACTION=SHELL and nothing else; got also "
            f"{' '.join(words[1:])}"
        )
    action, _, shell = (words[0] if words else "").partition("=")
    if action not in ACTIONS or shell not in SHELLS:
        raise BpstudyError(
            f"--shell-completion takes one of {', '.join(a + '=SHELL' for a in ACTIONS)} "
            f"(SHELL: {', '.join(SHELLS)}), got {' '.join(words) or 'nothing'}; "
            'e.g. eval "$(bpstudy train -sc install=bash)"'
        )
    return action, shell


def main(argv: list[str], commands: tuple[str, ...]) -> None:
    """`bpstudy [train] -sc ACTION=SHELL`."""
    action, shell = parse(argv)
    if action != "query":  # printed here: Hydra's own print traced back on a broken pipe
        script = io.StringIO()
        with contextlib.redirect_stdout(script):
            _hydra(f"{action}={shell}")
        sys.stdout.write(script.getvalue())
        return
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    sep = "\n" if shell == "fish" else " "
    if len(words) < 2 or (len(words) == 2 and not line[-1:].isspace()):  # the command word
        prefix = words[1] if len(words) == 2 else ""
        print(sep.join(c for c in commands if c.startswith(prefix)))
        return
    if words[1] == "sweep" and _completing_third_word(line, words):
        print(sep.join(_sweep_names(words[2] if len(words) == 3 else "")))
        return
    if words[1] != "train":
        print("")  # nothing of ours
        return
    os.environ["COMP_LINE"] = _train_line(words[0], line)
    try:  # a TAB never writes to the terminal: a line Hydra cannot parse completes nothing
        with contextlib.redirect_stderr(io.StringIO()):
            _hydra(f"query={shell}")
    except SystemExit:
        print("")


def _completing_third_word(line: str, words: list[str]) -> bool:
    return (len(words) == 2 and line[-1:].isspace()) or (
        len(words) == 3 and not line[-1:].isspace()
    )


def _sweep_names(prefix: str) -> list[str]:
    """The shipped sweeps a `bpstudy sweep` word may name; none for what reads as a path
    (then bash and zsh offer file names)."""
    from bpstudy.paths import SWEEPS_DIR

    if "/" in prefix or prefix.startswith("."):
        return []
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml") if p.stem.startswith(prefix))


def _train_line(program: str, line: str) -> str:
    """The line Hydra's completion reads: without `train`, and with the options before
    the overrides (its parser takes the overrides as one run of words, while `bpstudy
    train` takes them interleaved); the word being completed stays last."""
    from bpstudy.cli.hydra_app import split_overrides

    words = line.split()[2:]
    partial = [] if line[-1:].isspace() or not words else [words.pop()]
    try:
        options, overrides = split_overrides(words)
    except BpstudyError:  # a line being typed (`--cfg ` without its value yet): as it is
        options, overrides = words, []
    return " ".join([program, *options, *overrides, *partial]) + (" " if not partial else "")


def _hydra(action: str) -> None:
    """Hydra's completion for the train app; the program it installs for is `bpstudy`."""
    from bpstudy.cli.train import run

    sys.argv = ["bpstudy", "--shell-completion", action]
    run()
