"""``juju-upgrader``: the client tool, also a Juju plugin (``juju upgrader ...``).

Commands:

* ``plan``: the selection the charm's ``plan-upgrade`` action makes, with the same result keys.

Conventions: results go to stdout (``--format text|json|yaml``); notes, progress and errors go
to stderr. Exit status 0 on success, 2 for a bad argument, 1 for any other failure, 130 when
interrupted; each failure is one ``juju-upgrader: error: ...`` line (``--debug`` adds the
traceback). ``--quiet`` silences the notes and progress, never the results or errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from upgrader.errors import InvalidInputError, UpgraderError
from upgrader.juju_client import Detected, JujuCommandError, client_version, find_juju
from upgrader.juju_client import controller_agent_version as detect_agent_version
from upgrader.plan import PlanRequest, make_plan, next_steps, plan_results
from upgrader.selection import Outcome, Policy, Selection
from upgrader.settings import check_os, parse_architectures
from upgrader.streams import (
    DEFAULT_STREAM_URL,
    StreamContents,
    check_stream_name,
    check_stream_url,
    read_stream,
)
from upgrader.versions import Version, parse_lenient

if TYPE_CHECKING:
    from upgrader.fetch import Fetcher

# requests and PyYAML are imported only by the commands that use them, so that --help, bad
# arguments and Juju's `juju-upgrader --description` probe answer at once.

PROG = "juju-upgrader"
DESCRIPTION = "Plan Juju controller upgrades and stage agent binaries for air-gapped controllers"
FORMATS = ("text", "json", "yaml")
COMMANDS = ("plan",)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command-line argument is missing or malformed (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports a bad argument as one line instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _arg_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a parser that raises InvalidInputError into an argparse type with its message.

    argparse replaces a ValueError's message with a generic one; this keeps ours, which names
    the input and the accepted form.
    """

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def parse_stream_url(text: str) -> str:
    """Accept a stream URL, or a local directory (turned into a ``file://`` URL).

    A directory made by ``juju sync-agent-binary --local-dir D`` or ``juju-upgrader sync
    --local-dir D`` holds the stream under ``D/tools``; ``D`` itself is accepted for it.

    Raises:
        InvalidInputError: not an http, https or file URL, and not an existing directory.
    """
    accepted = (
        "use an http://, https:// or file:/// URL, or a local directory, holding streams/v1 "
        f"(e.g. {DEFAULT_STREAM_URL})"
    )
    if "://" in text or text.startswith("file:"):
        try:
            return check_stream_url(text, option="--stream-url")
        except InvalidInputError:
            raise InvalidInputError(f"invalid --stream-url {text!r}: {accepted}") from None
    if not text.strip():
        raise InvalidInputError(f"invalid --stream-url {text!r}: {accepted}")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"invalid --stream-url {text!r}: no such directory; {accepted}")
    path = path.resolve()
    if not (path / "streams" / "v1").is_dir() and (path / "tools" / "streams" / "v1").is_dir():
        path = path / "tools"
    return path.as_uri()


def _version_option(option: str) -> Callable[[str], Version]:
    def parse(text: str) -> Version:
        return parse_lenient(text)

    parse.__name__ = option
    return _arg_type(parse)


def _architectures(text: str) -> tuple[str, ...]:
    return parse_architectures(text, option="--arch")


def _stream(text: str) -> str:
    return check_stream_name(text, option="--stream")


def _os_name(text: str) -> str:
    return check_os(text, option="--os")


def _policy(text: str) -> Policy:
    return Policy.parse(text, option="--policy")


