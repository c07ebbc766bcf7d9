"""The charm's air-gapped import, driven by Scenario with real archives and a real mirror.

Juju is simulated (resources, storage, hooks); the archive, the mirror on the storage and
the checks are real.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import ops
import pytest
from ops import testing

from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader.archive_import import RESOURCE_RECORD
from upgrader.bundle import make_bundle
from upgrader.fetch import Fetcher, FetchSettings
from upgrader.mirror import Mirror
from upgrader.streams import StreamContents, parse_products
from upgrader.sync import SyncRequest, sync
from upgrader.versions import parse_major_minor

ROOT = Path(__file__).resolve().parents[2]
AGENTS = (Agent("3.6.12"), Agent("3.6.12", "arm64"), Agent("3.6.11"))
SAMPLE_STREAM = f"file://{ROOT / 'tests/data/sample-stream'}"
STORAGE = testing.Storage("binaries")


# --------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A good agents.tar.gz of 3.6.12 (amd64, arm64) and 3.6.11 (amd64)."""
    write_stream(tmp_path / "src" / "tools", AGENTS)
    return make_bundle(tmp_path / "src", tmp_path / "agents.tar.gz").output


def state(resource: Path | None, *, storage: bool = True, **kwargs) -> testing.State:
    return testing.State(
        resources={testing.Resource(name="agent-binaries", path=resource)} if resource else set(),
        storages={STORAGE} if storage else set(),
        config={"stream-url": SAMPLE_STREAM},
        **kwargs,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".upgrader.lock"
    }


def imported_status(out: testing.State) -> bool:
    """The unit is active and its status mentions the import (after what others report)."""
    status = out.unit_status
    return isinstance(status, ops.ActiveStatus) and status.message.endswith(
        "; imported 3 agent binaries"
    )


