"""sync-binaries keeps the verified upstream metadata: an unchanged stream costs one request.

Scenario drives the charm; the stream is real, signed with a throwaway key and served on
127.0.0.1; the storage is a real directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ops import testing

from support.gpg import NEEDS_GPG, Keys, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader.mirror import Mirror
from upgrader.upstream import RECORD_FORMAT

pytestmark = [*NEEDS_GPG, pytest.mark.usefixtures("no_resource")]

AGENTS = [Agent("3.6.12", "amd64"), Agent("3.6.9", "amd64"), Agent("3.7.0", "amd64")]
INDEX = "/streams/v1/index2.sjson"


@pytest.fixture
def signed(tmp_path: Path, gpg_keys: Keys) -> Path:
    root = tmp_path / "upstream"
    write_stream(root, AGENTS)
    sign_stream(root, gpg_keys.signer, gpg_keys.alice)
    return root


def sync_action(ctx, config: dict, store: testing.Storage, **params) -> None:
    state = testing.State(config=config, storages={store})
    ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6", **params}), state)


def test_an_unchanged_stream_costs_one_request_and_is_logged(
    ctx, signed: Path, gpg_keys: Keys
) -> None:
    store = testing.Storage("binaries")
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        config = {"stream-url": url, "signing-keys": gpg_keys.alice.armoured}
        sync_action(ctx, config, store)
        first = list(ctx.action_logs)
        assert ctx.action_results["staged"] == "3.6.12-ubuntu-amd64, 3.6.9-ubuntu-amd64"
        log.clear()
        ctx.action_logs.clear()
        sync_action(ctx, config, store)

    assert f"read the released stream from {url} in full (no upstream metadata kept yet)" in first
    assert log == [(INDEX, 304)]
    assert ctx.action_results["present"] == "3.6.12-ubuntu-amd64, 3.6.9-ubuntu-amd64"
    assert any(
        line.startswith("upstream metadata unchanged since it was verified on ")
        for line in ctx.action_logs
    ), ctx.action_logs


def test_a_corrupt_record_falls_back_to_a_full_read(
    ctx, signed: Path, gpg_keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    store = testing.Storage("binaries")
    with serve_directory(signed) as url:
        config = {"stream-url": url, "signing-keys": gpg_keys.alice.armoured}
        sync_action(ctx, config, store)
        record = Mirror(store.get_filesystem(ctx)).upstream_record("released")
        record.write_text(f'{{"format": "{RECORD_FORMAT}", "contents": [')
        ctx.action_logs.clear()
        sync_action(ctx, config, store)

    assert ctx.action_results["bytes-downloaded"] == "0"
    assert any(
        f"kept upstream metadata {record} is unusable: " in line for line in ctx.action_logs
    )
    assert any(str(record) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert record.read_text().startswith(f'{{"format": "{RECORD_FORMAT}"')


def test_other_signing_keys_mean_a_full_read(ctx, signed: Path, gpg_keys: Keys) -> None:
    store = testing.Storage("binaries")
    log: list[tuple[str, int]] = []
    with serve_directory(signed, log=log) as url:
        sync_action(ctx, {"stream-url": url, "signing-keys": gpg_keys.alice.armoured}, store)
        log.clear()
        both = gpg_keys.bob.armoured + "\n" + gpg_keys.alice.armoured
        sync_action(ctx, {"stream-url": url, "signing-keys": both}, store)

    assert [path for path, _ in log] == [
        INDEX,
        "/streams/v1/com.ubuntu.juju-released-agents.sjson",
    ]
    assert any(
        "signature settings (keys or verify-signatures) changed" in s for s in ctx.action_logs
    )


def test_a_dry_run_keeps_nothing(ctx, signed: Path, gpg_keys: Keys) -> None:
    store = testing.Storage("binaries")
    with serve_directory(signed) as url:
        config = {"stream-url": url, "signing-keys": gpg_keys.alice.armoured}
        sync_action(ctx, config, store, **{"dry-run": True})

    assert ctx.action_results["dry-run"] == "true"
    assert not Mirror(store.get_filesystem(ctx)).upstream_record("released").exists()
