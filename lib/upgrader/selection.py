"""Choosing the agent version a controller should upgrade to.

Three policies, each matching something Juju documents or does (juju/juju
``cmd/juju/commands/upgrademodel.go`` on 2.9, ``apiserver/facades/client/modelupgrader`` on 3.x):

* ``documented``: the rules printed in Juju's upgrade help and docs (the 1.21-1.25 client code).
* ``juju-2.9``: what Juju 2.9 really picks (pre-releases of the next minor count; a major is
  never crossed without an explicit target).
* ``juju-3``: what Juju 3.x controllers pick (only the newest patch or build of the current
  major.minor; newer minors and majors are reached by migrating models to a new controller).

Everything here takes and returns plain data; messages use Juju's own wording where it has one.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from .errors import InvalidInputError, SelectionError
from .versions import Version

NO_UPGRADES = "no upgrades available"
NO_MATCHING = "no matching agent versions available"
NO_COMPATIBLE = "no compatible agent versions available"


class Policy(enum.Enum):
    """How the target is chosen when none is given."""

    DOCUMENTED = "documented"
    JUJU_2_9 = "juju-2.9"
    JUJU_3 = "juju-3"

    @classmethod
    def parse(cls, text: str, *, option: str = "policy") -> Policy:
        """Read a policy name, naming the option and the accepted values on error."""
        try:
            return cls(text)
        except ValueError:
            accepted = ", ".join(p.value for p in cls)
            raise InvalidInputError(f"invalid {option} {text!r}: use one of {accepted}") from None


class Outcome(enum.Enum):
    """What the plan tells the operator to do."""

    UPGRADE = "upgrade"
    UP_TO_DATE = "up-to-date"


@dataclasses.dataclass(frozen=True)
class Selection:
    """The chosen target and why.

    Attributes:
        outcome: upgrade, or up-to-date (then ``target == agent``).
        agent: the version the controller runs now.
        target: the version to upgrade to.
        client: the client version the rules were applied with, when known.
        policy: the policy used.
        reason: one line naming the rule used.
        candidates: the versions the rule considered that are newer than the agent, newest first.
        missing_architectures: configured architectures the target has no binary for.
        warnings: what Juju would print as a warning (e.g. crossing majors), plus notes.
    """

    outcome: Outcome
    agent: Version
    target: Version
    client: Version | None
    policy: Policy
    reason: str
    candidates: tuple[Version, ...] = ()
    missing_architectures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def newest_compatible(available: Iterable[Version], base: Version) -> Version | None:
    """Juju's ``NewestCompatible``: the newest version of base's major.minor that is >= base.

    Returns None when no available version has base's major.minor and is at least base.
    """
    found = [v for v in available if v.major_minor == base.major_minor and v >= base]
    return max(found, default=None)


def _next_minor_base(agent: Version, *, any_tag: bool) -> Version:
    """The base Juju forms for "the next minor": agent minor + 1, patch 0.

    The documented rule keeps the agent's tag. Juju 2.9 sets the tag to a space, which sorts
    before every real tag, so any pre-release of the next minor counts; we get the same effect
    with the smallest possible tag ("a" with patch 0 is the least tagged version, and nothing
    with that major.minor sorts below it).
    """
    tag = "a" if any_tag else agent.tag
    return Version(agent.major, agent.minor + 1, 0, tag)


def select(
    available: Mapping[Version, Iterable[str]],
    agent: Version,
    *,
    client: Version | None = None,
    target: Version | None = None,
    policy: Policy = Policy.DOCUMENTED,
    architectures: Iterable[str] = (),
) -> Selection:
    """Choose the upgrade target.

    Args:
        available: the versions in the stream for the configured OS, each with the configured
            architectures it has a binary for (a version counts when it has at least one).
        agent: the controller's current agent version.
        client: the Juju client version, if known; without it, the agent's major is assumed.
        target: an explicit target version (``--agent-version``); must be available exactly.
        policy: how to choose when no target is given.
        architectures: the configured architectures, to report any the target lacks.

    Raises:
        SelectionError: when no target can be chosen; the message is Juju's where it has one.
    """
    versions = sorted((v for v, arches in available.items() if list(arches)), reverse=True)
    arches_of = {v: set(available[v]) for v in versions}
    if target is not None:
        chosen, reason, warnings = _explicit(versions, agent, target, policy)
        scope = [v for v in versions if v == chosen]
    elif policy is Policy.DOCUMENTED:
        chosen, reason, warnings, scope = _documented(versions, agent, client)
    elif policy is Policy.JUJU_2_9:
        chosen, reason, warnings, scope = _juju_2_9(versions, agent, client)
    else:
        chosen, reason, warnings, scope = _juju_3(versions, agent)
    candidates = tuple(v for v in sorted(set(scope), reverse=True) if v > agent)
    if chosen is None or chosen == agent:
        return Selection(
            Outcome.UP_TO_DATE, agent, agent, client, policy, reason, candidates, (), warnings
        )
    if chosen.to_patch() < agent.to_patch() or (
        chosen.to_patch() == agent.to_patch() and chosen.build < agent.build
    ):
        raise SelectionError(f"cannot change version from {agent} to lower version {chosen}")
    missing = tuple(a for a in architectures if a not in arches_of.get(chosen, set()))
    if missing:
        warnings = (
            *warnings,
            f"{chosen} has no agent binary for {', '.join(missing)} in the stream",
        )
    return Selection(
        Outcome.UPGRADE, agent, chosen, client, policy, reason, candidates, missing, warnings
    )


_Rule = tuple[Version | None, str, tuple[str, ...], list[Version]]


def _explicit(
    versions: list[Version], agent: Version, target: Version, policy: Policy
) -> tuple[Version | None, str, tuple[str, ...]]:
    if target.to_patch() < agent.to_patch() or (
        target.to_patch() == agent.to_patch() and target.build < agent.build
    ):
        raise SelectionError(f"cannot change version from {agent} to lower version {target}")
    if target == agent or (policy is Policy.JUJU_3 and target.to_patch() == agent.to_patch()):
        return None, f"{NO_UPGRADES}: the agent already runs {agent}", ()
    if policy is Policy.JUJU_3 and target.major != agent.major:
        raise SelectionError(f'upgrade to "{target}" is not supported from "{agent}"')
    if policy is Policy.JUJU_3 and target.minor != agent.minor:
        raise SelectionError(
            f'cannot upgrade to "{target}" due to issues with these models: '
            f'"admin/controller": - upgrading a controller to a newer major.minor version '
            f"{target.major}.{target.minor} not supported"
        )
    if policy is Policy.JUJU_2_9 and target.major != agent.major:
        # Juju 2.9 refuses in-place upgrades across majors (models are migrated instead).
        raise SelectionError(f'"{target}" is not a supported version')
    if target not in versions:
        raise SelectionError(NO_MATCHING)
    return target, f"explicit target-version {target}", ()


def _same_major_rule(versions: list[Version], agent: Version, *, any_tag: bool) -> _Rule:
    """Next minor first, then the newest patch of the agent's minor (both Juju rules)."""
    base = _next_minor_base(agent, any_tag=any_tag)
    nxt = newest_compatible(versions, base)
    scope = [v for v in versions if v.major_minor in (agent.major_minor, base.major_minor)]
    if nxt is not None:
        return nxt, f"newest version of the next minor {base.major}.{base.minor}", (), scope
    same = newest_compatible(versions, agent)
    if same is not None and same != agent:
        return same, f"newest patch of the current minor {agent.major}.{agent.minor}", (), scope
    return None, NO_UPGRADES, (), scope


