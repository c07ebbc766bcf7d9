"""plan-upgrade's routes as the charm returns them: Scenario, a stream on 127.0.0.1, a mirror.

The unit's own agent is 3.6.8 (conftest); the worked routes of other controllers are asked
for with ``agent-version``, as an operator planning for another controller would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ops import testing

from support.servers import serve_directory
from support.services import FakeNginx
from support.streams import Agent, write_stream

pytestmark = pytest.mark.usefixtures("no_resource")

VERSIONS = "2.9.38 2.9.42 2.9.50 2.9.52 2.9.53 3.1.8 3.5.6 3.5.7 3.6.10 3.6.11 3.6.12".split()
URL = "http://192.0.2.0:8080/tools"
SYNC = "juju run upgrader/0 sync-binaries"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    write_stream(
        tmp_path / "released", [Agent(v, a) for v in VERSIONS for a in ("amd64", "arm64")]
    )
    with serve_directory(tmp_path / "released") as url:
        yield url


@pytest.fixture
def serving(ctx, upstream: str) -> testing.State:
    """A leader unit whose nginx serves its (empty) mirror."""
    store = testing.Storage("binaries")
    state = testing.State(
        config={
            "stream-url": upstream,
            "verify-signatures": False,
            "architectures": "amd64 arm64",
        },
        storages={store},
        leader=True,
    )
    out = ctx.run(ctx.on.storage_attached(store), state)
    assert FakeNginx.served is not None
    return out


def plan(ctx, state: testing.State, **params: str) -> dict:
    ctx.run(ctx.on.action("plan-upgrade", params=params), state)
    return ctx.action_results or {}


def test_3_5_6_to_3_6_12_patches_in_place_then_moves_to_a_new_controller(ctx, serving) -> None:
    out = plan(ctx, serving, **{"agent-version": "3.5.6"})
    assert (out["target-version"], out["route"]) == ("3.6.12", "in-place-then-new-controller")
    assert (out["hops"], out["stage"], out["in-place-target"]) == (
        "3.5.7, 3.6.12",
        "3.5.7, 3.6.12",
        "3.5.7",
    )
    assert (
        "upgrading a controller to a newer major.minor version 3.6 not supported"
        in (out["reason"])
    )
    assert out["staged"] == "false"
    steps = out["next-steps"].splitlines()
    assert steps[:6] == [
        f"{SYNC} --string-args version=3.5",
        f"{SYNC} --string-args version=3.6",
        f"juju model-config -m controller agent-metadata-url={URL}",
        f"juju model-defaults agent-metadata-url={URL}",
        "juju upgrade-controller --agent-version 3.5.7 --dry-run",
        "juju upgrade-controller --agent-version 3.5.7",
    ]
    offline = "/var/tmp/juju-3.6.12"  # noqa: S108 - the directory the runbook prints
    assert (
        "juju bootstrap <cloud> controller-3-6 --no-switch --bootstrap-base ubuntu@24.04 "
        f"--agent-version 3.6.12 --controller-charm-path {offline}/juju-controller.charm "
        f"--db-snap {offline}/juju-db_*.snap --db-snap-asserts {offline}/juju-db_*.assert "
        f"--config agent-metadata-url={URL} --model-default agent-metadata-url={URL}"
    ) in steps
    assert "snap download juju-db --channel=4.4/stable --target-directory=" + offline in steps
    assert "juju migrate <model> controller-3-6" in steps
    assert "juju upgrade-model -m controller-3-6:<model> --agent-version 3.6.12" in steps


def test_3_6_10_to_3_6_12_is_in_place(ctx, serving) -> None:
    out = plan(ctx, serving, **{"agent-version": "3.6.10"})
    assert (out["route"], out["hops"], out["stage"], out["in-place-target"]) == (
        "in-place",
        "3.6.12",
        "3.6.12",
        "",
    )
    assert out["next-steps"].splitlines() == [
        SYNC,  # the unit's own route (3.6.8) stages 3.6.12 too
        f"juju model-config -m controller agent-metadata-url={URL}",
        f"juju model-defaults agent-metadata-url={URL}",
        "juju upgrade-controller --agent-version 3.6.12 --dry-run",
        "juju upgrade-controller --agent-version 3.6.12",
        "# wait until `juju status -m controller` shows every controller agent at 3.6.12",
        "# then for each model `juju models` lists, other than controller, as <model>:",
        "juju upgrade-model -m <model> --agent-version 3.6.12 --dry-run",
        "juju upgrade-model -m <model> --agent-version 3.6.12",
    ]


def test_2_9_40_to_3_6_12_goes_to_the_newest_2_9_first(ctx, serving) -> None:
    out = plan(ctx, serving, **{"agent-version": "2.9.40", "client-version": "3.6.12"})
    assert (out["route"], out["hops"], out["stage"]) == (
        "in-place-then-new-controller",
        "2.9.53, 3.6.12",
        "2.9.53, 3.6.12",
    )
    assert 'answers: upgrade to "3.6.12" is not supported from "2.9.40"' in out["reason"]
    assert "juju upgrade-controller --agent-version 2.9.53" in out["next-steps"].splitlines()


def test_2_9_52_to_2_9_53_is_in_place(ctx, serving) -> None:
    out = plan(ctx, serving, **{"agent-version": "2.9.52", "policy": "juju-2.9"})
    assert (out["target-version"], out["route"], out["hops"]) == ("2.9.53", "in-place", "2.9.53")
    assert out["next-steps"].splitlines()[0] == f"{SYNC} --string-args version=2.9"


def test_3_1_8_to_3_6_12_needs_a_new_controller(ctx, serving) -> None:
    out = plan(ctx, serving, **{"agent-version": "3.1.8", "target-version": "3.6.12"})
    assert (out["route"], out["hops"], out["in-place-target"]) == (
        "new-controller",
        "3.6.12",
        "3.1.8",
    )
    assert "juju upgrade-controller" not in out["next-steps"]


def test_no_2_9_patch_that_may_migrate_fails_with_juju_s_message(ctx, tmp_path: Path) -> None:
    write_stream(tmp_path / "old", [Agent(v, "amd64") for v in ("2.9.38", "2.9.42", "3.6.12")])
    with serve_directory(tmp_path / "old") as url, pytest.raises(testing.ActionFailed) as exc:
        state = testing.State(config={"stream-url": url, "verify-signatures": False})
        plan(ctx, state, **{"agent-version": "2.9.40", "client-version": "3.6.12"})
    assert exc.value.message.startswith(
        "model must be upgraded to at least version 2.9.43 before being migrated to a "
        "controller with version 3.6.12: the stream has no 2.x agent at or above 2.9.43"
    )


def test_a_stream_other_than_released_is_named_on_every_upgrade(ctx, tmp_path: Path) -> None:
    write_stream(
        tmp_path / "proposed", [Agent(v, "amd64") for v in ("3.6.8", "3.6.13")], stream="proposed"
    )
    with serve_directory(tmp_path / "proposed") as url:
        store = testing.Storage("binaries")
        config = {"stream-url": url, "stream": "proposed", "verify-signatures": False}
        state = ctx.run(
            ctx.on.storage_attached(store), testing.State(config=config, storages={store})
        )
        out = plan(ctx, state)
    steps = out["next-steps"].splitlines()
    assert steps[:5] == [
        SYNC,
        f"juju model-config -m controller agent-metadata-url={URL} agent-stream=proposed",
        f"juju model-defaults agent-metadata-url={URL} agent-stream=proposed",
        "juju upgrade-controller --agent-version 3.6.13 --agent-stream proposed --dry-run",
        "juju upgrade-controller --agent-version 3.6.13 --agent-stream proposed",
    ]
    assert "juju upgrade-model -m <model> --agent-version 3.6.13 --agent-stream proposed" in steps


@pytest.mark.parametrize(
    ("params", "target", "route"),
    [
        ({}, "3.6.12", "in-place-then-new-controller"),
        ({"policy": "documented"}, "3.6.12", "in-place-then-new-controller"),
        ({"policy": "juju-2.9"}, "3.6.12", "in-place-then-new-controller"),
        ({"policy": "juju-3"}, "3.5.7", "in-place"),
        ({"target-version": "3.6.11"}, "3.6.11", "in-place-then-new-controller"),
    ],
)
def test_every_policy(ctx, serving, params: dict, target: str, route: str) -> None:
    out = plan(ctx, serving, **{"agent-version": "3.5.6", **params})
    assert (out["target-version"], out["route"]) == (target, route)


def test_parameters_that_leave_the_route_as_it_is_stage_only_the_route(ctx, serving) -> None:
    """README's `plan-upgrade client-version=...`: bare sync-binaries stages what `stage` says.

    `version=3.6` would stage every 3.6 release the stream holds (three here, a dozen on the
    official stream), not the one version the plan names.
    """
    out = plan(ctx, serving, **{"client-version": "3.6.12"})
    assert (out["route"], out["stage"]) == ("in-place", "3.6.12")
    assert out["next-steps"].splitlines()[0] == SYNC
    ctx.run(ctx.on.action("sync-binaries", params={"dry-run": True}), serving)
    assert (ctx.action_results or {})["versions"] == "3.6.12"
