"""Choosing the agent version a controller should upgrade to.

Three policies, each the rules of one line of Juju's code, with that line's own messages:

* ``documented``: the rules printed in Juju's upgrade help and docs, which are the 1.21-1.25
  client code (juju/juju branch 1.25, ``cmd/juju/commands/upgradejuju.go``).
* ``juju-2.9``: what the Juju 2.9 client picks (juju/juju branch 2.9,
  ``cmd/juju/commands/upgrademodel.go``): pre-releases of the next minor count; a major is
  never crossed in place.
* ``juju-3``: what a Juju 3.x controller picks (juju/juju branch 3.6,
  ``apiserver/facades/client/modelupgrader/findagents.go`` and ``upgrader.go``): only the
  newest patch or build of the current major.minor; newer minors and majors are reached by
  migrating models to a new controller (see :mod:`upgrader.routes`).

Everything here takes and returns plain data. ARCHITECTURE.md ("Upgrade routes") lists the
sources of each rule and message.
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
NO_MORE_RECENT = "no more recent supported versions available"
# Juju 1.25 said "tools" where later lines say "agent versions" (tools/list.go ErrNoMatches).
NO_MATCHING_TOOLS = "no matching tools available"
NO_COMPATIBLE_TOOLS = "no compatible tools available"
INCOMPATIBLE_CLI = "cannot upgrade to version incompatible with CLI"


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
        available: every version the stream holds (for the OS and architectures), oldest
            first: what a route to the target may pass through.
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
    available: tuple[Version, ...] = ()


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


def controller_upgrade_blocker(agent: Version, target: Version) -> str:
    """What a Juju 3 controller answers ``upgrade-controller --agent-version`` across minors.

    The controller model's validator (``upgrades/upgradevalidation/validation.go``,
    ``getCheckTargetVersionForControllerModel``) blocks any other major.minor, and
    ``validateModelUpgrade`` lists the blockers by model; the controller model is always
    ``admin/controller``. Juju 3.6 has no separate cross-major rule for the controller model, so
    a newer major gets the same blocker.
    """
    return (
        f'cannot upgrade to "{target}" due to issues with these models:\n'
        f'"admin/controller":\n'
        f"- upgrading a controller to a newer major.minor version "
        f"{target.major}.{target.minor} not supported"
    )


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
        policy: how to choose.
        architectures: the configured architectures, to report any the target lacks.

    Raises:
        SelectionError: when the policy's Juju line refuses; the message is that line's own.
    """
    versions = sorted((v for v, arches in available.items() if list(arches)), reverse=True)
    arches_of = {v: set(available[v]) for v in versions}
    if policy is Policy.DOCUMENTED:
        chosen, reason, warnings, scope = _documented(versions, agent, client, target)
    elif policy is Policy.JUJU_2_9:
        chosen, reason, warnings, scope = _juju_2_9(versions, agent, client, target)
    else:
        chosen, reason, warnings, scope = _juju_3(versions, agent, target)
    candidates = tuple(v for v in sorted(set(scope), reverse=True) if v > agent)
    listed = tuple(reversed(versions))
    if chosen is None or chosen == agent:
        return Selection(
            Outcome.UP_TO_DATE,
            agent,
            agent,
            client,
            policy,
            reason,
            candidates,
            (),
            warnings,
            listed,
        )
    missing = tuple(a for a in architectures if a not in arches_of.get(chosen, set()))
    if missing:
        warnings = (
            *warnings,
            f"{chosen} has no agent binary for {', '.join(missing)} in the stream",
        )
    return Selection(
        Outcome.UPGRADE,
        agent,
        chosen,
        client,
        policy,
        reason,
        candidates,
        missing,
        warnings,
        listed,
    )


_Rule = tuple[Version | None, str, tuple[str, ...], list[Version]]


def _explicit_reason(target: Version) -> str:
    return f"explicit target-version {target}"


def _up_to_date(agent: Version) -> str:
    return f"{NO_UPGRADES}: the agent already runs {agent}"


def _documented(
    versions: list[Version], agent: Version, client: Version | None, target: Version | None
) -> _Rule:
    """Juju 1.25's ``upgradeContext.decideVersion``, with its messages."""
    cli = client if client is not None else agent
    if agent.major > cli.major:
        raise SelectionError(f"cannot upgrade a {agent} environment with a {cli} client")
    if target is not None:
        return _documented_explicit(versions, agent, target)
    listed = [v for v in versions if v.major == cli.major]
    if not listed:
        if agent.major == cli.major:
            return None, NO_UPGRADES, (), []
        raise SelectionError(NO_MATCHING_TOOLS)
    if cli.major == agent.major:
        base = _next_minor_base(agent, any_tag=False)
        if base.major == 1 and base.minor in (21, 23):
            # 1.25 skips 1.21 and 1.23, which were withdrawn.
            base = dataclasses.replace(base, minor=base.minor + 1)
        next_reason = f"newest version of the next minor {base.major}.{base.minor}"
    else:
        base = cli
        next_reason = (
            f"agent major {agent.major} differs from client major {cli.major}: newest "
            f"version of the client's minor {cli.major}.{cli.minor}"
        )
    scope = [v for v in listed if v.major_minor in (agent.major_minor, base.major_minor)]
    chosen = newest_compatible(listed, base)
    reason = next_reason
    if chosen is None:
        chosen = newest_compatible(listed, agent)
        reason = f"newest patch of the current minor {agent.major}.{agent.minor}"
        if chosen is None:
            raise SelectionError(
                NO_COMPATIBLE_TOOLS if agent.major != cli.major else NO_MORE_RECENT
            )
    if chosen == agent:
        return None, NO_UPGRADES, (), scope
    _documented_check_lower(agent, chosen)
    return chosen, reason, (), scope


