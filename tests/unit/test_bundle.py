"""Tests for upgrader.bundle: real archives, good and hostile, imported into a real mirror.

Every refused import is followed by a check that the mirror is exactly as it was: every file
under the storage root byte-identical, nothing left behind, and every listed tarball verifying.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.streams import Agent, make_tarball, write_stream
from upgrader import archive, archive_import
from upgrader.archive import ArchiveError, Limits
from upgrader.archive_import import import_bundle
from upgrader.bundle import make_bundle
from upgrader.errors import InvalidInputError, SignatureError
from upgrader.mirror import InsufficientSpaceError, Mirror, MirrorBusyError
from upgrader.versions import parse_binary

ROOT = Path(__file__).resolve().parents[2]
AGENTS = (Agent("3.6.12"), Agent("3.6.12", "arm64"), Agent("3.6.11"))
BASE = (Agent("3.5.7"),)

Members = list[tuple[tarfile.TarInfo, bytes | None]]


# --------------------------------------------------------------------------------------------
# Helpers


def binaries(*texts: str) -> tuple:
    return tuple(parse_binary(t) for t in texts)


def local_dir(root: Path, agents=AGENTS, **kwargs) -> Path:
    """A `juju sync-agent-binary --local-dir ROOT` tree: ROOT/tools/{released,streams/v1}."""
    write_stream(root / "tools", agents, **kwargs)
    return root


def snapshot(mirror: Mirror) -> dict[str, bytes]:
    """Every file under the storage root (the lock file aside) and its bytes."""
    return {
        p.relative_to(mirror.root).as_posix(): p.read_bytes()
        for p in sorted(mirror.root.rglob("*"))
        if p.is_file() and p.name != ".upgrader.lock"
    }


def assert_unchanged(mirror: Mirror, before: dict[str, bytes]) -> None:
    assert snapshot(mirror) == before
    assert sorted(p.name for p in mirror.root.iterdir() if p.is_dir()) == ["tools"]
    assert mirror.verify() == []


def read_members(archive: Path) -> Members:
    """The members of an archive with their data, for building variants of it."""
    members: Members = []
    with tarfile.open(archive) as tar:
        for info in tar:
            handle = tar.extractfile(info) if info.isreg() else None
            members.append((info, handle.read() if handle else None))
    return members


def write_archive(path: Path, members: Members, *, compress: bool = True) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info = dataclasses_copy(info)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    body = gzip.compress(raw.getvalue(), 1, mtime=0) if compress else raw.getvalue()
    path.write_bytes(body)
    return path


def dataclasses_copy(info: tarfile.TarInfo) -> tarfile.TarInfo:
    copy = tarfile.TarInfo(info.name)
    for field in ("size", "mode", "mtime", "type", "linkname", "uid", "gid", "devmajor"):
        setattr(copy, field, getattr(info, field))
    copy.devminor = info.devminor
    return copy


def file_info(name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def renamed(members: Members, old: str, new: str) -> Members:
    out: Members = []
    for info, data in members:
        copy = dataclasses_copy(info)
        if copy.name == old:
            copy.name = new
        out.append((copy, data))
    return out


def replace_data(members: Members, name: str, data: bytes) -> Members:
    return [(info, data if info.name == name else body) for info, body in members]


def member_names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


TARBALL = "tools/released/juju-3.6.12-ubuntu-amd64.tgz"
PRODUCTS = "tools/streams/v1/com.ubuntu.juju-released-agents.json"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A bundle of 3.6.12 (amd64, arm64) and 3.6.11 (amd64) made from a --local-dir tree."""
    make_bundle(local_dir(tmp_path / "src"), tmp_path / "agents.tar.gz")
    return tmp_path / "agents.tar.gz"


@pytest.fixture
def good_members(good: Path) -> Members:
    return read_members(good)


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    """A mirror that already holds 3.5.7-ubuntu-amd64."""
    make_bundle(local_dir(tmp_path / "base", BASE), tmp_path / "base.tar.gz")
    (tmp_path / "store").mkdir()
    store = Mirror(tmp_path / "store")
    import_bundle(tmp_path / "base.tar.gz", store)
    return store


# --------------------------------------------------------------------------------------------
# Making bundles


def test_bundle_holds_metadata_then_listed_tarballs_in_sorted_order(good: Path) -> None:
    assert member_names(good) == [
        "tools",
        "tools/streams",
        "tools/streams/v1",
        PRODUCTS,
        "tools/streams/v1/index2.json",
        "tools/released",
        "tools/released/juju-3.6.11-ubuntu-amd64.tgz",
        TARBALL,
        "tools/released/juju-3.6.12-ubuntu-arm64.tgz",
    ]
    with tarfile.open(good) as tar:
        for info in tar:
            assert info.isdir() or info.isreg()
            assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
            assert info.mode == (0o755 if info.isdir() else 0o644)


def test_bundle_is_deterministic_and_accepts_the_tools_dir_itself(tmp_path: Path) -> None:
    src = local_dir(tmp_path / "src")
    first = make_bundle(src, tmp_path / "one.tar.gz")
    os.utime(src / "tools" / "streams/v1/index2.json", (1, 1))
    second = make_bundle(src / "tools", tmp_path / "two.tar.gz")
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    assert first.binaries == binaries(
        "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.11-ubuntu-amd64"
    )
    assert (first.files, second.files) == (5, 5)
    assert first.bytes == sum(p.stat().st_size for p in (src / "tools").rglob("*") if p.is_file())


def test_bundle_leaves_out_unlisted_files_and_reports_them(tmp_path: Path) -> None:
    src = local_dir(tmp_path / "src")
    (src / "tools/released/juju-9.9.9-ubuntu-amd64.tgz").write_bytes(b"stray")
    (src / "tools/released/.juju-3.6.13.part").write_bytes(b"partial")
    result = make_bundle(src, tmp_path / "agents.tar.gz")
    assert result.skipped == (
        "released/.juju-3.6.13.part",
        "released/juju-9.9.9-ubuntu-amd64.tgz",
    )
    assert not [n for n in member_names(tmp_path / "agents.tar.gz") if "9.9.9" in n]


def test_bundle_of_a_condensed_official_tree(tmp_path: Path) -> None:
    write_stream(tmp_path / "src", AGENTS, condensed=True)
    result = make_bundle(tmp_path / "src", tmp_path / "agents.tar.gz")
    assert "tools/agent/3.6.12/juju-3.6.12-linux-amd64.tgz" in member_names(
        tmp_path / "agents.tar.gz"
    )
    assert len(result.binaries) == 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "cannot be read"),
        ("symlink", "not a regular file"),
        ("shorter", "holds 5 bytes, the metadata lists"),
        ("altered", "does not match its metadata"),
    ],
)
def test_bundle_refuses_a_mirror_whose_tarballs_do_not_match(
    tmp_path: Path, damage: str, message: str
) -> None:
    src = local_dir(tmp_path / "src")
    tarball = src / TARBALL
    if damage == "missing":
        tarball.unlink()
    elif damage == "symlink":
        target = tmp_path / "elsewhere.tgz"
        tarball.rename(target)
        tarball.symlink_to(target)
    elif damage == "shorter":
        tarball.write_bytes(b"short")
    else:
        data = bytearray(tarball.read_bytes())
        data[20] ^= 0xFF
        tarball.write_bytes(bytes(data))
    (tmp_path / "agents.tar.gz").write_bytes(b"previous archive")
    with pytest.raises(InvalidInputError, match=message):
        make_bundle(src, tmp_path / "agents.tar.gz")
    assert (tmp_path / "agents.tar.gz").read_bytes() == b"previous archive"
    leftovers = {p.name for p in tmp_path.iterdir()} - {"agents.tar.gz", "src", "elsewhere.tgz"}
    assert leftovers == set()


def test_bundle_of_a_directory_without_metadata_names_the_accepted_form(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"no agent metadata found.*--local-dir"):
        make_bundle(tmp_path / "empty", tmp_path / "agents.tar.gz")
    assert not (tmp_path / "agents.tar.gz").exists()


def test_bundle_refuses_metadata_larger_than_an_archive_may_hold(tmp_path: Path) -> None:
    """The charm refuses a metadata file over 32 MiB: so does bundle, without reading it."""
    src = local_dir(tmp_path / "src")
    with open(src / "tools/streams/v1/index.json", "wb") as big:
        big.truncate(archive.MAX_METADATA_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InvalidInputError) as caught:
        make_bundle(src, tmp_path / "agents.tar.gz")
    assert str(caught.value).endswith(
        "index.json holds 33554433 bytes; an agent-binaries archive holds at most 33554432 "
        "bytes in one metadata file and 134217728 in all"
    )
    assert not (tmp_path / "agents.tar.gz").exists()


def test_bundle_into_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    src = local_dir(tmp_path / "src")
    with pytest.raises(InvalidInputError, match=r"cannot write .*no archive was written"):
        make_bundle(src, tmp_path / "nowhere" / "agents.tar.gz")


@pytest.mark.parametrize(
    "inside",
    ["tools/released/juju-3.6.12-ubuntu-amd64.tgz", "tools/streams/v1/index2.json", "tools/a.tgz"],
)
def test_bundle_into_the_mirror_it_bundles_is_refused(tmp_path: Path, inside: str) -> None:
    src = local_dir(tmp_path / "src")
    files = {p: p.read_bytes() for p in (src / "tools").rglob("*") if p.is_file()}
    with pytest.raises(
        InvalidInputError, match=r"cannot write .* inside the mirror it bundles .*; write it "
    ):
        make_bundle(src, src / inside)
    assert {p: p.read_bytes() for p in (src / "tools").rglob("*") if p.is_file()} == files


# --------------------------------------------------------------------------------------------
# Importing good archives


def test_import_merges_into_the_mirror_and_keeps_what_was_there(
    good: Path, mirror: Mirror
) -> None:
    lines: list[str] = []
    result = import_bundle(good, mirror, log=lines.append)
    assert result.imported == binaries(
        "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.11-ubuntu-amd64"
    )
    assert result.present == ()
    assert result.skipped == ()
    assert result.streams == ("released",)
    assert not result.signed
    assert result.bytes_written == sum(len(a.data) for a in AGENTS)
    assert len(lines) == 3
    staged = {str(e.binary): e for e in mirror.staged("released")}
    assert sorted(staged) == [
        "3.5.7-ubuntu-amd64",
        "3.6.11-ubuntu-amd64",
        "3.6.12-ubuntu-amd64",
        "3.6.12-ubuntu-arm64",
    ]
    assert staged["3.6.12-ubuntu-amd64"].path == "released/juju-3.6.12-ubuntu-amd64.tgz"
    assert mirror.verify() == []
    assert not list(mirror.root.glob(".import-*"))
    assert result.results() == {
        "imported": "3.6.12-ubuntu-amd64, 3.6.12-ubuntu-arm64, 3.6.11-ubuntu-amd64",
        "present": "",
        "skipped": "",
        "streams": "released",
        "signed": "false",
        "bytes-written": str(result.bytes_written),
        "summary": "imported 3 agent binaries from agents.tar.gz",
    }


def test_importing_again_writes_nothing_and_reports_present(good: Path, mirror: Mirror) -> None:
    import_bundle(good, mirror)
    before = snapshot(mirror)
    result = import_bundle(good, mirror)
    assert result.imported == ()
    assert result.present == binaries(
        "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.11-ubuntu-amd64"
    )
    assert result.bytes_written == 0
    assert snapshot(mirror) == before
    assert result.summary() == ("imported 0 agent binaries from agents.tar.gz, 3 already present")


def test_empty_placeholder_resource_is_not_an_error(tmp_path: Path, mirror: Mirror) -> None:
    before = snapshot(mirror)
    (tmp_path / "agent-binaries").write_bytes(b"")
    result = import_bundle(tmp_path / "agent-binaries", mirror)
    assert result.empty
    assert result.summary() == "no binaries in agent-binaries (it is empty)"
    assert_unchanged(mirror, before)


@pytest.mark.parametrize("prefix", ["", "./", "./tools-copy/", "site/"])
def test_archives_made_by_hand_with_other_prefixes_are_accepted(
    tmp_path: Path, good_members: Members, mirror: Mirror, prefix: str
) -> None:
    members: Members = []
    for info, data in good_members:
        copy = dataclasses_copy(info)
        copy.name = prefix + info.name if prefix != "./tools-copy/" else prefix + info.name[6:]
        if copy.name.rstrip("/") not in ("", ".", "./tools-copy"):
            members.append((copy, data))
    if prefix == "./":
        members.insert(0, (file_info(".", kind=tarfile.DIRTYPE), None))
    archive = write_archive(tmp_path / "hand.tar.gz", members)
    result = import_bundle(archive, mirror)
    assert len(result.imported) == 3
    assert mirror.verify() == []


