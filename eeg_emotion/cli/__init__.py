"""eeg-emotion: one command per step, from synthetic data to a report.

    eeg-emotion COMMAND [arguments]      (or: python -m eeg_emotion COMMAND ...)
    eeg-emotion COMMAND --help           the command's own arguments

Each command is also a script in the checkout (python launch/COMMAND.py ...; training with
several processes: accelerate launch launch/train.py ...). Exit codes: 0 done, 2 bad settings
or data, 1 training failed, 3 training stopped on request (checkpoint saved).
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any, ParamSpec

from eeg_emotion.errors import EEGEmotionError, TrainingError

COMMANDS = (
    "synthesize",
    "preprocess",
    "plan",
    "train",
    "evaluate",
    "predict",
    "baseline",
    "cv",
    "tune",
    "aggregate",
    "compare",
    "report",
    "push",
)

P = ParamSpec("P")


def handle_errors(main: Callable[P, int]) -> Callable[P, int]:
    """A project error raised by `main` becomes one `error: ...` line on stderr and its exit code:
    1 for a training failure (the last good checkpoint is kept), 2 for anything else (settings,
    data, a run folder that takes no more writes). Other exceptions keep their traceback."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except EEGEmotionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, TrainingError) else 2
        except OSError as exc:
            # A path that cannot be read or written (full, read-only, a file where a folder
            # belongs): the path and the reason, not a traceback. Others keep their traceback.
            if exc.filename is None or exc.errno not in STORAGE_ERRNOS:
                raise
            print(f"error: {exc.filename}: {STORAGE_ERRNOS[exc.errno]}", file=sys.stderr)
            return 2

    return run


STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "over the disk quota",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EEXIST: "already exists (a file where a folder belongs?)",
    errno.ENOTDIR: "a file where a folder belongs (or a path under a file)",
    errno.EISDIR: "is a folder where a file belongs",
    errno.ENOENT: "no such file or folder",
}


def number(low: float, high: float, *, integer: bool = True, **ends: bool) -> Callable[[str], Any]:
    """argparse type: a finite number in [low, high] (`low_open`/`high_open` exclude an end);
    argparse puts the option's name in front of the message."""
    from eeg_emotion.numbers import Range

    rule = Range(low, high, integer=integer, **ends)

    def check(text: str) -> int | float:
        return rule.arg(text)

    check.__name__ = rule.text()  # argparse's wording when the type itself fails
    return check


def parser(doc: str | None, prog: str | None) -> argparse.ArgumentParser:
    """A command's parser: its module docstring, line breaks kept, is the help text."""
    return argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def settings_parser(
    doc: str | None, prog: str | None, *, config_help: str = "YAML settings file"
) -> argparse.ArgumentParser:
    """A parser for a command that reads settings: --config FILE and key.sub=value overrides."""
    p = parser(doc, prog)
    p.add_argument("--config", help=config_help)
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    return p


def folder_argument(argv: list[str] | None, doc: str | None) -> str:
    """The single FOLDER argument of a command that takes nothing else. The docstring is the
    help (stdout, exit 0) and the usage message (stderr, exit 2), like argparse's exits."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(doc)
        raise SystemExit(0)
    if len(args) != 1 or args[0].startswith("-"):
        print(doc, file=sys.stderr)
        raise SystemExit(2)
    return args[0]


def summary(command: str) -> str:
    """The first line of a command's docstring (importing a command loads no heavy library)."""
    doc = importlib.import_module(f"eeg_emotion.cli.{command}").__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    """`eeg-emotion COMMAND ...`: run that command's main with the remaining arguments."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COMMANDS:
        command = importlib.import_module(f"eeg_emotion.cli.{args[0]}")
        return command.main(args[1:], prog=f"eeg-emotion {args[0]}")
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {summary(name)}" for name in COMMANDS)
    p = argparse.ArgumentParser(
        prog="eeg-emotion",
        usage="%(prog)s [-h] COMMAND [arguments ...]",
        description=__doc__,
        epilog=f"commands:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of the commands below")
    p.parse_args(args)  # no command: --help lists them, anything else is a usage error
    return 2
