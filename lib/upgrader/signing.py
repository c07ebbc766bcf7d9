"""Verifying OpenPGP cleartext-signed simplestreams documents (``.sjson``) with gpgv.

Only the text GnuPG reports as signed by one of the given keys is returned, checked in a
throwaway GnuPG home; ARCHITECTURE.md ("Agent streams") gives the rules for what counts as a
valid signature.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from upgrader.bounds import preview_text
from upgrader.errors import InvalidInputError, SignatureError

JUJU_RELEASE_KEY_FINGERPRINT = "4286E8DA42CF6232F215EC37378F62AF6A157DB3"
"""Fingerprint of the key that signs https://streams.canonical.com/juju/tools metadata."""

SIGNING_KEYS_OPTION = "signing-keys"
"""Name of the operator-facing option that holds the ASCII-armoured public keys."""

_KEY_FILE = Path(__file__).parent / "data" / "juju-release-key.asc"

_BEGIN_MESSAGE = b"-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = b"-----BEGIN PGP SIGNATURE-----"
_END_SIGNATURE = b"-----END PGP SIGNATURE-----"
_PUBLIC_KEY_BLOCK = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_PRIVATE_KEY_BLOCK = "-----BEGIN PGP PRIVATE KEY BLOCK-----"

_NO_KEY_MESSAGE = (
    f"{SIGNING_KEYS_OPTION}: no OpenPGP public key found; expected ASCII-armoured keys "
    f"({_PUBLIC_KEY_BLOCK})"
)

_GPG_TIMEOUT = 60.0
"""Seconds any single gpg/gpgv run may take."""

_STATUS_PREFIX = "[GNUPG:] "

_MARKER = re.compile(
    b"("
    + b"|".join(re.escape(m) for m in (_BEGIN_MESSAGE, _BEGIN_SIGNATURE, _END_SIGNATURE))
    + rb")[ \t]*(?:\r\n|\r|\n|\Z)"
)
"""An armour marker up to the end of its line (trailing blanks allowed), with the line break.

It counts as a marker line only where it starts a line (see :func:`_marker_lines`)."""

KEYRING_CACHE_SIZE = 8
"""How many prepared keyrings (one per distinct key text) are kept in memory."""


@dataclass(frozen=True)
class _Keyring:
    """Armoured keys turned into what gpgv reads.

    Attributes:
        data: The binary keyring ``gpg --export`` wrote.
        fingerprints: Primary-key fingerprints of the imported keys.
    """

    data: bytes
    fingerprints: frozenset[str]


_keyrings: OrderedDict[str, _Keyring] = OrderedDict()
_keyrings_lock = threading.Lock()


def juju_release_key() -> str:
    """Return Juju's public release key (ASCII-armoured), as shipped with this package.

    Returns:
        The armoured key block of :data:`JUJU_RELEASE_KEY_FINGERPRINT`.
    """
    return _KEY_FILE.read_text(encoding="ascii")


def key_fingerprints(keys: str) -> list[str]:
    """List the primary-key fingerprints of ASCII-armoured OpenPGP public keys.

    Args:
        keys: One or more ASCII-armoured public key blocks (the ``signing-keys`` value).

    Returns:
        Upper-case hexadecimal fingerprints of the primary keys, in input order.

    Raises:
        InvalidInputError: ``keys`` holds no usable public key, or holds a private key.
        SignatureError: GnuPG is not installed or failed unexpectedly.
    """
    check_key_text(keys)
    with tempfile.TemporaryDirectory(prefix="upgrader-gpg-") as home:
        result = _run(
            [_gpg_binary(), *_gpg_common(home), "--with-colons", "--show-keys"],
            home=home,
            stdin=keys.encode("utf-8"),
        )
    fingerprints = _primary_fingerprints(result.stdout.decode("utf-8", "replace"))
    if not fingerprints:
        raise InvalidInputError(_NO_KEY_MESSAGE)
    return fingerprints


