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
server, and shown as ``***`` in everything printed (:mod:`upgrader.urls`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
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
    TrustPolicy,
    check_stream_name,
    check_stream_url,
    read_stream,
)
from upgrader.urls import redact_text, redact_url
from upgrader.versions import SeriesFilter, Version, parse_lenient, parse_major_minor

if TYPE_CHECKING:
    from upgrader.fetch import Fetcher
    from upgrader.mirror import Mirror
    from upgrader.sync import SyncRequest, SyncResult

# The network, mirror and sync modules and PyYAML are imported only by the commands that use
# them, so that --help, bad arguments and Juju's `juju-upgrader --description` probe answer
# at once.

PROG = "juju-upgrader"
DESCRIPTION = "Plan Juju controller upgrades and stage agent binaries for air-gapped controllers"
FORMATS = ("text", "json", "yaml")
COMMANDS = ("plan", "sync", "bundle")
DEFAULT_JOBS = 4

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
            raise InvalidInputError(
                f"invalid --stream-url {redact_url(text)!r}: {accepted}"
            ) from None
    if not text.strip():
        raise InvalidInputError(f"invalid --stream-url {redact_url(text)!r}: {accepted}")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"invalid --stream-url {text!r}: no such directory; {accepted}")
    path = path.resolve()
    if not (path / "streams" / "v1").is_dir() and (path / "tools" / "streams" / "v1").is_dir():
        path = path / "tools"
    return path.as_uri()


def _architectures(text: str) -> tuple[str, ...]:
    return parse_architectures(text, option="--arch")


def _stream(text: str) -> str:
    return check_stream_name(text, option="--stream")


def _os_name(text: str) -> str:
    return check_os(text, option="--os")


def _policy(text: str) -> Policy:
    return Policy.parse(text, option="--policy")


def _series(text: str) -> SeriesFilter:
    return parse_major_minor(text)


def _jobs(text: str) -> int:
    from upgrader.sync import MAX_PARALLEL

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL:
        raise InvalidInputError(
            f"invalid --jobs {text!r}: use a whole number from 1 to {MAX_PARALLEL}"
        )
    return value


def _option_file(option: str, text: str, wanted: str) -> str:
    """Read the text file an option names; a failure names the option, the file and ``wanted``."""
    try:
        return Path(text).expanduser().read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {option} {text!r}: {exc.strerror or exc}; give a file of {wanted}"
        ) from None


def _keys_file(text: str) -> str:
    """Read an ASCII-armoured public key file for --signing-keys."""
    wanted = "ASCII-armoured public keys (gpg --armor --export KEYID > keys.asc)"
    keys = _option_file("--signing-keys", text, wanted)
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in keys:
        raise InvalidInputError(
            f"invalid --signing-keys {text!r}: it holds no ASCII-armoured public key; export "
            "one with gpg --armor --export KEYID > keys.asc"
        )
    return keys


def _ca_file(text: str) -> str:
    """Read a PEM file of extra CA certificates for --ca-certificates."""
    from upgrader.fetch import check_ca_certificates

    wanted = "PEM CA certificates (-----BEGIN CERTIFICATE-----)"
    pem = _option_file("--ca-certificates", text, wanted)
    try:
        return check_ca_certificates(pem)
    except InvalidInputError as exc:
        reason = str(exc).removeprefix("ca-certificates: ")
        raise InvalidInputError(f"invalid --ca-certificates {text!r}: {reason}") from None


def _local_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not text.strip() or (path.exists() and not path.is_dir()):
        raise InvalidInputError(
            f"invalid --local-dir {text!r}: give a directory to stage into (it is created if "
            "missing)"
        )
    return path


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


