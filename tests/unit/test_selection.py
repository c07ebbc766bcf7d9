"""Upgrade target selection: every rule, example and message of the three policies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.errors import InvalidInputError, SelectionError
from upgrader.selection import (
    INCOMPATIBLE_CLI,
    NO_COMPATIBLE,
    NO_COMPATIBLE_TOOLS,
    NO_MATCHING,
    NO_MATCHING_TOOLS,
    NO_MORE_RECENT,
    NO_UPGRADES,
    Outcome,
    Policy,
    controller_upgrade_blocker,
    newest_compatible,
    select,
)
from upgrader.versions import Version, parse, parse_lenient

V = parse_lenient
DOCS_EXAMPLE = ["1.25.1", "2.02", "2.03", "2.1", "2.2"]


def avail(*texts: str, arches: tuple[str, ...] = ("amd64",)) -> dict[Version, set[str]]:
    return {V(t): set(arches) for t in texts}


# documented policy: the examples of Juju's upgrade help


@pytest.mark.parametrize(
    ("client", "agent", "target"),
    [("2.03", "2.01", "2.02"), ("1.25", "1.25", "1.25.1"), ("2.1", "1.25", "2.1")],
)
def test_documented_examples(client: str, agent: str, target: str) -> None:
    result = select(avail(*DOCS_EXAMPLE), V(agent), client=V(client))
    assert result.outcome is Outcome.UPGRADE
    assert result.target == V(target)
    assert result.policy is Policy.DOCUMENTED


def test_documented_next_minor_wins_over_patch() -> None:
    result = select(avail("3.5.9", "3.6.0", "3.6.4", "3.7.1"), V("3.5.1"))
    assert result.target == V("3.6.4")
    assert result.reason == "newest version of the next minor 3.6"
    assert [str(v) for v in result.candidates] == ["3.6.4", "3.6.0", "3.5.9"]


def test_documented_falls_back_to_newest_patch() -> None:
    result = select(avail("3.5.9", "3.5.3", "3.7.0"), V("3.5.1"))
    assert result.target == V("3.5.9")
    assert result.reason == "newest patch of the current minor 3.5"


def test_documented_ignores_prerelease_of_next_minor() -> None:
    # Juju 1.25 finds nothing at or above 2.1.0 in 2.1, nor anything in 2.0, and says so.
    with pytest.raises(SelectionError, match=f"^{NO_MORE_RECENT}$"):
        select(avail("2.1-dev1", "2.2.0", "2.2.5", "2.3.3"), V("2.0.0"))
    result = select(avail("2.0.0", "2.1-dev1", "2.2.0"), V("2.0.0"))
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.reason == NO_UPGRADES


def test_documented_keeps_agent_tag_in_base() -> None:
    # Agent 2.0-beta1: base 2.1-beta0; 2.1-alpha3 ranks below it, 2.1-beta2 above.
    assert select(avail("2.1-alpha3", "2.1-beta2"), V("2.0-beta1")).target == V("2.1-beta2")
    result = select(avail("2.1-alpha3", "2.0-beta1"), V("2.0-beta1"))
    assert result.outcome is Outcome.UP_TO_DATE


def test_documented_up_to_date() -> None:
    result = select(avail("3.6.1", "3.6.2"), V("3.6.2"))
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.target == result.agent == V("3.6.2")
    assert result.reason == NO_UPGRADES
    assert result.candidates == ()


def test_documented_no_client_assumes_agent_major() -> None:
    result = select(avail("2.9.5", "3.6.1"), V("2.9.1"))
    assert result.target == V("2.9.5")


def test_documented_major_differs_takes_newest_of_the_client_minor() -> None:
    result = select(avail("2.9.5", "3.6.1", "3.6.4", "3.7.0"), V("2.9.1"), client=V("3.6.2"))
    assert result.target == V("3.6.4")
    assert result.reason == (
        "agent major 2 differs from client major 3: newest version of the client's minor 3.6"
    )


def test_documented_major_differs_nothing_at_or_above_the_client() -> None:
    with pytest.raises(SelectionError, match=f"^{NO_COMPATIBLE_TOOLS}$"):
        select(avail("2.9.5", "3.6.1"), V("2.9.1"), client=V("3.6.2"))
    with pytest.raises(SelectionError, match=f"^{NO_MATCHING_TOOLS}$"):
        select(avail("2.9.5"), V("2.9.1"), client=V("3.6.2"))


def test_documented_nothing_newer_and_agent_not_listed() -> None:
    with pytest.raises(SelectionError, match=f"^{NO_MORE_RECENT}$"):
        select(avail("3.6.1"), V("3.6.2"))
    assert select({}, V("3.6.2")).outcome is Outcome.UP_TO_DATE  # no agents of the major


def test_documented_client_older_major_is_refused_like_juju() -> None:
    with pytest.raises(
        SelectionError, match="^cannot upgrade a 3.1.0 environment with a 2.9.5 client$"
    ):
        select(avail("2.9.5", "3.1.0"), V("3.1.0"), client=V("2.9.5"))


def test_documented_skips_withdrawn_minors() -> None:
    assert select(avail("1.20.14", "1.21.3", "1.22.1"), V("1.20.14")).target == V("1.22.1")


def test_version_counts_with_any_configured_arch_and_missing_ones_are_named() -> None:
    available = {V("3.6.2"): {"amd64"}, V("3.6.1"): {"amd64", "arm64"}}
    result = select(available, V("3.6.0"), architectures=("amd64", "arm64"))
    assert result.target == V("3.6.2")
    assert result.missing_architectures == ("arm64",)
    assert any("no agent binary for arm64" in w for w in result.warnings)


def test_versions_without_any_arch_do_not_count() -> None:
    available = {V("3.6.2"): set(), V("3.6.1"): {"amd64"}}
    assert select(available, V("3.6.0")).target == V("3.6.1")


# juju-2.9 policy


def test_juju29_prerelease_of_next_minor_counts() -> None:
    result = select(
        avail("2.1-dev1", "2.2.0", "2.2.5", "2.3.3"), V("2.0.0"), policy=Policy.JUJU_2_9
    )
    assert result.target == V("2.1-dev1")


def test_juju29_newest_of_next_minor() -> None:
    result = select(
        avail("2.9.1", "2.10-beta1", "2.10.2", "2.11.0"), V("2.9.0"), policy=Policy.JUJU_2_9
    )
    assert result.target == V("2.10.2")


def test_juju29_never_crosses_major_and_warns() -> None:
    result = select(
        avail("2.9.40", "2.9.44", "3.1.0"), V("2.9.40"), client=V("3.1.0"), policy=Policy.JUJU_2_9
    )
    assert result.target == V("2.9.44")
    assert result.warnings == ("version 2.9.44 incompatible with this client (3.1.0)",)
    assert "incompatible with this client" in result.warnings[0]


def test_juju29_cross_major_nothing_fits() -> None:
    with pytest.raises(SelectionError, match=f"^{NO_COMPATIBLE}$"):
        select(avail("3.1.0"), V("2.9.40"), client=V("3.1.0"), policy=Policy.JUJU_2_9)


def test_juju29_cross_major_agent_already_newest_is_up_to_date() -> None:
    result = select(
        avail("2.9.40", "3.1.0"), V("2.9.40"), client=V("3.1.0"), policy=Policy.JUJU_2_9
    )
    assert result.outcome is Outcome.UP_TO_DATE


def test_juju29_refuses_client_two_majors_ahead_or_behind() -> None:
    with pytest.raises(SelectionError, match="cannot upgrade a 1.25.0 model with a 3.1.0 client"):
        select(avail("3.1.0"), V("1.25.0"), client=V("3.1.0"), policy=Policy.JUJU_2_9)
    with pytest.raises(SelectionError, match="cannot upgrade a 3.1.0 model with a 2.9.0 client"):
        select(avail("3.1.1"), V("3.1.0"), client=V("2.9.0"), policy=Policy.JUJU_2_9)


def test_juju29_up_to_date() -> None:
    result = select(avail("2.9.40"), V("2.9.40"), policy=Policy.JUJU_2_9)
    assert (result.outcome, result.reason) == (Outcome.UP_TO_DATE, NO_UPGRADES)
    assert select({}, V("2.9.40"), policy=Policy.JUJU_2_9).outcome is Outcome.UP_TO_DATE


def test_juju29_nothing_newer_and_agent_not_listed() -> None:
    with pytest.raises(SelectionError, match=f"^{NO_MORE_RECENT}$"):
        select(avail("2.9.39"), V("2.9.40"), policy=Policy.JUJU_2_9)


# juju-3 policy


def test_juju3_only_same_major_minor() -> None:
    result = select(avail("2.9.100", "2.10.99", "3.666.0"), V("2.9.99"), policy=Policy.JUJU_3)
    assert result.target == V("2.9.100")
    assert result.candidates == (V("2.9.100"),)
    assert any("migrating models to a new controller" in w for w in result.warnings)
    assert "3.666.0" in result.warnings[0]


def test_juju3_takes_newest_build() -> None:
    result = select(avail("3.6.1", "3.6.1.2", "3.6.1.1"), V("3.6.1"), policy=Policy.JUJU_3)
    assert result.target == V("3.6.1.2")


def test_juju3_newer_minor_only_is_up_to_date_with_migration_note() -> None:
    result = select(avail("3.6.4", "3.7.0"), V("3.6.4"), policy=Policy.JUJU_3)
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.reason == NO_UPGRADES
    assert "3.7.0 is available" in result.warnings[0]


def test_juju3_up_to_date_without_notes() -> None:
    result = select(avail("3.6.4"), V("3.6.4"), policy=Policy.JUJU_3)
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.warnings == ()


# Explicit target


@pytest.mark.parametrize("policy", list(Policy))
def test_explicit_target_exact_match(policy: Policy) -> None:
    result = select(avail("3.6.1", "3.6.3", "3.6.4"), V("3.6.1"), target=V("3.6.3"), policy=policy)
    assert result.target == V("3.6.3")
    assert result.reason == "explicit target-version 3.6.3"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy.DOCUMENTED, NO_MATCHING_TOOLS),
        (Policy.JUJU_2_9, NO_MATCHING),
        (Policy.JUJU_3, NO_MATCHING),
    ],
)
def test_explicit_target_missing(policy: Policy, message: str) -> None:
    with pytest.raises(SelectionError, match=f"^{message}$"):
        select(avail("3.6.1", "3.6.4"), V("3.6.1"), target=V("3.6.3"), policy=policy)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy.DOCUMENTED, "cannot change version from 3.6.4 to 3.6.1"),
        (Policy.JUJU_2_9, "cannot change version from 3.6.4 to lower version 3.6.1"),
    ],
)
def test_explicit_target_lower(policy: Policy, message: str) -> None:
    with pytest.raises(SelectionError, match=f"^{message}$"):
        select(avail("3.6.1", "3.6.4"), V("3.6.4"), target=V("3.6.1"), policy=policy)


@pytest.mark.parametrize("target", ["3.6.1", "3.6.4", "3.5.9"])
def test_juju3_explicit_target_at_or_below_is_up_to_date(target: str) -> None:
    """Juju 3's decideVersion: a target at or below the current patch is "no upgrades"."""
    result = select(avail("3.5.9", "3.6.1"), V("3.6.4"), target=V(target), policy=Policy.JUJU_3)
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.reason == f"{NO_UPGRADES}: the agent already runs 3.6.4"


