"""The background sync job keeps the verified upstream metadata, as sync-binaries does.

A periodic auto-sync with nothing new costs one conditional request; another URL, other trust
settings, a damaged record or the leader's (unsigned) mirror always mean a full read. Real
signed streams (throwaway keys) served on 127.0.0.1, real storage directories.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.gpg import NEEDS_GPG, Keys, republish_signed, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader import syncjob
from upgrader.mirror import Mirror
from upgrader.syncjob import JobSpec
from upgrader.upstream import RECORD_FORMAT

pytestmark = NEEDS_GPG

AGENTS = [Agent("3.6.12", "amd64"), Agent("3.6.12", "arm64"), Agent("3.6.11", "amd64")]
INDEX = "/streams/v1/index2.sjson"
PRODUCTS = "/streams/v1/com.ubuntu.juju-released-agents.sjson"
LIB = Path(syncjob.__file__).parents[1]


@pytest.fixture
def signed(tmp_path: Path, gpg_keys: Keys) -> Path:
    root = tmp_path / "upstream"
    write_stream(root, AGENTS)
    sign_stream(root, gpg_keys.signer, gpg_keys.alice)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    storage = tmp_path / "storage"
    storage.mkdir()
    return storage


def spec_for(root: Path, url: str, keys: Keys, **changes: Any) -> JobSpec:
    """A leader's auto-sync job for 3.6.12, verifying against Alice's key."""
    fields: dict[str, Any] = {
        "root": str(root),
        "stream_url": url,
        "stream": "released",
        "os_name": "ubuntu",
        "architectures": ("amd64", "arm64"),
        "versions": ("3.6.12",),
        "signing_keys": keys.alice.armoured,
        "fetch": {"retries": 1, "backoff": 0.0},
    }
    fields.update(changes)
    return JobSpec(**fields)


def paths(log: list[tuple[str, int]]) -> list[str]:
    return [path for path, _ in log]


def record_of(root: Path) -> dict[str, Any]:
    return json.loads(Mirror(root).upstream_record("released").read_text())


def test_an_unchanged_upstream_costs_one_conditional_request(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        first = syncjob.run(spec_for(root, url, gpg_keys))
        assert first.state == "done", first.message
        assert first.message == "staged 3.6.12-ubuntu-arm64, 3.6.12-ubuntu-amd64"
        log.clear()
        again = syncjob.run(spec_for(root, url, gpg_keys))

    assert (again.state, again.message, again.done_bytes) == ("done", "staged nothing new", 0)
    assert log == [(INDEX, 304)]
    record = Mirror(root).upstream_record("released")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert record_of(root)["source"] == url


def test_a_changed_upstream_is_read_in_full_and_the_new_version_staged(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        assert syncjob.run(spec_for(root, url, gpg_keys)).state == "done"
        republish_signed(signed, [*AGENTS, Agent("3.6.13", "amd64")], gpg_keys)
        log.clear()
        status = syncjob.run(spec_for(root, url, gpg_keys, versions=("3.6.13",)))
        changed = list(log)
        log.clear()
        again = syncjob.run(spec_for(root, url, gpg_keys, versions=("3.6.13",)))

    assert status.state == "done", status.message
    assert status.message == "staged 3.6.13-ubuntu-amd64"
    # The conditional request finds the index changed; then the read in full.
    assert changed[:2] == [(INDEX, 200), (PRODUCTS, 200)]  # the changed index is fetched once
    assert "/released/juju-3.6.13-ubuntu-amd64.tgz" in paths(changed)
    assert "3.6.13" in {row[0] for row in record_of(root)["contents"]["tarballs"]}
    assert (again.message, log) == ("staged nothing new", [(INDEX, 304)])


def test_a_record_kept_for_another_url_is_not_reused(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    """The same documents on another server: the job asks that server, in full."""
    first_log: list[tuple[str, int]] = []
    other_log: list[tuple[str, int]] = []
    with (
        serve_directory(signed, log=first_log) as first_url,
        serve_directory(signed, log=other_log) as other_url,
    ):
        assert syncjob.run(spec_for(root, first_url, gpg_keys)).state == "done"
        first_log.clear()
        status = syncjob.run(spec_for(root, other_url, gpg_keys))
        full = list(other_log)
        other_log.clear()
        again = syncjob.run(spec_for(root, other_url, gpg_keys))

    assert (status.state, status.message) == ("done", "staged nothing new")
    assert first_log == []
    assert paths(full) == [INDEX, PRODUCTS]
    assert record_of(root)["source"] == other_url
    assert (again.message, other_log) == ("staged nothing new", [(INDEX, 304)])


@pytest.mark.parametrize("change", ["verification off", "other keys"])
def test_a_record_kept_under_other_trust_settings_is_not_reused(
    root: Path, signed: Path, gpg_keys: Keys, change: str
) -> None:
    if change == "verification off":
        changes: dict[str, Any] = {"verify_signatures": False}
    else:
        changes = {"signing_keys": gpg_keys.bob.armoured + "\n" + gpg_keys.alice.armoured}
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        assert syncjob.run(spec_for(root, url, gpg_keys)).state == "done"
        before = record_of(root)["trust"]
        log.clear()
        status = syncjob.run(spec_for(root, url, gpg_keys, **changes))

    assert (status.state, status.message) == ("done", "staged nothing new")
    assert paths(log) == [INDEX, PRODUCTS]
    assert record_of(root)["trust"] != before


def test_a_kept_record_is_never_used_for_keys_that_would_refuse_it(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    with serve_directory(signed) as url:
        assert syncjob.run(spec_for(root, url, gpg_keys)).state == "done"
        status = syncjob.run(spec_for(root, url, gpg_keys, signing_keys=gpg_keys.bob.armoured))

    assert status.state == "failed"
    assert "unknown key" in status.message


def test_the_leader_mirror_is_read_in_full_and_leaves_the_kept_record(
    tmp_path: Path, root: Path, signed: Path, gpg_keys: Keys
) -> None:
    """A follower's copy of the leader (unsigned, internal) neither uses nor replaces it.

    Only verified metadata is kept, so the leader's never would be; reading it through the
    record would only delete what this unit kept from upstream (it may be leader again).
    """
    leader = write_stream(tmp_path / "leader", [*AGENTS, Agent("3.6.13", "amd64")])
    log: list[tuple[str, int]] = []
    with serve_directory(signed) as url, serve_directory(leader, log=log) as leader_url:
        assert syncjob.run(spec_for(root, url, gpg_keys)).state == "done"
        kept = Mirror(root).upstream_record("released").read_bytes()
        follow = spec_for(root, leader_url, gpg_keys, versions=(), follow=True, internal=True)
        status = syncjob.run(follow)
        first = list(log)
        log.clear()
        again = syncjob.run(follow)

    assert status.state == "done", status.message
    assert status.message == "staged 3.6.13-ubuntu-amd64, 3.6.11-ubuntu-amd64"
    assert again.message == "staged nothing new"
    for requests in (first, log):
        assert "/streams/v1/index2.json" in paths(requests)
        assert "/streams/v1/com.ubuntu.juju-released-agents.json" in paths(requests)
    assert Mirror(root).upstream_record("released").read_bytes() == kept


DAMAGE = {
    "not JSON": lambda record: record.write_bytes(b"{\x00 not json"),
    "truncated": lambda record: record.write_bytes(record.read_bytes()[:100]),
    "another format": lambda record: record.write_text(
        record.read_text().replace(RECORD_FORMAT, "upgrader-upstream:0")
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_means_a_full_read_not_a_failed_job(
    root: Path, signed: Path, gpg_keys: Keys, damage: str
) -> None:
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        assert syncjob.run(spec_for(root, url, gpg_keys)).state == "done"
        DAMAGE[damage](Mirror(root).upstream_record("released"))
        log.clear()
        status = syncjob.run(spec_for(root, url, gpg_keys))
        full = list(log)
        log.clear()
        again = syncjob.run(spec_for(root, url, gpg_keys))

    assert (status.state, status.message) == ("done", "staged nothing new")
    assert paths(full) == [INDEX, PRODUCTS]
    assert record_of(root)["format"] == RECORD_FORMAT  # written again
    assert (again.message, log) == ("staged nothing new", [(INDEX, 304)])


def test_a_record_that_cannot_be_kept_does_not_fail_the_job(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    (root / ".upstream").write_text("a file where the directory should be")
    with serve_directory(signed) as url:
        status = syncjob.run(spec_for(root, url, gpg_keys))

    assert status.state == "done", status.message
    assert status.message == "staged 3.6.12-ubuntu-arm64, 3.6.12-ubuntu-amd64"


def test_the_job_process_says_how_it_read_the_stream(
    root: Path, signed: Path, gpg_keys: Keys
) -> None:
    """Run as systemd runs it: the journal (stderr) tells a full read from a kept one."""
    env = {**os.environ, "PYTHONPATH": str(LIB)}
    command = [sys.executable, "-m", "upgrader.syncjob", str(root / syncjob.JOB_FILE)]
    with serve_directory(signed) as url:
        syncjob.write_spec(root, spec_for(root, url, gpg_keys))
        first, again = (
            subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
            for _ in range(2)
        )

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert (
        f"upgrader sync job: read the released stream from {url} in full (no upstream "
        "metadata kept yet)\n"
    ) in first.stderr
    assert "upgrader sync job: upstream metadata unchanged since it was verified on " in (
        again.stderr
    )
    assert "upgrader sync job: synced 3.6.12; staged nothing new" in again.stderr
