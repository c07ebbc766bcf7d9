"""Tests for upgrader.signing, using throwaway keys made with the real gpg during the run."""

from __future__ import annotations

import subprocess

import hypothesis
import pytest
from hypothesis import strategies as st

from support.gpg import NEEDS_GPG, Keys
from upgrader import signing
from upgrader.errors import InvalidInputError, SignatureError, StreamError

pytestmark = NEEDS_GPG

DOCUMENT = b'{\n  "format": "index:1.0",\n  "numbers": [\n-1,\n-2\n  ]\n}\n'
OTHER_DOCUMENT = b'{\n  "format": "index:1.0",\n  "numbers": [\n-3\n  ]\n}\n'
URL = "https://streams.example/streams/v1/index2.sjson"


@pytest.fixture(scope="session")
def keys(gpg_keys: Keys) -> Keys:
    return gpg_keys


@pytest.fixture(scope="session")
def signed(keys: Keys) -> bytes:
    return keys.signer.clearsign(DOCUMENT, keys.alice)


def test_good_signature_returns_exactly_the_signed_text(keys: Keys, signed: bytes) -> None:
    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT


def test_text_before_the_signed_message_is_not_returned(keys: Keys, signed: bytes) -> None:
    data = b'{"evil": true}\nsome words\n' + signed

    assert signing.verify_clearsigned(data, keys.alice.armoured, source=URL) == DOCUMENT


def test_any_of_several_configured_keys_may_sign(keys: Keys, signed: bytes) -> None:
    both = keys.bob.armoured + "\n" + keys.alice.armoured

    assert signing.verify_clearsigned(signed, both, source=URL) == DOCUMENT


def test_extra_signature_by_unknown_key_is_tolerated(keys: Keys) -> None:
    data = keys.signer.clearsign(DOCUMENT, keys.alice, keys.bob)

    assert signing.verify_clearsigned(data, keys.alice.armoured, source=URL) == DOCUMENT


def test_tampered_body_is_refused(keys: Keys, signed: bytes) -> None:
    data = signed.replace(b"index:1.0", b"index:9.9")

    with pytest.raises(SignatureError) as caught:
        signing.verify_clearsigned(data, keys.alice.armoured, source=URL)

    assert str(caught.value).startswith(f"signature of {URL} is not valid: bad signature")


def test_signature_over_different_text_is_refused(keys: Keys, signed: bytes) -> None:
    other = keys.signer.clearsign(OTHER_DOCUMENT, keys.alice)
    head, _, _ = signed.partition(b"-----BEGIN PGP SIGNATURE-----")
    _, marker, signature = other.partition(b"-----BEGIN PGP SIGNATURE-----")

    with pytest.raises(SignatureError, match="bad signature"):
        signing.verify_clearsigned(head + marker + signature, keys.alice.armoured, source=URL)


def test_wrong_key_names_the_signer(keys: Keys, signed: bytes) -> None:
    with pytest.raises(SignatureError) as caught:
        signing.verify_clearsigned(signed, keys.bob.armoured, source=URL)

    assert str(caught.value) == (
        f"signature of {URL} is not valid: signed by unknown key {keys.alice.fingerprint} "
        "(not in the configured signing keys)"
    )
    assert isinstance(caught.value, StreamError)


def test_expired_key_is_refused(keys: Keys) -> None:
    data = keys.signer.clearsign(DOCUMENT, keys.expired, faked_time="20200101T000100!")

    with pytest.raises(SignatureError, match=r"index2\.sjson is not valid: .*has expired"):
        signing.verify_clearsigned(data, keys.expired.armoured, source=URL)


def test_revoked_key_is_refused(keys: Keys) -> None:
    data = keys.signer.clearsign(DOCUMENT, keys.revoked)
    revoked = keys.signer.revoke(keys.revoked)

    with pytest.raises(SignatureError, match="has been revoked"):
        signing.verify_clearsigned(data, revoked.armoured, source=URL)


@pytest.mark.parametrize("tail", [b"junk\n", b"\n\n{}", b"-----BEGIN PGP MESSAGE-----\n"])
def test_text_after_the_signature_block_is_refused(keys: Keys, signed: bytes, tail: bytes) -> None:
    with pytest.raises(SignatureError, match="text after the end of the signature block"):
        signing.verify_clearsigned(signed + tail, keys.alice.armoured, source=URL)


