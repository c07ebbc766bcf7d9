"""plan-upgrade results with routes, made the way the charm makes them (what a unit knows)."""

from __future__ import annotations

import pytest

from upgrader.errors import SelectionError
from upgrader.plan import (
    PlanRequest,
    make_plan,
    plan_results,
    route_of,
    staged_versions,
    versions_to_stage,
)
from upgrader.routes import HostedModel
from upgrader.runbook import ControllerInfo, Site
from upgrader.selection import Policy
from upgrader.streams import AgentEntry, StreamContents
from upgrader.versions import parse, parse_binary

URL = "http://10.1.2.3:8080/tools"
SYNC = "juju run upgrader/0 sync-binaries"
VERSIONS = "2.9.50 2.9.52 2.9.53 3.1.8 3.5.6 3.5.7 3.6.10 3.6.11 3.6.12".split()


def entry(binary: str) -> AgentEntry:
    return AgentEntry(parse_binary(binary), f"agent/juju-{binary}.tgz", 10, "0" * 64)


def contents(*versions: str, stream: str = "released") -> StreamContents:
    return StreamContents(
        "https://streams.example/tools",
        stream,
        "https://streams.example/tools/streams/v1/index2.json",
        f"https://streams.example/tools/streams/v1/com.ubuntu.juju-{stream}-agents.json",
        tuple(entry(f"{v}-ubuntu-{a}") for v in versions or VERSIONS for a in ("amd64", "arm64")),
    )


CONTENTS = contents()


def results(agent: str, *, staged: tuple[str, ...] = (), stream_contents=CONTENTS, **request):
    """What the charm's plan-upgrade returns: make_plan, route_of, plan_results with a Site."""
    req = PlanRequest(parse(agent), architectures=("amd64", "arm64"), **request)
    selection = make_plan(stream_contents, req)
    route = route_of(selection)
    site = Site(URL, stream_contents.stream, frozenset(parse(v) for v in staged), SYNC)
    return plan_results(selection, stream_contents, site, route=route)


def test_3_5_6_to_3_6_12() -> None:
    out = results("3.5.6")
    assert (out["target-version"], out["route"]) == ("3.6.12", "in-place-then-new-controller")
    assert (out["hops"], out["stage"], out["in-place-target"]) == ("3.5.7, 3.6.12",) * 2 + (
        "3.5.7",
    )
    assert out["reason"].startswith(
        "newest version of the next minor 3.6; `juju upgrade-controller --agent-version "
        '3.6.12` answers: cannot upgrade to "3.6.12" due to issues with these models:\n'
        '"admin/controller":\n- upgrading a controller to a newer major.minor version 3.6 not '
        "supported; if juju migrate answers 'Source controller does not support required"
    )
    steps = out["next-steps"].splitlines()
    assert steps[:4] == [
        SYNC,
        f"juju model-config -m controller agent-metadata-url={URL}",
        f"juju model-defaults agent-metadata-url={URL}",
        "juju upgrade-controller --agent-version 3.5.7 --dry-run",
    ]
    assert out["staged"] == "false"


def test_3_6_10_to_3_6_12() -> None:
    out = results("3.6.10", staged=("3.6.12",))
    assert (out["route"], out["hops"], out["stage"], out["in-place-target"]) == (
        "in-place",
        "3.6.12",
        "3.6.12",
        "",
    )
    assert out["reason"] == "newest patch of the current minor 3.6"
    assert out["staged"] == "true"
    assert out["next-steps"].splitlines()[0].startswith("juju model-config -m controller ")


def test_2_9_40_to_3_6_12_with_the_client_version() -> None:
    out = results("2.9.40", client=parse("3.6.12"))
    assert (out["route"], out["hops"]) == ("in-place-then-new-controller", "2.9.53, 3.6.12")
    assert (
        '`juju upgrade-controller --agent-version 3.6.12` answers: upgrade to "3.6.12" is not '
        'supported from "2.9.40"'
    ) in out["reason"]
    assert "juju upgrade-controller --agent-version 2.9.53" in out["next-steps"].splitlines()


def test_2_9_52_to_2_9_53() -> None:
    out = results("2.9.52", policy=Policy.JUJU_2_9)
    assert (out["target-version"], out["route"], out["hops"]) == ("2.9.53", "in-place", "2.9.53")


def test_3_1_8_to_3_6_12() -> None:
    out = results("3.1.8", target=parse("3.6.12"))
    assert (out["route"], out["hops"], out["in-place-target"]) == (
        "new-controller",
        "3.6.12",
        "3.1.8",
    )
    assert "newer patch than 3.1.8" in out["reason"]