def hostile(tmp_path: Path, good: Path, kind: str) -> Path:
    """A copy of the good archive with one hostile member added (or damaged as a whole)."""
    out = tmp_path / f"{kind}.tar.gz"
    if kind == "truncated":
        body = good.read_bytes()
        out.write_bytes(body[: len(body) // 2])
        return out
    if kind == "not-gzip":
        out.write_bytes(b"PK\x03\x04 a zip file, not a tarball")
        return out
    raw = io.BytesIO()
    with tarfile.open(good) as src, tarfile.open(fileobj=raw, mode="w") as dst:
        for info in src:
            dst.addfile(info, src.extractfile(info) if info.isreg() else None)
        extra = tarfile.TarInfo(
            {
                "absolute": "/etc/evil",
                "dotdot": "tools/../../evil",
                "symlink": "tools/released/link",
                "hardlink": "tools/released/hard",
                "device": "tools/null",
                "fifo": "tools/fifo",
                "duplicate": "tools/streams/v1/index2.json",
                "huge": "tools/released/huge.tgz",
            }[kind]
        )
        extra.type = {
            "symlink": tarfile.SYMTYPE,
            "hardlink": tarfile.LNKTYPE,
            "device": tarfile.CHRTYPE,
            "fifo": tarfile.FIFOTYPE,
        }.get(kind, tarfile.REGTYPE)
        extra.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
        if kind == "huge":
            # A header claiming 32 TiB with a few bytes behind it, and no end-of-archive.
            extra.size = 2**45
            body = raw.getvalue() + extra.tobuf(tarfile.PAX_FORMAT) + b"A" * 4096
            out.write_bytes(gzip.compress(body, 1))
            return out
        if extra.type == tarfile.REGTYPE:
            extra.size = 4
            dst.addfile(extra, io.BytesIO(b"evil"))
        else:
            dst.addfile(extra)
    out.write_bytes(gzip.compress(raw.getvalue(), 1))
    return out


def many_members(tmp_path: Path, good: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(good) as src, tarfile.open(fileobj=raw, mode="w") as dst:
        for info in src:
            dst.addfile(info, src.extractfile(info) if info.isreg() else None)
        for n in range(10_001):
            dst.addfile(tarfile.TarInfo(f"tools/junk/{n}"), io.BytesIO(b""))
    out = tmp_path / "many.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue(), 1))
    return out


# --------------------------------------------------------------------------------------------
# Importing on hooks


def test_upgrade_charm_imports_a_new_resource(ctx, archive: Path) -> None:
    root = STORAGE.get_filesystem(ctx)
    out = ctx.run(ctx.on.upgrade_charm(), state(archive))
    mirror = Mirror(root)
    assert sorted(str(e.binary) for e in mirror.staged("released")) == [
        "3.6.11-ubuntu-amd64",
        "3.6.12-ubuntu-amd64",
        "3.6.12-ubuntu-arm64",
    ]
    assert mirror.verify() == []
    assert imported_status(out)
    assert any(
        "imported 3 agent binaries from the agent-binaries resource" in line.message
        for line in ctx.juju_log
    )
    assert (root / RESOURCE_RECORD).read_text().strip() == archive_sha256(archive)


def archive_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_config_changed_and_storage_attached_import_too(ctx, archive: Path) -> None:
    ctx.run(ctx.on.config_changed(), state(archive))
    assert len(Mirror(STORAGE.get_filesystem(ctx)).staged("released")) == 3


def test_storage_attached_imports_a_resource_attached_before_it(ctx, archive: Path) -> None:
    ctx.run(ctx.on.storage_attached(STORAGE), state(archive))
    assert len(Mirror(STORAGE.get_filesystem(ctx)).staged("released")) == 3


def test_same_resource_is_not_imported_twice(ctx, archive: Path) -> None:
    root = STORAGE.get_filesystem(ctx)
    first = ctx.run(ctx.on.upgrade_charm(), state(archive))
    before = snapshot(root)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    ctx.juju_log.clear()
    ctx.run(ctx.on.config_changed(), first)
    assert snapshot(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps
    assert not [line for line in ctx.juju_log if "imported" in line.message]


def test_a_new_resource_is_imported_after_an_old_one(ctx, archive: Path, tmp_path: Path) -> None:
    first = ctx.run(ctx.on.upgrade_charm(), state(archive))
    write_stream(tmp_path / "newer" / "tools", [Agent("3.6.13")])
    newer = make_bundle(tmp_path / "newer", tmp_path / "newer.tar.gz").output
    ctx.run(
        ctx.on.upgrade_charm(),
        testing.State(
            resources={testing.Resource(name="agent-binaries", path=newer)},
            storages={STORAGE},
            stored_states=first.stored_states,
        ),
    )
    assert len(Mirror(STORAGE.get_filesystem(ctx)).staged("released")) == 4


def test_empty_placeholder_resource_is_not_an_error(ctx, tmp_path: Path) -> None:
    (tmp_path / "agents.tar.gz").write_bytes(b"")
    out = ctx.run(ctx.on.upgrade_charm(), state(tmp_path / "agents.tar.gz"))
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert "import" not in out.unit_status.message
    assert any(
        "no binaries in the agent-binaries resource" in line.message for line in ctx.juju_log
    )
    assert snapshot(STORAGE.get_filesystem(ctx)) == {}


def test_hook_without_storage_waits_for_it(ctx, archive: Path) -> None:
    out = ctx.run(ctx.on.upgrade_charm(), state(archive, storage=False))
    assert "import" not in out.unit_status.message


@pytest.mark.usefixtures("no_resource")
def test_hook_without_resource_does_nothing(ctx) -> None:
    out = ctx.run(ctx.on.upgrade_charm(), state(None))
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert "import" not in out.unit_status.message
    assert snapshot(STORAGE.get_filesystem(ctx)) == {}


HOSTILE = {
    "absolute": "'/etc/evil' has an absolute path",
    "dotdot": "has a '..' path component",
    "symlink": "is a symbolic link",
    "hardlink": "is a hard link",
    "device": "is a device file",
    "fifo": "is a FIFO",
    "duplicate": "appears more than once",
    "huge": "declares 35184372088832 bytes",
    "truncated": "truncated",
    "not-gzip": "not a gzip-compressed file",
}


@pytest.mark.parametrize(("kind", "message"), HOSTILE.items(), ids=list(HOSTILE))
def test_hostile_resource_blocks_and_leaves_the_mirror_unchanged(
    ctx, archive: Path, tmp_path: Path, kind: str, message: str
) -> None:
    root = STORAGE.get_filesystem(ctx)
    write_stream(tmp_path / "base" / "tools", [Agent("3.5.7")])
    base = make_bundle(tmp_path / "base", tmp_path / "base.tar.gz").output
    ctx.run(ctx.on.upgrade_charm(), state(base))
    before = snapshot(root)
    out = ctx.run(ctx.on.upgrade_charm(), state(hostile(tmp_path, archive, kind)))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("cannot import: the agent-binaries resource")
    assert message in out.unit_status.message
    assert snapshot(root) == before
    assert Mirror(root).verify() == []
    assert not list(root.glob(".import-*"))


def test_too_many_members_block(ctx, archive: Path, tmp_path: Path) -> None:
    out = ctx.run(ctx.on.upgrade_charm(), state(many_members(tmp_path, archive)))
    assert out.unit_status == ops.BlockedStatus(
        "cannot import: the agent-binaries resource: more than 10000 members; refusing the "
        "whole archive (a mirror of every released agent has a few hundred files)"
    )
    assert snapshot(STORAGE.get_filesystem(ctx)) == {}


def test_a_good_resource_after_a_refused_one_clears_the_status(
    ctx, archive: Path, tmp_path: Path
) -> None:
    bad = ctx.run(ctx.on.upgrade_charm(), state(hostile(tmp_path, archive, "symlink")))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    good = ctx.run(
        ctx.on.upgrade_charm(),
        testing.State(
            resources={testing.Resource(name="agent-binaries", path=archive)},
            storages={STORAGE},
            stored_states=bad.stored_states,
        ),
    )
    assert imported_status(good)


def test_busy_mirror_is_retried_on_update_status(ctx, archive: Path) -> None:
    mirror = Mirror(STORAGE.get_filesystem(ctx))
    with mirror.lock("sync"):
        busy = ctx.run(ctx.on.upgrade_charm(), state(archive))
    assert isinstance(busy.unit_status, ops.MaintenanceStatus)
    assert "another sync or prune is already running" in busy.unit_status.message
    assert mirror.staged("released") == ()
    done = ctx.run(
        ctx.on.update_status(),
        testing.State(
            resources={testing.Resource(name="agent-binaries", path=archive)},
            storages={STORAGE},
            stored_states=busy.stored_states,
        ),
    )
    assert "cannot import" not in done.unit_status.message
    assert len(mirror.staged("released")) == 3


# --------------------------------------------------------------------------------------------
# The import-binaries action


def test_action_imports_and_reports(ctx, archive: Path) -> None:
    ctx.run(ctx.on.action("import-binaries"), state(archive))
    results = ctx.action_results
    assert results is not None
    assert results["imported"] == "3.6.12-ubuntu-amd64, 3.6.12-ubuntu-arm64, 3.6.11-ubuntu-amd64"
    assert results["present"] == ""
    assert results["signed"] == "false"
    assert results["sha256"] == archive_sha256(archive)
    assert results["summary"] == "imported 3 agent binaries from the agent-binaries resource"
    assert ctx.action_logs == [
        "imported released/juju-3.6.11-ubuntu-amd64.tgz (121 bytes)",
        "imported released/juju-3.6.12-ubuntu-amd64.tgz (124 bytes)",
        "imported released/juju-3.6.12-ubuntu-arm64.tgz (126 bytes)",
    ]


def test_action_repeat_does_nothing_unless_forced(ctx, archive: Path) -> None:
    root = STORAGE.get_filesystem(ctx)
    ctx.run(ctx.on.action("import-binaries"), state(archive))
    (root / "tools/released/juju-3.6.11-ubuntu-amd64.tgz").unlink()
    Mirror(root).replace(
        "released", [e for e in Mirror(root).staged("released") if e.version.patch == 12]
    )
    ctx.run(ctx.on.action("import-binaries"), state(archive))
    assert ctx.action_results is not None
    assert ctx.action_results["summary"].startswith(
        "the agent-binaries resource (sha256 "
    ) and ctx.action_results["summary"].endswith(") was already imported")
    assert len(Mirror(root).staged("released")) == 2
    ctx.run(ctx.on.action("import-binaries", params={"force": True}), state(archive))
    assert ctx.action_results is not None
    assert ctx.action_results["imported"] == "3.6.11-ubuntu-amd64"
    assert ctx.action_results["present"] == "3.6.12-ubuntu-amd64, 3.6.12-ubuntu-arm64"
    assert Mirror(root).verify() == []
    assert len(Mirror(root).staged("released")) == 3


def test_action_with_an_empty_resource_succeeds(ctx, tmp_path: Path) -> None:
    (tmp_path / "agents.tar.gz").write_bytes(b"")
    ctx.run(ctx.on.action("import-binaries"), state(tmp_path / "agents.tar.gz"))
    assert ctx.action_results is not None
    assert ctx.action_results["summary"] == (
        "no binaries in the agent-binaries resource (it is empty)"
    )
    assert ctx.action_results["imported"] == ""


def test_action_without_storage_fails_clearly(ctx, archive: Path) -> None:
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("import-binaries"), state(archive, storage=False))
    assert failed.value.message == (
        "no binaries storage attached: the staged agent binaries are kept there; add it with "
        "`juju add-storage upgrader/0 binaries`"
    )


@pytest.mark.usefixtures("no_resource")
def test_action_without_resource_fails_clearly(ctx) -> None:
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("import-binaries"), state(None))
    assert "no agent-binaries resource attached" in failed.value.message
    assert "juju attach-resource upgrader agent-binaries=./agents.tar.gz" in failed.value.message


def test_action_with_a_hostile_resource_fails_and_changes_nothing(
    ctx, archive: Path, tmp_path: Path
) -> None:
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("import-binaries"), state(hostile(tmp_path, archive, "dotdot")))
    assert failed.value.message == (
        "cannot import: the agent-binaries resource: member 'tools/../../evil' has a '..' path "
        "component; refusing the whole archive (members must stay inside it)"
    )
    assert snapshot(STORAGE.get_filesystem(ctx)) == {}
    assert not (tmp_path.parent / "evil").exists()


# --------------------------------------------------------------------------------------------
# Round trip: staged by the sync engine, bundled, imported by the charm


def test_sync_then_bundle_then_import_round_trip(ctx, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    write_stream(upstream, [*AGENTS, Agent("3.5.7")], condensed=True)
    staged = tmp_path / "connected"
    staged.mkdir()
    products = upstream / "streams/v1/com.ubuntu.juju-released-agents.json"
    with serve_directory(upstream) as url, Fetcher(FetchSettings()) as fetcher:
        contents = StreamContents(
            base_url=url,
            stream="released",
            index_url=f"{url}/streams/v1/index2.json",
            products_url=f"{url}/streams/v1/{products.name}",
            entries=tuple(parse_products(products.read_bytes(), str(products), "released")),
        )
        request = SyncRequest(series=parse_major_minor("3.6"), architectures=("amd64", "arm64"))
        sync(Mirror(staged), contents, request, fetcher)
    bundle = make_bundle(staged, tmp_path / "agents.tar.gz").output
    ctx.run(ctx.on.action("import-binaries"), state(bundle))
    root = STORAGE.get_filesystem(ctx)
    assert Mirror(root).verify() == []
    assert Mirror(root).staged("released") == Mirror(staged).staged("released")
    for name in ("index2.json", "index.json", "com.ubuntu.juju-released-agents.json"):
        assert (root / "tools/streams/v1" / name).exists()
    assert os.listdir(root / "tools/released") == os.listdir(staged / "tools/released")
