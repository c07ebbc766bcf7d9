"""The ``juju-upgrader`` command line: the parser, and one error line per failure.

Results go to stdout (``--format text|json|yaml``); notes, progress and errors to stderr. Exit
status 0 on success, 2 for a bad argument, 1 for any other failure, 130 when interrupted;
``--debug`` adds the traceback, ``--quiet`` silences notes and progress.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from upgrader.cli import bundle, plan, sync
from upgrader.cli.console import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    Console,
)
from upgrader.cli.options import Parser, UsageError, common_options
from upgrader.errors import UpgraderError
from upgrader.urls import redact_text

# The network, mirror and sync modules and PyYAML are imported only by the commands that use
# them, so that --help, bad arguments and Juju's `juju-upgrader --description` probe answer
# at once.

DESCRIPTION = "Plan Juju controller upgrades and stage agent binaries for air-gapped controllers"
COMMANDS = ("plan", "sync", "bundle")


class _DescriptionAction(argparse.Action):
    """``--description``: the one line ``juju help plugins`` shows for this plugin."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        print(DESCRIPTION)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    parser = Parser(
        prog=PROG,
        description=f"{DESCRIPTION}. Also runs as a Juju plugin: juju upgrader ...",
        parents=[common_options(suppress=False)],
    )
    parser.add_argument(
        "--description",
        action=_DescriptionAction,
        nargs=0,
        help="print a one-line description (for `juju help plugins`)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    common = common_options(suppress=True)

    for command in (plan, sync, bundle):
        command.register(commands, common)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse the arguments; a missing command or a stray argument is a usage error."""
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')")
    if extra:
        raise UsageError(
            f"unrecognized arguments: {' '.join(extra)} (see '{PROG} {args.command} --help')"
        )
    return args


def _error(console_err: TextIO, message: str) -> None:
    text = redact_text(" ".join(message.split()))
    print(f"{PROG}: error: {text}", file=console_err, flush=True)


def _traceback(console_err: TextIO) -> None:
    """Print the exception being handled (``--debug``); URLs show no credentials."""
    console_err.write(redact_text(traceback.format_exc()))


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
        stdout: where results go (default ``sys.stdout``).
        stderr: where notes, progress and errors go (default ``sys.stderr``).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    debug = "--debug" in args_list
    try:
        args = parse_args(parser, args_list)
        debug = args.debug
        console = Console(out, err, quiet=args.quiet)
        status = args.run(args, console)
        out.flush()
        return status
    except UsageError as exc:
        _error(err, str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader of our output went away (``| head``): say nothing more.
        _silence(out)
        return EXIT_FAILURE
    except (UpgraderError, OSError) as exc:
        if debug:
            _traceback(err)
        _error(err, str(exc) if isinstance(exc, UpgraderError) else _os_error(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if debug:
            _traceback(err)
        _error(err, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, unless --debug
        if debug:
            _traceback(err)
        _error(err, f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_FAILURE


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc)


def _silence(stream: TextIO) -> None:
    """Point a closed pipe at /dev/null so that Python's exit-time flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass
