"""Staging binaries from a real stream served on 127.0.0.1: planning, downloads, resume."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.faulty_server import Fault, FaultyServer
from support.staging import agents, assert_valid, contents, edit_items, fetcher, metadata, source
from support.streams import Agent
from upgrader.errors import InvalidInputError, SelectionError
from upgrader.mirror import InsufficientSpaceError, Mirror, MirrorError
from upgrader.sync import (
    Progress,
    SyncRequest,
    plan_sync,
    sync,
    sync_results,
)
from upgrader.versions import parse, parse_major_minor

SIZE = 3 * 1024 * 1024 + 123  # several 1 MiB chunks and a ragged end
AMD64_ARM64 = ("amd64", "arm64")


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return source(
        tmp_path / "upstream",
        agents(["3.6.11", "3.6.12", "3.5.7", "2.9.52"], AMD64_ARM64, size=SIZE),
    )


@pytest.fixture
def server(upstream: Path) -> Iterator[FaultyServer]:
    with FaultyServer(upstream) as running:
        yield running


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    root = tmp_path / "storage"
    root.mkdir()
    return Mirror(root)


def series(text: str, arches: tuple[str, ...] = AMD64_ARM64) -> SyncRequest:
    return SyncRequest(series=parse_major_minor(text), architectures=arches)


def exact(*versions: str, arches: tuple[str, ...] = AMD64_ARM64) -> SyncRequest:
    return SyncRequest(versions=tuple(parse(v) for v in versions), architectures=arches)


def names(binaries: tuple[object, ...]) -> list[str]:
    return [str(b) for b in binaries]


def tarball_requests(server: FaultyServer) -> list[str]:
    return [r.path for r in server.requests if r.path.endswith(".tgz")]


# --- planning ------------------------------------------------------------------------------


def test_plan_by_series_takes_every_patch_of_the_wanted_arches(server: FaultyServer) -> None:
    plan = plan_sync(contents(server.url), {}, series("3.6", ("arm64",)))
    assert names(plan.versions) == ["3.6.12", "3.6.11"]
    assert names(plan.staged) == ["3.6.12-ubuntu-arm64", "3.6.11-ubuntu-arm64"]
    assert [j.name for j in plan.downloads] == [
        "juju-3.6.12-ubuntu-arm64.tgz",
        "juju-3.6.11-ubuntu-arm64.tgz",
    ]
    assert plan.downloads[0].url == f"{server.url}/agent/3.6.12/juju-3.6.12-linux-arm64.tgz"
    assert plan.downloads[0].path == "released/juju-3.6.12-ubuntu-arm64.tgz"
    assert plan.download_bytes == 2 * SIZE
    assert plan.present == () and plan.missing == ()


def test_plan_by_major_spans_minors(server: FaultyServer) -> None:
    plan = plan_sync(contents(server.url), {}, series("3", ("amd64",)))
    assert names(plan.versions) == ["3.6.12", "3.6.11", "3.5.7"]


def test_plan_exact_versions_and_missing_arches(server: FaultyServer) -> None:
    plan = plan_sync(contents(server.url), {}, exact("3.5.7", arches=("amd64", "s390x")))
    assert names(plan.versions) == ["3.5.7"]
    assert names(plan.staged) == ["3.5.7-ubuntu-amd64"]
    assert names(plan.missing) == ["3.5.7-ubuntu-s390x"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (series("2.3"), r"no agent binaries for 2\.3 \(ubuntu; amd64 arm64\) in the released"),
        (exact("3.6.13", "3.6.12"), r"no agent binaries for 3\.6\.13 in the released stream"),
        (
            series("3.6", ("s390x",)),
            r"for ubuntu \(s390x\); major\.minor series available: "
            r"3\.6, 3\.5, 2\.9",
        ),
        (
            SyncRequest(series=parse_major_minor("3"), os_names=("centos",)),
            r"for centos \(amd64\); major\.minor series available: none",
        ),
    ],
)
def test_plan_refuses_what_the_stream_lacks(
    server: FaultyServer, request_: SyncRequest, message: str
) -> None:
    with pytest.raises(SelectionError, match=message):
        plan_sync(contents(server.url), {}, request_)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"series": parse_major_minor("3"), "versions": (parse("3.6.1"),)},
        {"series": parse_major_minor("3"), "architectures": ()},
        {"series": parse_major_minor("3"), "os_names": ()},
    ],
)
def test_request_must_say_what_to_stage(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        SyncRequest(**kwargs)


def test_shared_content_is_downloaded_once_and_listed_for_each_os(tmp_path: Path) -> None:
    # The official stream lists one linux tarball under several OS names.
    published = [
        Agent("3.6.12", "amd64", os=o, content=b"linux tarball")
        for o in ("ubuntu", "centos", "genericlinux")
    ]
    root = source(tmp_path / "up", published)
    mirror = Mirror(tmp_path)
    with FaultyServer(root) as server:
        request = SyncRequest(series=parse_major_minor("3.6"), os_names=("ubuntu", "centos"))
        result = sync(mirror, contents(server.url), request, fetcher())
        assert len(tarball_requests(server)) == 1
    assert names(result.staged) == ["3.6.12-ubuntu-amd64", "3.6.12-centos-amd64"]
    assert {e.path for e in mirror.staged("released")} == {"released/juju-3.6.12-ubuntu-amd64.tgz"}
    assert result.bytes_downloaded == len(b"linux tarball")
    assert_valid(mirror)


def test_new_names_for_staged_content_reuse_the_file(tmp_path: Path) -> None:
    published = [Agent("3.6.12", "amd64", os=o, content=b"linux") for o in ("ubuntu", "centos")]
    root = source(tmp_path / "up", published)
    mirror = Mirror(tmp_path)
    with FaultyServer(root) as server:
        sync(mirror, contents(server.url), SyncRequest(series=parse_major_minor("3")), fetcher())
        request = SyncRequest(series=parse_major_minor("3"), os_names=("centos",))
        result = sync(mirror, contents(server.url), request, fetcher())
        assert len(tarball_requests(server)) == 1
    assert names(result.staged) == ["3.6.12-centos-amd64"] and result.bytes_downloaded == 0
    assert {e.path for e in mirror.staged("released")} == {"released/juju-3.6.12-ubuntu-amd64.tgz"}


def test_content_changed_upstream_is_a_metadata_mismatch(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    sync(mirror, contents(server.url), exact("3.6.12"), fetcher())
    before = metadata(mirror.root)
    edit_items(upstream, lambda name, item: item.update(sha256="0" * 64))
    with pytest.raises(MirrorError, match=r"metadata mismatch for 3\.6\.12-ubuntu-a.*prune"):
        sync(mirror, contents(server.url), exact("3.6.12"), fetcher())
    assert metadata(mirror.root) == before


# --- syncing -------------------------------------------------------------------------------


def test_sync_downloads_verifies_and_publishes(server: FaultyServer, mirror: Mirror) -> None:
    reports: list[Progress] = []
    lock = threading.Lock()

    def progress(report: Progress) -> None:
        with lock:
            reports.append(report)

    result = sync(mirror, contents(server.url), series("3.6"), fetcher(), progress=progress)
    assert names(result.versions) == ["3.6.12", "3.6.11"]
    assert sorted(names(result.staged)) == sorted(
        f"{v}-ubuntu-{a}" for v in ("3.6.12", "3.6.11") for a in AMD64_ARM64
    )
    assert result.present == () and result.dry_run is False
    assert result.bytes_downloaded == 4 * SIZE
    assert sorted(f.name for f in result.files) == sorted(
        f"juju-{v}-ubuntu-{a}.tgz" for v in ("3.6.12", "3.6.11") for a in AMD64_ARM64
    )
    assert all(f.downloaded == SIZE and f.resumed_from == 0 for f in result.files)
    finished = [r for r in reports if r.finished]
    assert sorted(r.name for r in finished) == sorted(f.name for f in result.files)
    assert all(r.done == r.size == SIZE and r.total_size == 4 * SIZE for r in finished)
    assert max(r.total_done for r in reports) == 4 * SIZE
    assert len(mirror.staged("released")) == 4
    assert_valid(mirror)
    assert not list(mirror.partial_dir.iterdir())


def test_a_repeated_sync_downloads_nothing_and_rewrites_nothing(
    server: FaultyServer, mirror: Mirror
) -> None:
    sync(mirror, contents(server.url), series("3.6"), fetcher())
    before = metadata(mirror.root)
    fetched = len(tarball_requests(server))
    again = sync(mirror, contents(server.url), series("3.6"), fetcher())
    assert again.staged == () and again.bytes_downloaded == 0 and again.files == ()
    assert len(again.present) == 4
    assert len(tarball_requests(server)) == fetched
    assert metadata(mirror.root) == before


def test_syncs_accumulate_in_the_mirror(server: FaultyServer, mirror: Mirror) -> None:
    sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    result = sync(mirror, contents(server.url), series("3", ("amd64",)), fetcher())
    assert names(result.present) == ["3.6.12-ubuntu-amd64"]
    assert names(result.staged) == ["3.6.11-ubuntu-amd64", "3.5.7-ubuntu-amd64"]
    assert {str(e.version) for e in mirror.staged("released")} == {"3.6.12", "3.6.11", "3.5.7"}
    assert_valid(mirror)


def test_dry_run_changes_nothing_and_reports_the_bytes(
    server: FaultyServer, mirror: Mirror
) -> None:
    sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    before = sorted(p.relative_to(mirror.root) for p in mirror.root.rglob("*"))
    metadata_before = metadata(mirror.root)
    result = sync(mirror, contents(server.url), series("3.6"), fetcher(), dry_run=True)
    assert result.dry_run is True
    assert names(result.present) == ["3.6.12-ubuntu-amd64"]
    assert len(result.staged) == 3 and result.bytes_downloaded == 3 * SIZE
    assert sorted(p.relative_to(mirror.root) for p in mirror.root.rglob("*")) == before
    assert metadata(mirror.root) == metadata_before
    assert len(tarball_requests(server)) == 1


def test_action_results_have_exactly_the_documented_keys(
    server: FaultyServer, mirror: Mirror
) -> None:
    sync(mirror, contents(server.url), exact("3.6.11", arches=("amd64",)), fetcher())
    result = sync(mirror, contents(server.url), series("3.6", ("amd64",)), fetcher())
    assert sync_results(result, "http://10.0.0.1:8080/tools") == {
        "versions": "3.6.12, 3.6.11",
        "staged": "3.6.12-ubuntu-amd64",
        "present": "3.6.11-ubuntu-amd64",
        "bytes-downloaded": str(SIZE),
        "agent-metadata-url": "http://10.0.0.1:8080/tools",
        "dry-run": "false",
    }


@pytest.mark.parametrize("parallel", [1, 3])
def test_downloads_run_in_parallel_up_to_the_limit(
    server: FaultyServer, mirror: Mirror, parallel: int
) -> None:
    server.add_fault(".tgz", Fault("slow", rate=16 * 1024 * 1024))
    sync(mirror, contents(server.url), series("3", AMD64_ARM64), fetcher(), parallel=parallel)
    assert server.max_active == parallel
    assert_valid(mirror)


def partial_of(mirror: Mirror, upstream: Path, version: str, arch: str) -> tuple[Path, bytes]:
    data = (upstream / f"agent/{version}/juju-{version}-linux-{arch}.tgz").read_bytes()
    part = mirror.partial_path(hashlib.sha256(data).hexdigest())
    part.parent.mkdir(parents=True, exist_ok=True)
    return part, data


def test_a_partial_download_is_resumed_with_a_range_request(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(data[:1_500_000])
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert [r.range for r in server.requests_for("3.6.12-linux-amd64.tgz")] == ["bytes=1500000-"]
    assert server.requests_for("3.6.12-linux-amd64.tgz")[0].status == 206
    assert result.bytes_downloaded == SIZE - 1_500_000
    assert result.files[0].resumed_from == 1_500_000
    assert not part.exists()
    assert_valid(mirror)


def test_a_stale_partial_is_dropped_and_the_download_starts_over(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(b"X" + data[1:1_000_000])
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    ranges = [r.range for r in server.requests_for("3.6.12-linux-amd64.tgz")]
    assert ranges == ["bytes=1000000-", None]
    assert result.bytes_downloaded == SIZE - 1_000_000 + SIZE
    assert_valid(mirror)


def test_a_partial_longer_than_the_file_is_dropped(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(data + b"extra")
    sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert [r.range for r in server.requests_for("3.6.12-linux-amd64.tgz")] == [None]
    assert_valid(mirror)


def test_a_server_ignoring_range_gets_a_fresh_download(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(data[:2_000_000])
    server.add_fault("3.6.12-linux-amd64.tgz", Fault("ignore-range"))
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    requests = server.requests_for("3.6.12-linux-amd64.tgz")
    assert [(r.range, r.status) for r in requests] == [("bytes=2000000-", 200)]
    assert result.bytes_downloaded == SIZE
    assert_valid(mirror)


def test_a_broken_transfer_is_resumed_within_the_same_sync(
    server: FaultyServer, mirror: Mirror
) -> None:
    server.add_fault("3.6.12-linux-amd64.tgz", Fault("truncate", at=1_234_567, times=1))
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert [r.range for r in server.requests_for("3.6.12-linux-amd64.tgz")] == [
        None,
        "bytes=1234567-",
    ]
    assert result.bytes_downloaded == SIZE
    assert_valid(mirror)


def test_a_file_left_in_place_by_an_interrupted_sync_is_adopted(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    data = (upstream / "agent/3.6.12/juju-3.6.12-linux-amd64.tgz").read_bytes()
    final = mirror.tools / "released/juju-3.6.12-ubuntu-amd64.tgz"
    final.parent.mkdir(parents=True)
    final.write_bytes(data)
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert names(result.staged) == ["3.6.12-ubuntu-amd64"] and result.bytes_downloaded == 0
    assert server.requests_for(".tgz") == []
    assert_valid(mirror)


def test_a_wrong_file_left_in_place_is_replaced(server: FaultyServer, mirror: Mirror) -> None:
    final = mirror.tools / "released/juju-3.6.12-ubuntu-amd64.tgz"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"garbage" * (SIZE // 7) + b"x" * (SIZE % 7))
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert result.bytes_downloaded == SIZE
    assert_valid(mirror)


def test_not_enough_space_is_refused_before_downloading(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    huge = 1 << 60
    # Metadata cannot list such a size (over 8 GiB is refused when it is read): give the
    # engine entries that claim it (two real 8 GiB tarballs fit on a test machine).
    read = contents(server.url)
    claimed = dataclasses.replace(
        read, entries=tuple(dataclasses.replace(e, size=huge) for e in read.entries)
    )
    with pytest.raises(
        InsufficientSpaceError,
        match=rf"for 2 agent binaries \(.*\): need {2 * huge + 1024 * 1024} bytes .*, \d+ bytes",
    ):
        sync(mirror, claimed, exact("3.6.12"), fetcher())
    assert server.requests_for(".tgz") == []
    assert metadata(mirror.root) == {}


def test_a_hostile_architecture_never_becomes_a_path(
    server: FaultyServer, upstream: Path, mirror: Mirror, tmp_path: Path
) -> None:
    def escape(name: str, item: dict) -> None:
        if name == "3.6.12-ubuntu-amd64":
            item["arch"] = "../../../escaped"

    edit_items(upstream, escape)
    request = SyncRequest(versions=(parse("3.6.12"),), architectures=("../../../escaped",))
    with pytest.raises(MirrorError, match=r"refusing to stage 3\.6\.12-ubuntu-\.\./\.\./\.\./esc"):
        sync(mirror, contents(server.url), request, fetcher())
    assert not list(tmp_path.rglob("*escaped*"))
    assert server.requests_for(".tgz") == []


def test_a_listed_file_gone_missing_is_fetched_again(server: FaultyServer, mirror: Mirror) -> None:
    sync(mirror, contents(server.url), exact("3.6.12"), fetcher())
    (mirror.tools / "released/juju-3.6.12-ubuntu-arm64.tgz").unlink()
    (mirror.tools / "released/juju-3.6.12-ubuntu-amd64.tgz").write_bytes(b"truncated")
    result = sync(mirror, contents(server.url), exact("3.6.12"), fetcher())
    assert sorted(names(result.staged)) == ["3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64"]
    assert result.present == () and result.bytes_downloaded == 2 * SIZE
    assert_valid(mirror)


def test_a_complete_partial_is_moved_into_place_without_a_request(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(data)  # killed after the last write, before the rename
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert server.requests_for(".tgz") == []
    assert result.bytes_downloaded == 0 and result.files[0].resumed_from == SIZE
    assert_valid(mirror)


def test_a_complete_but_wrong_partial_is_downloaded_again(
    server: FaultyServer, upstream: Path, mirror: Mirror
) -> None:
    part, data = partial_of(mirror, upstream, "3.6.12", "amd64")
    part.write_bytes(b"Z" * len(data))
    result = sync(mirror, contents(server.url), exact("3.6.12", arches=("amd64",)), fetcher())
    assert [r.range for r in server.requests_for(".tgz")] == [None]
    assert result.bytes_downloaded == SIZE
    assert_valid(mirror)