class _DescriptionAction(argparse.Action):
    """``--description``: the one line ``juju help plugins`` shows for this plugin."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        print(DESCRIPTION)
        parser.exit()


def _common_options(*, suppress: bool) -> _Parser:
    """Options accepted both before and after the command name.

    Juju passes a plugin every argument as typed (``juju upgrader -c prod plan``), so these
    work in either place. In the subcommands they default to SUPPRESS so that a value given
    before the command is not reset.
    """
    parent = _Parser(add_help=False)

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parent.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show a traceback when a command fails",
    )
    parent.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="print no notes or progress on stderr (results and errors are still printed)",
    )
    parent.add_argument(
        "-c",
        "--controller",
        metavar="NAME",
        default=default(None),
        help="the controller `juju show-controller` asks about (default: juju's current one)",
    )
    return parent


def _stream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream-url",
        type=_arg_type(parse_stream_url),
        default=DEFAULT_STREAM_URL,
        metavar="URL",
        help="agent stream: http(s)/file URL or a local directory holding streams/v1 "
        f"(default {DEFAULT_STREAM_URL})",
    )
    parser.add_argument(
        "--stream",
        type=_arg_type(_stream),
        default="released",
        metavar="NAME",
        help="stream name: released, proposed, devel, testing... (default released)",
    )
    parser.add_argument(
        "--arch",
        type=_arg_type(_architectures),
        action="append",
        metavar="ARCH",
        dest="arches",
        help="architecture the controller needs (repeat, or separate with commas; default amd64)",
    )


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="output format (default text; json and yaml use the plan-upgrade action's keys)",
    )


def _selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent-version",
        type=_version_option("agent_version"),
        metavar="VERSION",
        help="the controller's current agent version (default: from `juju show-controller`)",
    )
    parser.add_argument(
        "--client-version",
        type=_version_option("client_version"),
        metavar="VERSION",
        help="the juju client version that will run the upgrade (default: from `juju version`)",
    )
    parser.add_argument(
        "--target-version",
        type=_version_option("target_version"),
        metavar="VERSION",
        help="a specific version to upgrade to; the plan checks it is available and valid",
    )
    parser.add_argument(
        "--policy",
        type=_arg_type(_policy),
        default=Policy.DOCUMENTED,
        metavar="POLICY",
        help="selection rules: documented, juju-2.9 or juju-3 (default documented)",
    )
    parser.add_argument(
        "--os",
        type=_arg_type(_os_name),
        default="ubuntu",
        dest="os_name",
        metavar="OS",
        help="agent OS (default ubuntu)",
    )
    parser.add_argument(
        "--no-juju",
        action="store_true",
        help="never run the juju command to find versions; --agent-version is then required",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    parser = _Parser(
        prog=PROG,
        description=f"{DESCRIPTION}. Also runs as a Juju plugin: juju upgrader ...",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument(
        "--description",
        action=_DescriptionAction,
        nargs=0,
        help="print a one-line description (for `juju help plugins`)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common_options(suppress=True)

    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="tell which agent version to upgrade the controller to",
        description="Tell which agent version to upgrade the controller to, and the commands "
        "to run next. Changes nothing.",
    )
    _selection_options(plan)
    _stream_options(plan)
    _format_option(plan)
    plan.set_defaults(run=run_plan)
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


@dataclasses.dataclass
class Console:
    """Where a command writes: results to ``out``, notes and progress to ``err``."""

    out: TextIO
    err: TextIO
    quiet: bool = False

    def note(self, message: str) -> None:
        """Print an informational line on stderr, unless quiet."""
        if not self.quiet:
            print(f"{PROG}: {message}", file=self.err, flush=True)


def _fetcher() -> Fetcher:
    from upgrader.fetch import Fetcher, FetchSettings

    return Fetcher(FetchSettings.from_client_environ(os.environ))


def read_contents(fetcher: Fetcher, stream_url: str, stream: str) -> StreamContents:
    """Read one agent stream's metadata."""
    return read_stream(stream_url, stream, lambda url: fetcher.get_document(url).body)


@dataclasses.dataclass(frozen=True)
class Versions:
    """The agent and client versions a plan uses, and where each came from."""

    agent: Version
    agent_source: str
    client: Version | None
    client_source: str


