"""Signed stream reading, the trust policy and conditional checks, over real HTTP with real gpg.

Streams are written by tests/support/streams.py and clearsigned with throwaway keys the way
Canonical's sign_metadata.py does (tests/support/gpg.py), then served on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.gpg import NEEDS_GPG, Keys, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader.errors import (
    InvalidInputError,
    NotFoundError,
    SignatureError,
    StreamError,
    TransientError,
)
from upgrader.fetch import Fetcher, FetchSettings
from upgrader.signing import JUJU_RELEASE_KEY_FINGERPRINT, juju_release_key, key_fingerprints
from upgrader.streams import (
    DEFAULT_STREAM_URL,
    TrustPolicy,
    Validators,
    check_for_changes,
    read_stream,
)

pytestmark = NEEDS_GPG

AGENTS = [
    Agent("3.6.12", "amd64", date="20251105"),
    Agent("3.6.12", "arm64", date="20251105"),
    Agent("3.6.11", "amd64", date="20250924"),
    Agent("2.9.52", "amd64", date="20250301"),
]
EXPECTED = {(a.version, a.arch) for a in AGENTS}
PRODUCTS = "streams/v1/com.ubuntu.juju-released-agents"
HINT = "run: juju config upgrader verify-signatures=false"


def entries(contents) -> set[tuple[str, str]]:
    return {(str(e.version), e.arch) for e in contents.entries}


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(retries=1, backoff=0.0, read_timeout=5.0)) as made:
        yield made


@pytest.fixture
def signed_root(tmp_path: Path, gpg_keys: Keys) -> Path:
    """A stream with both the unsigned and the signed (by Alice) metadata."""
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    return tmp_path


@pytest.fixture
def served(signed_root: Path) -> Iterator[str]:
    with serve_directory(signed_root) as url:
        yield url


def alice(keys: Keys, **kwargs: object) -> TrustPolicy:
    return TrustPolicy(keys=keys.alice.armoured, allow_unsigned=HINT, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- good signatures


def test_good_signed_stream_is_verified(served: str, fetcher: Fetcher, gpg_keys: Keys) -> None:
    contents = read_stream(served, "released", fetcher, trust=alice(gpg_keys))

    assert contents.verified is True
    assert contents.unverified_reason == ""
    assert contents.index_url == f"{served}/streams/v1/index2.sjson"
    assert contents.products_url == f"{served}/{PRODUCTS}.sjson"
    assert entries(contents) == EXPECTED
    assert contents.validators is not None
    assert contents.validators.url == contents.index_url


def test_only_the_signed_text_is_parsed(signed_root: Path, gpg_keys: Keys) -> None:
    """Unsigned files and text before the signed block have no say."""
    (signed_root / f"{PRODUCTS}.json").write_text('{"format": "products:1.0", "products": {}}')
    (signed_root / "streams/v1/index2.json").write_text("{not json")
    sjson = signed_root / f"{PRODUCTS}.sjson"
    sjson.write_bytes(b'{"format": "products:1.0", "products": {}}\n' + sjson.read_bytes())

    with serve_directory(signed_root) as url, Fetcher() as fetcher:
        contents = read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert contents.verified and entries(contents) == EXPECTED


def test_signed_legacy_index_is_used_when_index2_is_missing(
    tmp_path: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    write_stream(tmp_path, AGENTS, index_name="index.json")
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice, remove_unsigned=True)
    log: list[tuple[str, int]] = []

    with serve_directory(tmp_path, log=log) as url:
        contents = read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert contents.verified and contents.index_url.endswith("/streams/v1/index.sjson")
    assert log == [
        ("/streams/v1/index2.sjson", 404),
        ("/streams/v1/index.sjson", 200),
        (f"/{PRODUCTS}.sjson", 200),
    ]


def test_signed_stream_is_preferred_when_verification_is_off(
    served: str, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    contents = read_stream(
        served, "released", fetcher, trust=alice(gpg_keys, verify_signatures=False)
    )

    assert contents.verified is True
    assert contents.products_url.endswith(".sjson")


def test_any_configured_key_may_sign(served: str, fetcher: Fetcher, gpg_keys: Keys) -> None:
    both = TrustPolicy(keys=gpg_keys.bob.armoured + gpg_keys.alice.armoured)

    assert read_stream(served, "released", fetcher, trust=both).verified


def test_callable_source_still_works(served: str, fetcher: Fetcher, gpg_keys: Keys) -> None:
    contents = read_stream(
        served, "released", lambda url: fetcher.get_document(url).body, trust=alice(gpg_keys)
    )

    assert contents.verified and entries(contents) == EXPECTED
    assert contents.validators is not None and contents.validators.etag is None


# --------------------------------------------------------------------------- bad signatures


def _tamper(path: Path) -> None:
    text = path.read_bytes()
    assert b'"size": ' in text
    path.write_bytes(text.replace(b'"size": ', b'"size": 1', 1))


@pytest.mark.parametrize("name", ["streams/v1/index2.sjson", f"{PRODUCTS}.sjson"])
def test_tampered_document_is_refused(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys, name: str
) -> None:
    path = signed_root / name
    path.write_bytes(path.read_bytes().replace(b"released", b"devel", 1))

    with serve_directory(signed_root) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert str(caught.value).startswith(f"signature of {url}/{name} is not valid: bad signature")


def test_tampered_products_size_is_refused(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    _tamper(signed_root / f"{PRODUCTS}.sjson")

    with serve_directory(signed_root) as url, pytest.raises(SignatureError, match="bad signature"):
        read_stream(url, "released", fetcher, trust=alice(gpg_keys))


def test_bad_signature_with_verification_off_falls_back_and_says_why(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    _tamper(signed_root / f"{PRODUCTS}.sjson")

    with serve_directory(signed_root) as url:
        contents = read_stream(
            url, "released", fetcher, trust=alice(gpg_keys, verify_signatures=False)
        )

    assert contents.verified is False
    assert contents.index_url == f"{url}/streams/v1/index2.json"
    assert contents.unverified_reason.startswith(
        f"signature of {url}/{PRODUCTS}.sjson is not valid: bad signature"
    )
    assert entries(contents) == EXPECTED


def test_wrong_key_is_refused(served: str, fetcher: Fetcher, gpg_keys: Keys) -> None:
    with pytest.raises(SignatureError) as caught:
        read_stream(served, "released", fetcher, trust=TrustPolicy(keys=gpg_keys.bob.armoured))

    assert str(caught.value) == (
        f"signature of {served}/streams/v1/index2.sjson is not valid: signed by unknown key "
        f"{gpg_keys.alice.fingerprint} (not in the configured signing keys)"
    )


def test_juju_key_is_the_default(served: str, fetcher: Fetcher, gpg_keys: Keys) -> None:
    with pytest.raises(SignatureError, match=f"unknown key {gpg_keys.alice.fingerprint}"):
        read_stream(served, "released", fetcher)


def test_expired_key_is_refused(tmp_path: Path, fetcher: Fetcher, gpg_keys: Keys) -> None:
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.expired, faked_time="20200101T000100!")

    with serve_directory(tmp_path) as url, pytest.raises(SignatureError, match="has expired"):
        read_stream(url, "released", fetcher, trust=TrustPolicy(keys=gpg_keys.expired.armoured))


def test_signature_over_different_text_is_refused(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    marker = b"-----BEGIN PGP SIGNATURE-----"
    index = signed_root / "streams/v1/index2.sjson"
    products = signed_root / f"{PRODUCTS}.sjson"
    head = index.read_bytes().partition(marker)[0]
    other_signature = products.read_bytes().partition(marker)[2]
    index.write_bytes(head + marker + other_signature)

    with serve_directory(signed_root) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert "index2.sjson is not valid: bad signature" in str(caught.value)


@pytest.mark.parametrize("name", ["streams/v1/index2.sjson", f"{PRODUCTS}.sjson"])
def test_text_after_the_signature_block_is_refused(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys, name: str
) -> None:
    path = signed_root / name
    path.write_bytes(path.read_bytes() + b'{"format": "products:1.0", "products": {}}\n')

    with serve_directory(signed_root) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=alice(gpg_keys, verify_signatures=True))

    assert str(caught.value) == (
        f"signature of {url}/{name} is not valid: it has text after the end of the signature "
        "block, which is not covered by the signature"
    )


def test_signed_index_naming_an_unsigned_products_file_is_refused(
    tmp_path: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    write_stream(tmp_path, AGENTS)
    index = tmp_path / "streams/v1/index2.json"
    signed = gpg_keys.signer.clearsign(index.read_bytes(), gpg_keys.alice)  # .json paths kept
    (tmp_path / "streams/v1/index2.sjson").write_bytes(signed)

    with serve_directory(tmp_path) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert str(caught.value).startswith(
        f"signature of {url}/{PRODUCTS}.json is not valid: no PGP signed message found"
    )


def test_bad_signing_keys_name_the_option(served: str, fetcher: Fetcher) -> None:
    with pytest.raises(InvalidInputError, match="^signing-keys: no OpenPGP public key found"):
        read_stream(served, "released", fetcher, trust=TrustPolicy(keys="not a key"))


# --------------------------------------------------------------------------- missing .sjson


def test_unsigned_source_is_refused_when_verifying(tmp_path: Path, fetcher: Fetcher) -> None:
    write_stream(tmp_path, AGENTS)
    log: list[tuple[str, int]] = []

    with serve_directory(tmp_path, log=log) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=TrustPolicy(allow_unsigned=HINT))

    v1 = f"{url}/streams/v1"
    assert str(caught.value) == (
        f"no signed agent metadata at {url}: tried {v1}/index2.sjson, {v1}/index.sjson "
        "(not found); signature verification is on, so unsigned metadata is not read. "
        f"To accept unsigned metadata from this source, {HINT}"
    )
    assert [path for path, _ in log] == ["/streams/v1/index2.sjson", "/streams/v1/index.sjson"]


def test_unsigned_source_is_read_when_not_verifying(tmp_path: Path, fetcher: Fetcher) -> None:
    write_stream(tmp_path, AGENTS)

    with serve_directory(tmp_path) as url:
        contents = read_stream(
            url, "released", fetcher, trust=TrustPolicy(verify_signatures=False)
        )

    v1 = f"{url}/streams/v1"
    assert contents.verified is False
    assert contents.index_url == f"{v1}/index2.json"
    assert contents.unverified_reason == (
        f"no signed metadata (tried {v1}/index2.sjson, {v1}/index.sjson (not found))"
    )
    assert entries(contents) == EXPECTED


def test_missing_signed_products_file(signed_root: Path, fetcher: Fetcher, gpg_keys: Keys) -> None:
    (signed_root / f"{PRODUCTS}.sjson").unlink()

    with serve_directory(signed_root) as url:
        with pytest.raises(SignatureError) as caught:
            read_stream(url, "released", fetcher, trust=alice(gpg_keys))
        unverified = read_stream(
            url, "released", fetcher, trust=alice(gpg_keys, verify_signatures=False)
        )

    assert str(caught.value).startswith(
        f"no signed agent metadata at {url}: the signed index {url}/streams/v1/index2.sjson "
        f"names {url}/{PRODUCTS}.sjson, which was not found; "
    )
    assert str(caught.value).endswith(HINT)
    assert unverified.verified is False and entries(unverified) == EXPECTED


def test_stream_missing_from_signed_index(
    tmp_path: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    write_stream(tmp_path, [Agent("3.7-beta1")], stream="devel")  # unsigned only

    with serve_directory(tmp_path) as url:
        with pytest.raises(NotFoundError, match="no content id com.ubuntu.juju:devel:agents"):
            read_stream(url, "devel", fetcher, trust=alice(gpg_keys))
        contents = read_stream(
            url, "devel", fetcher, trust=alice(gpg_keys, verify_signatures=False)
        )

    assert contents.verified is False and entries(contents) == {("3.7-beta1", "amd64")}


def test_bad_signature_and_no_unsigned_metadata_reports_the_signature(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    _tamper(signed_root / f"{PRODUCTS}.sjson")
    (signed_root / "streams/v1/index2.json").unlink()

    with serve_directory(signed_root) as url, pytest.raises(SignatureError, match="bad signature"):
        read_stream(url, "released", fetcher, trust=alice(gpg_keys, verify_signatures=False))


class _FlakySignedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, but every .sjson request gets HTTP 503."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.endswith(".sjson"):
            self.send_error(503)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output clean."""