def _documented_explicit(versions: list[Version], agent: Version, target: Version) -> _Rule:
    """1.25 with ``--version``: same major (or 1.25.2 to 2.0), listed, not lower."""
    if target == agent:
        return None, _up_to_date(agent), (), []
    if target.major != agent.major and not _documented_major_allowed(agent, target):
        raise SelectionError(INCOMPATIBLE_CLI)
    # FindTools(target major) answering NotFound and Match failing read the same.
    if target not in versions:
        raise SelectionError(NO_MATCHING_TOOLS)
    _documented_check_lower(agent, target)
    return target, _explicit_reason(target), (), [target]


def _documented_major_allowed(agent: Version, target: Version) -> bool:
    """1.25's ``preCheckAgent``: only 1.25.2 or later to 2.0.x crosses a major."""
    return (
        agent.major == 1
        and target.major == 2
        and target.minor == 0
        and (agent.minor, agent.patch) >= (25, 2)
    )


def _documented_check_lower(agent: Version, chosen: Version) -> None:
    """1.25's ``checkAgent`` refuses a lower major.minor with this message.

    1.25 would let a lower patch or build through as a downgrade; a plan never downgrades, so
    those get the same message.
    """
    if chosen < agent:
        raise SelectionError(f"cannot change version from {agent} to {chosen}")


def _juju_2_9(
    versions: list[Version], agent: Version, client: Version | None, target: Version | None
) -> _Rule:
    """The Juju 2.9 client (``precheckVersion``, ``maybeChoosePackagedAgent``), its messages."""
    cli = client if client is not None else agent
    if cli.major not in (agent.major, agent.major + 1):
        raise SelectionError(f"cannot upgrade a {agent} model with a {cli} client")
    if target is not None:
        return _juju_2_9_explicit(versions, agent, target)
    warn_compat = cli.major != agent.major
    own_major = [v for v in versions if v.major == agent.major]
    base = _next_minor_base(agent, any_tag=True)
    scope = [v for v in own_major if v.major_minor in (agent.major_minor, base.major_minor)]
    chosen = newest_compatible(own_major, base)
    reason = f"newest version of the next minor {base.major}.{base.minor}"
    if chosen is None:
        chosen = newest_compatible(own_major, agent)
        reason = f"newest patch of the current minor {agent.major}.{agent.minor}"
    if chosen is None:
        if warn_compat:
            raise SelectionError(NO_COMPATIBLE)
        if not own_major:
            # No agents of the major at all: the client says there is nothing to upgrade to.
            return None, NO_UPGRADES, (), []
        raise SelectionError(NO_MORE_RECENT)
    if chosen == agent:
        return None, NO_UPGRADES, (), scope
    warnings: tuple[str, ...] = ()
    if warn_compat:
        # Juju 2.9 stays on the agent's major and warns; crossing needs an explicit target.
        warnings = (f"version {chosen} incompatible with this client ({cli})",)
    return chosen, reason, warnings, scope


def _juju_2_9_explicit(versions: list[Version], agent: Version, target: Version) -> _Rule:
    """The 2.9 client with ``--agent-version``: not lower, same major, listed."""
    if target.to_patch() < agent.to_patch():
        raise SelectionError(f"cannot change version from {agent} to lower version {target}")
    if target == agent:
        return None, _up_to_date(agent), (), []
    if target.major > agent.major:
        # upgradevalidation.UpgradeToAllowed: MinMajorUpgradeVersions is empty on 2.9.
        raise SelectionError(f'upgrade to "{target}" is not supported from "{agent}"')
    if target not in versions:
        raise SelectionError(NO_MATCHING)
    if target < agent:
        # A lower build of the same patch: 2.9 would let it through; a plan never downgrades.
        raise SelectionError(f"cannot change version from {agent} to lower version {target}")
    return target, _explicit_reason(target), (), [target]


def _juju_3(versions: list[Version], agent: Version, target: Version | None) -> _Rule:
    """A Juju 3.6 controller's ``decideVersion`` and controller-model validators."""
    if target is not None:
        if target <= agent.to_patch() or target <= agent:
            # decideVersion: a target at or below the current patch is "up to date" (and a
            # lower build, which it would let through, too: a plan never downgrades).
            return None, _up_to_date(agent), (), []
        if target not in versions:
            # Checked before the validators (UpgradeModel calls decideVersion first).
            raise SelectionError(NO_MATCHING)
        if target.major_minor != agent.major_minor:
            raise SelectionError(controller_upgrade_blocker(agent, target))
        return target, _explicit_reason(target), (), [target]
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
