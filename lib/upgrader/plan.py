"""The upgrade plan: a selection over a stream, and the commands an operator runs next.

Shared by the charm's ``plan-upgrade`` action and the ``juju-upgrader plan`` command, so both
print the same keys (scripts read them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .selection import Outcome, Policy, Selection, select
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
    """Select the target among the stream's versions for the request's OS and architectures."""
    return select(
        contents.available(request.os_name, request.architectures),
        request.agent,
        client=request.client,
        target=request.target,
        policy=request.policy,
        architectures=request.architectures,
    )


@dataclasses.dataclass(frozen=True)
class MirrorState:
    """The charm's staged mirror, as far as a plan needs it.

    Attributes:
        agent_metadata_url: the URL the controller reads the mirror from.
        staged: whether the target's binaries for every wanted architecture are staged.
        sync_command: the command that stages the target.
    """

    agent_metadata_url: str
    staged: bool
    sync_command: str


def is_staged(
    entries: Iterable[AgentEntry], version: Version, os_name: str, architectures: Iterable[str]
) -> bool:
    """Whether the mirror lists ``version`` for ``os_name`` on every one of ``architectures``."""
    have = {e.arch for e in entries if e.version == version and e.os == os_name}
    return set(architectures) <= have


def next_steps(selection: Selection, mirror: MirrorState | None = None) -> list[str]:
    """The commands the operator runs next, in order.

    With the charm's ``mirror``, the complete sequence: stage the target (when it is not staged
    yet), point the controller model's ``agent-metadata-url`` at the mirror, upgrade.
    """
    if selection.outcome is Outcome.UP_TO_DATE:
        steps = ["nothing to do: the controller runs the newest version this policy allows"]
    else:
        steps = []
        if mirror is not None:
            if not mirror.staged:
                steps.append(mirror.sync_command)
            steps.append(
                f"juju model-config -m controller agent-metadata-url={mirror.agent_metadata_url}"
            )
        steps.append(f"juju upgrade-controller --agent-version {selection.target}")
    if selection.policy is Policy.JUJU_3 and any("migrating" in w for w in selection.warnings):
        steps.append(
            "for a newer major.minor: bootstrap a new controller at that version and "
            "juju migrate each model to it"
        )
    return steps


def plan_results(
    selection: Selection, contents: StreamContents, mirror: MirrorState | None = None
) -> dict[str, str]:
    """The ``plan-upgrade`` action results; keys exactly as documented in the README.

    With the charm's ``mirror``, ``next-steps`` is the complete sequence and ``staged`` says
    whether the target is already in the mirror.
    """
    reason = "; ".join((selection.reason, *selection.warnings))
    results = {
        "outcome": selection.outcome.value,
        "agent-version": str(selection.agent),
        "target-version": str(selection.target),
        "policy": selection.policy.value,
        "reason": reason,
        "available": ", ".join(str(v) for v in selection.candidates),
        "next-steps": "\n".join(next_steps(selection, mirror)),
        "source": contents.base_url,
        "verified": "true" if contents.verified else "false",
    }
    if selection.client is not None:
        results["client-version"] = str(selection.client)
    if mirror is not None:
        results["staged"] = "true" if mirror.staged else "false"
    return results