def verify_clearsigned(data: bytes, keys: str, *, source: str) -> bytes:
    """Verify a cleartext-signed document and return the signed text only.

    Args:
        data: The document as fetched (e.g. the bytes of ``index2.sjson``).
        keys: ASCII-armoured public key(s) that may sign it (the ``signing-keys`` value,
            or :func:`juju_release_key`).
        source: Where ``data`` came from (URL or path); used in error messages only.

    Returns:
        The signed content exactly as GnuPG reports it (dash-escaping undone). Text before
        the ``BEGIN PGP SIGNED MESSAGE`` line is never part of it.

    Raises:
        InvalidInputError: ``keys`` holds no usable public key, or holds a private key.
        SignatureError: The document is not a single cleartext-signed block, carries text
            after its signature, or its signature is not a good one by one of ``keys``; or
            GnuPG is not available.
    """
    check_key_text(keys)
    signed_block = _extract_signed_block(data, source)
    pinned = _keyring_for(keys)
    with tempfile.TemporaryDirectory(prefix="upgrader-gpg-") as home:
        keyring = os.path.join(home, "pinned-keys.gpg")
        document = os.path.join(home, "document.asc")
        output = os.path.join(home, "signed-text")
        Path(keyring).write_bytes(pinned.data)
        Path(document).write_bytes(signed_block)
        gpgv = _gpgv_binary()
        if gpgv is not None:
            argv = [
                gpgv,
                "--homedir",
                home,
                "--keyring",
                keyring,
                "--status-fd",
                "1",
                "--output",
                output,
                "--",
                document,
            ]
        else:
            argv = [
                _gpg_binary(),
                *_gpg_common(home),
                "--no-default-keyring",
                "--keyring",
                keyring,
                "--trust-model",
                "always",
                "--status-fd",
                "1",
                "--output",
                output,
                "--decrypt",
                "--",
                document,
            ]
        result = _run(argv, home=home)
        outcome = _parse_verification(result.stdout.decode("utf-8", "replace"))
        problem = outcome.problem(
            pinned.fingerprints, result.returncode, _last_line(result.stderr)
        )
        if problem is not None:
            raise SignatureError(f"signature of {source} is not valid: {problem}")
        try:
            return Path(output).read_bytes()
        except OSError as exc:
            raise SignatureError(
                f"signature of {source} could not be checked: gpg wrote no signed text ({exc})"
            ) from exc


def _keyring_for(keys: str) -> _Keyring:
    """The keyring of ``keys``, built with gpg the first time this key text is seen.

    Args:
        keys: ASCII-armoured public key block(s), already checked by :func:`check_key_text`.

    Returns:
        The exported keyring and the fingerprints of the imported keys.

    Raises:
        InvalidInputError: No key could be imported (not cached: asked again next time).
        SignatureError: GnuPG is not available or failed unexpectedly.
    """
    digest = hashlib.sha256(keys.encode("utf-8")).hexdigest()
    with _keyrings_lock:
        cached = _keyrings.get(digest)
        if cached is not None:
            _keyrings.move_to_end(digest)
            return cached
    with tempfile.TemporaryDirectory(prefix="upgrader-gpg-") as home:
        fingerprints = _build_keyring(keys, home)
        keyring = _Keyring(Path(home, "pinned-keys.gpg").read_bytes(), fingerprints)
    with _keyrings_lock:
        _keyrings[digest] = keyring
        while len(_keyrings) > KEYRING_CACHE_SIZE:
            _keyrings.popitem(last=False)
    return keyring


def _extract_signed_block(data: bytes, source: str) -> bytes:
    """Cut the one cleartext-signed block out of ``data``, refusing ambiguous documents.

    Args:
        data: The raw document.
        source: Where it came from, for error messages.

    Returns:
        The bytes from the ``BEGIN PGP SIGNED MESSAGE`` line through the
        ``END PGP SIGNATURE`` line, newline-terminated.

    Raises:
        SignatureError: The structure is not exactly one signed block with nothing after it.
    """
    prefix = f"signature of {source} is not valid: "
    begins, signatures, ends = _marker_lines(data)
    if not begins:
        raise SignatureError(
            prefix + f"no PGP signed message found (expected a {_BEGIN_MESSAGE.decode()} block)"
        )
    if len(begins) > 1 or len(signatures) > 1 or len(ends) > 1:
        raise SignatureError(
            prefix + f"it holds {max(len(begins), len(signatures), len(ends))} signed blocks; "
            "exactly one is accepted"
        )
    if not signatures or not ends or not begins[0] < signatures[0] < ends[0]:
        raise SignatureError(
            prefix + "the signed message is incomplete (no signature block after the text)"
        )
    if data[ends[0] :].strip():
        raise SignatureError(
            prefix + "it has text after the end of the signature block, which is not covered "
            "by the signature"
        )
    return data[begins[0] : ends[0]].rstrip(b"\r\n") + b"\n"


def _marker_lines(data: bytes) -> tuple[list[int], list[int], list[int]]:
    """Find the armour marker lines: a marker alone on its line, trailing blanks allowed.

    Lines end at LF, CR LF or CR (as ``bytes.splitlines`` splits them).

    Args:
        data: The raw document.

    Returns:
        Where the ``BEGIN PGP SIGNED MESSAGE`` and ``BEGIN PGP SIGNATURE`` lines start, and
        where the ``END PGP SIGNATURE`` lines end (after their line break).
    """
    begins: list[int] = []
    signatures: list[int] = []
    ends: list[int] = []
    for match in _MARKER.finditer(data):
        start = match.start()
        if start and data[start - 1] not in b"\r\n":
            continue  # not at the start of a line
        marker = match.group(1)
        if marker == _BEGIN_MESSAGE:
            begins.append(start)
        elif marker == _BEGIN_SIGNATURE:
            signatures.append(start)
        else:
            ends.append(match.end())
    return begins, signatures, ends


