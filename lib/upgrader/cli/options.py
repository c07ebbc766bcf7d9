"""The command line's shared pieces: the parser, argument types and the option groups.

Each argument type turns a string into parsed data or raises :class:`InvalidInputError`, whose
message names the option and the accepted form; :func:`arg_type` keeps that message where
argparse would print a generic one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from upgrader.bounds import MAX_OPTION_TEXT_BYTES, MIB, TooLargeError, preview, read_file
from upgrader.config import check_os, parse_architectures
from upgrader.errors import InvalidInputError
from upgrader.selection import Policy
from upgrader.streams import DEFAULT_STREAM_URL, check_stream_name, check_stream_url
from upgrader.urls import redact_url
from upgrader.versions import parse_lenient

FORMATS = ("text", "json", "yaml")


class UsageError(Exception):
    """A command-line argument is missing or malformed (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser that reports a bad argument as one line instead of exiting.

    Options are taken only as spelled in full, as Juju's own commands take them: the plan's
    runbook repeats --signing-keys and --ca-certificates as given, so an abbreviation such
    as --sign would be read here but left out of the printed ``juju-upgrader sync``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As ArgumentParser's, without abbreviations unless asked for."""
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def arg_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
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


def _parse_stream_url(text: str) -> str:
    """Accept a stream URL, or a local directory (turned into a ``file://`` URL).

    A directory made by ``juju sync-agent-binary --local-dir D`` or ``juju-upgrader sync
    --local-dir D`` holds the stream under ``D/tools``; ``D`` itself is accepted for it.

    Raises:
        InvalidInputError: not an http, https or file URL, and not an existing directory.
    """
    form = (
        "an http://, https:// or file:/// URL, or a local directory, holding streams/v1 "
        f"(e.g. {DEFAULT_STREAM_URL})"
    )
    accepted = f"use {form}"
    if "://" in text or text.startswith("file:"):
        return check_stream_url(text, option="--stream-url", accepted=form)
    if not text.strip():
        raise InvalidInputError(f"invalid --stream-url {redact_url(text)!r}: {accepted}")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise InvalidInputError(
            f"invalid --stream-url {preview(text, 200)}: no such directory; {accepted}"
        )
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


MAX_OPTION_FILE_BYTES = MAX_OPTION_TEXT_BYTES
"""The largest --signing-keys or --ca-certificates file read (a full CA bundle is ~200 KB)."""


def _option_file(option: str, text: str, wanted: str) -> str:
    """Read the text file an option names; a failure names the option, the file and ``wanted``.

    A pipe (``--signing-keys <(gpg --export ...)``) is read too, up to the same size.
    """
    try:
        data = read_file(Path(text).expanduser(), MAX_OPTION_FILE_BYTES)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {option} {text!r}: {exc.strerror or exc}; give a file of {wanted}"
        ) from None
    except TooLargeError:
        raise InvalidInputError(
            f"invalid {option} {text!r}: it holds more than {MAX_OPTION_FILE_BYTES} bytes "
            f"({MAX_OPTION_FILE_BYTES // MIB} MiB); give a file of {wanted}"
        ) from None
    return data.decode("utf-8", errors="replace")


def keys_file(text: str) -> str:
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


def common_options(*, suppress: bool) -> Parser:
    """Options accepted both before and after the command name.

    Juju passes a plugin every argument as typed (``juju upgrader -c prod plan``), so these
    work in either place. In the subcommands they default to SUPPRESS so that a value given
    before the command is not reset.
    """
    parent = Parser(add_help=False)

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
        help="the controller `juju show-controller` asks about (default: $JUJU_CONTROLLER, "
        "else juju's current one)",
    )
    parent.add_argument(
        "-m",
        "--model",
        metavar="[CONTROLLER:]MODEL",
        default=default(None),
        help="a model of the controller to plan for (default: $JUJU_MODEL); its CONTROLLER: "
        "part picks the controller, and a plan covers every model of that controller",
    )
    return parent


def stream_options(parser: argparse.ArgumentParser) -> None:
    """Add --stream-url, --stream and --arch: which stream, and which binaries in it."""
    parser.add_argument(
        "--stream-url",
        type=arg_type(_parse_stream_url),
        default=DEFAULT_STREAM_URL,
        metavar="URL",
        help="agent stream: http(s)/file URL or a local directory holding streams/v1 "
        f"(default {DEFAULT_STREAM_URL})",
    )
    parser.add_argument(
        "--stream",
        type=arg_type(_stream),
        default="released",
        metavar="NAME",
        help="stream name: released, proposed, devel, testing... (default released)",
    )
    parser.add_argument(
        "--arch",
        type=arg_type(_architectures),
        action="append",
        metavar="ARCH",
        dest="arches",
        help="architecture the controller needs (repeat, or separate with commas; default amd64)",
    )


def trust_options(parser: argparse.ArgumentParser) -> None:
    """Add --signing-keys, --verify-signatures and --ca-certificates: what is trusted."""
    parser.add_argument(
        "--signing-keys",
        type=arg_type(keys_file),
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
        type=arg_type(_ca_file),
        metavar="FILE",
        help="PEM certificates of a private CA to trust for an https --stream-url or an "
        "https:// proxy, besides the machine's trust store and certifi's bundle",
    )


def format_option(parser: argparse.ArgumentParser, keys: str) -> None:
    """Add --format: text for a person, json or yaml with ``keys`` (said in the help)."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help=f"output format (default text; json and yaml use {keys})",
    )


def selection_options(parser: argparse.ArgumentParser) -> None:
    """Add the versions and policy a plan starts from, and --os and --no-juju."""
    parser.add_argument(
        "--agent-version",
        type=arg_type(parse_lenient),
        metavar="VERSION",
        help="the controller's current agent version (default: from `juju show-controller`)",
    )
    parser.add_argument(
        "--client-version",
        type=arg_type(parse_lenient),
        metavar="VERSION",
        help="the juju client version that will run the upgrade (default: from `juju version`)",
    )
    parser.add_argument(
        "--target-version",
        type=arg_type(parse_lenient),
        metavar="VERSION",
        help="a specific version to upgrade to; the plan checks it is available and valid",
    )
    parser.add_argument(
        "--policy",
        type=arg_type(_policy),
        metavar="POLICY",
        help="selection rules: documented, juju-2.9 or juju-3 (default documented)",
    )
    parser.add_argument(
        "--os",
        type=arg_type(_os_name),
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


def wanted_arches(args: argparse.Namespace) -> tuple[str, ...]:
    """The --arch values in order, without repeats (amd64 when none is given)."""
    groups: list[tuple[str, ...]] = args.arches or [("amd64",)]
    return tuple(dict.fromkeys(a for group in groups for a in group))
