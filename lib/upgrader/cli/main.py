"""``juju-upgrader``: the client tool, also a Juju plugin (``juju upgrader ...``).

Commands:

* ``plan``: the selection the charm's ``plan-upgrade`` action makes, with the same result keys.
* ``sync [VERSION] --local-dir DIR``: stage agent binaries into DIR in the layout the charm and
  ``juju sync-agent-binary --local-dir`` use (``DIR/tools/...``), with the charm's engine
  (:mod:`upgrader.sync`); the same result keys as the ``sync-binaries`` action. The verified
  upstream metadata is kept in ``DIR/.upstream`` (:mod:`upgrader.upstream`), so a later sync
  of an unchanged stream reads it with one request; a note on stderr says which was done.
* ``bundle DIR -o agents.tar.gz``: the archive the charm's ``agent-binaries`` resource accepts
  (:mod:`upgrader.bundle`).

Metadata signatures are checked as the charm does (:class:`upgrader.streams.TrustPolicy`):
against Juju's release key or ``--signing-keys``; ``--no-verify-signatures`` accepts unsigned
metadata from sources other than the official stream.

Conventions: results go to stdout (``--format text|json|yaml``); notes, progress and errors go
to stderr. Exit status 0 on success, 2 for a bad argument, 1 for any other failure, 130 when
interrupted; each failure is one ``juju-upgrader: error: ...`` line (``--debug`` adds the
traceback). ``--quiet`` silences the notes and progress, never the results or errors. A
``--stream-url`` may carry credentials (``https://user:token@host/...``): they are sent to the
server, and shown as ``***`` in everything printed (:mod:`upgrader.urls`), where the control
characters of text from servers, documents or ``juju`` show as escapes.
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
from upgrader.urls import for_display

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
    text = for_display(" ".join(message.split()))
    print(f"{PROG}: error: {text}", file=console_err, flush=True)


def _traceback(console_err: TextIO) -> None:
    """Print the exception being handled (``--debug``), shown by :func:`for_display`."""
    console_err.write(for_display(traceback.format_exc(), multiline=True))


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