def test_trailing_whitespace_after_the_signature_is_fine(keys: Keys, signed: bytes) -> None:
    data = signed + b"\n  \r\n"

    assert signing.verify_clearsigned(data, keys.alice.armoured, source=URL) == DOCUMENT


def test_two_signed_blocks_are_refused(keys: Keys, signed: bytes) -> None:
    with pytest.raises(SignatureError, match="2 signed blocks; exactly one is accepted"):
        signing.verify_clearsigned(signed + signed, keys.alice.armoured, source=URL)


def test_message_without_signature_block_is_refused(keys: Keys, signed: bytes) -> None:
    head, _, _ = signed.partition(b"-----BEGIN PGP SIGNATURE-----")

    with pytest.raises(SignatureError, match="incomplete"):
        signing.verify_clearsigned(head, keys.alice.armoured, source=URL)


@pytest.mark.parametrize("data", [b"", b"hello\n", DOCUMENT, bytes(range(256))])
def test_unsigned_or_garbage_input_is_refused(keys: Keys, data: bytes) -> None:
    with pytest.raises(SignatureError) as caught:
        signing.verify_clearsigned(data, keys.alice.armoured, source=URL)

    assert str(caught.value) == (
        f"signature of {URL} is not valid: no PGP signed message found "
        "(expected a -----BEGIN PGP SIGNED MESSAGE----- block)"
    )


def test_corrupt_signature_armour_is_refused(keys: Keys, signed: bytes) -> None:
    head, marker, signature = signed.partition(b"-----BEGIN PGP SIGNATURE-----")
    broken = signature.replace(b"\n\n", b"\n\nAAAA", 1)

    with pytest.raises(SignatureError, match=f"signature of {URL} is not valid"):
        signing.verify_clearsigned(head + marker + broken, keys.alice.armoured, source=URL)


NO_KEY = (
    "signing-keys: no OpenPGP public key found; expected ASCII-armoured keys "
    "(-----BEGIN PGP PUBLIC KEY BLOCK-----)"
)


