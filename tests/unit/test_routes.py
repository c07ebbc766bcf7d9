"""Upgrade routes: which route Juju allows, its hops, what to stage, and Juju's refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.errors import SelectionError
from upgrader.routes import (
    HostedModel,
    Route,
    in_place_allowed,
    in_place_refusal,
    migration_refusal,
    min_migrate_version,
    plan_route,
)
from upgrader.versions import Version, parse

V = parse
STREAM = [
    V(v)
    for v in "2.9.50 2.9.51 2.9.52 2.9.53 3.4.5 3.4.6 3.5.6 3.5.7 3.6.10 3.6.11 3.6.12".split()
]
BLOCKER_36 = (
    'cannot upgrade to "3.6.12" due to issues with these models:\n'
    '"admin/controller":\n'
    "- upgrading a controller to a newer major.minor version 3.6 not supported"
)


def versions(route_versions: tuple[Version, ...]) -> list[str]:
    return [str(v) for v in route_versions]


# The worked routes ------------------------------------------------------------------------


def test_3_5_6_to_3_6_12_patches_in_place_then_a_new_controller() -> None:
    route = plan_route(V("3.5.6"), V("3.6.12"), STREAM)
    assert route.route is Route.IN_PLACE_THEN_NEW_CONTROLLER
    assert versions(route.hops) == ["3.5.7", "3.6.12"]
    assert versions(route.stage) == ["3.5.7", "3.6.12"]
    assert route.in_place_target == V("3.5.7")
    assert route.reason == BLOCKER_36
    assert route.models is None
    assert any("Source controller does not support required facades" in n for n in route.notes)


def test_3_5_7_to_3_6_12_is_a_new_controller_only() -> None:
    route = plan_route(V("3.5.7"), V("3.6.12"), STREAM)
    assert route.route is Route.NEW_CONTROLLER
    assert versions(route.hops) == ["3.6.12"]
    assert versions(route.stage) == ["3.6.12"]
    assert route.in_place_target == V("3.5.7")  # nothing newer in place: its own version


def test_3_6_10_to_3_6_12_is_in_place() -> None:
    route = plan_route(V("3.6.10"), V("3.6.12"), STREAM)
    assert route.route is Route.IN_PLACE
    assert versions(route.hops) == versions(route.stage) == ["3.6.12"]
    assert route.in_place_target is None
    assert route.reason == ""


def test_2_9_40_to_3_6_12_hops_to_the_newest_2_9_first() -> None:
    route = plan_route(V("2.9.40"), V("3.6.12"), STREAM)
    assert route.route is Route.IN_PLACE_THEN_NEW_CONTROLLER
    assert versions(route.hops) == ["2.9.53", "3.6.12"]
    assert versions(route.stage) == ["2.9.53", "3.6.12"]
    assert route.reason == 'upgrade to "3.6.12" is not supported from "2.9.40"'
    assert route.notes == ()  # the facade check does not apply to a 2.9 source


def test_2_9_52_to_2_9_53_is_in_place() -> None:
    route = plan_route(V("2.9.52"), V("2.9.53"), STREAM)
    assert route.route is Route.IN_PLACE
    assert versions(route.hops) == ["2.9.53"]


def test_3_1_8_to_3_6_12_is_a_new_controller_with_the_facade_note() -> None:
    route = plan_route(V("3.1.8"), V("3.6.12"), STREAM)
    assert route.route is Route.NEW_CONTROLLER
    assert versions(route.hops) == ["3.6.12"]
    assert route.reason == BLOCKER_36
    assert route.notes == (
        "if juju migrate answers 'Source controller does not support required facades for "
        "performing migration', the 3.1 controller needs a newer patch than 3.1.8 (or an "
        "intermediate controller) before it can migrate to 3.6.12",
    )


def test_kubernetes_controller_stages_no_tarballs() -> None:
    route = plan_route(V("3.5.6"), V("3.6.12"), STREAM, kubernetes=True)
    assert route.route is Route.IN_PLACE_THEN_NEW_CONTROLLER
    assert versions(route.hops) == ["3.5.7", "3.6.12"]
    assert route.stage == ()
    assert route.kubernetes


def test_up_to_date_is_route_none() -> None:
    route = plan_route(V("3.6.12"), V("3.6.12"), STREAM)
    assert (route.route, route.hops, route.stage) == (Route.NONE, (), ())


# No route ---------------------------------------------------------------------------------


def test_no_2_9_patch_at_or_above_2_9_43_means_no_route() -> None:
    stream = [V(v) for v in ("2.9.38", "2.9.42", "3.6.12")]
    with pytest.raises(SelectionError) as exc:
        plan_route(V("2.9.40"), V("3.6.12"), stream)
    assert str(exc.value) == (
        "model must be upgraded to at least version 2.9.43 before being migrated to a "
        "controller with version 3.6.12: the stream has no 2.x agent at or above 2.9.43 to "
        "upgrade the controller and its models to first (the newest is 2.9.42); stage one "
        "from a stream that has it"
    )


def test_no_newer_2_9_at_all() -> None:
    with pytest.raises(SelectionError, match=r"\(it has none newer\)"):
        plan_route(V("2.9.40"), V("3.6.12"), [V("3.6.12")])


def test_two_majors_apart_has_no_route() -> None:
    with pytest.raises(SelectionError) as exc:
        plan_route(V("2.9.53"), V("4.0.0"), [V("4.0.0")])
    assert str(exc.value) == (
        'migrate to "4.0.0" is not supported from "2.9.53": no route from 2.9.53 to 4.0.0: '
        "Juju cannot migrate models across them"
    )


def test_a_controller_already_past_the_minimum_needs_no_hop() -> None:
    route = plan_route(V("2.9.43"), V("3.6.12"), [V("3.6.12")])
    assert route.route is Route.NEW_CONTROLLER


# Hosted models ----------------------------------------------------------------------------


def test_models_are_flagged_when_not_at_the_controller_version() -> None:
    models = [HostedModel("admin/prod", V("3.6.10")), HostedModel("bob/dev", V("3.6.9"))]
    route = plan_route(V("3.6.10"), V("3.6.12"), STREAM, models=models)
    assert route.models == tuple(models)
    assert route.notes == ("model bob/dev runs 3.6.9, not the controller's 3.6.10",)


def test_up_to_date_controller_with_a_model_behind_stages_its_version() -> None:
    models = [HostedModel("admin/prod", V("3.6.10"))]
    route = plan_route(V("3.6.12"), V("3.6.12"), STREAM, models=models)
    assert route.route is Route.NONE
    assert versions(route.stage) == ["3.6.12"]


def test_a_2_9_model_below_the_minimum_is_upgraded_to_the_controller_first() -> None:
    models = [HostedModel("admin/old", V("2.9.40"))]
    route = plan_route(V("2.9.53"), V("3.6.12"), STREAM, models=models)
    assert route.route is Route.NEW_CONTROLLER
    assert versions(route.stage) == ["2.9.53", "3.6.12"]


# The rules one by one ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("controller", "target", "allowed"),
    [
        ("3.6.10", "3.6.12", True),
        ("3.6.10", "3.6.10.1", True),
        ("3.5.6", "3.6.12", False),
        ("3.6.12", "4.0.0", False),
        ("2.9.40", "2.9.53", True),
        ("2.8.9", "2.9.53", True),
        ("2.9.53", "3.6.12", False),
        ("3.6.12", "3.6.10", False),
    ],
)
def test_in_place_allowed(controller: str, target: str, allowed: bool) -> None:
    assert in_place_allowed(V(controller), V(target)) is allowed


def test_in_place_refusal_in_juju_words() -> None:
    assert in_place_refusal(V("3.5.6"), V("3.6.12")) == BLOCKER_36
    assert in_place_refusal(V("2.9.52"), V("3.6.12")) == (
        'upgrade to "3.6.12" is not supported from "2.9.52"'
    )


@pytest.mark.parametrize(
    ("target", "minimum"),
    [("3.1.5", "2.9.36"), ("3.2.0", "2.9.43"), ("3.6.12", "2.9.43"), ("4.0.0", "3.1.0")],
)
def test_min_migrate_version(target: str, minimum: str) -> None:
    assert min_migrate_version(V(target)) == V(minimum)
    assert min_migrate_version(V("5.0.0")) is None


@pytest.mark.parametrize(
    ("model", "target", "refusal"),
    [
        ("3.1.8", "3.6.12", None),
        ("2.9.43", "3.6.12", None),
        ("2.9-rc43", "3.6.12", None),  # the tag is ignored: 2.9.43 counts
        (
            "2.9.42",
            "3.6.12",
            "model must be upgraded to at least version 2.9.43 before being migrated to a "
            "controller with version 3.6.12",
        ),
        ("2.9.36", "3.1.5", None),
        ("2.8.9", "4.0.0", 'migrate to "4.0.0" is not supported from "2.8.9"'),
        ("3.6.13", "3.6.12", "model has higher version than target controller (3.6.13 > 3.6.12)"),
    ],
)
def test_migration_refusal(model: str, target: str, refusal: str | None) -> None:
    assert migration_refusal(V(model), V(target)) == refusal


def test_hosted_model_short_name() -> None:
    assert HostedModel("alice/dev", V("3.6.12")).short_name == "dev"


releases = st.builds(Version, st.integers(2, 3), st.integers(4, 9), st.integers(0, 60))


@given(st.sets(releases, min_size=1, max_size=15), releases, releases)
def test_any_route_is_consistent(
    stream: set[Version], controller: Version, target: Version
) -> None:
    if target <= controller:
        target = controller
    try:
        route = plan_route(controller, target, stream | {target})
    except SelectionError as exc:
        assert "model must be upgraded" in str(exc)
        assert controller.major < target.major
        return
    if route.route is Route.NONE:
        assert route.hops == ()
        return
    assert route.hops[-1] == target
    assert list(route.hops) == sorted(route.hops)
    assert set(route.hops) <= set(route.stage)
    if route.route is Route.IN_PLACE:
        assert in_place_allowed(controller, target)
    else:
        assert not in_place_allowed(controller, target)
        assert route.reason == in_place_refusal(controller, target)
        for hop in route.hops[:-1]:
            assert in_place_allowed(controller, hop)
