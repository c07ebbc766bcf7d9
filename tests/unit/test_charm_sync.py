"""The sync-binaries and prune-binaries actions, driven by Scenario against a real stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest
from ops import testing

from support.faulty_server import Fault, FaultyServer
from support.staging import agents, assert_valid, source
from upgrader.mirror import Mirror

VERSIONS = ["3.6.8", "3.6.9", "3.6.10", "3.5.7", "3.7.1"]
ARCHES = ("amd64", "arm64", "s390x")
SIZE = 40_000
RESULT_KEYS = {
    "versions",
    "staged",
    "present",
    "bytes-downloaded",
    "agent-metadata-url",
    "dry-run",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FaultyServer]:
    root = source(tmp_path / "upstream", agents(VERSIONS, ARCHES, size=SIZE))
    with FaultyServer(root) as running:
        yield running


@pytest.fixture
def config(server: FaultyServer) -> dict:
    return {"stream-url": server.url, "verify-signatures": False, "architectures": "amd64 arm64"}


@pytest.fixture
def store() -> testing.Storage:
    return testing.Storage("binaries")


def sync_action(ctx, config: dict, store: testing.Storage | None, **params) -> testing.State:
    state = testing.State(config=config, storages={store} if store else set())
    return ctx.run(ctx.on.action("sync-binaries", params=params), state)


def staged(ctx, store: testing.Storage) -> set[str]:
    return {str(e.binary) for e in Mirror(store.get_filesystem(ctx)).staged("released")}


def files(ctx, store: testing.Storage) -> dict[Path, str]:
    """Every file in the storage with its sha256, the lock file (rewritten by each run) aside."""
    root = store.get_filesystem(ctx)
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".upgrader.lock"
    }


def test_sync_a_series_stages_every_patch(ctx, config: dict, store: testing.Storage) -> None:
    sync_action(ctx, config, store, version="3.6")
    results = ctx.action_results
    assert set(results) == RESULT_KEYS
    assert results["versions"] == "3.6.10, 3.6.9, 3.6.8"
    assert sorted(results["staged"].split(", ")) == sorted(
        f"{v}-ubuntu-{a}" for v in ("3.6.10", "3.6.9", "3.6.8") for a in ("amd64", "arm64")
    )
    assert results["present"] == ""
    assert results["bytes-downloaded"] == str(6 * SIZE)
    assert results["agent-metadata-url"] == "http://192.0.2.0:8080/tools"
    assert results["dry-run"] == "false"
    mirror = Mirror(store.get_filesystem(ctx))
    assert len(mirror.staged("released")) == 6
    assert_valid(mirror)
    file_lines = [line for line in ctx.action_logs if line.startswith("juju-")]
    assert len(file_lines) == 6
    assert any(
        line.startswith("juju-3.6.10-ubuntu-amd64.tgz: 39.1 KiB at ") and line.endswith(")")
        for line in file_lines
    ), file_lines


def test_a_second_sync_downloads_nothing(ctx, config: dict, store: testing.Storage) -> None:
    sync_action(ctx, config, store, version="3.6")
    sync_action(ctx, config, store, version="3.6")
    results = ctx.action_results
    assert results["staged"] == "" and results["bytes-downloaded"] == "0"
    assert len(results["present"].split(", ")) == 6


def test_sync_without_version_stages_every_version_of_the_plan_route(
    ctx, config: dict, store: testing.Storage
) -> None:
    """3.6.8 to 3.7.1 goes in place to 3.6.10, then through a new controller: both staged."""
    ctx.run(ctx.on.action("plan-upgrade"), testing.State(config=config))
    plan = ctx.action_results
    assert (plan["route"], plan["stage"]) == ("in-place-then-new-controller", "3.6.10, 3.7.1")
    sync_action(ctx, config, store)
    assert ctx.action_results["versions"] == "3.7.1, 3.6.10"
    assert staged(ctx, store) == {
        f"{v}-ubuntu-{arch}" for v in ("3.6.10", "3.7.1") for arch in ("amd64", "arm64")
    }
    assert any(
        "staging 3.6.10, 3.7.1: what the plan-upgrade route needs (in-place-then-new-controller"
        in line
        for line in ctx.action_logs
    )


def test_architectures_param_overrides_the_config(
    ctx, config: dict, store: testing.Storage
) -> None:
    sync_action(ctx, config, store, version="3.5", architectures="s390x")
    assert ctx.action_results["staged"] == "3.5.7-ubuntu-s390x"
    assert staged(ctx, store) == {"3.5.7-ubuntu-s390x"}


def test_missing_architectures_are_logged(ctx, config: dict, store: testing.Storage) -> None:
    sync_action(ctx, config, store, version="3.5", architectures="amd64 riscv64")
    assert ctx.action_results["staged"] == "3.5.7-ubuntu-amd64"
    assert "not in the released stream: 3.5.7-ubuntu-riscv64" in ctx.action_logs


def test_dry_run_reports_and_changes_nothing(
    ctx, config: dict, store: testing.Storage, server: FaultyServer
) -> None:
    sync_action(ctx, config, store, version="3", **{"dry-run": True})
    results = ctx.action_results
    assert results["dry-run"] == "true"
    assert results["versions"] == "3.7.1, 3.6.10, 3.6.9, 3.6.8, 3.5.7"
    assert results["bytes-downloaded"] == str(10 * SIZE)
    assert len(results["staged"].split(", ")) == 10
    assert list(store.get_filesystem(ctx).iterdir()) == []
    assert server.requests_for(".tgz") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"version": "2.03.1"}, "invalid major.minor version '2.03.1'.*use 2.03, not 2.03.1"),
        ({"version": "latest"}, "invalid major.minor version 'latest'"),
        ({"version": "3.6", "architectures": "amd64;arm64"}, "invalid architectures"),
        ({"version": "2.9"}, r"no agent binaries for 2\.9 .*series available: 3\.7, 3\.6, 3\.5"),
    ],
)
def test_bad_params_fail_with_the_accepted_form(
    ctx, config: dict, store: testing.Storage, params: dict, message: str
) -> None:
    with pytest.raises(testing.ActionFailed, match=message):
        sync_action(ctx, config, store, **params)
    assert list(store.get_filesystem(ctx).iterdir()) == []


def test_without_storage_the_actions_fail_and_the_unit_is_blocked(ctx, config: dict) -> None:
    with pytest.raises(testing.ActionFailed, match=r"no binaries storage attached.*juju add-sto"):
        sync_action(ctx, config, None, version="3.6")
    with pytest.raises(testing.ActionFailed, match="no binaries storage attached"):
        ctx.run(ctx.on.action("prune-binaries", params={"keep": 1}), testing.State(config=config))
    state = ctx.run(ctx.on.update_status(), testing.State(config=config))
    assert isinstance(state.unit_status, ops.BlockedStatus)
    assert "no binaries storage attached" in state.unit_status.message


def test_with_storage_the_unit_is_active(ctx, config: dict, store: testing.Storage) -> None:
    state = ctx.run(ctx.on.update_status(), testing.State(config=config, storages={store}))
    assert isinstance(state.unit_status, ops.ActiveStatus)


@pytest.mark.parametrize("value", [0, 17])
def test_bad_parallel_downloads_blocks_and_refuses(
    ctx, config: dict, store: testing.Storage, value: int
) -> None:
    bad = {**config, "parallel-downloads": value}
    state = ctx.run(ctx.on.update_status(), testing.State(config=bad, storages={store}))
    assert state.unit_status == ops.BlockedStatus(
        f"invalid config: invalid parallel-downloads {value}: use a whole number from 1 to 16"
    )
    with pytest.raises(testing.ActionFailed, match="invalid parallel-downloads"):
        sync_action(ctx, bad, store, version="3.6")


def test_a_failed_file_fails_the_action_and_keeps_the_rest(
    ctx, config: dict, store: testing.Storage, server: FaultyServer
) -> None:
    server.add_fault("3.6.10-linux-arm64.tgz", Fault("corrupt", at=10))
    with pytest.raises(testing.ActionFailed) as caught:
        sync_action(ctx, config, store, version="3.6")
    assert "juju-3.6.10-ubuntu-arm64.tgz" in caught.value.message
    assert "sha256 mismatch" in caught.value.message
    assert "3.6.10-ubuntu-arm64" not in staged(ctx, store)
    assert "3.6.10-ubuntu-amd64" in staged(ctx, store)
    assert_valid(Mirror(store.get_filesystem(ctx)))


def test_a_running_sync_makes_a_second_one_fail(ctx, config: dict, store: testing.Storage) -> None:
    with Mirror(store.get_filesystem(ctx)).lock("sync"):
        with pytest.raises(testing.ActionFailed, match="another sync or prune is already running"):
            sync_action(ctx, config, store, version="3.6")
        with pytest.raises(testing.ActionFailed, match="another sync or prune is already running"):
            ctx.run(
                ctx.on.action("prune-binaries", params={"keep": 1}),
                testing.State(config=config, storages={store}),
            )


def test_prune_keeps_the_newest_and_the_running_version(
    ctx, config: dict, store: testing.Storage
) -> None:
    sync_action(ctx, config, store, version="3")
    state = testing.State(config=config, storages={store})
    ctx.run(ctx.on.action("prune-binaries", params={"keep": 1}), state)
    # The unit's agent is 3.6.8 (conftest): it is kept although 3.6.10 is newer.
    assert ctx.action_results == {"removed": "3.6.9", "kept": "3.7.1, 3.6.10, 3.6.8, 3.5.7"}
    assert "removed released/juju-3.6.9-ubuntu-amd64.tgz" in ctx.action_logs
    assert {b.split("-")[0] for b in staged(ctx, store)} == {"3.7.1", "3.6.10", "3.6.8", "3.5.7"}
    assert_valid(Mirror(store.get_filesystem(ctx)))


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "keep is required"), ({"keep": 0}, r"invalid keep 0: .*whole number >= 1")],
)
def test_prune_refuses_a_bad_keep(
    ctx, config: dict, store: testing.Storage, params: dict, message: str
) -> None:
    sync_action(ctx, config, store, version="3.6")
    before = files(ctx, store)
    with pytest.raises(testing.ActionFailed, match=message):
        ctx.run(
            ctx.on.action("prune-binaries", params=params),
            testing.State(config=config, storages={store}),
        )
    assert files(ctx, store) == before