def resolve_versions(args: argparse.Namespace) -> Versions:
    """Take the versions given as options; ask the ``juju`` command for the others.

    Raises:
        UsageError: no agent version given and no ``juju`` command to ask.
        JujuCommandError: ``juju`` was asked and failed.
    """
    agent: Version | None = args.agent_version
    client: Version | None = args.client_version
    agent_source = "--agent-version" if agent is not None else ""
    client_source = "--client-version" if client is not None else "not given"
    juju = None if args.no_juju else find_juju()
    if juju is not None and client is None:
        detected: Detected = client_version(juju)
        client, client_source = detected.version, detected.source
    if agent is None:
        if juju is None:
            why = "--no-juju was given" if args.no_juju else "the juju command is not on PATH"
            raise UsageError(
                f"give --agent-version (the controller's current agent version, e.g. 3.5.6): "
                f"{why}, so it cannot be read from `juju show-controller`"
            )
        try:
            detected = detect_agent_version(juju, args.controller)
        except JujuCommandError as exc:
            raise JujuCommandError(
                f"cannot read the controller's agent version: {exc}; give --agent-version"
            ) from None
        agent, agent_source = detected.version, detected.source
    return Versions(agent, agent_source, client, client_source)


def run_plan(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader plan``."""
    versions = resolve_versions(args)
    for name, value, source in (
        ("agent", versions.agent, versions.agent_source),
        ("client", versions.client, versions.client_source),
    ):
        if value is not None and source.startswith("juju ") and args.format != "text":
            console.note(f"{name} version {value} from `{source}`")
    request = PlanRequest(
        agent=versions.agent,
        client=versions.client,
        target=args.target_version,
        policy=args.policy,
        os_name=args.os_name,
        architectures=_arches(args),
    )
    with _fetcher() as fetcher:
        contents = read_contents(fetcher, args.stream_url, args.stream)
    selection = make_plan(contents, request)
    results = plan_results(selection, contents)
    if args.format == "text":
        console.out.write(plan_text(selection, contents, versions, request))
    else:
        console.out.write(render(results, args.format))
    return EXIT_OK


def _arches(args: argparse.Namespace) -> tuple[str, ...]:
    groups: list[tuple[str, ...]] = args.arches or [("amd64",)]
    return tuple(dict.fromkeys(a for group in groups for a in group))


def render(results: dict[str, Any], fmt: str) -> str:
    """Results as JSON or YAML text; in YAML, multi-line strings are literal blocks."""
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return yaml.dump(results, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=1000)


def plan_text(
    selection: Selection, contents: StreamContents, versions: Versions, request: PlanRequest
) -> str:
    """A plan written for a person: target, reason, where the versions came from, next steps."""
    if selection.outcome is Outcome.UPGRADE:
        headline = f"Upgrade the controller from {selection.agent} to {selection.target}."
    else:
        headline = f"The controller is up to date: {selection.agent} ({selection.reason})."
    client = (
        f"{versions.client} (from {_quote(versions.client_source)})"
        if versions.client is not None
        else "not given (rules for the agent's own major)"
    )
    signed = "signature verified" if contents.verified else "signature not checked"
    rows = [
        ("agent version", f"{versions.agent} (from {_quote(versions.agent_source)})"),
        ("client version", client),
        ("target version", str(selection.target)),
        ("policy", selection.policy.value),
        ("reason", selection.reason),
        ("available", ", ".join(str(v) for v in selection.candidates) or "nothing newer"),
        ("architectures", f"{', '.join(request.architectures)} ({request.os_name})"),
        ("source", f"{contents.base_url} ({contents.stream} stream, {signed})"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [headline, ""]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in rows]
    if selection.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in selection.warnings]
    lines += ["", "Next steps:"] + [f"  {step}" for step in next_steps(selection)]
    return "\n".join(lines) + "\n"


def _quote(source: str) -> str:
    return f"`{source}`" if source.startswith("juju ") else source


def _error(console_err: TextIO, message: str) -> None:
    text = " ".join(message.split())
    print(f"{PROG}: error: {text}", file=console_err, flush=True)


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
            traceback.print_exc(file=err)
        _error(err, str(exc) if isinstance(exc, UpgraderError) else _os_error(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc(file=err)
        _error(err, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, unless --debug
        if debug:
            traceback.print_exc(file=err)
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
