"""The upgrade plan: a selection over a stream, the route Juju allows to it, and the runbook.

Shared by the charm's ``plan-upgrade`` action and the ``juju-upgrader plan`` command, so both
print the same keys (scripts read them). The charm calls, with what a unit knows::

    selection = make_plan(contents, request)  # SelectionError: Juju's refusal
    route = route_of(selection)               # no model list on a unit
    staged = staged_versions(entries, os_name, architectures)
    site = Site(url, stream, staged, "juju run upgrader/0 sync-binaries")
    results = plan_results(selection, contents, site, route=route)
    # sync-binaries without a version stages route.stage, for every configured architecture
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from .routes import HostedModel, RoutePlan, plan_route
from .runbook import ControllerInfo, Site, runbook
from .selection import Policy, Selection, select
from .streams import AgentEntry, StreamContents
from .versions import Version


@dataclasses.dataclass(frozen=True)
class PlanRequest:
    """What the operator asked for, already parsed.

    Attributes:
        agent: the controller's current agent version.
        client: the Juju client version, if known.
        target: an explicit target version, if given.
        policy: the selection policy.
        os_name: the agent OS to consider (``ubuntu``).
        architectures: the architectures the controller needs binaries for.
    """

    agent: Version
    client: Version | None = None
    target: Version | None = None
    policy: Policy = Policy.DOCUMENTED
    os_name: str = "ubuntu"
    architectures: tuple[str, ...] = ("amd64",)


def make_plan(contents: StreamContents, request: PlanRequest) -> Selection:
    """Select the target among the stream's versions for the request's OS and architectures.

    Raises:
        SelectionError: the policy refuses, or no route reaches the target (both in Juju's
            words), so that one call tells whether a plan exists.
    """
    selection = select(
        contents.available(request.os_name, request.architectures),
        request.agent,
        client=request.client,
        target=request.target,
        policy=request.policy,
        architectures=request.architectures,
    )
    route_of(selection)
    return selection


def route_of(
    selection: Selection,
    *,
    models: Sequence[HostedModel] | None = None,
    kubernetes: bool = False,
) -> RoutePlan:
    """The route from the selection's agent version to its target.

    Args:
        selection: the policy's choice (its ``available`` versions are the route's hops).
        models: the hosted models with their versions, when known.
        kubernetes: the controller runs on Kubernetes.

    Raises:
        SelectionError: no route exists (Juju's message, then what is missing).
    """
    return plan_route(
        selection.agent,
        selection.target,
        selection.available,
        models=models,
        kubernetes=kubernetes,
    )


def staged_versions(
    entries: Iterable[AgentEntry], os_name: str, architectures: Iterable[str]
) -> frozenset[Version]:
    """The versions a mirror lists for ``os_name`` on every one of ``architectures``."""
    wanted = set(architectures)
    have: dict[Version, set[str]] = {}
    for entry in entries:
        if entry.os == os_name and entry.arch in wanted:
            have.setdefault(entry.version, set()).add(entry.arch)
    return frozenset(v for v, arches in have.items() if arches == wanted)


def versions_to_stage(
    selection: Selection, route: RoutePlan, contents: StreamContents, request: PlanRequest
) -> tuple[tuple[Version, ...], tuple[Version, ...]]:
    """What staging without a version takes, split into what the stream has and what it lacks.

    That is the route's ``stage``, or the target when the route stages nothing. The stage may
    hold a version the stream no longer lists (the controller's own, for models
    behind it): staging the rest must not fail for it.
    """
    wanted = route.stage or (selection.target,)
    listed = contents.available(request.os_name, request.architectures)
    return (
        tuple(v for v in wanted if v in listed),
        tuple(v for v in wanted if v not in listed),
    )


def plan_results(
    selection: Selection,
    contents: StreamContents,
    mirror: Site | None = None,
    *,
    route: RoutePlan | None = None,
    info: ControllerInfo | None = None,
) -> dict[str, str]:
    """The ``plan-upgrade`` action results; keys exactly as documented in the README.

    ``route``, ``hops``, ``stage`` and ``in-place-target`` say how Juju lets the controller
    reach the target; ``next-steps`` is the whole runbook. With a ``mirror``, ``staged`` says
    whether every version the route needs is staged.
    """
    route = route if route is not None else route_of(selection)
    notes = [selection.reason, *selection.warnings]
    if route.reason:
        notes.append(
            f"`juju upgrade-controller --agent-version {route.target}` answers: {route.reason}"
        )
    notes += route.notes
    results = {
        "outcome": selection.outcome.value,
        "agent-version": str(selection.agent),
        "target-version": str(selection.target),
        "policy": selection.policy.value,
        "reason": "; ".join(notes),
        "available": ", ".join(str(v) for v in selection.candidates),
        "route": route.route.value,
        "hops": ", ".join(str(v) for v in route.hops),
        "stage": ", ".join(str(v) for v in route.stage),
        "in-place-target": str(route.in_place_target or ""),
        "next-steps": "\n".join(runbook(route, mirror, info)),
        "source": contents.base_url,
        "verified": "true" if contents.verified else "false",
    }
    if not contents.verified:
        results["unverified-reason"] = contents.unverified_reason
    if selection.client is not None:
        results["client-version"] = str(selection.client)
    if mirror is not None:
        results["staged"] = "true" if set(route.stage) <= mirror.staged else "false"
    return results