@pytest.mark.needs_system
@pytest.mark.parametrize("what", [["tools"], ["."]])
def test_archive_made_with_gnu_tar_is_accepted(
    tmp_path: Path, mirror: Mirror, what: list[str]
) -> None:
    """What the README tells people without juju-upgrader: tar -czf of a --local-dir tree."""
    if shutil.which("tar") is None:
        if os.environ.get("UPGRADER_CI") == "1":
            pytest.fail("tar is not installed")
        pytest.skip("tar is not installed")
    src = local_dir(tmp_path / "src")
    archive = tmp_path / "agents.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src), *what], check=True)
    result = import_bundle(archive, mirror)
    assert len(result.imported) == 3
    assert mirror.verify() == []


def test_official_condensed_layout_is_stored_in_the_mirror_layout(
    tmp_path: Path, mirror: Mirror
) -> None:
    write_stream(tmp_path / "src", AGENTS, condensed=True)
    make_bundle(tmp_path / "src", tmp_path / "agents.tar.gz")
    import_bundle(tmp_path / "agents.tar.gz", mirror)
    paths = sorted(e.path for e in mirror.staged("released"))
    assert paths == [
        "released/juju-3.5.7-ubuntu-amd64.tgz",
        "released/juju-3.6.11-ubuntu-amd64.tgz",
        "released/juju-3.6.12-ubuntu-amd64.tgz",
        "released/juju-3.6.12-ubuntu-arm64.tgz",
    ]
    assert mirror.verify() == []


def test_one_content_listed_for_several_oses_is_stored_once(
    tmp_path: Path, mirror: Mirror
) -> None:
    data = make_tarball(b"#!/bin/sh\necho linux\n")
    agents = [Agent("3.6.12", os=name, content=data) for name in ("centos", "ubuntu")]
    make_bundle(local_dir(tmp_path / "src", agents), tmp_path / "agents.tar.gz")
    result = import_bundle(tmp_path / "agents.tar.gz", mirror)
    assert result.imported == binaries("3.6.12-centos-amd64", "3.6.12-ubuntu-amd64")
    assert {e.path for e in mirror.staged("released") if e.version.minor == 6} == {
        "released/juju-3.6.12-ubuntu-amd64.tgz"
    }
    assert result.bytes_written == len(data)
    assert not (mirror.tools / "released/juju-3.6.12-centos-amd64.tgz").exists()


def test_several_streams_are_imported(tmp_path: Path, mirror: Mirror) -> None:
    src = tmp_path / "src"
    write_stream(src / "tools", [Agent("3.6.13")], stream="proposed")
    proposed_index = json.loads((src / "tools/streams/v1/index2.json").read_text())
    write_stream(src / "tools", AGENTS)
    index = json.loads((src / "tools/streams/v1/index2.json").read_text())
    index["index"].update(proposed_index["index"])
    (src / "tools/streams/v1/index2.json").write_text(json.dumps(index))
    make_bundle(src, tmp_path / "agents.tar.gz")
    result = import_bundle(tmp_path / "agents.tar.gz", mirror)
    assert result.streams == ("proposed", "released")
    assert [str(e.binary) for e in mirror.staged("proposed")] == ["3.6.13-ubuntu-amd64"]
    assert mirror.verify() == []


def test_unlisted_tarball_is_skipped_and_reported(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    extra = (file_info("tools/released/juju-9.9.9-ubuntu-amd64.tgz"), b"not listed")
    archive = write_archive(tmp_path / "extra.tar.gz", [*good_members, extra])
    result = import_bundle(archive, mirror)
    assert result.skipped == ("tools/released/juju-9.9.9-ubuntu-amd64.tgz",)
    assert len(result.imported) == 3
    assert not (mirror.tools / "released/juju-9.9.9-ubuntu-amd64.tgz").exists()
    assert "1 unlisted files skipped" in result.summary()


# --------------------------------------------------------------------------------------------
# Hostile and broken archives: refused whole, mirror unchanged


def hostile_members(kind: str, good_members: Members) -> Members:
    """The good archive plus one hostile member (or with one member made hostile)."""
    data = b"x" * 10
    extra: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {
        "absolute": (file_info("/etc/cron.d/evil"), data),
        "dotdot": (file_info("../../evil"), data),
        "inner-dotdot": (file_info("tools/released/../../../evil"), data),
        "symlink": (file_info("tools/released/link", kind=tarfile.SYMTYPE, link="/etc"), None),
        "hardlink": (file_info("tools/released/hard", kind=tarfile.LNKTYPE, link=TARBALL), None),
        "chardev": (file_info("tools/null", kind=tarfile.CHRTYPE), None),
        "blockdev": (file_info("tools/sda", kind=tarfile.BLKTYPE), None),
        "fifo": (file_info("tools/pipe", kind=tarfile.FIFOTYPE), None),
        "duplicate": (file_info(TARBALL), b"second copy"),
        "file-as-dir": (file_info(TARBALL + "/inside"), data),
        "control-char": (file_info("tools/bad\nname"), data),
    }
    return [*good_members, extra[kind]]


HOSTILE = {
    "absolute": "has an absolute path",
    "dotdot": "has a '..' path component",
    "inner-dotdot": "has a '..' path component",
    "symlink": "is a symbolic link",
    "hardlink": "is a hard link",
    "chardev": "is a device file",
    "blockdev": "is a device file",
    "fifo": "is a FIFO",
    "duplicate": "appears more than once",
    "file-as-dir": "which is a file",
    "control-char": "unusual name",
}


@pytest.mark.parametrize(("kind", "message"), HOSTILE.items(), ids=list(HOSTILE))
def test_hostile_member_refuses_the_whole_archive(
    tmp_path: Path, good_members: Members, mirror: Mirror, kind: str, message: str
) -> None:
    archive = write_archive(tmp_path / "hostile.tar.gz", hostile_members(kind, good_members))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=message) as caught:
        import_bundle(archive, mirror)
    assert "hostile.tar.gz" in str(caught.value)
    assert_unchanged(mirror, before)
    assert not (tmp_path.parent / "evil").exists()
    assert not Path("/etc/cron.d/evil").exists()