def test_kubernetes_controller_route_has_no_tarballs_to_stage() -> None:
    selection = make_plan(CONTENTS, PlanRequest(parse("3.5.6")))
    route = route_of(selection, kubernetes=True)
    out = plan_results(selection, CONTENTS, Site(URL, staged=frozenset()), route=route,
                       info=ControllerInfo(cloud="microk8s"))  # fmt: skip
    assert (out["route"], out["hops"], out["stage"]) == (
        "in-place-then-new-controller",
        "3.5.7, 3.6.12",
        "",
    )
    assert out["staged"] == "true"  # nothing to stage
    assert out["next-steps"].splitlines()[0].startswith("skopeo copy --all ")


def test_no_2_9_patch_at_or_above_2_9_43() -> None:
    old = contents("2.9.38", "2.9.42", "3.6.12")
    with pytest.raises(SelectionError) as exc:
        results("2.9.40", client=parse("3.6.12"), stream_contents=old)
    assert str(exc.value).startswith(
        "model must be upgraded to at least version 2.9.43 before being migrated to a "
        "controller with version 3.6.12: the stream has no 2.x agent at or above 2.9.43"
    )


def test_non_released_stream() -> None:
    proposed = contents("3.6.12", "3.6.13", stream="proposed")
    out = results("3.6.12", stream_contents=proposed)
    steps = out["next-steps"].splitlines()
    assert steps[1] == (
        f"juju model-config -m controller agent-metadata-url={URL} agent-stream=proposed"
    )
    assert "juju upgrade-controller --agent-version 3.6.13 --agent-stream proposed" in steps


@pytest.mark.parametrize(
    ("request_", "target", "route"),
    [
        ({}, "3.6.12", "in-place-then-new-controller"),
        ({"policy": Policy.JUJU_2_9}, "3.6.12", "in-place-then-new-controller"),
        ({"policy": Policy.JUJU_3}, "3.5.7", "in-place"),
        ({"target": parse("3.6.11")}, "3.6.11", "in-place-then-new-controller"),
    ],
)
def test_every_policy(request_: dict, target: str, route: str) -> None:
    out = results("3.5.6", **request_)
    assert (out["target-version"], out["route"]) == (target, route)


def test_up_to_date() -> None:
    out = results("3.6.12")
    assert (out["outcome"], out["route"], out["hops"], out["stage"]) == (
        "up-to-date",
        "none",
        "",
        "",
    )
    assert out["next-steps"] == (
        "nothing to do: the controller runs the newest version this policy allows"
    )


def test_models_known_to_the_client_tool() -> None:
    selection = make_plan(CONTENTS, PlanRequest(parse("3.6.10")))
    models = [HostedModel("admin/prod", parse("3.6.9"))]
    route = route_of(selection, models=models)
    out = plan_results(selection, CONTENTS, Site(URL), route=route, info=ControllerInfo(name="c"))
    assert out["reason"].endswith("; model admin/prod runs 3.6.9, not the controller's 3.6.10")
    assert "juju upgrade-model -m c:admin/prod --agent-version 3.6.12" in out["next-steps"]


def test_staged_versions_needs_every_architecture() -> None:
    entries = [
        entry("3.6.12-ubuntu-amd64"),
        entry("3.6.12-ubuntu-arm64"),
        entry("3.5.7-ubuntu-amd64"),
    ]
    assert staged_versions(entries, "ubuntu", ["amd64", "arm64"]) == {parse("3.6.12")}
    assert staged_versions(entries, "ubuntu", ["amd64"]) == {parse("3.6.12"), parse("3.5.7")}
    assert staged_versions(entries, "centos", ["amd64"]) == frozenset()


def test_a_stage_version_the_stream_lacks_does_not_stop_the_rest() -> None:
    """A 2.9.53 controller whose 2.9.40 model must catch up: the stream has no 2.9.53 any more."""
    stream = contents("2.9.52", "3.6.12")
    models = [HostedModel("admin/old", parse("2.9.40"))]
    request = PlanRequest(parse("2.9.53"), client=parse("3.6.12"), architectures=("amd64",))
    selection = make_plan(stream, request)
    route = route_of(selection, models=models)
    assert parse("2.9.53") in route.stage
    assert versions_to_stage(selection, route, stream, request) == (
        (parse("3.6.12"),),
        (parse("2.9.53"),),
    )
