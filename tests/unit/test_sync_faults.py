"""Faults while staging, against real HTTP servers on 127.0.0.1 and real processes.

Each case ends with a clear error naming the file and the cause, and the published mirror
unchanged (metadata byte for byte) and valid (every listed tarball verifies).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.faulty_server import Fault, FaultyServer
from support.staging import agents, assert_valid, contents, edit_items, fetcher, metadata, source
from upgrader.mirror import Mirror, MirrorBusyError
from upgrader.sync import SyncError, SyncRequest, sync
from upgrader.versions import parse

SIZE = 2 * 1024 * 1024 + 77
FILE = "juju-3.6.12-ubuntu-amd64.tgz"
UPSTREAM_FILE = "3.6.12-linux-amd64.tgz"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return source(
        tmp_path / "upstream", agents(["3.6.11", "3.6.12"], ("amd64", "arm64"), size=SIZE)
    )


@pytest.fixture
def server(upstream: Path) -> Iterator[FaultyServer]:
    with FaultyServer(upstream) as running:
        yield running


@pytest.fixture
def mirror(tmp_path: Path, server: FaultyServer) -> Mirror:
    """A mirror that already publishes 3.6.11 amd64."""
    root = tmp_path / "storage"
    root.mkdir()
    staged = Mirror(root)
    sync(staged, contents(server.url), request("3.6.11"), fetcher())
    assert len(staged.staged("released")) == 1
    return staged


def request(*versions: str, arches: tuple[str, ...] = ("amd64",)) -> SyncRequest:
    return SyncRequest(versions=tuple(parse(v) for v in versions), architectures=arches)


def too_small(name: str, item: dict[str, Any]) -> None:
    if name.startswith("3.6.12-ubuntu-amd64"):
        item["size"] -= 100


def wrong_sha(name: str, item: dict[str, Any]) -> None:
    if name.startswith("3.6.12-ubuntu-amd64"):
        item["sha256"] = "ab" * 32


CASES: list[tuple[str, Fault | None, Callable[[str, dict], None] | None, dict, str]] = [
    ("404", Fault("status", status=404), None, {}, r"not found \(HTTP 404"),
    (
        "500",
        Fault("status", status=500),
        None,
        {},
        r"gave up after 2 attempts; last failure: HTTP 500",
    ),
    (
        "truncated body",
        Fault("truncate", at=1_000_000),
        None,
        {},
        r"broke off after \d+ bytes: the connection closed before the whole body arrived "
        r"\(after 2 attempts\); the partial download is kept and the next sync resumes it",
    ),
    (
        "body short without a length",
        Fault("short", at=1_000_000),
        None,
        {},
        rf"the transfer ended after 1000000 of {SIZE} bytes \(after 2 attempts\); the partial",
    ),
    (
        "wrong Content-Length",
        Fault("length", length=SIZE + 10),
        None,
        {},
        rf"the server announced {SIZE + 10} bytes, the metadata lists {SIZE}",
    ),
    (
        "corrupted byte",
        Fault("corrupt", at=123_456),
        None,
        {},
        r"sha256 mismatch: got [0-9a-f]{64}, the metadata lists [0-9a-f]{64}",
    ),
    (
        "sha256 mismatch",
        None,
        wrong_sha,
        {},
        f"sha256 mismatch: got .*, the metadata lists {'ab' * 32}",
    ),
    (
        "size mismatch",
        None,
        too_small,
        {},
        rf"the server announced {SIZE} bytes, the metadata lists {SIZE - 100}",
    ),
    (
        "oversized body",
        Fault("short", at=SIZE),
        too_small,
        {},
        rf"the server sent more than the {SIZE - 100} bytes listed",
    ),
    (
        "stall",
        Fault("stall", at=500_000, delay=2.0),
        None,
        {"read_timeout": 0.3},
        r"no data received for 0\.3 s \(read timeout\)",
    ),
    (
        "connection reset",
        Fault("reset", at=500_000),
        None,
        {},
        r"broke off after \d+ bytes: connection reset by peer",
    ),
    (
        "below the minimum rate",
        Fault("slow", rate=400),
        None,
        {"min_download_rate": 4096, "min_rate_window": 0.5},
        r"broke off after \d+ bytes: slower than 4 KiB/s for 0\.5 s \(minimum download rate\)",
    ),
    (
        "headers below the minimum rate",
        Fault("slow-headers", rate=400),
        None,
        {"min_download_rate": 4096, "min_rate_window": 0.5},
        r"cannot fetch \S+: slower than 4 KiB/s for 0\.5 s \(minimum download rate\)",
    ),
]


@pytest.mark.parametrize(
    ("fault", "edit", "settings", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_fault_fails_clearly_and_leaves_the_mirror_as_it_was(
    server: FaultyServer,
    upstream: Path,
    mirror: Mirror,
    fault: Fault | None,
    edit: Callable[[str, dict], None] | None,
    settings: dict,
    message: str,
) -> None:
    before = metadata(mirror.root)
    if fault is not None:
        server.add_fault(UPSTREAM_FILE, fault)
    if edit is not None:
        edit_items(upstream, edit)
    with pytest.raises(SyncError) as caught:
        sync(mirror, contents(server.url), request("3.6.12"), fetcher(**settings))
    text = str(caught.value)
    assert text.startswith(f"could not stage 1 of 1 file from {server.url}: {FILE} (")
    assert f"{server.url}/agent/3.6.12/juju-{UPSTREAM_FILE}" in text
    assert text.endswith("the mirror lists only verified binaries; run the sync again to retry")
    assert re.search(message, text), text
    assert [name for name, _ in caught.value.failures] == [FILE]
    assert caught.value.result.staged == ()
    assert metadata(mirror.root) == before
    assert_valid(mirror)
    assert not (mirror.tools / "released" / FILE).exists()


@pytest.mark.parametrize("status", [403, 400])
def test_a_refusal_is_not_asked_again(server: FaultyServer, mirror: Mirror, status: int) -> None:
    """Only a broken transfer or the fetcher's spent attempts are worth another attempt."""
    before = metadata(mirror.root)
    server.add_fault(UPSTREAM_FILE, Fault("status", status=status))
    with pytest.raises(SyncError) as caught:
        sync(mirror, contents(server.url), request("3.6.12"), fetcher(retries=3))
    text = str(caught.value)
    assert f"HTTP {status} " in text and "attempts" not in text, text
    assert len(server.requests_for(UPSTREAM_FILE)) == 1
    assert metadata(mirror.root) == before
    assert_valid(mirror)


