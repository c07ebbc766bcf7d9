"""The charm, driven by Scenario: config, status and the plan-upgrade action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

from support.gpg import NEEDS_GPG, Keys, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader import signing
from upgrader.config import CharmConfig

pytestmark = NEEDS_GPG

AGENTS = [
    Agent("3.6.12", "amd64"),
    Agent("3.6.12", "arm64"),
    Agent("3.6.9", "amd64"),
    Agent("3.6.8", "amd64"),
    Agent("3.7.0", "amd64"),
    Agent("2.9.52", "amd64"),
]


@pytest.fixture(autouse=True)
def _signing_key(gpg_keys: Keys) -> None:
    global SIGNING_KEY
    SIGNING_KEY = gpg_keys.alice.armoured


SIGNING_KEY = ""
"""The public key the test streams are signed with (set per test from the gpg_keys fixture)."""


@pytest.fixture
def stream_url(tmp_path: Path, gpg_keys: Keys) -> Iterator[str]:
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    with serve_directory(tmp_path) as url:
        yield url


def run_plan(ctx, config: dict, params: dict | None = None) -> tuple[dict, testing.State]:
    state = ctx.run(
        ctx.on.action("plan-upgrade", params=params or {}),
        testing.State(
            config={"signing-keys": SIGNING_KEY, **config},
            storages={testing.Storage("binaries")},
        ),
    )
    return ctx.action_results, state


def test_plan_upgrade_defaults_to_unit_agent_version(ctx, stream_url: str) -> None:
    results, state = run_plan(ctx, {"stream-url": stream_url})
    steps = results.pop("next-steps").splitlines()
    reason = results.pop("reason")
    assert results == {
        "outcome": "upgrade",
        "agent-version": "3.6.8",
        "target-version": "3.7.0",
        "policy": "documented",
        "available": "3.7.0, 3.6.12, 3.6.9",
        "route": "in-place-then-new-controller",
        "hops": "3.6.12, 3.7.0",
        "stage": "3.6.12, 3.7.0",
        "in-place-target": "3.6.12",
        "source": stream_url,
        "verified": "true",
    }
    assert reason.startswith("newest version of the next minor 3.7; `juju upgrade-controller")
    assert steps[:2] == [
        "juju upgrade-controller --agent-version 3.6.12 --dry-run",
        "juju upgrade-controller --agent-version 3.6.12",
    ]
    assert state.unit_status == ops.ActiveStatus("agent 3.6.8; upgrade target 3.7.0")


def test_plan_upgrade_with_client_and_policy(ctx, stream_url: str) -> None:
    results, _ = run_plan(
        ctx,
        {"stream-url": stream_url, "selection-policy": "juju-3"},
        {"agent-version": "3.6.9", "client-version": "3.6.12"},
    )
    assert results["target-version"] == "3.6.12"
    assert results["client-version"] == "3.6.12"
    assert results["policy"] == "juju-3"
    assert "3.7.0 is available" in results["reason"]
    assert results["route"] == "in-place"
    assert "juju upgrade-controller --agent-version 3.6.12" in results["next-steps"].splitlines()


def test_policy_param_overrides_config(ctx, stream_url: str) -> None:
    results, _ = run_plan(ctx, {"stream-url": stream_url}, {"policy": "juju-3"})
    assert (results["policy"], results["target-version"]) == ("juju-3", "3.6.12")


def test_plan_upgrade_up_to_date(ctx, stream_url: str) -> None:
    results, state = run_plan(ctx, {"stream-url": stream_url}, {"agent-version": "3.7.0"})
    assert results["outcome"] == "up-to-date"
    assert results["target-version"] == "3.7.0"
    assert results["reason"] == "no upgrades available"
    assert results["available"] == ""
    # The status shows the unit's own upgrade target (3.6.8 -> 3.7.0), not the last plan's.
    assert state.unit_status == ops.ActiveStatus("agent 3.6.8; upgrade target 3.7.0")


def test_plan_upgrade_names_missing_architecture(ctx, stream_url: str) -> None:
    results, _ = run_plan(ctx, {"stream-url": stream_url, "architectures": "amd64 arm64"})
    assert results["target-version"] == "3.7.0"
    assert "3.7.0 has no agent binary for arm64" in results["reason"]


def test_plan_upgrade_explicit_target(ctx, stream_url: str) -> None:
    results, _ = run_plan(ctx, {"stream-url": stream_url}, {"target-version": "3.6.12"})
    assert results["target-version"] == "3.6.12"
    assert results["reason"] == "explicit target-version 3.6.12"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # The default policy (documented) speaks as Juju 1.25's upgrade-juju did.
        ({"target-version": "3.6.10"}, "no matching tools available"),
        (
            {"agent-version": "3.6.9", "target-version": "3.6.8"},
            "cannot change version from 3.6.9 to 3.6.8",
        ),
        ({"agent-version": "v3.6"}, "agent-version: invalid version 'v3.6'"),
        ({"client-version": "3.6.x"}, "client-version: invalid version '3.6.x'"),
        ({"target-version": "3.6.12 "}, "target-version: invalid version '3.6.12 '"),
        (
            {"agent-version": "2.9.52", "client-version": "3.6.13"},
            "no compatible tools available",
        ),
    ],
)
def test_plan_upgrade_failures(ctx, stream_url: str, params: dict, message: str) -> None:
    with pytest.raises(testing.ActionFailed) as exc:
        run_plan(ctx, {"stream-url": stream_url}, params)
    assert exc.value.message == message or exc.value.message.startswith(message + ":")


def test_bad_policy_param(ctx, stream_url: str) -> None:
    # Juju enforces the enum; the charm still gives a clear message if it gets through.
    with pytest.raises(testing.ActionFailed, match="invalid policy 'newest'"):
        run_plan(ctx, {"stream-url": stream_url}, {"policy": "newest"})


def test_unreachable_stream_fails_action_and_blocks(ctx, tmp_path: Path) -> None:
    url = (tmp_path / "nothing").as_uri()
    with pytest.raises(testing.ActionFailed) as exc:
        run_plan(ctx, {"stream-url": url})
    assert f"cannot read agent stream: no signed agent metadata at {url}: tried " in (
        exc.value.message
    )
    assert exc.value.message.endswith(
        "To accept unsigned metadata from this source, run: juju config upgrader "
        "verify-signatures=false"
    )
    state = exc.value.state
    assert isinstance(state, testing.State)
    status = state.unit_status
    assert isinstance(status, ops.BlockedStatus)
    assert "no signed agent metadata at" in status.message


def test_bad_document_blocks_on_config_changed(ctx, tmp_path: Path, gpg_keys: Keys) -> None:
    (tmp_path / "streams/v1").mkdir(parents=True)
    (tmp_path / "streams/v1/index2.json").write_text("{oops")
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    config = {"stream-url": tmp_path.as_uri(), "signing-keys": SIGNING_KEY}
    state = ctx.run(ctx.on.config_changed(), testing.State(config=config))
    assert isinstance(state.unit_status, ops.BlockedStatus)
    assert "not valid JSON" in state.unit_status.message


@pytest.mark.usefixtures("no_resource")
def test_stream_recovers_after_fix(ctx, tmp_path: Path, gpg_keys: Keys) -> None:
    config = {"stream-url": tmp_path.as_uri(), "signing-keys": SIGNING_KEY}
    storage = testing.Storage("binaries")
    state = ctx.run(ctx.on.config_changed(), testing.State(config=config, storages={storage}))
    assert isinstance(state.unit_status, ops.BlockedStatus)
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    state = ctx.run(ctx.on.config_changed(), state)
    # Healthy again: the unit serves its (still empty) mirror.
    assert isinstance(state.unit_status, ops.ActiveStatus)
    assert state.unit_status.message.startswith("serving no agents yet")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"selection-policy": "newest"},
            "invalid selection-policy 'newest': use one of documented, juju-2.9, juju-3",
        ),
        ({"stream-url": "streams.canonical.com"}, "invalid stream-url 'streams.canonical.com'"),
        ({"stream": "Released"}, "invalid stream 'Released'"),
        ({"architectures": "  "}, "invalid architectures '  '"),
        ({"agent-os": "Ubuntu!"}, "invalid agent-os 'Ubuntu!'"),
    ],
)
def test_bad_config_blocks_and_action_refuses(ctx, config: dict, message: str) -> None:
    state = ctx.run(ctx.on.config_changed(), testing.State(config=config))
    assert isinstance(state.unit_status, ops.BlockedStatus)
    assert message in state.unit_status.message
    with pytest.raises(testing.ActionFailed) as exc:
        ctx.run(ctx.on.action("plan-upgrade"), testing.State(config=config))
    assert exc.value.message.startswith("invalid config: ")
    assert message in exc.value.message


@pytest.mark.usefixtures("no_resource")
def test_config_changed_and_an_idle_update_status_load_the_config_once_and_run_no_gpg(
    ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each dispatch parses the options once; checking signing-keys runs no program."""
    loads: list[str] = []
    parse = CharmConfig.__post_init__

    def counted(config: CharmConfig) -> None:
        loads.append(config.stream_url)
        parse(config)

    programs: list[str] = []
    run = signing._run

    def recorded(argv: list[str], **kwargs: Any) -> Any:
        programs.append(Path(argv[0]).name)
        return run(argv, **kwargs)

    monkeypatch.setattr(CharmConfig, "__post_init__", counted)
    monkeypatch.setattr(signing, "_run", recorded)
    write_stream(tmp_path, AGENTS)  # unsigned: nothing to verify
    config = {"verify-signatures": False, "signing-keys": SIGNING_KEY}
    with serve_directory(tmp_path) as url:
        state = testing.State(
            config={**config, "stream-url": url}, storages={testing.Storage("binaries")}
        )
        state = ctx.run(ctx.on.config_changed(), state)
        assert len(loads) == 1
        loads.clear()
        state = ctx.run(ctx.on.update_status(), state)
        assert len(loads) == 1

    assert programs == []
    assert state.unit_status.message.startswith("serving no agents yet")
