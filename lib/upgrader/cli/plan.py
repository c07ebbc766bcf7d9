"""``juju-upgrader plan``: the selection the charm's ``plan-upgrade`` action makes.

JSON and YAML output use the action's result keys; text is written for a person. Versions not
given as options are read from the ``juju`` command when it is on PATH.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from upgrader.cli.console import EXIT_OK, Console, quote, render, table
from upgrader.cli.options import (
    UsageError,
    format_option,
    selection_options,
    stream_options,
    trust_options,
    wanted_arches,
)
from upgrader.cli.stream import open_fetcher, read_contents, signature_text, trust_policy
from upgrader.juju_client import Detected, JujuCommandError, client_version, find_juju
from upgrader.juju_client import controller_agent_version as detect_agent_version
from upgrader.plan import PlanRequest, make_plan, next_steps, plan_results
from upgrader.selection import Outcome, Policy, Selection
from upgrader.streams import StreamContents, TrustPolicy
from upgrader.versions import Version


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``plan`` to the command parsers."""
    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="tell which agent version to upgrade the controller to",
        description="Tell which agent version to upgrade the controller to, and the commands "
        "to run next. Changes nothing.",
    )
    selection_options(plan)
    stream_options(plan)
    trust_options(plan)
    format_option(plan)
    plan.set_defaults(run=run)


@dataclasses.dataclass(frozen=True)
class Versions:
    """The agent and client versions a plan uses, and where each came from."""

    agent: Version
    agent_source: str
    client: Version | None
    client_source: str


def resolve_versions(args: argparse.Namespace) -> Versions:
    """Take the versions given as options; ask the ``juju`` command for the others.

    Raises:
        UsageError: no agent version given and no ``juju`` command to ask.
        JujuCommandError: ``juju`` was asked and failed.
    """
    agent: Version | None = args.agent_version
    client: Version | None = args.client_version
    agent_source = "--agent-version" if agent is not None else ""
    client_source = "--client-version" if client is not None else "not given"
    juju = None if args.no_juju else find_juju()
    if juju is not None and client is None:
        detected: Detected = client_version(juju)
        client, client_source = detected.version, detected.source
    if agent is None:
        if juju is None:
            why = "--no-juju was given" if args.no_juju else "the juju command is not on PATH"
            raise UsageError(
                f"give --agent-version (the controller's current agent version, e.g. 3.5.6): "
                f"{why}, so it cannot be read from `juju show-controller`"
            )
        try:
            detected = detect_agent_version(juju, args.controller)
        except JujuCommandError as exc:
            raise JujuCommandError(
                f"cannot read the controller's agent version: {exc}; give --agent-version"
            ) from None
        agent, agent_source = detected.version, detected.source
    return Versions(agent, agent_source, client, client_source)


def plan_request(args: argparse.Namespace, versions: Versions) -> PlanRequest:
    """The plan the options ask for."""
    return PlanRequest(
        agent=versions.agent,
        client=versions.client,
        target=args.target_version,
        policy=args.policy or Policy.DOCUMENTED,
        os_name=args.os_name,
        architectures=wanted_arches(args),
    )


def note_detected(console: Console, versions: Versions) -> None:
    """Say on stderr which versions came from juju (text plans show it in the output)."""
    for name, value, source in (
        ("agent", versions.agent, versions.agent_source),
        ("client", versions.client, versions.client_source),
    ):
        if value is not None and source.startswith("juju "):
            console.note(f"{name} version {value} from `{source}`")


def run(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader plan``."""
    versions = resolve_versions(args)
    if args.format != "text":
        note_detected(console, versions)
    request = plan_request(args, versions)
    with open_fetcher(args) as fetcher:
        contents = read_contents(fetcher, args)
    selection = make_plan(contents, request)
    results = plan_results(selection, contents)
    if args.format == "text":
        console.result(plan_text(selection, contents, versions, request, trust_policy(args)))
    else:
        console.result(render(results, args.format))
    return EXIT_OK


def plan_text(
    selection: Selection,
    contents: StreamContents,
    versions: Versions,
    request: PlanRequest,
    trust: TrustPolicy,
) -> str:
    """A plan written for a person: target, reason, where the versions came from, next steps."""
    if selection.outcome is Outcome.UPGRADE:
        headline = f"Upgrade the controller from {selection.agent} to {selection.target}."
    else:
        headline = f"The controller is up to date: {selection.agent} ({selection.reason})."
    client = (
        f"{versions.client} (from {quote(versions.client_source)})"
        if versions.client is not None
        else "not given (rules for the agent's own major)"
    )
    rows = [
        ("agent version", f"{versions.agent} (from {quote(versions.agent_source)})"),
        ("client version", client),
        ("target version", str(selection.target)),
        ("policy", selection.policy.value),
        ("reason", selection.reason),
        ("available", ", ".join(str(v) for v in selection.candidates) or "nothing newer"),
        ("architectures", f"{', '.join(request.architectures)} ({request.os_name})"),
        ("source", f"{contents.base_url} ({contents.stream} stream)"),
        ("signature", signature_text(contents, trust)),
    ]
    lines = [headline, "", *table(rows)]
    if selection.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in selection.warnings]
    lines += ["", "Next steps:"] + [f"  {step}" for step in next_steps(selection)]
    return "\n".join(lines) + "\n"