def test_hostile_member_placed_first_is_refused_before_anything_is_read(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    first = [(file_info("../../evil"), b"x"), *good_members]
    archive = write_archive(tmp_path / "hostile.tar.gz", first)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"'\.\./\.\./evil' has a '\.\.' path component"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_too_many_members_are_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    many = [(file_info(f"tools/junk/{n:05d}"), b"") for n in range(10_001 - len(good_members))]
    archive = write_archive(
        tmp_path / "many.tar.gz", [*good_members, (file_info("x"), b""), *many]
    )
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match="more than 10000 members"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_exactly_the_member_limit_is_accepted(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    junk = [(file_info(f"tools/junk/{n}"), b"") for n in range(20 - len(good_members))]
    archive = write_archive(tmp_path / "limit.tar.gz", [*good_members, *junk])
    result = import_bundle(archive, mirror, limits=Limits(max_members=20))
    assert len(result.imported) == 3
    assert len(result.skipped) == 20 - len(good_members)


def test_member_claiming_a_huge_size_is_refused_at_its_header(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in good_members:
            tar.addfile(dataclasses_copy(info), io.BytesIO(data) if data is not None else None)
        body = raw.getvalue()[: -2 * tarfile.BLOCKSIZE]  # drop the end-of-archive blocks
    huge = file_info("tools/released/juju-9.9.9-ubuntu-amd64.tgz")
    huge.size = 2**50  # a petabyte, with only a few bytes behind it
    body = body.rstrip(b"\0")
    body += b"\0" * (-len(body) % tarfile.BLOCKSIZE)
    data = body + huge.tobuf(tarfile.PAX_FORMAT) + b"A" * 4096
    archive = tmp_path / "huge.tar.gz"
    archive.write_bytes(gzip.compress(data))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"declares 1125899906842624 bytes, more than the"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def _with_unlisted_member(good_members: Members, size: int) -> bytes:
    """A tar of ``good_members`` then an unlisted member declaring ``size`` bytes, of which
    only 4 KiB follow: a scan that reads its data fails on the truncation instead."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in good_members:
            tar.addfile(dataclasses_copy(info), io.BytesIO(data) if data is not None else None)
        body = raw.getvalue()[: -2 * tarfile.BLOCKSIZE].rstrip(b"\0")
    body += b"\0" * (-len(body) % tarfile.BLOCKSIZE)
    zeros = file_info("tools/zeros.bin")
    zeros.size = size
    return body + zeros.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096


def test_members_totalling_more_than_the_limit_are_refused_at_a_header(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    # A gzip of zeros is about a thousandth of its size: the total bounds the time a scan
    # takes, before any data beyond it is read.
    archive = tmp_path / "zeros.tar.gz"
    archive.write_bytes(gzip.compress(_with_unlisted_member(good_members, 10**6)))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"zeros.tar.gz: its files total more than 500000 "):
        import_bundle(archive, mirror, limits=Limits(max_total_bytes=500_000))
    assert_unchanged(mirror, before)
    good = write_archive(tmp_path / "good.tar.gz", good_members)
    assert len(import_bundle(good, mirror, limits=Limits(max_total_bytes=500_000)).imported) == 3


def test_the_total_is_bounded_by_what_the_storage_can_hold(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    archive = tmp_path / "zeros.tar.gz"
    archive.write_bytes(gzip.compress(_with_unlisted_member(good_members, 4 * 2**30)))
    before = snapshot(mirror)
    free = shutil.disk_usage(mirror.root).free
    # With no free space beyond the reserve, the 4 GiB member is refused at its header.
    with pytest.raises(InsufficientSpaceError, match=r"zeros.tar.gz: its files total more than"):
        import_bundle(archive, mirror, limits=Limits(reserve_bytes=free))
    assert_unchanged(mirror, before)


def test_oversized_metadata_file_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    archive = write_archive(tmp_path / "agents.tar.gz", good_members)
    before = snapshot(mirror)
    with pytest.raises(
        ArchiveError, match=r"agents.json' declares \d+ bytes, more than the 100 .* metadata file"
    ):
        import_bundle(archive, mirror, limits=Limits(max_metadata_bytes=100))
    assert_unchanged(mirror, before)


def test_metadata_held_in_memory_is_bounded_in_total(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    # Each metadata file is under the per-file limit, but together they are not: the scan
    # keeps metadata in memory, so a hostile archive of many of them must be refused.
    extra = [(file_info(f"junk{n}/streams/v1/x.json"), b"{}" * 2000) for n in range(10)]
    archive = write_archive(tmp_path / "bomb.tar.gz", [*good_members, *extra])
    before = snapshot(mirror)
    limits = Limits(max_metadata_bytes=4000, max_metadata_total=16000)
    with pytest.raises(ArchiveError, match=r"metadata files total more than 16000 bytes"):
        import_bundle(archive, mirror, limits=limits)
    assert_unchanged(mirror, before)
    plain = write_archive(tmp_path / "plain.tar.gz", good_members)
    assert len(import_bundle(plain, mirror, limits=limits).imported) == 3


def test_total_that_does_not_fit_the_free_space_is_refused(good: Path, mirror: Mirror) -> None:
    before = snapshot(mirror)
    free = shutil.disk_usage(mirror.root).free
    with pytest.raises(InsufficientSpaceError, match=r"not enough free space .* agents.tar.gz"):
        import_bundle(good, mirror, limits=Limits(reserve_bytes=free))
    assert_unchanged(mirror, before)


def test_disk_filling_up_during_extraction_is_refused_cleanly(
    tmp_path: Path, mirror: Mirror
) -> None:
    """RLIMIT_FSIZE in a child process makes the extraction fail with EFBIG half way."""
    big = Agent("3.6.12", content=os.urandom(256 * 1024))
    make_bundle(local_dir(tmp_path / "src", [big]), tmp_path / "big.tar.gz")
    before = snapshot(mirror)
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path[:0] = [{str(ROOT / "lib")!r}]
        from upgrader.archive_import import import_bundle
        from upgrader.errors import UpgraderError
        from upgrader.mirror import Mirror
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            import_bundle({str(tmp_path / "big.tar.gz")!r}, Mirror({str(mirror.root)!r}))
        except UpgraderError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "cannot extract 'tools/released/juju-3.6.12-ubuntu-amd64.tgz'" in done.stdout
    assert "File too large (EFBIG)" in done.stdout
    assert "nothing was imported" in done.stdout
    assert_unchanged(mirror, before)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("cut-half", "truncated"),
        ("cut-trailer", "truncated"),
        ("flip-byte", "corrupt|sha256"),
        ("not-gzip", "not a gzip-compressed file"),
        ("plain-tar", "not a gzip-compressed file"),
        ("gzip-not-tar", "not a tar archive inside the gzip data"),
        ("garbage-after", "data after the end of the tar archive"),
    ],
)
def test_damaged_archive_is_refused(
    tmp_path: Path, good: Path, good_members: Members, mirror: Mirror, damage: str, message: str
) -> None:
    body = good.read_bytes()
    if damage == "cut-half":
        body = body[: len(body) // 2]
    elif damage == "cut-trailer":
        body = body[:-4]
    elif damage == "flip-byte":
        data = bytearray(body)
        data[len(data) * 2 // 3] ^= 0x01
        body = bytes(data)
    elif damage == "not-gzip":
        body = b"this is not an archive\n" * 10
    elif damage == "plain-tar":
        body = gzip.decompress(body)
    elif damage == "gzip-not-tar":
        body = gzip.compress(os.urandom(4096))
    else:
        body = gzip.compress(gzip.decompress(body) + b"more data" * 1000)
    archive = tmp_path / "damaged.tar.gz"
    archive.write_bytes(body)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=message) as caught:
        import_bundle(archive, mirror)
    assert "damaged.tar.gz" in str(caught.value)
    assert_unchanged(mirror, before)


def test_truncated_tar_inside_complete_gzip_is_refused(
    tmp_path: Path, good: Path, mirror: Mirror
) -> None:
    tar_bytes = gzip.decompress(good.read_bytes())
    archive = tmp_path / "short.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes[: len(tar_bytes) - 3000]))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match="truncated"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


# A bad first header makes it "not a tar archive"; a later one, "damaged or truncated".
DAMAGED_TAR = "not a tar archive inside the gzip data|the tar data is damaged or truncated"


@pytest.mark.parametrize(
    ("pax", "message"),
    [
        # tarfile's own parsers raise ValueError (not TarError) on these crafted headers.
        ({"GNU.sparse.map": "x,y", "GNU.sparse.size": "10"}, DAMAGED_TAR),
        # Refused before tarfile reads the map (of any length) from the member's data.
        (
            {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "5"},
            "is a sparse file",
        ),
        ({"size": "-5"}, "declares a negative size"),
    ],
    ids=["sparse-map", "sparse-1.0", "negative-size"],
)
@pytest.mark.parametrize("first", [True, False], ids=["first", "after-metadata"])
def test_crafted_pax_header_is_refused_not_a_traceback(
    tmp_path: Path,
    good_members: Members,
    mirror: Mirror,
    pax: dict[str, str],
    message: str,
    first: bool,
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        crafted = file_info("tools/released/juju-9.9.9-ubuntu-amd64.tgz")
        crafted.size = 3
        crafted.pax_headers = pax
        members = [(crafted, b"abc"), *good_members]
        if not first:
            members = [*good_members, (crafted, b"abc")]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    archive = tmp_path / "crafted.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=message) as caught:
        import_bundle(archive, mirror)
    assert "crafted.tar.gz" in str(caught.value)
    assert_unchanged(mirror, before)


# Extended headers: tarfile reads each whole into memory, so their size is checked first.

# The child imports an archive and prints the error, if any; os.wait4 gives its peak RSS.
IMPORT_CHILD = textwrap.dedent(
    """
    import json, sys
    from upgrader.archive_import import import_bundle
    from upgrader.errors import UpgraderError
    from upgrader.mirror import Mirror
    try:
        import_bundle(sys.argv[1], Mirror(sys.argv[2]))
    except UpgraderError as exc:
        print(json.dumps(str(exc)))
    else:
        print(json.dumps(None))
    """
)
MEMORY_BOUND = 200 * 1024 * 1024
"""Peak RSS allowed to an import child: well below the 1 GiB the hostile headers claim."""


def import_in_child(archive: Path, mirror: Mirror, *, timeout: float = 60) -> tuple[str, int]:
    """Import ``archive`` in a child process; return its error message and peak RSS in bytes.

    The child is killed after ``timeout`` seconds (the test then fails).
    """
    out = archive.with_suffix(".out")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    with open(out, "wb") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-c", IMPORT_CHILD, str(archive), str(mirror.root)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            pytest.fail(f"the import did not finish within {timeout} s")
        time.sleep(0.02)
    child.returncode = os.waitstatus_to_exitcode(status)
    output = out.read_text()
    assert child.returncode == 0, output
    message = json.loads(output.splitlines()[-1])
    assert message is not None, "the archive was imported"
    return message, usage.ru_maxrss * 1024  # kilobytes on Linux


def gzip_repeated(data: bytes, times: int) -> bytes:
    """``data`` repeated ``times`` times, as concatenated gzip members (small on disk)."""
    return gzip.compress(data, mtime=0) * times


def tar_stream(members: Members) -> bytes:
    """The members as tar data, without the end-of-archive blocks."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(dataclasses_copy(info), io.BytesIO(data) if data is not None else None)
        body = raw.getvalue()
    return body.rstrip(b"\0") + b"\0" * (-len(body.rstrip(b"\0")) % tarfile.BLOCKSIZE)


def header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(tarfile.USTAR_FORMAT)


def archive_with(
    path: Path, good_members: Members, hostile: bytes, body: bytes = b"", times: int = 0
) -> Path:
    """The good archive's members, then ``hostile`` and ``body`` repeated ``times`` times (as
    gzip members: 1 GiB of it takes 1 MB), then a small member and the end of the archive."""
    tail = tar_stream([(file_info("tools/after"), b"after")]) + b"\0" * 2 * tarfile.BLOCKSIZE
    path.write_bytes(
        gzip.compress(tar_stream(good_members) + hostile, mtime=0)
        + gzip_repeated(body, times)
        + gzip.compress(tail, mtime=0)
    )
    return path


GIB = 1024 * 1024 * 1024
ZEROS = b"\0" * (1024 * 1024)


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        (
            tarfile.XHDTYPE,
            "PaxHeaders/x",
            r"a pax extended header at byte \d+ declares 1073741824",
        ),
        (tarfile.XGLTYPE, "GlobalHead", r"a pax global header at byte \d+ brings global headers"),
        (tarfile.GNUTYPE_LONGNAME, "././@LongLink", r"a GNU long name at byte \d+ declares"),
        (tarfile.GNUTYPE_LONGLINK, "././@LongLink", r"a GNU long link name at byte \d+ declares"),
    ],
    ids=["pax", "pax-global", "gnu-long-name", "gnu-long-link"],
)
def test_extended_header_of_a_gigabyte_is_refused_before_it_is_read(
    tmp_path: Path, good_members: Members, mirror: Mirror, kind: bytes, name: str, message: str
) -> None:
    archive = archive_with(
        tmp_path / "claims.tar.gz", good_members, header(name, kind, GIB), ZEROS, 1024
    )
    assert archive.stat().st_size < 2 * 1024 * 1024  # a 1 MB resource claiming 1 GiB
    before = snapshot(mirror)
    error, peak = import_in_child(archive, mirror)
    assert re.search(message, error), error
    assert error.startswith("claims.tar.gz: ")
    assert "more than the 1048576 accepted" in error and "refusing the whole archive" in error
    assert peak < MEMORY_BOUND, f"peak RSS {peak} bytes"
    assert_unchanged(mirror, before)


def pax_record(key: bytes, value: bytes) -> bytes:
    """One ``LENGTH KEY=VALUE`` record, its length counting its own digits."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


def test_global_headers_are_bounded_in_total(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    """Global pax headers accumulate in memory: each is small, their total is bounded too."""
    record = pax_record(b"comment", b"x" * (128 * 1024))
    glob = header("GlobalHead", tarfile.XGLTYPE, len(record)) + record
    glob += b"\0" * (-len(glob) % tarfile.BLOCKSIZE)
    archive = archive_with(tmp_path / "globals.tar.gz", good_members, b"", glob, 10)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"a pax global header at byte \d+ brings global"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_long_chain_of_extended_headers_is_refused_not_a_recursion_error(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    """tarfile reads the header after an extended one in a nested call."""
    link = header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 10) + b"long-name\0".ljust(512, b"\0")
    archive = archive_with(tmp_path / "chain.tar.gz", good_members, b"", link, 5000)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"more than 16 extended headers in a row at byte"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        # tarfile's record pattern would rescan to the "=" at the end for every "1 ".
        (b"4 " + b"1 " * 400_000 + b"=\n", r"record at offset 0 is not LENGTH KEY=VALUE"),
        # Its hdrcharset pattern would backtrack over the digits from each of them.
        (b"800000 comment=" + b"1" * 799_984 + b"\n", r"a run of more than 64 digits"),
    ],
    ids=["records", "digits"],
)
def test_pax_records_that_tarfile_parses_in_quadratic_time_are_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror, records: bytes, message: str
) -> None:
    pax = header("PaxHeaders/x", tarfile.XHDTYPE, len(records)) + records
    pax += b"\0" * (-len(pax) % tarfile.BLOCKSIZE)
    archive = archive_with(tmp_path / "slow.tar.gz", good_members, pax)
    before = snapshot(mirror)
    error, _ = import_in_child(archive, mirror, timeout=30)  # minutes for tarfile alone
    assert re.search(rf"a pax extended header at byte \d+ is malformed \({message}\)", error)
    assert_unchanged(mirror, before)


def test_old_gnu_sparse_member_is_refused_before_its_map_is_read(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    """An old GNU sparse header may chain extension blocks for ever; none is read."""
    sparse = bytearray(header("tools/sparse", tarfile.GNUTYPE_SPARSE, 0))
    sparse[482] = 1  # isextended: more sparse entries follow in the next block
    sparse[148:156] = b" " * 8
    sparse[148:156] = b"%06o\0 " % sum(sparse)  # the header checksum
    block = bytearray(b"\0" * 512)
    for n in range(21):
        block[n * 24 : n * 24 + 24] = b"%011o\0%011o\0" % (n + 1, 1)
    block[504] = 1  # and more after this one
    archive = archive_with(
        tmp_path / "sparse.tar.gz", good_members, bytes(sparse), bytes(block) * 2048, 64
    )
    before = snapshot(mirror)
    error, peak = import_in_child(archive, mirror)
    assert "member 'tools/sparse' is a sparse file; refusing the whole archive" in error
    assert peak < MEMORY_BOUND, f"peak RSS {peak} bytes"
    assert_unchanged(mirror, before)


def test_extended_headers_as_tar_writes_them_are_accepted(tmp_path: Path, mirror: Mirror) -> None:
    """Long and non-ASCII names, fractional times: pax headers Python's tarfile writes."""
    src = local_dir(tmp_path / "src")
    deep = src / "tools" / ("d" * 60) / ("é" * 60)
    deep.mkdir(parents=True)
    (deep / ("f" * 90)).write_bytes(b"unlisted")
    archive = tmp_path / "agents.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src / "tools", arcname="tools")
    assert any(len(n) > 100 for n in member_names(archive))
    result = import_bundle(archive, mirror)
    assert len(result.imported) == 3
    assert result.skipped == (f"tools/{'d' * 60}/{'é' * 60}/{'f' * 90}",)


@pytest.mark.needs_system
@pytest.mark.parametrize("fmt", ["pax", "gnu"])
def test_extended_headers_from_gnu_tar_are_accepted(
    tmp_path: Path, mirror: Mirror, fmt: str
) -> None:
    """GNU tar writes a pax header (pax) or a GNU long name (gnu) for a path over 100 bytes."""
    if shutil.which("tar") is None:
        if os.environ.get("UPGRADER_CI") == "1":
            pytest.fail("tar is not installed")
        pytest.skip("tar is not installed")
    src = local_dir(tmp_path / "src")
    long_name = f"tools/{'d' * 80}/{'f' * 80}"
    (src / long_name).parent.mkdir(parents=True)
    (src / long_name).write_bytes(b"unlisted")
    archive = tmp_path / "agents.tar.gz"
    subprocess.run(
        ["tar", f"--format={fmt}", "-czf", str(archive), "-C", str(src), "tools"], check=True
    )
    result = import_bundle(archive, mirror)
    assert len(result.imported) == 3
    assert result.skipped == (long_name,)


def test_pax_record_check_accepts_what_tarfile_writes_and_refuses_the_rest() -> None:
    info = tarfile.TarInfo("x" * 300)
    info.pax_headers = {"comment": "a=b\nc", "mtime": "1700000000.123456789"}
    written = info.tobuf(tarfile.PAX_FORMAT)
    size = tarfile.TarInfo.frombuf(written[:512], "utf-8", "strict").size
    assert archive._pax_problem(written[512 : 512 + size]) is None
    assert archive._pax_problem(b"") is None
    for bad in (b"5 a=\n5 b", b"0 =\n", b"7 a=b\n", b"4 =b\n", b"x", b"99999999 a=b\n"):
        assert archive._pax_problem(bad) is not None, bad


def test_unreadable_archive_names_it(tmp_path: Path, mirror: Mirror) -> None:
    with pytest.raises(ArchiveError, match=r"cannot read nothing.tar.gz: .*ENOENT"):
        import_bundle(tmp_path / "nothing.tar.gz", mirror)


# --------------------------------------------------------------------------------------------
# Archives whose content disagrees with their metadata


def test_listed_tarball_absent_from_the_archive_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    members = [(i, d) for i, d in good_members if i.name != TARBALL]
    archive = write_archive(tmp_path / "short.tar.gz", members)
    before = snapshot(mirror)
    with pytest.raises(
        ArchiveError, match=r"lists 3.6.12-ubuntu-amd64 at .*which is not in the archive"
    ):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_tarball_with_another_sha256_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    original = {i.name: d for i, d in good_members}[TARBALL]
    assert original is not None
    altered = bytes([original[0] ^ 0xFF]) + original[1:]
    archive = write_archive(tmp_path / "bad.tar.gz", replace_data(good_members, TARBALL, altered))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"has sha256 [0-9a-f]{64}, the metadata lists"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_tarball_with_another_size_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    original = {i.name: d for i, d in good_members}[TARBALL]
    assert original is not None
    archive = write_archive(
        tmp_path / "bad.tar.gz", replace_data(good_members, TARBALL, original + b"\0")
    )
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"lists 3.6.12-ubuntu-amd64 as \d+ bytes, but member"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


@pytest.mark.parametrize(
    ("products", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"format": "products:1.0", "products": []}', "'products' must be an object"),
    ],
)
def test_malformed_metadata_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror, products: bytes, message: str
) -> None:
    archive = write_archive(
        tmp_path / "bad.tar.gz", replace_data(good_members, PRODUCTS, products)
    )
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=message):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