def _documented(versions: list[Version], agent: Version, client: Version | None) -> _Rule:
    if client is None or client.major == agent.major:
        return _same_major_rule(versions, agent, any_tag=False)
    # Majors differ: the client's own version, which must be available.
    if client not in versions:
        raise SelectionError(NO_MATCHING)
    reason = (
        f"agent major {agent.major} differs from client major {client.major}: "
        "use the client's version"
    )
    return client, reason, (), [v for v in versions if v.major == client.major]


def _juju_2_9(versions: list[Version], agent: Version, client: Version | None) -> _Rule:
    client_major = agent.major if client is None else client.major
    if client_major not in (agent.major, agent.major + 1):
        raise SelectionError(f"cannot upgrade a {agent} model with a {client} client")
    own_major = [v for v in versions if v.major == agent.major]
    chosen, reason, _, scope = _same_major_rule(own_major, agent, any_tag=True)
    warnings: tuple[str, ...] = ()
    if client_major != agent.major:
        if chosen is None and agent not in own_major:
            raise SelectionError(NO_COMPATIBLE)
        if chosen is not None:
            # Juju 2.9 stays on the agent's major and warns; crossing needs an explicit target.
            warnings = (f"version {chosen} incompatible with this client ({client})",)
    return chosen, reason, warnings, scope


def _juju_3(versions: list[Version], agent: Version) -> _Rule:
    scope = [v for v in versions if v.major_minor == agent.major_minor]
    chosen = newest_compatible(scope, agent)
    beyond = [v for v in versions if v.major_minor > agent.major_minor]
    warnings: tuple[str, ...] = ()
    if beyond:
        warnings = (
            f"{max(beyond)} is available but Juju 3 reaches a newer major.minor only by "
            "migrating models to a new controller, not by upgrading in place",
        )
    if chosen is None or chosen == agent:
        return None, NO_UPGRADES, warnings, scope
    return (
        chosen,
        f"newest patch of the current minor {agent.major}.{agent.minor} (Juju 3 rule)",
        warnings,
        scope,
    )
