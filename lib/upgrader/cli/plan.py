"""``juju-upgrader plan``: the target, the route Juju allows to it, and the whole runbook.

JSON and YAML output use the ``plan-upgrade`` action's result keys; text is written for a
person, the route and its hops on top and the runbook numbered. Versions not given as options
are read from the ``juju`` command when it is on PATH; when the controller's version comes from
juju, so do its models (real names and versions in the runbook), the architectures of the
machines in use and, on Kubernetes, the bases of the charms in use.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrader.cli.console import EXIT_OK, Console, bundle_steps, quote, render, table
from upgrader.cli.options import (
    UsageError,
    arg_type,
    format_option,
    selection_options,
    stream_options,
    trust_options,
    wanted_arches,
)
from upgrader.cli.stream import open_fetcher, read_contents, signature_text, trust_policy
from upgrader.errors import InvalidInputError
from upgrader.juju_client import (
    JUJU_TIMEOUT,
    MAX_MACHINES,
    ControllerDetails,
    JujuCommandError,
    charm_bases,
    client_version,
    controller_details,
    find_juju,
    list_models,
    machine_architectures,
)
from upgrader.plan import PlanRequest, make_plan, plan_results, route_of, staged_versions
from upgrader.routes import HostedModel, Route, RoutePlan
from upgrader.runbook import (
    AGENT_METADATA_URL,
    ControllerInfo,
    Site,
    default_offline_dir,
    runbook,
)
from upgrader.selection import Policy, Selection
from upgrader.streams import StreamContents, TrustPolicy
from upgrader.versions import Version

if TYPE_CHECKING:
    from collections.abc import Sequence

ARCH_MODELS = 25
"""Models whose machines are asked for their architectures (one ``juju machines`` each)."""

ARCH_SECONDS = 120.0
"""Time spent asking models for their architectures before the plan stops counting."""


def _metadata_url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or any(c.isspace() for c in text):
        raise InvalidInputError(
            f"invalid --agent-metadata-url {text!r}: give the http:// or https:// URL the "
            "controller reads the staged agent binaries from, e.g. http://10.0.0.5:8080/tools"
        )
    return text


def _absolute_dir(option: str) -> Any:
    def parse(text: str) -> Path:
        if not text.strip() or "\n" in text:
            raise InvalidInputError(f"invalid {option} {text!r}: give a directory")
        return Path(text).expanduser().absolute()

    parse.__name__ = option
    return parse


# A registry host[:port] and path, as image references spell them: nothing a shell reads.
_IMAGE_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}\Z")


def _image_repo(text: str) -> str:
    if not _IMAGE_REPO.match(text):
        raise InvalidInputError(
            f"invalid --image-repo {text!r}: give the registry path the controller pulls Juju's "
            "images from (caas-image-repo), e.g. registry.example.com:5000/jujusolutions"
        )
    return text


def _route_options(parser: argparse.ArgumentParser) -> None:
    """Add what the runbook needs to be ready to copy: where binaries go and come from."""
    parser.add_argument(
        "--agent-metadata-url",
        type=arg_type(_metadata_url),
        metavar="URL",
        help="the URL the controller reads the staged agent binaries from (the upgrader "
        f"charm's, or your own server's); default: a {AGENT_METADATA_URL} placeholder",
    )
    parser.add_argument(
        "--local-dir",
        type=arg_type(_absolute_dir("--local-dir")),
        metavar="DIR",
        help="where `juju-upgrader sync` stages the binaries (what is there already is not "
        "staged again); default: OFFLINE-DIR/agents",
    )
    parser.add_argument(
        "--offline-dir",
        type=arg_type(_absolute_dir("--offline-dir")),
        metavar="DIR",
        help="where the offline bootstrap files (client, juju-db, juju-controller) are "
        "fetched; default: /var/tmp/juju-TARGET",
    )
    parser.add_argument(
        "--image-repo",
        type=arg_type(_image_repo),
        metavar="REPO",
        help="on Kubernetes, the site's registry path for Juju's images (caas-image-repo)",
    )


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``plan`` to the command parsers."""
    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="tell how to upgrade the controller: target, route and every command",
        description="Tell which agent version to upgrade the controller to, how Juju lets it "
        "get there (in place, or through a new controller and model migrations), and every "
        "command to run, in order. Changes nothing.",
    )
    selection_options(plan)
    stream_options(plan)
    trust_options(plan)
    _route_options(plan)
    format_option(plan, "the plan-upgrade action's keys")
    plan.set_defaults(run=run)