INDEX2 = "tools/streams/v1/index2.json"


@pytest.mark.parametrize("name", [INDEX2, PRODUCTS])
def test_metadata_nested_100000_deep_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror, name: str
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    archive = write_archive(tmp_path / "deep.tar.gz", replace_data(good_members, name, deep))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError) as caught:
        import_bundle(archive, mirror)
    assert str(caught.value) == (
        f"deep.tar.gz:{name}: malformed JSON: nested more than 64 levels deep (the accepted "
        "form is a JSON document nested at most 64 levels)"
    )
    assert_unchanged(mirror, before)


def test_metadata_size_beyond_8_gib_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    products = next(data for info, data in good_members if info.name == PRODUCTS)
    assert products is not None
    huge = re.sub(rb'"size": \d+', b'"size": 1' + b"0" * 400, products, count=1)
    archive = write_archive(tmp_path / "huge.tar.gz", replace_data(good_members, PRODUCTS, huge))
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"^huge.tar.gz:tools/streams/v1/com.ubuntu.juju-relea"):
        import_bundle(archive, mirror)
    with pytest.raises(ArchiveError, match=r"size a number of more than 20 digits is more than"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_index_listing_many_content_ids_names_twenty(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    index = {"format": "index:1.0", "index": {f"com.example:{n}": {} for n in range(500)}}
    archive = write_archive(
        tmp_path / "ids.tar.gz",
        replace_data(good_members, INDEX2, json.dumps(index).encode()),
    )
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"lists no agent stream .* and 480 more$"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_index_without_agent_streams_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    index = {
        "format": "index:1.0",
        "index": {"com.ubuntu.juju:released:tools": {"datatype": "content-download"}},
    }
    members = replace_data(
        good_members, "tools/streams/v1/index2.json", json.dumps(index).encode()
    )
    archive = write_archive(tmp_path / "bad.tar.gz", members)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"lists no agent stream.*released:tools"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_archive_without_metadata_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    members = [(i, d) for i, d in good_members if "streams" not in i.name]
    archive = write_archive(tmp_path / "bare.tar.gz", members)
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"holds no agent metadata .*juju-upgrader bundle"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_two_mirrors_in_one_archive_are_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    second = renamed(good_members, "tools/streams/v1/index2.json", "other/streams/v1/index2.json")
    index = [(i, d) for i, d in second if i.name == "other/streams/v1/index2.json"]
    archive = write_archive(tmp_path / "two.tar.gz", [*good_members, *index])
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match="holds metadata in more than one place"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


def test_binary_staged_with_other_content_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    other = Agent("3.5.7", content=make_tarball(b"#!/bin/sh\necho rebuilt\n"))
    make_bundle(local_dir(tmp_path / "src", [Agent("3.6.12"), other]), tmp_path / "a.tar.gz")
    before = snapshot(mirror)
    with pytest.raises(ArchiveError, match=r"3.5.7-ubuntu-amd64 .*mirror already has it"):
        import_bundle(tmp_path / "a.tar.gz", mirror)
    assert_unchanged(mirror, before)


def test_import_while_a_sync_holds_the_lock_is_refused(good: Path, mirror: Mirror) -> None:
    before = snapshot(mirror)
    with mirror.lock("sync"), pytest.raises(MirrorBusyError, match="already running"):
        import_bundle(good, mirror)
    assert_unchanged(mirror, before)


# --------------------------------------------------------------------------------------------
# Signed (.sjson) metadata


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("gpg") is None:
        if os.environ.get("UPGRADER_CI") == "1":
            pytest.fail("gpg is not installed")
        pytest.skip("gpg is not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    for name in ("Signer", "Stranger"):
        gpg(
            home,
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <{name}@example.invalid>",
            "ed25519",
            "sign",
            "never",
        )
    yield home
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        capture_output=True,
        check=False,
    )


def gpg(home: Path, *args: str, stdin: bytes = b"") -> bytes:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def public_key(home: Path, name: str) -> str:
    return gpg(home, "--armor", "--export", f"{name}@example.invalid").decode()


def sign_tree(home: Path, tools: Path, signer: str = "Signer", *, keep_json: bool = True) -> None:
    """Sign every streams/v1 file as Canonical does: '.json' becomes '.sjson', clearsigned."""
    for path in sorted((tools / "streams/v1").glob("*.json")):
        text = path.read_bytes().replace(b".json", b".sjson")
        signed = gpg(home, "--local-user", f"{signer}@example.invalid", "--clearsign", stdin=text)
        path.with_suffix(".sjson").write_bytes(signed)
        if not keep_json:
            path.unlink()


@pytest.mark.needs_system
def test_signed_archive_is_verified_and_only_its_signed_text_is_used(
    tmp_path: Path, gpg_home: Path, mirror: Mirror
) -> None:
    src = local_dir(tmp_path / "src")
    sign_tree(gpg_home, src / "tools")
    # The unsigned products file lies about a tarball; only the signed one may be used.
    products = src / "tools/streams/v1/com.ubuntu.juju-released-agents.json"
    products.write_text(products.read_text().replace("3.6.11", "3.6.99"))
    make_bundle(src, tmp_path / "agents.tar.gz", keys=public_key(gpg_home, "Signer"))
    result = import_bundle(tmp_path / "agents.tar.gz", mirror, keys=public_key(gpg_home, "Signer"))
    assert result.signed
    assert result.imported == binaries(
        "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.11-ubuntu-amd64"
    )
    assert mirror.verify() == []


@pytest.mark.needs_system
def test_signed_archive_by_another_key_is_refused(
    tmp_path: Path, gpg_home: Path, mirror: Mirror
) -> None:
    src = local_dir(tmp_path / "src")
    sign_tree(gpg_home, src / "tools", "Stranger", keep_json=False)
    make_bundle(src, tmp_path / "agents.tar.gz", keys=public_key(gpg_home, "Stranger"))
    before = snapshot(mirror)
    with pytest.raises(SignatureError, match=r"index2.sjson is not valid: signed by unknown key"):
        import_bundle(tmp_path / "agents.tar.gz", mirror, keys=public_key(gpg_home, "Signer"))
    assert_unchanged(mirror, before)


@pytest.mark.needs_system
def test_signed_archive_is_checked_against_the_juju_key_by_default(
    tmp_path: Path, gpg_home: Path, mirror: Mirror
) -> None:
    src = local_dir(tmp_path / "src")
    sign_tree(gpg_home, src / "tools", keep_json=False)
    make_bundle(src, tmp_path / "agents.tar.gz", keys=public_key(gpg_home, "Signer"))
    before = snapshot(mirror)
    with pytest.raises(SignatureError, match="not one of the configured signing keys|unknown key"):
        import_bundle(tmp_path / "agents.tar.gz", mirror)
    assert_unchanged(mirror, before)


@pytest.mark.needs_system
def test_tampered_signed_metadata_is_refused(
    tmp_path: Path, gpg_home: Path, mirror: Mirror
) -> None:
    src = local_dir(tmp_path / "src")
    sign_tree(gpg_home, src / "tools", keep_json=False)
    keys = public_key(gpg_home, "Signer")
    make_bundle(src, tmp_path / "agents.tar.gz", keys=keys)
    name = "tools/streams/v1/com.ubuntu.juju-released-agents.sjson"
    members = read_members(tmp_path / "agents.tar.gz")
    body = {i.name: d for i, d in members}[name]
    assert body is not None
    tampered = replace_data(members, name, body.replace(b"3.6.11", b"3.6.10"))
    archive = write_archive(tmp_path / "tampered.tar.gz", tampered)
    before = snapshot(mirror)
    with pytest.raises(SignatureError, match="bad signature"):
        import_bundle(archive, mirror, keys=keys)
    assert_unchanged(mirror, before)


def test_signed_index_naming_a_missing_products_file_is_refused(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    """The signed index is read first; its products file must be in the archive."""
    members = renamed(good_members, "tools/streams/v1/index2.json", "tools/streams/v1/x.json")
    members.append((file_info("tools/streams/v1/index2.sjson"), b"not signed at all"))
    archive = write_archive(tmp_path / "signed.tar.gz", members)
    before = snapshot(mirror)
    with pytest.raises(SignatureError, match="index2.sjson is not valid"):
        import_bundle(archive, mirror)
    assert_unchanged(mirror, before)


# --------------------------------------------------------------------------------------------
# Internals worth pinning down


def test_gzip_reader_reads_concatenated_members(tmp_path: Path) -> None:
    body = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000)
    with open(tmp_path / "two.gz", "wb") as out:
        out.write(body)
    with open(tmp_path / "two.gz", "rb") as raw:
        reader = archive._GzipStream(raw, "two.gz")
        data = b""
        while chunk := reader.read(300):
            data += chunk
    assert data == b"a" * 1000 + b"b" * 1000


# --------------------------------------------------------------------------------------------
# import_resource: the charm's entry point, remembering what it imported


def test_import_resource_remembers_the_archive_and_skips_it_next_time(
    good: Path, mirror: Mirror
) -> None:
    first = archive_import.import_resource(good, mirror, source="the agent-binaries resource")
    assert len(first.imported) == 3
    assert first.sha256 == archive_import.file_sha256(good)
    assert first.results()["sha256"] == first.sha256
    record = mirror.root / archive_import.RESOURCE_RECORD
    assert record.read_text() == f"{first.sha256}\n"
    before = snapshot(mirror)
    again = archive_import.import_resource(good, mirror, source="the agent-binaries resource")
    assert again.already_imported
    assert (again.imported, again.present) == ((), ())
    assert again.summary() == (
        f"the agent-binaries resource (sha256 {first.sha256[:12]}) was already imported"
    )
    assert snapshot(mirror) == before


def test_import_resource_force_restores_pruned_binaries(good: Path, mirror: Mirror) -> None:
    archive_import.import_resource(good, mirror)
    with mirror.lock("prune"):
        mirror.prune(1, protected=[])
    assert [str(e.binary) for e in mirror.staged("released")] == [
        "3.6.12-ubuntu-arm64",
        "3.6.12-ubuntu-amd64",
        "3.5.7-ubuntu-amd64",
    ]
    assert archive_import.import_resource(good, mirror).already_imported
    forced = archive_import.import_resource(good, mirror, force=True)
    assert forced.imported == binaries("3.6.11-ubuntu-amd64")
    assert forced.present == binaries("3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64")
    assert mirror.verify() == []


def test_import_resource_does_not_remember_refused_or_empty_archives(
    tmp_path: Path, good_members: Members, mirror: Mirror
) -> None:
    record = mirror.root / archive_import.RESOURCE_RECORD
    bad = write_archive(tmp_path / "bad.tar.gz", hostile_members("symlink", good_members))
    for _ in range(2):  # refused again: nothing remembered it
        with pytest.raises(ArchiveError, match="is a symbolic link"):
            archive_import.import_resource(bad, mirror)
    (tmp_path / "empty").write_bytes(b"")
    assert archive_import.import_resource(tmp_path / "empty", mirror).empty
    assert not record.exists()


def test_import_into_a_missing_storage_root_is_refused(good: Path, tmp_path: Path) -> None:
    with pytest.raises(archive_import.MirrorError, match="cannot use storage"):
        import_bundle(good, Mirror(tmp_path / "absent"))
