"""The upgrade plan: a selection over a stream, and the commands an operator runs next.

Shared by the charm's ``plan-upgrade`` action and the ``juju-upgrader plan`` command, so both
print the same keys (scripts read them).
"""

from __future__ import annotations

import dataclasses

from .selection import Outcome, Policy, Selection, select
from .streams import StreamContents
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
    """Select the target among the stream's versions for the request's OS and architectures."""
    return select(
        contents.available(request.os_name, request.architectures),
        request.agent,
        client=request.client,
        target=request.target,
        policy=request.policy,
        architectures=request.architectures,
    )


def next_steps(selection: Selection) -> list[str]:
    """The commands the operator runs next, in order."""
    if selection.outcome is Outcome.UP_TO_DATE:
        steps = ["nothing to do: the controller runs the newest version this policy allows"]
    else:
        steps = [f"juju upgrade-controller --agent-version {selection.target}"]
    if selection.policy is Policy.JUJU_3 and any("migrating" in w for w in selection.warnings):
        steps.append(
            "for a newer major.minor: bootstrap a new controller at that version and "
            "juju migrate each model to it"
        )
    return steps


def plan_results(selection: Selection, contents: StreamContents) -> dict[str, str]:
    """The ``plan-upgrade`` action results; keys exactly as documented in the README."""
    reason = "; ".join((selection.reason, *selection.warnings))
    results = {
        "outcome": selection.outcome.value,
        "agent-version": str(selection.agent),
        "target-version": str(selection.target),
        "policy": selection.policy.value,
        "reason": reason,
        "available": ", ".join(str(v) for v in selection.candidates),
        "next-steps": "\n".join(next_steps(selection)),
        "source": contents.base_url,
        "verified": "true" if contents.verified else "false",
    }
    if selection.client is not None:
        results["client-version"] = str(selection.client)
    return results