@dataclasses.dataclass(frozen=True)
class Versions:
    """The agent and client versions a plan uses, and where each came from."""

    agent: Version
    agent_source: str
    client: Version | None
    client_source: str
    controller: ControllerDetails | None = None


@dataclasses.dataclass(frozen=True)
class JujuFacts:
    """What ``juju`` says of the controller besides its version.

    Attributes:
        models: the hosted models; None when they were not read.
        kubernetes: the controller runs on Kubernetes.
        architectures: the architectures of the machines counted.
        charm_bases: on Kubernetes, the bases of the charms in use.
        notes: what was left out (models, machines not counted).
    """

    models: tuple[HostedModel, ...] | None = None
    kubernetes: bool = False
    architectures: tuple[str, ...] = ()
    charm_bases: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


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
        detected = client_version(juju)
        client, client_source = detected.version, detected.source
    details = None
    if agent is None:
        if juju is None:
            why = "--no-juju was given" if args.no_juju else "the juju command is not on PATH"
            raise UsageError(
                f"give --agent-version (the controller's current agent version, e.g. 3.5.6): "
                f"{why}, so it cannot be read from `juju show-controller`"
            )
        try:
            details = controller_details(juju, args.controller)
        except JujuCommandError as exc:
            raise JujuCommandError(
                f"cannot read the controller's agent version: {exc}; give --agent-version"
            ) from None
        agent, agent_source = details.agent, f"juju show-controller {details.name}"
    return Versions(agent, agent_source, client, client_source, details)


def read_juju_facts(versions: Versions, *, budget: float = ARCH_SECONDS) -> JujuFacts:
    """The controller's models and what they run on, when its version came from ``juju``.

    Asks ``juju models``, then ``juju machines`` for at most :data:`ARCH_MODELS` models within
    ``budget`` seconds (saying so when it stops counting) and, on Kubernetes, ``juju status``
    for the bases of the charms in use.

    Raises:
        JujuCommandError: a juju command failed or printed something unreadable.
    """
    details = versions.controller
    juju = find_juju()
    if details is None or juju is None:
        return JujuFacts()
    listing = list_models(juju, details.name)
    notes = list(listing.notes)
    machine_models = ["admin/controller", *(m.name for m in listing.models if m.kind == "iaas")]
    if listing.kubernetes:
        machine_models = [m.name for m in listing.models if m.kind == "iaas"]
    deadline = time.monotonic() + budget
    arches, arch_notes = _architectures_in_use(
        juju, details.name, machine_models, deadline, budget
    )
    notes += arch_notes
    bases: set[str] = set()
    if listing.kubernetes:
        caas = [m.name for m in listing.models if m.kind == "caas"][:ARCH_MODELS]
        bases, base_notes = _charm_bases_in_use(juju, details.name, caas, deadline, budget)
        notes += base_notes
    return JujuFacts(
        listing.models,
        listing.kubernetes,
        tuple(sorted(arches)),
        tuple(sorted(bases)),
        tuple(notes),
    )


def _architectures_in_use(
    juju: str, controller: str, models: list[str], deadline: float, budget: float
) -> tuple[set[str], list[str]]:
    """The architectures of the models' machines, counted within the budget, and notes."""
    arches: set[str] = set()
    notes: list[str] = []
    for count, model in enumerate(models):
        left = deadline - time.monotonic()
        machines = None
        if count < ARCH_MODELS and left > 0:
            try:
                machines = machine_architectures(
                    juju, controller, model, timeout=min(JUJU_TIMEOUT, left)
                )
            except JujuCommandError:
                if left >= JUJU_TIMEOUT:
                    raise  # juju's own time limit, not the budget: a real failure
        if machines is None:
            why = f"at most {ARCH_MODELS} models" if count >= ARCH_MODELS else f"{budget:g} s"
            notes.append(
                f"stopped counting architectures after {count} of {len(models)} models "
                f"({why}); give --arch for any other architecture in use"
            )
            break
        arches |= machines.architectures
        if not machines.complete:
            notes.append(
                f"counted the architectures of the first {MAX_MACHINES} machines of {model} "
                "only; give --arch for any other architecture in use"
            )
    return arches, notes


def _charm_bases_in_use(
    juju: str, controller: str, models: list[str], deadline: float, budget: float
) -> tuple[set[str], list[str]]:
    """The bases of the Kubernetes models' charms, read within the budget, and notes."""
    bases: set[str] = set()
    for model in models:
        left = deadline - time.monotonic()
        if left <= 0:
            return bases, [
                f"stopped reading the charm bases after {budget:g} s; copy the charm-base "
                "image of any other base in use"
            ]
        bases |= charm_bases(juju, controller, model, timeout=min(JUJU_TIMEOUT, left))
    return bases, []


