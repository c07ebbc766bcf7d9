"""The ``juju-upgrader`` command line: the parser, and one error line per failure.

Results go to stdout (``--format text|json|yaml``); notes, progress and errors to stderr. Exit
status 0 on success, 2 for a bad argument, 1 for any other failure, 130 when interrupted;
``--debug`` adds the traceback, ``--quiet`` silences notes and progress.

Juju runs a plugin with every argument as typed and sets ``JUJU_MODEL`` and ``JUJU_CONTROLLER``
for ``-m`` and ``-c`` (juju/juju ``cmd/juju/commands/plugin.go``), so ``-m/--model`` and
``-c/--controller`` are accepted before or after the command, and read from those variables
when not given.

Everything printed hides ``--stream-url`` credentials and shows the control characters of text
from servers, documents or ``juju`` as escapes (:func:`upgrader.urls.for_display`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
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


class _VersionAction(argparse.Action):
    """``--version``: the tool's own version (not Juju's)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        print(f"{PROG} {_tool_version()}")
        parser.exit()


def _tool_version() -> str:
    """The installed package's version, or the source tree's when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("upgrader")
    except metadata.PackageNotFoundError:
        return "0.1.0 (source tree)"


class _DescriptionAction(argparse.Action):
    """``--description``: the one line ``juju help plugins`` shows for this plugin."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        print(DESCRIPTION)
        parser.exit()


def _build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    parser = Parser(
        prog=PROG,
        description=f"{DESCRIPTION}. Also runs as a Juju plugin: juju upgrader ...",
        parents=[common_options(suppress=False)],
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="print the version of juju-upgrader and exit",
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


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """Parse the arguments; a missing command or a stray argument is a usage error.

    ``-m``/``-c`` not given are read from ``JUJU_MODEL``/``JUJU_CONTROLLER``; a model's
    ``CONTROLLER:`` part names the controller.
    """
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')")
    if extra:
        raise UsageError(
            f"unrecognized arguments: {' '.join(extra)} (see '{PROG} {args.command} --help')"
        )
    args.argv = list(argv)
    _resolve_juju_names(args, os.environ if environ is None else environ)
    return args


_CONTROLLER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_MODEL_NAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.+-]{0,62}[A-Za-z0-9])?(?:@[A-Za-z0-9.+-]{1,100})?/)?"
    r"[a-z0-9][a-z0-9-]{0,62}\Z"
)


def _resolve_juju_names(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Settle ``args.controller`` and ``args.model`` from the options and Juju's variables.

    Raises:
        UsageError: a malformed name, or ``-c`` and ``-m`` naming different controllers.
    """
    given_model = getattr(args, "model", None)
    model = given_model or environ.get("JUJU_MODEL") or None
    from_model = None
    if model is not None:
        source = "-m/--model" if given_model else "JUJU_MODEL"
        prefix, colon, name = model.rpartition(":")
        if (colon and not _CONTROLLER_NAME.match(prefix)) or not _MODEL_NAME.match(name):
            raise UsageError(
                f"invalid {source} {model!r}: use [CONTROLLER:]MODEL, e.g. prod:admin/default "
                "or controller"
            )
        from_model = prefix or None
    controller = getattr(args, "controller", None)
    if controller is not None and not _CONTROLLER_NAME.match(controller):
        raise UsageError(f"invalid -c/--controller {controller!r}: use a controller name")
    if controller and from_model and controller != from_model and given_model:
        raise UsageError(
            f"-c/--controller {controller} and -m/--model {model} name different controllers"
        )
    if controller is None:
        controller = from_model or environ.get("JUJU_CONTROLLER") or None
        if controller is not None and not _CONTROLLER_NAME.match(controller):
            raise UsageError(f"invalid JUJU_CONTROLLER {controller!r}: use a controller name")
    args.controller = controller
    args.model = model


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
    parser = _build_parser()
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