def check_key_text(keys: str) -> None:
    """Refuse key text that cannot hold an armoured public key, before running gpg.

    Args:
        keys: The operator-supplied key text.

    Raises:
        InvalidInputError: No public key block, or a private key block.
    """
    if _PRIVATE_KEY_BLOCK in keys:
        raise InvalidInputError(
            f"{SIGNING_KEYS_OPTION}: holds a private key ({_PRIVATE_KEY_BLOCK}); give only "
            "public keys, and treat the private key as exposed"
        )
    if _PUBLIC_KEY_BLOCK not in keys:
        raise InvalidInputError(_NO_KEY_MESSAGE)


def _build_keyring(keys: str, home: str) -> frozenset[str]:
    """Import ``keys`` into the private home and export them as a plain keyring file.

    Args:
        keys: ASCII-armoured public key block(s).
        home: The private GnuPG home directory; the keyring goes to
            ``<home>/pinned-keys.gpg``.

    Returns:
        The primary-key fingerprints that were imported.

    Raises:
        InvalidInputError: No key could be imported.
        SignatureError: GnuPG failed unexpectedly.
    """
    gpg = _gpg_binary()
    result = _run(
        [gpg, *_gpg_common(home), "--status-fd", "1", "--import"],
        home=home,
        stdin=keys.encode("utf-8"),
    )
    imported: set[str] = set()
    for words in _status_lines(result.stdout.decode("utf-8", "replace")):
        if words[0] == "IMPORT_OK" and len(words) >= 3:
            imported.add(words[2].upper())
    if not imported:
        raise InvalidInputError(_NO_KEY_MESSAGE)
    keyring = os.path.join(home, "pinned-keys.gpg")
    exported = _run(
        [gpg, *_gpg_common(home), "--output", keyring, "--export", *sorted(imported)],
        home=home,
    )
    if exported.returncode != 0 or not os.path.exists(keyring):
        raise SignatureError(
            f"cannot prepare the signing keys: gpg --export failed: {_last_line(exported.stderr)}"
        )
    return frozenset(imported)


@dataclass
class _Outcome:
    """What gpg/gpgv said about the signatures of one document."""

    good_fingerprints: list[str] = field(default_factory=list)
    good_key_ids: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)

    def problem(self, pinned: frozenset[str], returncode: int, stderr_tail: str) -> str | None:
        """Decide whether the document is validly signed.

        Args:
            pinned: Primary-key fingerprints of the configured keys.
            returncode: gpg/gpgv exit status.
            stderr_tail: Last line gpg/gpgv wrote to stderr, for unexplained failures.

        Returns:
            None if a pinned key made a good signature and nothing else went wrong; otherwise
            the reason in plain words.
        """
        if self.refusals:
            return "; ".join(dict.fromkeys(self.refusals))
        if self.other_errors:
            return "; ".join(dict.fromkeys(self.other_errors))
        good = [fpr for fpr in self.good_fingerprints if fpr in pinned]
        if good and len(self.good_key_ids) == len(self.good_fingerprints):
            # gpgv exits 2 when it also saw a signature by a key it does not have; that is
            # the only failure tolerated next to a good signature.
            if returncode == 0 or (returncode == 2 and self.missing_keys):
                return None
            return f"gpg failed after reporting a good signature ({stderr_tail or returncode})"
        if self.good_fingerprints:
            keys = ", ".join(self.good_fingerprints)
            return f"signed by key {keys}, which is not one of the configured signing keys"
        if self.missing_keys:
            return (
                f"signed by unknown key {', '.join(self.missing_keys)} "
                "(not in the configured signing keys)"
            )
        return f"no valid signature found ({stderr_tail or f'gpg exit status {returncode}'})"


_REFUSALS = {
    "BADSIG": (
        "bad signature by key {key}: the signed text was altered or the signature belongs to "
        "different text"
    ),
    "EXPKEYSIG": "signed by key {key}, which has expired",
    "EXPSIG": "the signature by key {key} has expired",
    "REVKEYSIG": "signed by key {key}, which has been revoked",
}
"""Status keywords that condemn a signature, with the reason shown to the operator."""


