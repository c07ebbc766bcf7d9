"""The staged mirror: Juju's layout and field set, merging, pruning, locking, free space."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from upgrader.errors import InvalidInputError
from upgrader.mirror import (
    InsufficientSpaceError,
    Mirror,
    MirrorBusyError,
    MirrorError,
    agent_metadata_url,
    format_updated,
    render_products,
    storage_name,
    write_atomic,
)
from upgrader.streams import AgentEntry
from upgrader.versions import BinaryVersion, parse, parse_binary

WHEN = datetime.datetime(2025, 11, 5, 12, 0, tzinfo=datetime.timezone.utc)
V1 = "tools/streams/v1"


def put(mirror: Mirror, stream: str, binary: str, data: bytes | None = None) -> AgentEntry:
    """Write a tarball into place and return its listing (not yet published)."""
    b = parse_binary(binary)
    data = data if data is not None else f"tarball {binary}".encode()
    path = storage_name(stream, b)
    (mirror.tools / path).parent.mkdir(parents=True, exist_ok=True)
    (mirror.tools / path).write_bytes(data)
    return AgentEntry(b, path, len(data), hashlib.sha256(data).hexdigest())


def stage(mirror: Mirror, stream: str, *binaries: str) -> list[AgentEntry]:
    entries = [put(mirror, stream, b) for b in binaries]
    mirror.add(stream, entries, updated=WHEN)
    return entries


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / V1).glob("*.json"))
    }


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror(tmp_path)


def test_products_file_has_juju_layout_and_fields(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64", "3.6.11-ubuntu-amd64", "3.6.12-ubuntu-arm64")
    text = (mirror.root / V1 / "com.ubuntu.juju-released-agents.json").read_text()
    assert text.startswith('{\n    "products": {\n        "com.ubuntu.juju:ubuntu:amd64": {')
    doc = json.loads(text)
    assert list(doc) == ["products", "updated", "format", "content_id"]
    assert doc["updated"] == "Wed, 05 Nov 2025 12:00:00 +0000"
    assert doc["format"] == "products:1.0"
    assert doc["content_id"] == "com.ubuntu.juju:released:agents"
    assert list(doc["products"]) == [
        "com.ubuntu.juju:ubuntu:amd64",
        "com.ubuntu.juju:ubuntu:arm64",
    ]
    amd64 = doc["products"]["com.ubuntu.juju:ubuntu:amd64"]
    assert list(amd64) == ["version", "arch", "versions"]
    assert (amd64["version"], amd64["arch"]) == ("3.6.12", "amd64")
    assert list(amd64["versions"]) == ["20251105"]
    items = amd64["versions"]["20251105"]["items"]
    assert list(items) == ["3.6.11-ubuntu-amd64", "3.6.12-ubuntu-amd64"]
    item = items["3.6.12-ubuntu-amd64"]
    assert list(item) == ["release", "version", "arch", "size", "path", "ftype", "sha256"]
    data = (mirror.tools / "released/juju-3.6.12-ubuntu-amd64.tgz").read_bytes()
    assert item == {
        "release": "ubuntu",
        "version": "3.6.12",
        "arch": "amd64",
        "size": len(data),
        "path": "released/juju-3.6.12-ubuntu-amd64.tgz",
        "ftype": "tar.gz",
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_index_files_list_streams_and_products(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64")
    text = (mirror.root / V1 / "index2.json").read_text()
    doc = json.loads(text)
    assert list(doc) == ["index", "updated", "format"]
    assert doc["format"] == "index:1.0"
    entry = doc["index"]["com.ubuntu.juju:released:agents"]
    assert list(entry) == ["updated", "format", "datatype", "path", "products"]
    assert entry == {
        "updated": "Wed, 05 Nov 2025 12:00:00 +0000",
        "format": "products:1.0",
        "datatype": "content-download",
        "path": "streams/v1/com.ubuntu.juju-released-agents.json",
        "products": ["com.ubuntu.juju:ubuntu:amd64", "com.ubuntu.juju:ubuntu:arm64"],
    }
    assert (mirror.root / V1 / "index.json").read_text() == text
    assert not list(mirror.root.glob("**/*.sjson")) and not list(mirror.root.glob("**/mirrors*"))


def test_index_json_holds_only_the_released_stream(mirror: Mirror) -> None:
    stage(mirror, "proposed", "3.6.13-ubuntu-amd64")
    assert mirror.streams() == ("proposed",)
    assert not (mirror.root / V1 / "index.json").exists()
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    assert mirror.streams() == ("proposed", "released")
    legacy = json.loads((mirror.root / V1 / "index.json").read_text())
    assert list(legacy["index"]) == ["com.ubuntu.juju:released:agents"]
    index2 = json.loads((mirror.root / V1 / "index2.json").read_text())
    assert list(index2["index"]) == [
        "com.ubuntu.juju:proposed:agents",
        "com.ubuntu.juju:released:agents",
    ]


def test_staged_reads_back_what_was_published(mirror: Mirror) -> None:
    entries = stage(mirror, "released", "3.6.12-ubuntu-amd64", "2.9.52-ubuntu-arm64")
    staged = mirror.staged("released")
    assert [e.binary for e in staged] == [e.binary for e in sorted(entries, reverse=True)]
    assert {(e.path, e.size, e.sha256) for e in staged} == {
        (e.path, e.size, e.sha256) for e in entries
    }
    assert mirror.staged("devel") == ()
    assert Mirror(mirror.root / "nothing-here").staged("released") == ()
    assert mirror.verify() == []


def test_syncs_accumulate(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.11-ubuntu-amd64")
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    assert [str(e.binary) for e in mirror.staged("released")] == [
        "3.6.12-ubuntu-amd64",
        "3.6.11-ubuntu-amd64",
    ]


def test_unchanged_add_rewrites_nothing(mirror: Mirror) -> None:
    entries = stage(mirror, "released", "3.6.12-ubuntu-amd64")
    before = snapshot(mirror.root)
    later = WHEN + datetime.timedelta(days=3)
    assert mirror.add("released", entries, updated=later) is False
    assert mirror.add("released", [], updated=later) is False
    assert snapshot(mirror.root) == before


def test_a_changed_listing_rewrites_under_one_date(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.11-ubuntu-amd64")
    later = WHEN + datetime.timedelta(days=40)
    assert mirror.add("released", [put(mirror, "released", "3.6.12-ubuntu-amd64")], updated=later)
    doc = json.loads((mirror.root / V1 / "com.ubuntu.juju-released-agents.json").read_text())
    versions = doc["products"]["com.ubuntu.juju:ubuntu:amd64"]["versions"]
    assert list(versions) == ["20251215"]
    assert len(versions["20251215"]["items"]) == 2
    assert doc["updated"] == format_updated(later)


def test_identical_content_is_listed_under_several_names_with_one_file(mirror: Mirror) -> None:
    shared = put(mirror, "released", "3.6.12-ubuntu-amd64", b"one linux tarball")
    others = [
        AgentEntry(
            parse_binary(f"3.6.12-{os_name}-amd64"), shared.path, shared.size, shared.sha256
        )
        for os_name in ("centos", "genericlinux")
    ]
    mirror.add("released", [shared, *others], updated=WHEN)
    staged = mirror.staged("released")
    assert {e.os for e in staged} == {"ubuntu", "centos", "genericlinux"}
    assert {e.path for e in staged} == {"released/juju-3.6.12-ubuntu-amd64.tgz"}
    assert len(list(mirror.tools.glob("released/*.tgz"))) == 1
    index = json.loads((mirror.root / V1 / "index2.json").read_text())
    assert index["index"]["com.ubuntu.juju:released:agents"]["products"] == [
        "com.ubuntu.juju:centos:amd64",
        "com.ubuntu.juju:genericlinux:amd64",
        "com.ubuntu.juju:ubuntu:amd64",
    ]
    assert mirror.verify() == []


def test_conflicting_listing_is_refused_and_nothing_changes(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    before = snapshot(mirror.root)
    other = put(mirror, "other", "3.6.12-ubuntu-amd64", b"different bytes")
    with pytest.raises(MirrorError, match=r"metadata mismatch for 3\.6\.12-ubuntu-amd64"):
        mirror.add("released", [other])
    assert snapshot(mirror.root) == before


def test_publishing_a_missing_or_short_file_is_refused(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.11-ubuntu-amd64")
    before = snapshot(mirror.root)
    entry = put(mirror, "released", "3.6.12-ubuntu-amd64")
    (mirror.tools / entry.path).write_bytes(b"short")
    with pytest.raises(MirrorError, match=r"holds 5 bytes, expected \d+"):
        mirror.add("released", [entry])
    (mirror.tools / entry.path).unlink()
    with pytest.raises(MirrorError, match="cannot publish 3.6.12-ubuntu-amd64: .*No such file"):
        mirror.add("released", [entry])
    assert snapshot(mirror.root) == before


def test_a_failed_metadata_write_leaves_the_published_files(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.11-ubuntu-amd64")
    before = snapshot(mirror.root)
    products = mirror.root / V1 / "com.ubuntu.juju-released-agents.json"
    blocker = products.with_name(f".{products.name}.{os.getpid()}.tmp")
    blocker.mkdir()  # the temporary file cannot be created: a real EISDIR
    entry = put(mirror, "released", "3.6.12-ubuntu-amd64")
    with pytest.raises(MirrorError, match=r"cannot write .*agents\.json: .*metadata is unchanged"):
        mirror.add("released", [entry])
    assert snapshot(mirror.root) == before
    assert mirror.verify() == []


def test_dropping_the_last_entries_removes_the_stream(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    stage(mirror, "devel", "3.7-beta1-ubuntu-amd64")
    assert mirror.replace("released", [], updated=WHEN)
    assert mirror.streams() == ("devel",)
    assert not (mirror.root / V1 / "index.json").exists()
    assert not (mirror.root / V1 / "com.ubuntu.juju-released-agents.json").exists()
    assert mirror.replace("devel", [], updated=WHEN)
    assert not (mirror.root / V1 / "index2.json").exists()


def test_prune_keeps_the_newest_per_major_minor(mirror: Mirror) -> None:
    stage(
        mirror,
        "released",
        *(
            f"{v}-ubuntu-{a}"
            for v in ("3.6.10", "3.6.11", "3.6.12", "3.5.6", "3.5.7", "2.9.52")
            for a in ("amd64", "arm64")
        ),
    )
    result = mirror.prune(1, updated=WHEN)
    assert [str(v) for v in result.removed] == ["3.6.11", "3.6.10", "3.5.6"]
    assert [str(v) for v in result.kept] == ["3.6.12", "3.5.7", "2.9.52"]
    assert sorted(result.files_removed) == sorted(
        f"released/juju-{v}-ubuntu-{a}.tgz"
        for v in ("3.6.10", "3.6.11", "3.5.6")
        for a in ("amd64", "arm64")
    )
    assert result.bytes_freed == sum(
        len(f"tarball {v}".encode())
        for v in [
            f"{v}-ubuntu-{a}" for v in ("3.6.10", "3.6.11", "3.5.6") for a in ("amd64", "arm64")
        ]
    )
    assert {str(e.version) for e in mirror.staged("released")} == {"3.6.12", "3.5.7", "2.9.52"}
    assert len(list(mirror.tools.glob("released/*.tgz"))) == 6
    assert mirror.verify() == []


def test_prune_never_removes_a_protected_version(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.10-ubuntu-amd64", "3.6.11-ubuntu-amd64", "3.6.12-ubuntu-amd64")
    result = mirror.prune(1, protected=[parse("3.6.10")], updated=WHEN)
    assert [str(v) for v in result.removed] == ["3.6.11"]
    assert [str(v) for v in result.kept] == ["3.6.12", "3.6.10"]
    assert (mirror.tools / "released/juju-3.6.10-ubuntu-amd64.tgz").exists()


def test_prune_with_nothing_to_remove_changes_nothing(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64", "3.6.11-ubuntu-amd64")
    before = snapshot(mirror.root)
    result = mirror.prune(2)
    assert result.removed == () and result.files_removed == ()
    assert snapshot(mirror.root) == before


def test_prune_removes_strays_and_partials_but_keeps_shared_files(mirror: Mirror) -> None:
    shared = stage(mirror, "released", "3.6.12-ubuntu-amd64")[0]
    mirror.add("proposed", [shared], updated=WHEN)  # proposed lists the released file
    stage(mirror, "released", "3.6.11-ubuntu-amd64")
    stray = mirror.tools / "released/juju-3.6.13-ubuntu-amd64.tgz"
    stray.write_bytes(b"left by a killed sync")
    mirror.partial_dir.mkdir()
    (mirror.partial_dir / f"{'0' * 64}.part").write_bytes(b"1234")
    result = mirror.prune(1, updated=WHEN)
    assert [str(v) for v in result.removed] == ["3.6.11"]
    assert set(result.files_removed) == {
        "released/juju-3.6.11-ubuntu-amd64.tgz",
        "released/juju-3.6.13-ubuntu-amd64.tgz",
    }
    assert not stray.exists() and not list(mirror.partial_dir.iterdir())
    assert mirror.staged("proposed")[0].path == "released/juju-3.6.12-ubuntu-amd64.tgz"
    assert mirror.verify() == []


@pytest.mark.parametrize("keep", [0, -1, True, "2", 1.5])
def test_prune_refuses_a_bad_keep(mirror: Mirror, keep: object) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    with pytest.raises(InvalidInputError, match=r"invalid keep .*whole number >= 1"):
        mirror.prune(keep)  # type: ignore[arg-type]
    assert len(mirror.staged("released")) == 1


def test_lock_refuses_a_second_writer_and_names_the_first(mirror: Mirror) -> None:
    with mirror.lock("sync"):
        with pytest.raises(
            MirrorBusyError,
            match=r"another sync or prune is already running on "
            r".*\(sync, pid \d+, since .*UTC\); wait for it to finish",
        ):
            with Mirror(mirror.root).lock("prune"):
                pass
    with mirror.lock("prune"):  # released on exit
        pass


def test_lock_on_a_missing_storage_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MirrorError, match="cannot use storage .*/absent: No such file"):
        with Mirror(tmp_path / "absent").lock():
            pass


def test_free_space_check_gives_both_numbers(mirror: Mirror) -> None:
    mirror.check_free_space(1000)
    free = mirror.free_bytes()
    with pytest.raises(
        InsufficientSpaceError,
        match=rf"not enough free space on {re.escape(str(mirror.root))} for 3 agent binaries: "
        rf"need {free + 1 + 1024 * 1024} bytes \(.*\), {free} bytes \(.*\) available",
    ):
        mirror.check_free_space(free + 1, what="3 agent binaries")


def test_verify_reports_missing_short_and_corrupt_files(mirror: Mirror) -> None:
    a, b, c = stage(
        mirror, "released", "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.11-ubuntu-amd64"
    )
    (mirror.tools / a.path).unlink()
    (mirror.tools / b.path).write_bytes(b"x")
    (mirror.tools / c.path).write_bytes(b"X" * c.size)
    problems = mirror.verify()
    assert any("3.6.12-ubuntu-amd64" in p and "is missing" in p for p in problems)
    assert any("3.6.12-ubuntu-arm64" in p and "holds 1 bytes" in p for p in problems)
    assert any("3.6.11-ubuntu-amd64" in p and "has sha256" in p for p in problems)
    assert len(mirror.verify(full=False)) == 2


def test_malformed_staged_metadata_is_reported_with_its_file(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    products = mirror.root / V1 / "com.ubuntu.juju-released-agents.json"
    products.write_text('{"format": "products:1.0", "products": {"x": []}}')
    with pytest.raises(MirrorError, match=r"staged metadata is malformed: .*agents\.json"):
        mirror.staged("released")
    products.unlink()
    with pytest.raises(MirrorError, match=r"index2\.json names .*agents\.json, which does not"):
        mirror.staged("released")
    (mirror.root / V1 / "index2.json").write_text("[not json")
    with pytest.raises(MirrorError, match=r"index2\.json is not valid JSON"):
        mirror.streams()
    with pytest.raises(MirrorError, match=r"staged metadata is malformed: .*index2\.json"):
        mirror.staged("released")


@pytest.mark.parametrize("name", ["index2.json", "com.ubuntu.juju-released-agents.json"])
def test_staged_metadata_nested_100000_deep_is_malformed(mirror: Mirror, name: str) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    (mirror.root / V1 / name).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(MirrorError) as caught:
        mirror.staged_all()
    assert "malformed JSON: nested more than 64 levels deep" in str(caught.value)
    assert name in str(caught.value)


def test_staged_size_beyond_8_gib_is_malformed_metadata(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    products = mirror.root / V1 / "com.ubuntu.juju-released-agents.json"
    products.write_text(re.sub(r'"size": \d+', '"size": 1' + "0" * 400, products.read_text()))
    with pytest.raises(MirrorError) as caught:
        mirror.staged("released")
    assert str(caught.value).startswith(f"staged metadata is malformed: {products}: product ")
    assert "size a number of more than 20 digits is more than the 8589934592 bytes" in str(
        caught.value
    )


def test_staged_metadata_over_64_mib_is_refused_unread(mirror: Mirror) -> None:
    stage(mirror, "released", "3.6.12-ubuntu-amd64")
    with open(mirror.root / V1 / "index2.json", "r+b") as index:
        index.truncate(64 * 1024 * 1024 + 1)  # sparse: no disk used
    with pytest.raises(MirrorError, match=r"index2\.json: it holds more than 67108864 bytes"):
        mirror.streams()


def test_render_products_is_deterministic() -> None:
    entry = AgentEntry(
        BinaryVersion(parse("3.6.12"), "ubuntu", "amd64"), "released/x.tgz", 1, "a" * 64
    )
    assert render_products("released", [entry], WHEN) == render_products("released", [entry], WHEN)
    assert not render_products("released", [entry], WHEN).endswith(b"\n")


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("10.1.2.3", "http://10.1.2.3:8080/tools"),
        ("fd00::1", "http://[fd00::1]:8080/tools"),
        ("mirror.internal", "http://mirror.internal:8080/tools"),
    ],
)
def test_agent_metadata_url(address: str, url: str) -> None:
    assert agent_metadata_url(address, 8080) == url


@pytest.mark.parametrize(
    ("stream", "binary", "what"),
    [
        (
            "released",
            BinaryVersion(parse("3.6.12"), "ubuntu", "../../etc/cron.d/x"),
            "architecture",
        ),
        ("released", BinaryVersion(parse("3.6.12"), "ubu/ntu", "amd64"), "OS"),
        ("released", BinaryVersion(parse("3.6.12"), ".hidden", "amd64"), "OS"),
        ("../up", BinaryVersion(parse("3.6.12"), "ubuntu", "amd64"), "stream"),
    ],
)
def test_storage_names_are_plain_file_names(stream: str, binary: BinaryVersion, what: str) -> None:
    with pytest.raises(MirrorError, match=rf"refusing to stage .*: its {what} .* is not a plain"):
        storage_name(stream, binary)
    assert storage_name("released", BinaryVersion(parse("3.1-beta2"), "ubuntu", "s390x")) == (
        "released/juju-3.1-beta2-ubuntu-s390x.tgz"
    )


def test_write_atomic_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "streams" / "index2.json"
    target.parent.mkdir()
    (target.parent / f".index2.json.{os.getpid()}.tmp").symlink_to(victim)
    write_atomic(target, b"{}")
    assert victim.read_text() == "keep me"
    assert target.read_bytes() == b"{}"
    assert not target.is_symlink()
    assert sorted(p.name for p in target.parent.iterdir()) == ["index2.json"]


def test_write_atomic_without_parents_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MirrorError, match="cannot write the job .*: .*; the job is unchanged"):
        write_atomic(
            tmp_path / "gone" / "job",
            b"x",
            what="the job",
            unchanged="the job is unchanged",
            parents=False,
        )
    assert not (tmp_path / "gone").exists()