def architectures(args: argparse.Namespace, facts: JujuFacts) -> tuple[str, ...]:
    """The --arch values (amd64 by default), then those found on the machines in use."""
    return tuple(dict.fromkeys((*wanted_arches(args), *facts.architectures)))


def plan_request(
    args: argparse.Namespace, versions: Versions, arches: Sequence[str] | None = None
) -> PlanRequest:
    """The plan the options ask for."""
    return PlanRequest(
        agent=versions.agent,
        client=versions.client,
        target=args.target_version,
        policy=args.policy or Policy.DOCUMENTED,
        os_name=args.os_name,
        architectures=tuple(arches) if arches else wanted_arches(args),
    )


def note_detected(console: Console, versions: Versions) -> None:
    """Say on stderr which versions came from juju (text plans show it in the output)."""
    for name, value, source in (
        ("agent", versions.agent, versions.agent_source),
        ("client", versions.client, versions.client_source),
    ):
        if value is not None and source.startswith("juju "):
            console.note(f"{name} version {value} from `{source}`")


@dataclasses.dataclass(frozen=True)
class _Planned:
    """Everything one ``plan`` run decided, for the output."""

    selection: Selection
    route: RoutePlan
    site: Site
    info: ControllerInfo
    facts: JujuFacts
    local_dir: Path
    os_name: str


def _make_route_plan(
    args: argparse.Namespace, versions: Versions, facts: JujuFacts, contents: StreamContents
) -> _Planned:
    """Select, route, and say where binaries are staged and how.

    Raises:
        SelectionError: the policy refuses or no route exists (Juju's words).
    """
    arches = architectures(args, facts)
    selection = make_plan(contents, plan_request(args, versions, arches))
    route = route_of(selection, models=facts.models, kubernetes=facts.kubernetes)
    offline = args.offline_dir or Path(default_offline_dir(selection.target))
    local = args.local_dir or offline / "agents"
    staged = frozenset()
    if (local / "tools").is_dir():
        from upgrader.mirror import Mirror

        staged = staged_versions(Mirror(local).staged(contents.stream), args.os_name, arches)
    after: tuple[str, ...] = ()
    if args.agent_metadata_url is None:
        bundle = f"{local}.tar.gz"
        after = (
            f"# serve {local}/tools over HTTP and give its URL to `juju-upgrader plan "
            "--agent-metadata-url`, or attach it to the upgrader charm, whose status shows the "
            "URL:",
            *bundle_steps(str(local), bundle),
        )
    site = Site(
        args.agent_metadata_url or AGENT_METADATA_URL,
        contents.stream,
        staged,
        sync_command(args, versions, arches, local),
        after,
    )
    details = versions.controller
    info = ControllerInfo(
        name=details.name if details else args.controller,
        cloud=(details.cloud or None) if details else None,
        architectures=arches,
        charm_bases=facts.charm_bases,
        image_repo=args.image_repo,
        offline_dir=str(offline),
    )
    return _Planned(selection, route, site, info, facts, local, args.os_name)


def sync_command(
    args: argparse.Namespace, versions: Versions, arches: Sequence[str], local: Path
) -> str:
    """The ``juju-upgrader sync`` that stages what this plan needs, every version pinned."""
    words = ["juju-upgrader", "sync", "--local-dir", str(local), "--stream-url", args.stream_url]
    if args.stream != "released":
        words += ["--stream", args.stream]
    words += ["--arch", ",".join(arches)]
    if args.os_name != "ubuntu":
        words += ["--os", args.os_name]
    words += ["--agent-version", str(versions.agent)]
    if versions.client is not None:
        words += ["--client-version", str(versions.client)]
    if args.target_version is not None:
        words += ["--target-version", str(args.target_version)]
    if args.policy is not None:
        words += ["--policy", args.policy.value]
    if not args.verify_signatures:
        words.append("--no-verify-signatures")
    for option in ("--signing-keys", "--ca-certificates"):
        value = _raw_option(getattr(args, "argv", []), option)
        if value is not None:
            words += [option, str(Path(value).expanduser().absolute())]
    return shlex.join(words)


def _raw_option(argv: Sequence[str], option: str) -> str | None:
    """The value last given for ``option`` on the command line (``--opt V`` or ``--opt=V``)."""
    found = None
    for i, word in enumerate(argv):
        if word == option and i + 1 < len(argv):
            found = argv[i + 1]
        elif word.startswith(option + "="):
            found = word[len(option) + 1 :]
    return found