@pytest.mark.parametrize(
    "key_text",
    [
        "",
        "   \n",
        "4286E8DA42CF6232F215EC37378F62AF6A157DB3",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ],
)
def test_unusable_signing_keys_name_the_option(signed: bytes, key_text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        signing.verify_clearsigned(signed, key_text, source=URL)
    assert str(caught.value) == NO_KEY

    with pytest.raises(InvalidInputError) as caught:
        signing.key_fingerprints(key_text)
    assert str(caught.value) == NO_KEY


def test_private_key_is_refused(keys: Keys, signed: bytes) -> None:
    secret = keys.signer.gpg("--armor", "--export-secret-keys", keys.bob.fingerprint).decode()

    with pytest.raises(InvalidInputError, match="signing-keys: holds a private key"):
        signing.verify_clearsigned(signed, secret, source=URL)


def test_gpg_is_used_when_gpgv_is_missing(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_gpgv_binary", lambda: None)

    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT
    with pytest.raises(SignatureError, match="bad signature"):
        signing.verify_clearsigned(signed.replace(b"-1", b"-7"), keys.alice.armoured, source=URL)
    with pytest.raises(SignatureError, match="unknown key"):
        signing.verify_clearsigned(signed, keys.bob.armoured, source=URL)


def test_key_fingerprints_lists_primary_keys_in_order(keys: Keys) -> None:
    text = keys.bob.armoured + "\n" + keys.alice.armoured

    assert signing.key_fingerprints(text) == [keys.bob.fingerprint, keys.alice.fingerprint]


def test_shipped_juju_key_has_the_pinned_fingerprint() -> None:
    key = signing.juju_release_key()

    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert signing.key_fingerprints(key) == [signing.JUJU_RELEASE_KEY_FINGERPRINT]
    assert signing.JUJU_RELEASE_KEY_FINGERPRINT == "4286E8DA42CF6232F215EC37378F62AF6A157DB3"


def test_shipped_juju_key_refuses_a_document_signed_by_another_key(signed: bytes) -> None:
    with pytest.raises(SignatureError, match="unknown key"):
        signing.verify_clearsigned(signed, signing.juju_release_key(), source=URL)


class _RunSpy:
    """Records the gpg/gpgv programs ``signing`` runs, running them for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.programs: list[str] = []
        real = signing._run

        def run(
            argv: list[str], *, home: str, stdin: bytes | None = None
        ) -> subprocess.CompletedProcess[bytes]:
            self.programs.append(argv[0].rsplit("/", 1)[-1])
            return real(argv, home=home, stdin=stdin)

        monkeypatch.setattr(signing, "_run", run)


def test_each_document_costs_one_gpgv_run_once_the_keys_are_prepared(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_keyrings", type(signing._keyrings)())
    spy = _RunSpy(monkeypatch)
    other = keys.signer.clearsign(OTHER_DOCUMENT, keys.alice)

    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT
    assert spy.programs == ["gpg", "gpg", "gpgv"]  # import, export, verify
    assert signing.verify_clearsigned(other, keys.alice.armoured, source=URL) == OTHER_DOCUMENT
    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT
    assert spy.programs == ["gpg", "gpg", "gpgv", "gpgv", "gpgv"]


def test_prepared_keys_are_used_only_for_their_own_key_text(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_keyrings", type(signing._keyrings)())

    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT
    with pytest.raises(SignatureError, match="unknown key"):
        signing.verify_clearsigned(signed, keys.bob.armoured, source=URL)
    assert signing.verify_clearsigned(signed, keys.alice.armoured, source=URL) == DOCUMENT
    with pytest.raises(SignatureError, match="unknown key"):
        signing.verify_clearsigned(signed, keys.bob.armoured, source=URL)


def test_only_the_last_few_key_sets_are_kept(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_keyrings", type(signing._keyrings)())
    monkeypatch.setattr(signing, "KEYRING_CACHE_SIZE", 2)
    texts = [keys.alice.armoured, keys.alice.armoured + "\n", keys.alice.armoured + "\n\n"]

    for text in texts:
        assert signing.verify_clearsigned(signed, text, source=URL) == DOCUMENT

    assert len(signing._keyrings) == 2


def test_unusable_keys_are_not_remembered(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_keyrings", type(signing._keyrings)())
    broken = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"

    for _ in range(2):
        with pytest.raises(InvalidInputError, match="signing-keys: no OpenPGP public key"):
            signing.verify_clearsigned(signed, broken, source=URL)

    assert not signing._keyrings


def _reference_marker_lines(data: bytes) -> tuple[list[int], list[int], list[int]]:
    """Where the armour marker lines are, found line by line (the reference reading)."""
    found: tuple[list[int], list[int], list[int]] = ([], [], [])
    position = 0
    for line in data.splitlines(keepends=True):
        marker = line.rstrip(b" \t\r\n")
        if marker == b"-----BEGIN PGP SIGNED MESSAGE-----":
            found[0].append(position)
        elif marker == b"-----BEGIN PGP SIGNATURE-----":
            found[1].append(position)
        elif marker == b"-----END PGP SIGNATURE-----":
            found[2].append(position + len(line))
        position += len(line)
    return found


_PIECES = [
    b"-----BEGIN PGP SIGNED MESSAGE-----",
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----END PGP SIGNATURE-----",
    *(bytes([c]) for c in b" \t\r\n-x\x0b\x0c\x1c\x85"),
]


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(_PIECES), max_size=25))
def test_marker_lines_are_found_as_a_line_by_line_reading_finds_them(parts: list[bytes]) -> None:
    data = b"".join(parts)

    assert signing._marker_lines(data) == _reference_marker_lines(data)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(_PIECES), max_size=25))
def test_signed_block_is_cut_where_the_marker_lines_are(parts: list[bytes]) -> None:
    data = b"".join(parts)
    begins, signatures, ends = _reference_marker_lines(data)
    well_formed = (
        len(begins) == len(signatures) == len(ends) == 1
        and begins[0] < signatures[0] < ends[0]
        and not data[ends[0] :].strip()
    )

    if well_formed:
        block = signing._extract_signed_block(data, URL)
        assert block == data[begins[0] : ends[0]].rstrip(b"\r\n") + b"\n"
    else:
        with pytest.raises(SignatureError):
            signing._extract_signed_block(data, URL)


def test_the_quoted_gpg_line_is_cut_short() -> None:
    """gpgv quotes user ids from the keys; a failure message quotes its last line."""
    assert signing._last_line(b"first\n" + b"u" * 10_000 + b"\n\n") == (
        "u" * 500 + "... (9500 more characters)"
    )
