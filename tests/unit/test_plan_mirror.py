"""plan-upgrade's complete sequence when the charm serves a mirror: stage, point, upgrade."""

from __future__ import annotations

from upgrader.plan import PlanRequest, make_plan, plan_results, route_of, staged_versions
from upgrader.runbook import Site, runbook
from upgrader.streams import AgentEntry, StreamContents
from upgrader.versions import parse, parse_binary

URL = "http://10.1.2.3:8080/tools"
SYNC = "juju run upgrader/0 sync-binaries"


def entry(binary: str) -> AgentEntry:
    return AgentEntry(parse_binary(binary), f"released/juju-{binary}.tgz", 10, "0" * 64)


CONTENTS = StreamContents(
    "https://streams.example/tools",
    "released",
    "https://streams.example/tools/streams/v1/index2.json",
    "https://streams.example/tools/streams/v1/com.ubuntu.juju-released-agents.json",
    tuple(entry(b) for b in ("3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.6.9-ubuntu-amd64")),
)


def plan(agent: str = "3.6.9"):
    return make_plan(CONTENTS, PlanRequest(agent=parse(agent), architectures=("amd64",)))


IN_PLACE = [
    f"juju model-config -m controller agent-metadata-url={URL}",
    f"juju model-defaults agent-metadata-url={URL}",
    "juju upgrade-controller --agent-version 3.6.12 --dry-run",
    "juju upgrade-controller --agent-version 3.6.12",
    "# wait until `juju status -m controller` shows every controller agent at 3.6.12",
    "# then for each model `juju models` lists, other than controller, as <model>:",
    "juju upgrade-model -m <model> --agent-version 3.6.12 --dry-run",
    "juju upgrade-model -m <model> --agent-version 3.6.12",
]


def test_not_staged_target_starts_with_the_sync() -> None:
    mirror = Site(URL, staged=frozenset(), sync_command=SYNC)
    assert runbook(route_of(plan()), mirror) == [SYNC, *IN_PLACE]
    results = plan_results(plan(), CONTENTS, mirror)
    assert results["staged"] == "false"
    assert results["next-steps"].splitlines()[0] == SYNC


def test_staged_target_skips_the_sync() -> None:
    mirror = Site(URL, staged=frozenset({parse("3.6.12")}), sync_command=SYNC)
    assert runbook(route_of(plan()), mirror) == IN_PLACE
    assert plan_results(plan(), CONTENTS, mirror)["staged"] == "true"


def test_up_to_date_needs_nothing_even_with_a_mirror() -> None:
    mirror = Site(URL, staged=frozenset({parse("3.6.12")}), sync_command=SYNC)
    assert runbook(route_of(plan("3.6.12")), mirror) == [
        "nothing to do: the controller runs the newest version this policy allows"
    ]


def test_without_a_mirror_there_is_no_staging_or_pointing() -> None:
    results = plan_results(plan(), CONTENTS)
    assert "staged" not in results
    assert results["next-steps"].splitlines() == IN_PLACE[2:]
    assert (results["route"], results["hops"], results["stage"]) == (
        "in-place",
        "3.6.12",
        "3.6.12",
    )
    assert results["in-place-target"] == ""


def test_a_version_is_staged_only_with_every_architecture() -> None:
    entries = CONTENTS.entries
    assert parse("3.6.12") in staged_versions(entries, "ubuntu", ["amd64", "arm64"])
    assert parse("3.6.9") not in staged_versions(entries, "ubuntu", ["amd64", "arm64"])
    assert parse("3.6.9") in staged_versions(entries, "ubuntu", ["amd64"])
    assert parse("3.6.12") not in staged_versions(entries, "centos", ["amd64"])