def _trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-keys",
        type=_arg_type(_keys_file),
        metavar="FILE",
        help="ASCII-armoured public keys the metadata may be signed with (default: Juju's "
        "release key; the official stream is always checked against that key)",
    )
    parser.add_argument(
        "--verify-signatures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse sources without valid signed metadata (default); with "
        "--no-verify-signatures, unsigned metadata is read from sources other than the "
        "official stream",
    )
    parser.add_argument(
        "--ca-certificates",
        type=_arg_type(_ca_file),
        metavar="FILE",
        help="PEM certificates of a private CA to trust for an https --stream-url or an "
        "https:// proxy, besides the machine's trust store and certifi's bundle",
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
        type=_arg_type(parse_lenient),
        metavar="VERSION",
        help="the controller's current agent version (default: from `juju show-controller`)",
    )
    parser.add_argument(
        "--client-version",
        type=_arg_type(parse_lenient),
        metavar="VERSION",
        help="the juju client version that will run the upgrade (default: from `juju version`)",
    )
    parser.add_argument(
        "--target-version",
        type=_arg_type(parse_lenient),
        metavar="VERSION",
        help="a specific version to upgrade to; the plan checks it is available and valid",
    )
    parser.add_argument(
        "--policy",
        type=_arg_type(_policy),
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
    _trust_options(plan)
    _format_option(plan)
    plan.set_defaults(run=run_plan)

    sync = commands.add_parser(
        "sync",
        parents=[common],
        help="stage agent binaries into a local directory (a mirror the controller can use)",
        description="Download agent binaries, verified against the stream's metadata, into "
        "DIR/tools in the layout `juju sync-agent-binary --local-dir DIR` writes. With "
        "VERSION (major or major.minor), every version of that series; without it, the target "
        "`juju-upgrader plan` selects with the same options. Interrupted runs resume.",
    )
    sync.add_argument(
        "version",
        nargs="?",
        type=_arg_type(_series),
        metavar="VERSION",
        help="major or major.minor to stage every version of, e.g. 3 or 3.6 (not 3.6.1); "
        "default: the plan's target",
    )
    sync.add_argument(
        "--local-dir",
        type=_arg_type(_local_dir),
        required=True,
        metavar="DIR",
        help="where to stage: DIR/tools gets the tarballs and streams/v1 metadata",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="download nothing: say what would be staged and how many bytes",
    )
    sync.add_argument(
        "--jobs",
        type=_arg_type(_jobs),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"downloads at once, 1 to 16 (default {DEFAULT_JOBS})",
    )
    _selection_options(sync)
    _stream_options(sync)
    _trust_options(sync)
    _format_option(sync)
    sync.set_defaults(run=run_sync)

    bundle = commands.add_parser(
        "bundle",
        parents=[common],
        help="pack a staged directory into the charm's agent-binaries archive",
        description="Write the archive the upgrader charm's agent-binaries resource accepts: "
        "the metadata of DIR/tools/streams/v1 and every tarball it lists, each checked "
        "against its listed size and sha256. Carry it to the air-gapped site and attach it "
        "with `juju attach-resource upgrader agent-binaries=agents.tar.gz`.",
    )
    bundle.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="a directory made by `juju-upgrader sync --local-dir DIR` or `juju "
        "sync-agent-binary --local-dir DIR` (or its tools directory)",
    )
    bundle.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("agents.tar.gz"),
        metavar="FILE",
        help="the archive to write (default agents.tar.gz)",
    )
    bundle.add_argument("--force", action="store_true", help="replace FILE if it exists")
    bundle.add_argument(
        "--signing-keys",
        type=_arg_type(_keys_file),
        metavar="FILE",
        help="public keys for signed (.sjson) metadata in DIR (default: Juju's release key)",
    )
    _format_option(bundle)
    bundle.set_defaults(run=run_bundle)
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
        """Print an informational line on stderr, unless quiet (URLs show no credentials)."""
        if not self.quiet:
            print(redact_text(f"{PROG}: {message}"), file=self.err, flush=True)

    def result(self, text: str) -> None:
        """Write results on stdout; the URLs they quote show no credentials."""
        self.out.write(redact_text(text))


def _fetcher(args: argparse.Namespace) -> Fetcher:
    from upgrader.fetch import Fetcher, FetchSettings

    settings = FetchSettings.from_client_environ(os.environ, ca_certificates=args.ca_certificates)
    return Fetcher(settings)


def trust_policy(args: argparse.Namespace) -> TrustPolicy:
    """The metadata the options accept (the charm's rules, with the CLI's flag named)."""
    return TrustPolicy(
        keys=args.signing_keys,
        verify_signatures=args.verify_signatures,
        allow_unsigned="give --no-verify-signatures (or sign it and give --signing-keys)",
    )


def read_contents(fetcher: Fetcher, args: argparse.Namespace) -> StreamContents:
    """Read the agent stream the options name, checking signatures as they say."""
    return read_stream(args.stream_url, args.stream, fetcher, trust=trust_policy(args))


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


def plan_request(args: argparse.Namespace, versions: Versions) -> PlanRequest:
    """The plan the options ask for."""
    return PlanRequest(
        agent=versions.agent,
        client=versions.client,
        target=args.target_version,
        policy=args.policy or Policy.DOCUMENTED,
        os_name=args.os_name,
        architectures=_arches(args),
    )


def _note_detected(console: Console, versions: Versions) -> None:
    """Say on stderr which versions came from juju (text plans show it in the output)."""
    for name, value, source in (
        ("agent", versions.agent, versions.agent_source),
        ("client", versions.client, versions.client_source),
    ):
        if value is not None and source.startswith("juju "):
            console.note(f"{name} version {value} from `{source}`")


