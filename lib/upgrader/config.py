"""The charm's configuration: every option parsed once, with messages naming the option.

Plain data, no ops: the charm loads :class:`CharmConfig` once per dispatch with
``self.load_config`` (ops passes each option with dashes turned to underscores); the CLI uses
the same parsers for its arguments.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .bounds import MAX_OPTION_TEXT_BYTES, MIB
from .errors import InvalidInputError
from .fetch import FetchSettings, check_ca_certificates
from .nginx import DEFAULT_PORT, check_port
from .selection import Policy
from .signing import check_key_text
from .streams import DEFAULT_STREAM_URL, TrustPolicy, check_stream_name, check_stream_url
from .sync import check_parallel

_WORD = re.compile(r"[a-z0-9][a-z0-9_.]*\Z")


def parse_architectures(text: str, *, option: str = "architectures") -> tuple[str, ...]:
    """Split a space- or comma-separated architecture list, keeping order, dropping repeats."""
    names = [n for n in re.split(r"[\s,]+", text.strip()) if n] if isinstance(text, str) else []
    bad = [n for n in names if not _WORD.match(n)]
    if not names or bad:
        raise InvalidInputError(
            f"invalid {option} {text!r}: use architecture names separated by spaces, "
            "e.g. 'amd64 arm64'"
        )
    return tuple(dict.fromkeys(names))


def check_os(text: str, *, option: str = "agent-os") -> str:
    """Validate an agent OS name (``ubuntu``; older streams use series names)."""
    if not isinstance(text, str) or not _WORD.match(text):
        raise InvalidInputError(
            f"invalid {option} {text!r}: use an OS name of lowercase letters such as ubuntu"
        )
    return text


def _check_text_size(value: str, option: str) -> None:
    if len(value) > MAX_OPTION_TEXT_BYTES:
        raise InvalidInputError(
            f"invalid {option}: {len(value)} characters, more than the "
            f"{MAX_OPTION_TEXT_BYTES // MIB} MiB accepted (a key or certificate block is a few KB)"
        )


def _check_bool(value: object, option: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"invalid {option} {value!r}: use true or false")
    return value


@dataclasses.dataclass(frozen=True)
class CharmConfig:
    """Every charm option, validated (config.yaml has the defaults and descriptions).

    Nothing here runs a program: ``signing-keys`` is checked for its armour, and gpg reads
    the keys only when a stream is verified.

    Raises:
        InvalidInputError: (a ValueError) naming the first bad option and the accepted values.
    """

    stream_url: str = DEFAULT_STREAM_URL
    stream: str = "released"
    architectures: str = "amd64"
    agent_os: str = "ubuntu"
    selection_policy: str = Policy.DOCUMENTED.value
    verify_signatures: bool = True
    signing_keys: str = dataclasses.field(default="", repr=False)
    ca_certificates: str = dataclasses.field(default="", repr=False)
    parallel_downloads: int = 4
    port: int = DEFAULT_PORT
    auto_sync: bool = False

    def __post_init__(self) -> None:
        """Validate every option, in the order config.yaml lists them."""
        check_stream_url(self.stream_url)
        check_stream_name(self.stream)
        parse_architectures(self.architectures)
        check_os(self.agent_os)
        Policy.parse(self.selection_policy, option="selection-policy")
        _check_bool(self.verify_signatures, "verify-signatures")
        _check_text_size(self.signing_keys, "signing-keys")
        if self.signing_keys.strip():
            check_key_text(self.signing_keys)
        _check_text_size(self.ca_certificates, "ca-certificates")
        if self.ca_certificates.strip():
            check_ca_certificates(self.ca_certificates)
        check_parallel(self.parallel_downloads, option="parallel-downloads")
        check_port(self.port)
        _check_bool(self.auto_sync, "auto-sync")

    @property
    def arch_list(self) -> tuple[str, ...]:
        """The configured architectures, in order."""
        return parse_architectures(self.architectures)

    @property
    def policy(self) -> Policy:
        """The configured selection policy."""
        return Policy(self.selection_policy)

    @property
    def keys(self) -> str | None:
        """The ``signing-keys`` to verify with, or None for Juju's release key."""
        return self.signing_keys.strip() or None

    def trust(self, allow_unsigned: str) -> TrustPolicy:
        """The trust policy of verify-signatures and signing-keys.

        Args:
            allow_unsigned: how the operator accepts unsigned metadata, for the refusal
                message (e.g. "run: juju config upgrader verify-signatures=false").
        """
        return TrustPolicy(
            keys=self.keys,
            verify_signatures=self.verify_signatures,
            allow_unsigned=allow_unsigned,
        )

    def fetch_settings(self, environ: Mapping[str, str]) -> FetchSettings:
        """Network settings: Juju's proxy variables for charms plus the ca-certificates option."""
        return FetchSettings.from_charm_environ(
            environ, ca_certificates=self.ca_certificates.strip() or None
        )
