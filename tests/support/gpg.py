"""Throwaway OpenPGP keys and signatures made with the real gpg during a test run.

``throwaway_keys(home)`` makes the keys every signing test needs; ``sign_stream`` clearsigns a
stream tree the way Canonical's ``sign_metadata.py`` does, so tests read real ``.sjson`` files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.streams import Agent, write_stream

GPG_MISSING = shutil.which("gpg") is None
"""True when gpg is not installed (tests needing it skip, or fail under UPGRADER_CI=1)."""


NEEDS_GPG = [
    pytest.mark.needs_system,
    pytest.mark.skipif(
        GPG_MISSING and os.environ.get("UPGRADER_CI") != "1", reason="gpg is not installed"
    ),
]
"""Marks for tests that need gpg: skipped without it, unless UPGRADER_CI=1 (then they fail).

Use ``pytestmark = NEEDS_GPG`` in a module, or :func:`needs_gpg` on one test."""


def needs_gpg(func: Callable) -> Callable:
    """Apply :data:`NEEDS_GPG` to one test."""
    for mark in NEEDS_GPG:
        func = mark(func)
    return func


@dataclass(frozen=True)
class Key:
    """A throwaway key pair living in the test GnuPG home."""

    fingerprint: str
    armoured: str


class Signer:
    """Drives gpg in a private home directory to make keys and signatures."""

    def __init__(self, home: Path) -> None:
        """Use ``home`` (mode 0700) as the GnuPG home."""
        self.home = home

    def gpg(self, *args: str, stdin: bytes = b"") -> bytes:
        """Run gpg in the test home; fail the test if it fails."""
        result = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", *args],
            input=stdin,
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    def new_key(self, name: str, *, expire: str = "never", faked_time: str | None = None) -> Key:
        """Make an ed25519 signing key without a passphrase."""
        faked = ["--faked-system-time", faked_time] if faked_time else []
        uid = f"{name} <{name.lower().replace(' ', '-')}@example.invalid>"
        self.gpg(*faked, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
        colons = self.gpg("--with-colons", "--list-keys", uid).decode()
        fingerprint = next(
            line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:")
        )
        return Key(fingerprint, self.export(fingerprint))

    def export(self, fingerprint: str) -> str:
        """The armoured public key."""
        return self.gpg("--armor", "--export", fingerprint).decode()

    def clearsign(self, data: bytes, *keys: Key, faked_time: str | None = None) -> bytes:
        """A cleartext-signed message over ``data``, signed by each of ``keys``."""
        faked = ["--faked-system-time", faked_time] if faked_time else []
        users = [arg for key in keys for arg in ("--local-user", key.fingerprint)]
        return self.gpg(*faked, *users, "--clearsign", stdin=data)

    def revoke(self, key: Key) -> Key:
        """Import the key's revocation certificate; return the revoked public key."""
        certificate = (self.home / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_text()
        # gpg stores the certificate with a leading ':' to prevent accidental import.
        self.gpg("--import", stdin=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
        return Key(key.fingerprint, self.export(key.fingerprint))


@dataclass(frozen=True)
class Keys:
    """The keys the tests use."""

    signer: Signer
    alice: Key
    bob: Key
    expired: Key
    revoked: Key


@contextlib.contextmanager
def throwaway_keys(home: Path) -> Iterator[Keys]:
    """Make the test keys in ``home``; stop the gpg-agent afterwards."""
    home.chmod(0o700)
    signer = Signer(home)
    try:
        alice = signer.new_key("Alice")
        bob = signer.new_key("Bob")
        expired = signer.new_key("Expired", expire="1d", faked_time="20200101T000000!")
        revoked = signer.new_key("Revoked")
        yield Keys(signer, alice, bob, expired, revoked)
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
        )


def sign_stream(
    root: Path,
    signer: Signer,
    key: Key,
    *,
    faked_time: str | None = None,
    remove_unsigned: bool = False,
) -> list[Path]:
    """Clearsign every ``streams/v1/*.json`` of a stream tree into ``.sjson``.

    As Canonical's ``sign_metadata.py`` does, every ``.json`` in the text becomes ``.sjson``
    before signing, so a signed index names signed products files.

    Args:
        root: the stream's base directory (holding ``streams/v1``).
        signer: the gpg driver.
        key: the signing key.
        faked_time: gpg's ``--faked-system-time`` (to sign with a key valid only then).
        remove_unsigned: delete the ``.json`` files afterwards (a signed-only source).

    Returns:
        The ``.sjson`` files written.
    """
    written = []
    for path in sorted((root / "streams" / "v1").glob("*.json")):
        text = path.read_bytes().replace(b".json", b".sjson")
        signed = path.with_suffix(".sjson")
        signed.write_bytes(signer.clearsign(text, key, faked_time=faked_time))
        written.append(signed)
        if remove_unsigned:
            path.unlink()
    return written


def republish_signed(root: Path, agents: list[Agent], keys: Keys) -> None:
    """Republish a signed stream with other agents, as publishers do: new stamps, signed again.

    The index gets a new ``updated`` time and the signed files a later modification time, so
    that a conditional request sees them changed.
    """
    write_stream(root, agents)
    index = root / "streams/v1/index2.json"
    index.write_text(index.read_text().replace("12:00:00", "13:00:00"))
    for path in sign_stream(root, keys.signer, keys.alice):
        later = path.stat().st_mtime + 10
        os.utime(path, (later, later))
