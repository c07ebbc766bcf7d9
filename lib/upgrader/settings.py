"""The charm's configuration, validated with messages that name the option and accepted values.

Plain data, no ops: the charm builds it with ``self.load_config(Settings)`` (ops passes each
option with dashes turned to underscores) and the CLI from its arguments.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .errors import InvalidInputError, SignatureError
from .fetch import FetchSettings, check_ca_certificates
from .selection import Policy
from .signing import key_fingerprints
from .streams import DEFAULT_STREAM_URL, TrustPolicy, check_stream_name, check_stream_url

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


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated charm configuration.

    Raises:
        InvalidInputError: (a ValueError) naming the option and the accepted values.
    """

    stream_url: str = DEFAULT_STREAM_URL
    stream: str = "released"
    architectures: str = "amd64"
    agent_os: str = "ubuntu"
    selection_policy: str = Policy.DOCUMENTED.value
    verify_signatures: bool = True
    signing_keys: str = dataclasses.field(default="", repr=False)
    ca_certificates: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        """Validate every option."""
        check_stream_url(self.stream_url)
        check_stream_name(self.stream)
        parse_architectures(self.architectures)
        check_os(self.agent_os)
        Policy.parse(self.selection_policy, option="selection-policy")
        if not isinstance(self.verify_signatures, bool):
            raise InvalidInputError(
                f"invalid verify-signatures {self.verify_signatures!r}: use true or false"
            )
        if self.signing_keys.strip():
            try:
                key_fingerprints(self.signing_keys)  # InvalidInputError names signing-keys
            except SignatureError:
                pass  # gpg itself is unusable: reading the stream reports that
        if self.ca_certificates.strip():
            check_ca_certificates(self.ca_certificates)

    @property
    def arch_list(self) -> tuple[str, ...]:
        """The configured architectures, in order."""
        return parse_architectures(self.architectures)

    @property
    def policy(self) -> Policy:
        """The configured selection policy."""
        return Policy(self.selection_policy)

    def trust(self, allow_unsigned: str) -> TrustPolicy:
        """The trust policy of verify-signatures and signing-keys.

        Args:
            allow_unsigned: how the operator accepts unsigned metadata, for the refusal
                message (e.g. "run: juju config upgrader verify-signatures=false").
        """
        return TrustPolicy(
            keys=self.signing_keys.strip() or None,
            verify_signatures=self.verify_signatures,
            allow_unsigned=allow_unsigned,
        )

    def fetch_settings(self, environ: Mapping[str, str]) -> FetchSettings:
        """Network settings: Juju's proxy variables for charms plus the ca-certificates option."""
        return FetchSettings.from_charm_environ(
            environ, ca_certificates=self.ca_certificates.strip() or None
        )
