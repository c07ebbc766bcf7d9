"""Reading the agent stream the options name, and saying how far it was trusted."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from upgrader.streams import StreamContents, TrustPolicy, read_stream

if TYPE_CHECKING:
    from upgrader.fetch import Fetcher


def open_fetcher(args: argparse.Namespace) -> Fetcher:
    """An HTTP client with the client's proxy variables and ``--ca-certificates``."""
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
