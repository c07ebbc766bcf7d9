"""The kept upstream metadata: one conditional request when unchanged, a full read otherwise.

Real signed streams (throwaway keys) served on 127.0.0.1, real mirror directories.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.gpg import NEEDS_GPG, Keys, republish_signed, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader.errors import StreamError, TransientError
from upgrader.fetch import Fetcher, FetchSettings
from upgrader.mirror import Mirror
from upgrader.streams import StreamContents, TrustPolicy, read_stream
from upgrader.upstream import RECORD_FORMAT, keep_upstream, read_upstream

pytestmark = NEEDS_GPG

AGENTS = [
    Agent("3.6.12", "amd64", date="20251105"),
    Agent("3.6.12", "arm64", date="20251105"),
    Agent("3.6.11", "amd64", date="20250924"),
]
INDEX = "/streams/v1/index2.sjson"


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(retries=1, backoff=0.0, read_timeout=5.0)) as made:
        yield made


@pytest.fixture
def source(tmp_path: Path, gpg_keys: Keys) -> Path:
    root = tmp_path / "source"
    write_stream(root, AGENTS)
    sign_stream(root, gpg_keys.signer, gpg_keys.alice)
    return root


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    (tmp_path / "mirror").mkdir()
    return Mirror(tmp_path / "mirror")


def alice(keys: Keys, **kwargs: Any) -> TrustPolicy:
    return TrustPolicy(keys=keys.alice.armoured, **kwargs)


def versions(contents: StreamContents) -> set[str]:
    return {str(e.version) for e in contents.entries}


def test_first_read_is_full_and_is_kept_privately(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        read = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        direct = read_stream(url, "released", fetcher, trust=alice(gpg_keys))

    assert not read.cached
    assert read.note == (
        f"read the released stream from {url} in full (no upstream metadata kept yet)"
    )
    assert read.contents == direct and read.contents.verified
    record = mirror.upstream_record("released")
    assert record == mirror.root / ".upstream" / "released.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    assert json.loads(record.read_text())["format"] == RECORD_FORMAT


def test_unchanged_index_costs_exactly_one_request(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(source, log=log) as url:
        first = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        log.clear()
        again = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert log == [(INDEX, 304)]
    assert again.cached
    assert again.contents == first.contents
    assert again.note.startswith("upstream metadata unchanged since it was verified on ")
    assert f"(one conditional request for {url}{INDEX}); using the 3 entries" in again.note


def test_same_index_bytes_count_as_unchanged_when_the_server_gives_no_validators(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(source, log=log) as url:
        first = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        record = mirror.upstream_record("released")
        data = json.loads(record.read_text())
        data["contents"]["validators"].update({"etag": "", "last-modified": ""})
        record.write_text(json.dumps(data))
        log.clear()
        again = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert log == [(INDEX, 200)]
    assert again.cached and again.contents.entries == first.contents.entries


def test_changed_index_is_read_in_full_and_kept_again(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(source, log=log) as url:
        read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        republish_signed(source, [*AGENTS, Agent("3.6.13", "amd64", date="20251201")], gpg_keys)
        log.clear()
        changed = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        requests = list(log)
        again = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    # The conditional request got the new index in full: the read does not fetch it again.
    assert requests == [(INDEX, 200), ("/streams/v1/com.ubuntu.juju-released-agents.sjson", 200)]
    assert not changed.cached
    assert changed.note == (f"read the released stream from {url} in full ({url}{INDEX} changed)")
    assert "3.6.13" in versions(changed.contents)
    assert again.cached and again.contents == changed.contents


def test_another_url_is_read_in_full(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(source) as first_url, serve_directory(source, log=log) as other_url:
        read_upstream(mirror, first_url, "released", fetcher, trust=alice(gpg_keys))
        read = read_upstream(mirror, other_url, "released", fetcher, trust=alice(gpg_keys))
        again = read_upstream(mirror, other_url, "released", fetcher, trust=alice(gpg_keys))

    assert not read.cached
    assert "(the stream URL is not the one the kept metadata was read from)" in read.note
    assert INDEX in [path for path, _ in log[:1]] and len(log) == 3  # full read, then one
    assert again.cached and again.contents.base_url == other_url


@pytest.mark.parametrize(
    "change",
    ["other keys", "verification off"],
)
def test_other_trust_settings_are_read_in_full(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys, change: str
) -> None:
    if change == "other keys":
        trust = TrustPolicy(keys=gpg_keys.bob.armoured + "\n" + gpg_keys.alice.armoured)
    else:
        trust = alice(gpg_keys, verify_signatures=False)
    with serve_directory(source) as url:
        read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        read = read_upstream(mirror, url, "released", fetcher, trust=trust)
        again = read_upstream(mirror, url, "released", fetcher, trust=trust)
        back = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert not read.cached and read.contents.verified
    assert "(the signature settings (keys or verify-signatures) changed)" in read.note
    assert again.cached
    assert not back.cached


def test_a_kept_read_is_never_used_for_keys_that_would_refuse_it(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        with pytest.raises(StreamError, match="unknown key"):
            read_upstream(
                mirror, url, "released", fetcher, trust=TrustPolicy(keys=gpg_keys.bob.armoured)
            )


def _record_data(mirror: Mirror) -> dict[str, Any]:
    return json.loads(mirror.upstream_record("released").read_text())


def _rows_changed(
    data: dict[str, Any], index: int, value: Any, rows: str = "tarballs"
) -> dict[str, Any]:
    data["contents"][rows][0][index] = value
    return data


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "not JSON": lambda _: b"{\x00 not json",
    "truncated": lambda body: body[: len(body) // 2],
    "a list": lambda _: b"[]",
    "another format": lambda body: body.replace(RECORD_FORMAT.encode(), b"upgrader-upstream:0"),
    "no contents": lambda body: json.dumps({**json.loads(body), "contents": None}).encode(),
    "a bad size": lambda body: json.dumps(_rows_changed(json.loads(body), 3, "ten")).encode(),
    "a bad sha256": lambda body: json.dumps(_rows_changed(json.loads(body), 4, "x")).encode(),
    "a bad version": lambda body: json.dumps(_rows_changed(json.loads(body), 0, "3.x")).encode(),
    "a bad arch": lambda body: json.dumps(_rows_changed(json.loads(body), 1, "amd-64")).encode(),
    "a path leaving the base": lambda body: json.dumps(
        _rows_changed(json.loads(body), 2, "../../etc/passwd")
    ).encode(),
    "no date": lambda body: json.dumps(_rows_changed(json.loads(body), 5, None)).encode(),
    "an entry naming no tarball": lambda body: json.dumps(
        _rows_changed(json.loads(body), 0, 99, rows="entries")
    ).encode(),
    "an entry with a bad OS": lambda body: json.dumps(
        _rows_changed(json.loads(body), 1, "ubu-ntu", rows="entries")
    ).encode(),
    "the previous format": lambda body: body.replace(
        RECORD_FORMAT.encode(), b"upgrader-upstream-metadata:1"
    ),
    "not verified": lambda body: body.replace(b'"verified": true', b'"verified": false'),
    "another stream": lambda body: json.dumps({**json.loads(body), "stream": "devel"}).encode(),
    "nested 100000 deep": lambda body: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "a size of 10^400": lambda body: json.dumps(
        _rows_changed(json.loads(body), 3, 10**400)
    ).encode(),
    "a size over 8 GiB": lambda body: json.dumps(
        _rows_changed(json.loads(body), 3, 8 * 1024**3 + 1)
    ).encode(),
    "over 64 MiB": lambda body: body + b" " * (64 * 1024 * 1024),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_unusable_record_falls_back_to_a_full_read_with_a_warning(
    source: Path,
    mirror: Mirror,
    fetcher: Fetcher,
    gpg_keys: Keys,
    caplog: pytest.LogCaptureFixture,
    corruption: str,
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(source, log=log) as url:
        first = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        record = mirror.upstream_record("released")
        change = CORRUPTIONS[corruption]
        body = record.read_bytes()
        record.write_bytes(change(body))
        assert record.read_bytes() != body
        log.clear()
        with caplog.at_level(logging.WARNING, logger="upgrader.upstream"):
            read = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
        after = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert not read.cached
    assert read.contents == first.contents
    assert f"kept upstream metadata {record} is unusable: " in read.note
    assert [r.getMessage() for r in caplog.records if str(record) in r.getMessage()]
    assert all(r.exc_info is None for r in caplog.records)
    assert (INDEX, 200) in log
    assert after.cached  # the record was written again


def test_unreadable_record_falls_back(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    record = mirror.upstream_record("released")
    record.mkdir(parents=True)  # a directory where the file should be
    with serve_directory(source) as url:
        read = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert not read.cached and read.contents.verified
    assert f"kept upstream metadata {record} is unusable: cannot read it" in read.note
    assert read.note.endswith(
        f"; it could not be kept: cannot write the kept upstream metadata {record}: Is a "
        "directory (EISDIR); the next sync reads the stream in full again"
    )


def test_unverified_reads_are_not_kept(
    tmp_path: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    root = tmp_path / "unsigned"
    write_stream(root, AGENTS)
    with serve_directory(root) as url:
        signed = sign_stream(root, gpg_keys.signer, gpg_keys.alice)
        trust = alice(gpg_keys, verify_signatures=False)
        assert read_upstream(mirror, url, "released", fetcher, trust=trust).contents.verified
        assert mirror.upstream_record("released").exists()
        for path in signed:
            path.unlink()  # the source stops signing
        read = read_upstream(mirror, url, "released", fetcher, trust=trust)
        again = read_upstream(mirror, url, "released", fetcher, trust=trust)

    assert not read.contents.verified and not read.cached
    assert read.note.endswith("; it is not verified, so it is not kept for the next sync")
    assert not mirror.upstream_record("released").exists()
    assert not again.cached


def test_nothing_is_written_when_not_saving(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        read = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys), save=False)

    assert read.contents.verified
    assert not (mirror.root / ".upstream").exists()


def test_an_unreachable_source_is_an_error_not_the_kept_copy(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))
    # The server is gone: its port is closed.
    with pytest.raises(TransientError):
        read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))


def test_contents_round_trip_and_refuse_malformed_data(
    source: Path, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        contents = read_stream(url, "released", fetcher, trust=alice(gpg_keys))
    data = json.loads(json.dumps(contents.as_dict()))

    assert StreamContents.from_dict(data, where="kept") == contents
    for key, value in [
        ("verified", "yes"),
        ("base-url", "ftp://x"),
        ("entries", {}),
        ("tarballs", None),
    ]:
        with pytest.raises(StreamError, match="^kept: "):
            StreamContents.from_dict({**data, key: value}, where="kept")
    with pytest.raises(StreamError, match="^kept: expected an object"):
        StreamContents.from_dict([], where="kept")


def test_a_read_not_saved_can_be_kept_later(
    source: Path, mirror: Mirror, fetcher: Fetcher, gpg_keys: Keys
) -> None:
    with serve_directory(source) as url:
        read = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys), save=False)
        assert not mirror.upstream_record("released").exists()
        kept = keep_upstream(mirror, read)
        again = read_upstream(mirror, url, "released", fetcher, trust=alice(gpg_keys))

    assert kept == read  # nothing to add to the note: it was kept
    assert again.cached
    assert keep_upstream(mirror, again) is again