def _parse_verification(status_text: str) -> _Outcome:
    """Turn gpg ``--status-fd`` output into an :class:`_Outcome`.

    Args:
        status_text: Everything gpg/gpgv wrote to the status file descriptor.

    Returns:
        The collected findings.
    """
    outcome = _Outcome()
    for words in _status_lines(status_text):
        keyword, args = words[0], words[1:]
        key = args[0] if args else "?"
        if keyword == "GOODSIG":
            outcome.good_key_ids.append(key)
        elif keyword == "VALIDSIG" and args:
            # The primary-key fingerprint is the 10th argument; older gpg omit it.
            primary = args[9] if len(args) >= 10 else args[0]
            outcome.good_fingerprints.append(primary.upper())
        elif keyword in _REFUSALS:
            outcome.refusals.append(_REFUSALS[keyword].format(key=key))
        elif keyword == "ERRSIG":
            _record_errsig(outcome, args)
        elif keyword == "NODATA":
            outcome.other_errors.append("gpg found no signed data in it")
        elif keyword == "ERROR":
            outcome.other_errors.append(f"gpg reported an error ({' '.join(args)})")
    return outcome


def _record_errsig(outcome: _Outcome, args: list[str]) -> None:
    """Record an ``ERRSIG`` status: a signature gpg could not check at all.

    Args:
        outcome: Where to record it.
        args: The status arguments: key id, algorithms, class, time, reason code and
            (gpg >= 2.2.7) the issuer fingerprint.
    """
    key = args[0] if args else "?"
    reason = args[5] if len(args) >= 6 else ""
    fingerprint = (args[6] if len(args) >= 7 and args[6] != "-" else key).upper()
    if reason == "9":
        outcome.missing_keys.append(fingerprint)
    elif reason == "4":
        outcome.other_errors.append(
            f"the signature by key {fingerprint} uses an unsupported algorithm"
        )
    else:
        outcome.other_errors.append(
            f"the signature by key {fingerprint} cannot be checked (gpg error {reason})"
        )


def _status_lines(text: str) -> list[list[str]]:
    """Split gpg status output into word lists, dropping non-status lines.

    Args:
        text: Status output.

    Returns:
        One list of words per status line, keyword first.
    """
    lines = []
    for line in text.splitlines():
        if line.startswith(_STATUS_PREFIX):
            words = line[len(_STATUS_PREFIX) :].split()
            if words:
                lines.append(words)
    return lines


def _primary_fingerprints(colons: str) -> list[str]:
    """Extract primary-key fingerprints from ``--with-colons`` key listings.

    Args:
        colons: gpg colon-format output.

    Returns:
        The fingerprint that follows each ``pub`` record, upper-case.
    """
    fingerprints: list[str] = []
    expect_primary = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_primary = True
        elif fields[0] in ("sub", "uid", "sig"):
            expect_primary = False
        elif fields[0] == "fpr" and expect_primary and len(fields) > 9:
            fingerprints.append(fields[9].upper())
            expect_primary = False
    return fingerprints


def _gpg_binary() -> str:
    """Locate ``gpg``.

    Returns:
        Its path.

    Raises:
        SignatureError: gpg is not installed.
    """
    gpg = shutil.which("gpg")
    if gpg is None:
        raise SignatureError(
            "cannot verify signed metadata: gpg is not installed (install the gnupg package)"
        )
    return gpg


def _gpgv_binary() -> str | None:
    """Locate ``gpgv``, the verification-only GnuPG tool.

    Returns:
        Its path, or None when it is not installed (``gpg`` is used instead).
    """
    return shutil.which("gpgv")


def _gpg_common(home: str) -> list[str]:
    """Options every gpg run shares: private home, no agent, no prompts.

    Args:
        home: The private GnuPG home directory.

    Returns:
        The option list.
    """
    return ["--homedir", home, "--batch", "--no-tty", "--no-autostart", "--no-options"]


def _run(
    argv: list[str], *, home: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a gpg program with a clean environment, capturing its output.

    Args:
        argv: The command line.
        home: The private GnuPG home directory.
        stdin: Bytes to feed on standard input, if any.

    Returns:
        The completed process (exit status is not checked here).

    Raises:
        SignatureError: The program could not be started or did not finish in time.
    """
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GNUPGHOME": home,
        "LC_ALL": "C",
        "LANG": "C",
    }
    try:
        return subprocess.run(
            argv,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
            env=environment,
            timeout=_GPG_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise SignatureError(
            f"{os.path.basename(argv[0])} did not finish within {_GPG_TIMEOUT:.0f} s"
        ) from exc
    except OSError as exc:
        raise SignatureError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


def _last_line(stderr: bytes) -> str:
    """Return the last non-empty line of a program's stderr.

    Args:
        stderr: Captured standard error.

    Returns:
        That line, stripped (empty if there is none).
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return preview_text(lines[-1], 500) if lines else ""