def test_one_bad_file_does_not_stop_the_others_from_being_published(
    server: FaultyServer, mirror: Mirror
) -> None:
    server.add_fault("3.6.12-linux-arm64.tgz", Fault("corrupt", at=5))
    with pytest.raises(SyncError) as caught:
        sync(mirror, contents(server.url), request("3.6.12", arches=("amd64", "arm64")), fetcher())
    assert str(caught.value).startswith("could not stage 1 of 2 files")
    assert "(1 newly staged)" in str(caught.value)
    assert [name for name, _ in caught.value.failures] == ["juju-3.6.12-ubuntu-arm64.tgz"]
    assert [str(b) for b in caught.value.result.staged] == ["3.6.12-ubuntu-amd64"]
    assert {str(e.binary) for e in mirror.staged("released")} == {
        "3.6.12-ubuntu-amd64",
        "3.6.11-ubuntu-amd64",
    }
    assert_valid(mirror)
    server.clear_faults()
    again = sync(
        mirror, contents(server.url), request("3.6.12", arches=("amd64", "arm64")), fetcher()
    )
    assert [str(b) for b in again.staged] == ["3.6.12-ubuntu-arm64"]
    assert_valid(mirror)


def run_child(server: FaultyServer, mirror: Mirror, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'lib'}:{REPO / 'tests'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "support.run_sync", server.url, str(mirror.root), "3.6.12", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_disk_full_fails_clearly_and_keeps_the_mirror(
    server: FaultyServer, mirror: Mirror
) -> None:
    before = metadata(mirror.root)
    child = run_child(server, mirror, "--file-size-limit", "1000000")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 1, err
    report = json.loads(out)
    assert report["type"] == "SyncError"
    assert f"{FILE} (" in report["error"]
    assert "cannot write" in report["error"] and "File too large (EFBIG)" in report["error"]
    assert metadata(mirror.root) == before
    assert_valid(mirror)
    assert not list(mirror.partial_dir.glob("*.part"))


def test_sigkill_mid_download_keeps_the_mirror_and_a_rerun_resumes(
    server: FaultyServer, mirror: Mirror
) -> None:
    before = metadata(mirror.root)
    server.add_fault(UPSTREAM_FILE, Fault("slow", rate=400_000))
    child = run_child(server, mirror)
    parts = mirror.partial_dir

    def some_bytes_arrived() -> bool:
        return any(p.stat().st_size > 300_000 for p in parts.glob("*.part"))

    try:
        wait_for(some_bytes_arrived, "the child to download part of the file")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert metadata(mirror.root) == before
    assert_valid(mirror)
    assert not (mirror.tools / "released" / FILE).exists()
    [part] = parts.glob("*.part")
    held = part.stat().st_size
    assert 300_000 < held < SIZE

    server.clear_faults()
    result = sync(mirror, contents(server.url), request("3.6.12"), fetcher())
    assert server.requests_for(UPSTREAM_FILE)[-1].range == f"bytes={held}-"
    assert result.files[0].resumed_from == held
    assert result.bytes_downloaded == SIZE - held
    assert [str(b) for b in result.staged] == ["3.6.12-ubuntu-amd64"]
    assert_valid(mirror)


def test_a_second_sync_is_refused_while_one_runs(server: FaultyServer, mirror: Mirror) -> None:
    before = metadata(mirror.root)
    server.add_fault(UPSTREAM_FILE, Fault("slow", rate=200_000))
    child = run_child(server, mirror)
    lock = mirror.root / ".upgrader.lock"
    try:
        wait_for(lambda: f"pid {child.pid}" in lock.read_text(), "the child to take the lock")
        with pytest.raises(
            MirrorBusyError,
            match=rf"another sync or prune is already running on {mirror.root} "
            rf"\(sync, pid {child.pid}, since .*\); wait for it to finish, then run again",
        ):
            sync(mirror, contents(server.url), request("3.6.12"), fetcher())
        with pytest.raises(MirrorBusyError):
            with mirror.lock("prune"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert metadata(mirror.root) == before
    assert_valid(mirror)
    with mirror.lock("prune"):  # the dead child's lock is gone with it
        pass
