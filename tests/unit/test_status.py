"""The unit status as a pure function of what the charm knows and sees."""

from __future__ import annotations

import pytest

from upgrader.status import (
    ImportOutcome,
    Serving,
    StreamCheck,
    UnitFacts,
    UnitStatus,
    unit_status,
)
from upgrader.streams import AgentEntry, Validators
from upgrader.syncjob import JobStatus
from upgrader.versions import parse_binary

URL = "http://10.1.2.3:8080/tools"


def entries(*binaries: str) -> tuple[AgentEntry, ...]:
    return tuple(
        AgentEntry(parse_binary(b), f"released/juju-{b}.tgz", 1, "0" * 64) for b in binaries
    )


def serving(*binaries: str, **kwargs: object) -> Serving:
    return Serving(URL, entries(*binaries), "ubuntu", ("amd64",), **kwargs)  # type: ignore[arg-type]


def facts(**kwargs: object) -> UnitFacts:
    return UnitFacts(unit="upgrader/0", agent_version="3.6.8", **kwargs)  # type: ignore[arg-type]


def test_a_fresh_unit_without_storage_asks_for_it() -> None:
    assert unit_status(facts()) == UnitStatus(
        "blocked",
        "no binaries storage attached: the staged agent binaries are kept there; add it with "
        "`juju add-storage upgrader/0 binaries`",
    )


def test_not_serving_shows_the_agent_and_its_target() -> None:
    status = unit_status(facts(storage_attached=True, stream=StreamCheck(target="3.7.0")))
    assert status == UnitStatus("active", "agent 3.6.8; upgrade target 3.7.0")


def test_serving_shows_what_and_where_and_the_target_not_staged() -> None:
    status = unit_status(
        facts(
            storage_attached=True,
            stream=StreamCheck(target="3.6.13"),
            serving=serving("3.6.12-ubuntu-amd64"),
        )
    )
    assert status == UnitStatus(
        "active",
        f"serving 3.6.12 (1 arch); agent-metadata-url={URL}; upgrade target 3.6.13 is not staged",
    )


@pytest.mark.parametrize("staged", ["3.6.13-ubuntu-amd64", "3.7.0-ubuntu-amd64"])
def test_a_target_staged_or_overtaken_is_not_mentioned(staged: str) -> None:
    status = unit_status(
        facts(storage_attached=True, stream=StreamCheck(target="3.6.13"), serving=serving(staged))
    )
    assert "not staged" not in status.message


def test_a_running_or_failed_job_and_a_job_error_are_shown() -> None:
    running = JobStatus("running", "3.6.13", "u", "t", done_bytes=1, total_bytes=4)
    status = unit_status(
        facts(storage_attached=True, serving=serving(job=running, job_error="cannot start"))
    )
    assert status.message.endswith("; syncing 3.6.13: 25% (1 bytes of 4 bytes); cannot start")
    done = JobStatus("done", "3.6.13", "u", "t")
    assert (
        "synced"
        not in unit_status(facts(storage_attached=True, serving=serving(job=done))).message
    )


def test_the_first_of_the_most_severe_wins() -> None:
    status = unit_status(
        facts(
            config_error="invalid port 0: use a TCP port from 1 to 65535",
            stream=StreamCheck(error="cannot read agent stream: x", transient=True),
            last_import=ImportOutcome(error="cannot import: y"),
            serving_error="cannot serve the mirror: z",
        )
    )
    assert status == UnitStatus(
        "blocked", "invalid config: invalid port 0: use a TCP port from 1 to 65535"
    )


@pytest.mark.parametrize(
    ("transient", "retry", "name", "message"),
    [
        (True, True, "maintenance", "cannot read agent stream: x"),
        (False, True, "blocked", "cannot read agent stream: x"),
        (True, False, "blocked", "cannot import: y"),
    ],
)
def test_transient_failures_are_maintenance_the_rest_blocked(
    transient: bool, retry: bool, name: str, message: str
) -> None:
    status = unit_status(
        facts(
            storage_attached=True,
            stream=StreamCheck(error="cannot read agent stream: x", transient=transient),
            last_import=ImportOutcome(error="cannot import: y", retry=retry),
        )
    )
    assert status == UnitStatus(name, message)


def test_a_serving_failure_blocks_and_hides_the_stale_serving_line() -> None:
    status = unit_status(
        facts(storage_attached=True, serving_error="cannot serve the mirror: z", serving=serving())
    )
    assert status == UnitStatus("blocked", "cannot serve the mirror: z")


def test_notes_follow_the_message() -> None:
    status = unit_status(
        facts(
            storage_attached=True,
            stream=StreamCheck(unverified="no signed metadata"),
            last_import=ImportOutcome(note="imported 2 agent binaries"),
        )
    )
    assert status.message == "agent 3.6.8; imported 2 agent binaries (unverified source)"


def test_records_survive_stored_state() -> None:
    check = StreamCheck(
        validators=Validators("http://h/streams/v1/index2.json", etag='"x"', sha256="ab"),
        error="cannot read agent stream: x",
        transient=True,
        unverified="why",
        target="3.6.13",
    )
    assert StreamCheck.from_dict(check.as_dict()) == check
    assert StreamCheck.from_dict({}) == StreamCheck()
    outcome = ImportOutcome(error="e", retry=True, note="n")
    assert ImportOutcome.from_dict(outcome.as_dict()) == outcome
    assert ImportOutcome.from_dict({}) == ImportOutcome()


def test_every_version_the_route_still_needs_is_named() -> None:
    """3.5.6 goes in place to 3.5.7, then to a new 3.6.12 controller: both must be staged."""
    stream = StreamCheck(target="3.6.12", stage=("3.5.7", "3.6.12"))
    first_only = unit_status(
        facts(storage_attached=True, stream=stream, serving=serving("3.6.12-ubuntu-amd64"))
    )
    assert first_only.message.endswith("; upgrade target 3.6.12 needs 3.5.7 staged")
    neither = unit_status(facts(storage_attached=True, stream=stream, serving=serving()))
    assert neither.message.endswith("; upgrade target 3.6.12 needs 3.5.7, 3.6.12 staged")
    both = serving("3.5.7-ubuntu-amd64", "3.6.12-ubuntu-amd64")
    assert (
        "staged"
        not in unit_status(
            facts(storage_attached=True, stream=stream, serving=both)
        ).message.split("agent-metadata-url")[1]
    )