def run(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader plan``."""
    versions = resolve_versions(args)
    if args.format != "text":
        note_detected(console, versions)
    facts = read_juju_facts(versions)
    with open_fetcher(args) as fetcher:
        contents = read_contents(fetcher, args)
    planned = _make_route_plan(args, versions, facts, contents)
    if args.format == "text":
        console.result(_plan_text(planned, contents, versions, trust_policy(args)))
        return EXIT_OK
    for note in facts.notes:
        console.note(note)
    results = plan_results(
        planned.selection, contents, planned.site, route=planned.route, info=planned.info
    )
    console.result(render(results, args.format))
    return EXIT_OK


def headline(selection: Selection, route: RoutePlan) -> str:
    """One sentence: what to do."""
    agent, target = selection.agent, selection.target
    if route.route is Route.NONE:
        return f"The controller is up to date: {agent} ({selection.reason})."
    if route.route is Route.IN_PLACE:
        return f"Upgrade the controller from {agent} to {target} in place."
    if route.route is Route.NEW_CONTROLLER:
        return (
            f"Upgrade from {agent} to {target} through a new controller: Juju does not upgrade "
            f"{agent} to {target} in place."
        )
    return (
        f"Upgrade from {agent} to {target}: in place to {route.hops[0]}, then through a new "
        "controller."
    )


def _plan_text(
    planned: _Planned, contents: StreamContents, versions: Versions, trust: TrustPolicy
) -> str:
    """A plan written for a person: route and hops on top, then why, then the runbook."""
    selection, route, facts = planned.selection, planned.route, planned.facts
    client = (
        f"{versions.client} (from {quote(versions.client_source)})"
        if versions.client is not None
        else "not given (rules for the agent's own major)"
    )
    rows = [("route", route.route.value), ("hops", _versions(route.hops) or "none")]
    if route.in_place_target is not None:
        rows.append(("in place up to", str(route.in_place_target)))
    rows += [
        ("agent version", f"{versions.agent} (from {quote(versions.agent_source)})"),
        ("client version", client),
        ("target version", str(selection.target)),
        ("policy", selection.policy.value),
        ("reason", selection.reason),
        ("stage", _stage_text(route, planned)),
        ("available", _versions(selection.candidates) or "nothing newer"),
        ("architectures", f"{', '.join(planned.info.architectures)} ({planned.os_name})"),
        ("models", _models_text(facts, versions)),
        ("source", f"{contents.base_url} ({contents.stream} stream)"),
        ("signature", signature_text(contents, trust)),
    ]
    lines = [headline(selection, route), "", *table(rows)]
    if route.reason:
        lines += [
            "",
            f"`juju upgrade-controller --agent-version {route.target}` answers:",
            *(f"  {line}" for line in route.reason.splitlines()),
        ]
    if selection.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in selection.warnings]
    notes = [*route.notes, *facts.notes]
    if notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in notes]
    steps = runbook(route, planned.site, planned.info)
    lines += ["", "Runbook:", *_numbered(steps)]
    return "\n".join(lines) + "\n"


def _numbered(steps: Sequence[str]) -> list[str]:
    """Commands numbered in order; ``#`` lines (what to do between them) unnumbered."""
    lines = []
    number = 0
    for step in steps:
        if step.startswith(("#", "nothing to do")):
            lines.append(f"      {step}")
        else:
            number += 1
            lines.append(f"  {number:>2}. {step}")
    return lines


def _versions(versions: Sequence[Version]) -> str:
    return ", ".join(str(v) for v in versions)


def _stage_text(route: RoutePlan, planned: _Planned) -> str:
    if route.kubernetes:
        return "images, not agent binaries (Kubernetes)"
    if not route.stage:
        return "nothing"
    missing = [v for v in route.stage if v not in planned.site.staged]
    where = f"in {planned.local_dir}"
    if not missing:
        return f"{_versions(route.stage)} (all staged {where})"
    return f"{_versions(route.stage)} ({_versions(missing)} not yet staged {where})"


def _models_text(facts: JujuFacts, versions: Versions) -> str:
    if facts.models is None:
        why = "--agent-version given" if versions.controller is None else "not read"
        return f"not listed ({why}): the runbook says how to repeat per model"
    if not facts.models:
        return "none besides the controller model"
    shown = ", ".join(f"{m.name} {m.version}" for m in facts.models[:5])
    more = f" and {len(facts.models) - 5} more" if len(facts.models) > 5 else ""
    return f"{len(facts.models)}: {shown}{more}"