def run_plan(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader plan``."""
    versions = resolve_versions(args)
    if args.format != "text":
        _note_detected(console, versions)
    request = plan_request(args, versions)
    with _fetcher(args) as fetcher:
        contents = read_contents(fetcher, args)
    selection = make_plan(contents, request)
    results = plan_results(selection, contents)
    if args.format == "text":
        console.result(plan_text(selection, contents, versions, request, trust_policy(args)))
    else:
        console.result(render(results, args.format))
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
    selection: Selection,
    contents: StreamContents,
    versions: Versions,
    request: PlanRequest,
    trust: TrustPolicy,
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
    rows = [
        ("agent version", f"{versions.agent} (from {_quote(versions.agent_source)})"),
        ("client version", client),
        ("target version", str(selection.target)),
        ("policy", selection.policy.value),
        ("reason", selection.reason),
        ("available", ", ".join(str(v) for v in selection.candidates) or "nothing newer"),
        ("architectures", f"{', '.join(request.architectures)} ({request.os_name})"),
        ("source", f"{contents.base_url} ({contents.stream} stream)"),
        ("signature", signature_text(contents, trust)),
    ]
    lines = [headline, "", *table(rows)]
    if selection.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in selection.warnings]
    lines += ["", "Next steps:"] + [f"  {step}" for step in next_steps(selection)]
    return "\n".join(lines) + "\n"


def table(rows: Sequence[tuple[str, str]]) -> list[str]:
    """``  label:  value`` lines with the values aligned."""
    width = max(len(label) for label, _ in rows) + 2
    return [f"  {label + ':':<{width}}{value}" for label, value in rows]


def signature_text(contents: StreamContents, trust: TrustPolicy) -> str:
    """Whether the metadata was verified, with which keys, and if not, why."""
    if contents.verified:
        official = trust.is_official(contents.base_url)
        keys = "--signing-keys" if trust.keys and not official else "Juju's release key"
        return f"verified ({keys})"
    reason = contents.unverified_reason
    if not reason or reason.startswith("no signed metadata"):
        return "not verified: the source has no signed metadata (--no-verify-signatures)"
    return f"not verified: {reason}"


# -- sync ------------------------------------------------------------------------------------

_PLAN_ONLY = ("agent_version", "client_version", "target_version", "policy")


def sync_request(
    args: argparse.Namespace, contents: StreamContents, console: Console
) -> SyncRequest:
    """What to stage: the VERSION series, or the target the plan selects.

    Raises:
        UsageError: VERSION given together with plan options.
        SelectionError: no plan can be made.
    """
    from upgrader.sync import SyncRequest

    arches = _arches(args)
    if args.version is not None:
        given = [f"--{name.replace('_', '-')}" for name in _PLAN_ONLY if getattr(args, name)]
        if given:
            raise UsageError(
                f"{', '.join(given)} chooses the version to stage when VERSION is not given; "
                f"give either VERSION ({args.version}) or the plan options"
            )
        return SyncRequest(series=args.version, os_names=(args.os_name,), architectures=arches)
    versions = resolve_versions(args)
    _note_detected(console, versions)
    selection = make_plan(contents, plan_request(args, versions))
    if selection.outcome is Outcome.UPGRADE:
        console.note(
            f"the plan selects {selection.target} (upgrade from {selection.agent}; "
            f"{selection.reason})"
        )
    else:
        console.note(f"the controller is up to date at {selection.agent}; staging that version")
    return SyncRequest(
        versions=(selection.target,), os_names=(args.os_name,), architectures=arches
    )


def run_sync(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader sync``."""
    from upgrader.mirror import Mirror
    from upgrader.progress import TransferDisplay
    from upgrader.sync import plan_sync, select_entries, sync, sync_results
    from upgrader.upstream import keep_upstream, read_upstream

    mirror = Mirror(args.local_dir)
    with _fetcher(args) as fetcher:
        trust = trust_policy(args)
        read = read_upstream(
            mirror, args.stream_url, args.stream, fetcher, trust=trust, save=False
        )
        contents = read.contents
        request = sync_request(args, contents, console)
        select_entries(contents, request)  # a request the stream cannot meet: one error line
        if args.dry_run:
            console.note(read.note)
            result = sync(mirror, contents, request, fetcher, dry_run=True, parallel=args.jobs)
        else:
            _make_dir(args.local_dir)
            console.note(keep_upstream(mirror, read).note)
            display = None if console.quiet else TransferDisplay(console.err, prefix=f"{PROG}: ")
            if display is not None:
                pending = plan_sync(contents, mirror.staged_all(), request)
                display.start(len(pending.downloads), pending.download_bytes)
            with _exit_at_once_on_interrupt(console), display or _nothing():
                result = sync(
                    mirror, contents, request, fetcher, parallel=args.jobs, progress=display
                )
    url = mirror.tools.resolve().as_uri()
    if args.format == "text":
        console.result(sync_text(result, contents, mirror, url, trust_policy(args)))
    else:
        console.result(render(sync_results(result, url), args.format))
    return EXIT_OK


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpgraderError(f"cannot create --local-dir {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _exit_at_once_on_interrupt(console: Console) -> Iterator[None]:
    """Make Ctrl-C end a sync at once, instead of after the downloads in flight.

    The staging engine keeps the mirror valid whatever the moment the process dies (it is
    tested with SIGKILL) and resumes partial downloads, so exiting without unwinding is safe;
    unwinding would wait for every download thread to finish its file.
    """

    def stop(signum: int, _frame: object) -> None:
        console.err.write(
            f"\n{PROG}: error: interrupted; the staged mirror is unchanged and consistent, "
            "and running the same command again resumes the downloads\n"
        )
        console.err.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sync_text(
    result: SyncResult, contents: StreamContents, mirror: Mirror, url: str, trust: TrustPolicy
) -> str:
    """A sync summary for a person: what was staged, and how the controller gets it."""
    from upgrader.progress import format_size

    staged = len(result.staged)
    noun = "agent binary" if staged == 1 else "agent binaries"
    versions = ", ".join(str(v) for v in result.versions)
    if result.dry_run:
        headline = (
            f"Dry run: would stage {staged} {noun} of {versions} into {mirror.tools} "
            f"({format_size(result.bytes_downloaded)} to download)."
        )
    elif staged:
        headline = (
            f"Staged {staged} {noun} of {versions} into {mirror.tools} "
            f"({format_size(result.bytes_downloaded)} downloaded in {result.seconds:.1f} s)."
        )
    else:
        headline = f"Nothing to download: {versions} already staged in {mirror.tools}."
    resumed = sum(f.resumed_from for f in result.files)
    rows = [
        ("versions", versions),
        ("staged", ", ".join(str(b) for b in result.staged) or "none"),
        ("present", ", ".join(str(b) for b in result.present) or "none"),
    ]
    if result.missing:
        rows.append(("not in stream", ", ".join(str(b) for b in result.missing)))
    if resumed:
        rows.append(("resumed", f"{format_size(resumed)} reused from an interrupted run"))
    rows += [
        ("source", f"{contents.base_url} ({contents.stream} stream)"),
        ("signature", signature_text(contents, trust)),
        ("local URL", url),
    ]
    lines = [headline, "", *table(rows)]
    if not result.dry_run:
        lines += ["", *serve_steps(mirror.root, max(result.versions))]
    return "\n".join(lines) + "\n"


def serve_steps(root: Path, target: Version) -> list[str]:
    """The ways to get a staged directory to the controller, then the upgrade."""
    tools = root / "tools"
    return [
        "Next steps: get the binaries to the controller, one of",
        "  a. serve them and point the controller at them:",
        f"       python3 -m http.server --directory {tools} 8080",
        "       juju model-config -m controller agent-metadata-url=http://<this-host>:8080",
        "  b. carry them to the site and give them to the upgrader charm:",
        f"       {PROG} bundle {root} -o agents.tar.gz",
        "       juju attach-resource upgrader agent-binaries=agents.tar.gz",
        "  c. upload them into the controller:",
        f"       juju sync-agent-binary --source {root} --agent-version {target}",
        "then:",
        f"  juju upgrade-controller --agent-version {target}",
    ]


# -- bundle ----------------------------------------------------------------------------------


def run_bundle(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader bundle``."""
    from upgrader.bundle import find_tools_dir, make_bundle
    from upgrader.progress import format_size

    try:
        find_tools_dir(args.directory)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    output: Path = args.output
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; give --force to replace it, or another -o FILE")
    if output.exists() and not output.is_file():
        raise UsageError(f"-o {output} is not a regular file")
    result = make_bundle(
        args.directory,
        output,
        keys=args.signing_keys,
        log=None if console.quiet else console.note,
    )
    results = {
        "output": str(result.output),
        "binaries": ", ".join(str(b) for b in result.binaries),
        "files": str(result.files),
        "bytes": str(result.bytes),
        "skipped": ", ".join(result.skipped),
    }
    if args.format != "text":
        console.result(render(results, args.format))
        return EXIT_OK
    count = len(result.binaries)
    noun = "agent binary" if count == 1 else "agent binaries"
    rows = [
        ("binaries", results["binaries"] or "none"),
        ("files", f"{result.files} ({format_size(result.bytes)} before compression)"),
    ]
    if result.skipped:
        rows.append(("skipped", f"{results['skipped']} (not listed in the metadata)"))
    lines = [
        f"Wrote {output} with {count} {noun} ({format_size(output.stat().st_size)}).",
        "",
        *table(rows),
        "",
        "Next steps (carry the archive to the controller's site, then):",
        f"  juju attach-resource upgrader agent-binaries={output}",
    ]
    console.result("\n".join(lines) + "\n")
    return EXIT_OK


def _quote(source: str) -> str:
    return f"`{source}`" if source.startswith("juju ") else source


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