def test_juju3_explicit_newer_build_of_the_same_patch() -> None:
    result = select(avail("3.6.1.1"), V("3.6.1"), target=V("3.6.1.1"), policy=Policy.JUJU_3)
    assert result.target == V("3.6.1.1")


def test_juju3_missing_target_is_checked_before_the_minor_rule() -> None:
    with pytest.raises(SelectionError, match=f"^{NO_MATCHING}$"):
        select(avail("3.6.1"), V("3.6.1"), target=V("3.7.0"), policy=Policy.JUJU_3)


@pytest.mark.parametrize("policy", list(Policy))
def test_explicit_target_equal_is_up_to_date(policy: Policy) -> None:
    result = select(avail("3.6.4"), V("3.6.4"), target=V("3.6.4"), policy=policy)
    assert result.outcome is Outcome.UP_TO_DATE
    assert result.reason.startswith(NO_UPGRADES)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy.DOCUMENTED, "^cannot change version from 2.9.42.1 to 2.9.42$"),
        (Policy.JUJU_2_9, "^cannot change version from 2.9.42.1 to lower version 2.9.42$"),
    ],
)
def test_explicit_target_lower_build(policy: Policy, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select(avail("2.9.42", "2.9.42.1"), V("2.9.42.1"), target=V("2.9.42"), policy=policy)


def test_explicit_target_newer_build() -> None:
    assert select(avail("2.9.42.1"), V("2.9.42"), target=V("2.9.42.1")).target == V("2.9.42.1")


def test_juju3_explicit_target_other_minor_is_blocked_like_juju() -> None:
    with pytest.raises(SelectionError) as exc:
        select(avail("3.9.99"), V("3.6.1"), target=V("3.9.99"), policy=Policy.JUJU_3)
    # The exact text of the facade's error (modelupgrader upgrader_test.go, branch 3.6).
    assert str(exc.value) == (
        'cannot upgrade to "3.9.99" due to issues with these models:\n'
        '"admin/controller":\n'
        "- upgrading a controller to a newer major.minor version 3.9 not supported"
    )


def test_juju3_explicit_target_other_major_gets_the_same_blocker() -> None:
    with pytest.raises(SelectionError) as exc:
        select(avail("4.0.0"), V("3.6.1"), target=V("4.0.0"), policy=Policy.JUJU_3)
    assert str(exc.value) == controller_upgrade_blocker(V("3.6.1"), V("4.0.0"))
    assert str(exc.value).endswith("newer major.minor version 4.0 not supported")


def test_juju29_explicit_target_other_major() -> None:
    with pytest.raises(
        SelectionError, match='^upgrade to "3.1.0" is not supported from "2.9.40"$'
    ):
        select(avail("3.1.0"), V("2.9.40"), target=V("3.1.0"), policy=Policy.JUJU_2_9)


def test_documented_explicit_target_never_crosses_a_major() -> None:
    with pytest.raises(SelectionError, match=f"^{INCOMPATIBLE_CLI}$"):
        select(avail("3.1.0"), V("2.9.40"), target=V("3.1.0"))
    with pytest.raises(SelectionError, match=f"^{INCOMPATIBLE_CLI}$"):
        select(avail("2.9.40"), V("3.1.0"), target=V("2.9.40"), client=V("3.1.0"))


def test_documented_explicit_target_from_1_25_2_to_2_0() -> None:
    assert select(avail("2.0.2"), V("1.25.2"), target=V("2.0.2")).target == V("2.0.2")
    for agent, target in (("1.25.1", "2.0.2"), ("1.25.2", "2.1.0")):
        with pytest.raises(SelectionError, match=f"^{INCOMPATIBLE_CLI}$"):
            select(avail(target), V(agent), target=V(target))


# Policy names and the primitive


def test_policy_parse() -> None:
    assert Policy.parse("juju-3") is Policy.JUJU_3
    with pytest.raises(
        InvalidInputError,
        match="invalid selection-policy 'juju3': use one of documented, juju-2.9, juju-3",
    ):
        Policy.parse("juju3", option="selection-policy")


def test_newest_compatible() -> None:
    vs = [parse(t) for t in ["2.9.1", "2.9.3", "2.10.0", "3.0.0"]]
    assert newest_compatible(vs, parse("2.9.0")) == parse("2.9.3")
    assert newest_compatible(vs, parse("2.9.3")) == parse("2.9.3")
    assert newest_compatible(vs, parse("2.9.4")) is None
    assert newest_compatible([], parse("2.9.4")) is None


versions = st.builds(
    Version,
    st.integers(1, 3),
    st.integers(0, 4),
    st.integers(0, 4),
    st.sampled_from(["", "", "beta", "rc"]),
    st.integers(0, 1),
)


@given(st.sets(versions, max_size=12), versions, st.sampled_from(list(Policy)))
def test_any_outcome_is_a_newer_available_version_or_up_to_date(available, agent, policy) -> None:
    try:
        result = select({v: {"amd64"} for v in available}, agent, policy=policy)
    except SelectionError:
        return
    if result.outcome is Outcome.UPGRADE:
        assert result.target in available
        assert result.target > agent
        assert result.target.major == agent.major
        if policy is Policy.JUJU_3:
            assert result.target.major_minor == agent.major_minor
    else:
        assert result.target == agent
    assert list(result.candidates) == sorted(result.candidates, reverse=True)