def test_network_failure_on_signed_metadata_never_falls_back(
    signed_root: Path, gpg_keys: Keys
) -> None:
    handler = lambda *a: _FlakySignedHandler(*a, directory=str(signed_root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with Fetcher(FetchSettings(retries=2, backoff=0.0)) as fetcher:
            with pytest.raises(TransientError, match=r"index2\.sjson: gave up after 2 attempts"):
                read_stream(
                    url, "released", fetcher, trust=alice(gpg_keys, verify_signatures=False)
                )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- the official stream


@pytest.mark.parametrize(
    "url",
    [
        DEFAULT_STREAM_URL,
        "https://streams.canonical.com/juju/tools/",
        "http://STREAMS.canonical.com./juju/tools",
        "https://streams.canonical.com:443/other/path",
    ],
)
def test_official_stream_is_always_verified_with_the_juju_key(url: str, gpg_keys: Keys) -> None:
    for trust in (
        TrustPolicy(verify_signatures=False),
        TrustPolicy(keys=gpg_keys.alice.armoured, verify_signatures=False),
    ):
        assert trust.is_official(url)
        assert trust.requires_signature(url)
        assert trust.keys_for(url) == juju_release_key()


@pytest.mark.parametrize(
    "url",
    [
        "https://streams.canonical.com.evil.example/juju/tools",
        "https://mirror.example/streams.canonical.com/juju/tools",
        "file:///srv/streams.canonical.com/juju/tools",
        "http://127.0.0.1:8080/juju/tools",
    ],
)
def test_other_sources_follow_the_policy(url: str, gpg_keys: Keys) -> None:
    trust = TrustPolicy(keys=gpg_keys.alice.armoured, verify_signatures=False)
    assert not trust.is_official(url)
    assert not trust.requires_signature(url)
    assert trust.keys_for(url) == gpg_keys.alice.armoured
    assert TrustPolicy().requires_signature(url)
    assert TrustPolicy(keys="  ").keys_for(url) == juju_release_key()


def test_official_host_demands_signatures_even_when_verification_is_off(
    tmp_path: Path, fetcher: Fetcher
) -> None:
    """The real check, with 127.0.0.1 standing in for streams.canonical.com."""
    write_stream(tmp_path, AGENTS)
    official = TrustPolicy(verify_signatures=False, official_hosts=frozenset({"127.0.0.1"}))

    with serve_directory(tmp_path) as url, pytest.raises(SignatureError) as caught:
        read_stream(url, "released", fetcher, trust=official)

    message = str(caught.value)
    assert message.startswith(f"no signed agent metadata at {url}: tried ")
    assert "the official stream is always verified against Juju's release key" in message
    assert "verify-signatures" not in message


def test_official_host_ignores_configured_keys(
    served: str, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    official = TrustPolicy(
        keys=gpg_keys.alice.armoured,
        verify_signatures=False,
        official_hosts=frozenset({"127.0.0.1"}),
    )

    with pytest.raises(SignatureError, match=f"unknown key {gpg_keys.alice.fingerprint}"):
        read_stream(served, "released", fetcher, trust=official)
    assert JUJU_RELEASE_KEY_FINGERPRINT not in gpg_keys.alice.fingerprint


# --------------------------------------------------------------------------- conditional checks


def test_unchanged_index_costs_one_conditional_request(
    signed_root: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(signed_root, log=log) as url:
        contents = read_stream(url, "released", fetcher, trust=alice(gpg_keys))
        assert contents.validators is not None
        saved = contents.validators.as_dict()
        log.clear()

        validators = Validators.from_dict(saved)
        assert validators is not None and validators == contents.validators
        assert validators.last_modified
        assert check_for_changes(validators, fetcher) is False
        assert log == [("/streams/v1/index2.sjson", 304)]

        index = signed_root / "streams/v1/index2.sjson"
        _resign_later(index, gpg_keys)
        log.clear()
        assert check_for_changes(validators, fetcher) is True
        assert log == [("/streams/v1/index2.sjson", 200)]

        index.unlink()
        assert check_for_changes(validators, fetcher) is True


def _resign_later(index: Path, keys: Keys) -> None:
    """Republish the index with new content and a later modification time."""
    text = index.read_bytes().partition(b"\n\n")[2].partition(b"-----BEGIN PGP SIGNATURE")[0]
    doc = json.loads(text.replace(b"\n- ", b"\n"))
    doc["updated"] = "Thu, 06 Nov 2025 12:00:00 +0000"
    index.write_bytes(keys.signer.clearsign(json.dumps(doc).encode(), keys.alice))
    stat = index.stat()
    os.utime(index, (stat.st_atime, stat.st_mtime + 10))


def test_same_bytes_count_as_unchanged_without_validators(tmp_path: Path) -> None:
    """File URLs (and servers without ETag/Last-Modified) fall back to comparing hashes."""
    write_stream(tmp_path, AGENTS)
    with Fetcher() as fetcher:
        contents = read_stream(
            tmp_path.as_uri(), "released", fetcher, trust=TrustPolicy(verify_signatures=False)
        )
        validators = contents.validators
        assert validators is not None and validators.etag is None
        assert check_for_changes(validators, fetcher) is False
        plain = lambda url: fetcher.get_document(url).body  # noqa: E731
        assert check_for_changes(validators, plain) is False

        index = tmp_path / "streams/v1/index2.json"
        index.write_text(index.read_text().replace("12:00:00", "13:00:00"))
        assert check_for_changes(validators, fetcher) is True
        assert check_for_changes(validators, plain) is True


def test_check_for_changes_reports_network_failures(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as url:
        pass  # the port is closed again
    validators = Validators(f"{url}/streams/v1/index2.sjson", etag='"x"', sha256="0" * 64)
    with Fetcher(FetchSettings(retries=1)) as fetcher, pytest.raises(TransientError):
        check_for_changes(validators, fetcher)


@pytest.mark.parametrize(
    "data",
    [None, {}, {"url": ""}, {"url": 3}, {"etag": "x"}],
)
def test_unusable_saved_validators(data: dict | None) -> None:
    assert Validators.from_dict(data) is None


def test_saved_validators_round_trip() -> None:
    full = Validators("http://h/i.sjson", '"e"', "Wed, 05 Nov 2025 12:00:00 GMT", "a" * 64)
    bare = Validators("http://h/i.json", sha256="b" * 64)
    for validators in (full, bare):
        assert Validators.from_dict(validators.as_dict()) == validators
        assert all(isinstance(v, str) for v in validators.as_dict().values())


# --------------------------------------------------------------------------- random documents


@dataclasses.dataclass(frozen=True)
class _Doc:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


class MemorySource:
    """An in-memory source for property tests (no network per example)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def get_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> _Doc:
        path = url.removeprefix("http://h/")
        if path not in self.files:
            raise NotFoundError(f"{url} not found")
        return _Doc(self.files[path])


FIXTURE_CHECK = HealthCheck.function_scoped_fixture  # the fixtures used are module-scoped


def _signed_files(signed_root: Path) -> dict[str, bytes]:
    v1 = signed_root / "streams/v1"
    return {f"streams/v1/{p.name}": p.read_bytes() for p in v1.glob("*.sjson")}


@pytest.fixture(scope="module")
def signed_files(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("signed")
    write_stream(root, AGENTS, write_tarballs=False)
    sign_stream(root, gpg_keys.signer, gpg_keys.alice)
    return _signed_files(root)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["streams/v1/index2.sjson", f"{PRODUCTS}.sjson"]),
    data=st.binary(max_size=400),
)
def test_random_bytes_as_sjson_only_give_stream_errors(
    signed_files: dict[str, bytes], gpg_keys: Keys, which: str, data: bytes
) -> None:
    files = {**signed_files, which: data}
    with pytest.raises(StreamError):
        read_stream("http://h", "released", MemorySource(files), trust=alice(gpg_keys))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["streams/v1/index2.sjson", f"{PRODUCTS}.sjson"]),
    position=st.floats(0, 1),
    cut=st.integers(0, 8),
    insert=st.binary(max_size=8),
)
def test_mutated_sjson_gives_the_signed_entries_or_stream_errors(
    signed_files: dict[str, bytes],
    gpg_keys: Keys,
    which: str,
    position: float,
    cut: int,
    insert: bytes,
) -> None:
    original = signed_files[which]
    at = int(position * len(original))
    mutated = original[:at] + insert + original[at + cut :]
    files = {**signed_files, which: mutated}
    try:
        contents = read_stream("http://h", "released", MemorySource(files), trust=alice(gpg_keys))
    except StreamError:
        return
    # Accepted only if the mutation left the signed content as it was (e.g. armour whitespace).
    assert contents.verified and entries(contents) == EXPECTED


# --------------------------------------------------------------------------- the sample stream

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-stream"
SAMPLE_KEY = SAMPLE.parent / "sample-stream-key.asc"


def test_sample_stream_verifies_with_its_published_key(fetcher: Fetcher) -> None:
    key = SAMPLE_KEY.read_text()
    assert "PRIVATE KEY" not in key and len(key_fingerprints(key)) == 1

    contents = read_stream(SAMPLE.as_uri(), "released", fetcher, trust=TrustPolicy(keys=key))

    assert contents.verified and contents.products_url.endswith(".sjson")
    assert len(contents.entries) == 20
    with pytest.raises(SignatureError, match="unknown key"):
        read_stream(SAMPLE.as_uri(), "released", fetcher)  # Juju's key did not sign it
