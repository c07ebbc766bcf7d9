"""A stream-url with credentials, driven by Scenario against a real stream on 127.0.0.1.

The credentials are sent to the source (HTTP Basic auth) and never shown: not in action
failures, results or logs, the unit status, nor the charm's log (juju-log).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest
from ops import testing

from support.faulty_server import Fault, FaultyServer
from support.staging import agents, source
from upgrader import syncjob
from upgrader.mirror import Mirror
from upgrader.syncjob import JobStatus

pytestmark = pytest.mark.usefixtures("no_resource")

SECRET = "s3cr3t-T0KEN"  # noqa: S105 - the test value looked for in the output
SIZE = 4_000
STORE = testing.Storage("binaries")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FaultyServer]:
    root = source(tmp_path / "upstream", agents(["3.6.12", "3.6.13"], size=SIZE))
    with FaultyServer(root) as running:
        yield running


@pytest.fixture(params=["user-and-password", "token-alone"])
def credentials(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The user information of the stream URL, and how it is shown."""
    if request.param == "token-alone":
        return SECRET, "***"
    return f"mirror-user:{SECRET}", "mirror-user:***"


@pytest.fixture
def url(server: FaultyServer, credentials: tuple[str, str]) -> str:
    return server.url.replace("http://", f"http://{credentials[0]}@")


@pytest.fixture
def shown_url(server: FaultyServer, credentials: tuple[str, str]) -> str:
    return server.url.replace("http://", f"http://{credentials[1]}@")


def state(url: str, **changes: object) -> testing.State:
    fields: dict = {
        "config": {"stream-url": url, "verify-signatures": False},
        "storages": {STORE},
        "leader": True,
    }
    fields.update(changes)
    return testing.State(**fields)


def everything_shown(
    ctx: testing.Context, caplog: pytest.LogCaptureFixture, *extra: str
) -> list[str]:
    """What an operator can see after a run: status, action output, the charm's log."""
    return [
        *extra,
        *(line.message for line in ctx.juju_log),
        *ctx.action_logs,
        json.dumps(ctx.action_results or {}),
        *(record.getMessage() for record in caplog.records),
    ]


def status_after(failure: testing.ActionFailed) -> str:
    """The unit status message after a failed action."""
    out = failure.state
    assert isinstance(out, testing.State)
    return out.unit_status.message


def assert_hidden(shown: list[str]) -> None:
    leaks = [text for text in shown if SECRET in text]
    assert not leaks, leaks


def test_refused_credentials_are_not_in_the_status_or_log(
    ctx, server: FaultyServer, url: str, shown_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_fault("index2.json", Fault("status", status=401))
    with caplog.at_level(logging.DEBUG):
        out = ctx.run(ctx.on.config_changed(), state(url))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert f"{shown_url}/streams/v1/index2.json" in out.unit_status.message
    assert_hidden(everything_shown(ctx, caplog, out.unit_status.message))


def test_plan_upgrade_failure_hides_the_credentials(
    ctx, server: FaultyServer, url: str, shown_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_fault("index2.json", Fault("status", status=404))
    with caplog.at_level(logging.DEBUG), pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("plan-upgrade"), state(url))
    assert shown_url in failure.value.message
    status = status_after(failure.value)
    assert_hidden(everything_shown(ctx, caplog, failure.value.message, status))


def test_failed_download_hides_the_credentials(
    ctx, server: FaultyServer, url: str, shown_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_fault("juju-3.6.13-linux-amd64.tgz", Fault("status", status=404))
    with caplog.at_level(logging.DEBUG), pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6"}), state(url))
    message = failure.value.message
    assert f"{shown_url}/agent/3.6.13/juju-3.6.13-linux-amd64.tgz" in message
    assert ctx.action_results is not None  # what was staged before the failure
    status = status_after(failure.value)
    assert_hidden(everything_shown(ctx, caplog, message, status))


def test_results_of_a_good_sync_hide_the_credentials(
    ctx, url: str, shown_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        out = ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6"}), state(url))
        assert len(Mirror(STORE.get_filesystem(ctx)).staged("released")) == 2
        assert any(shown_url in line for line in ctx.action_logs), ctx.action_logs
        shown = everything_shown(ctx, caplog, out.unit_status.message)
        ctx.run(ctx.on.action("plan-upgrade"), out)
    assert (ctx.action_results or {})["source"] == shown_url
    assert_hidden(shown + everything_shown(ctx, caplog))


def test_user_and_password_are_sent_as_basic_auth(ctx, server: FaultyServer) -> None:
    """Redacting what is shown leaves the URL the fetcher uses whole."""
    url = server.url.replace("http://", f"http://mirror-user:{SECRET}@")
    ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6"}), state(url))
    assert len(Mirror(STORE.get_filesystem(ctx)).staged("released")) == 2
    basic = "Basic " + base64.b64encode(f"mirror-user:{SECRET}".encode()).decode()
    assert server.requests
    assert {r.authorization for r in server.requests} == {basic}


def test_background_sync_failure_in_the_status_hides_the_credentials(ctx, url: str) -> None:
    """A status file kept from an earlier charm revision may hold the URL in clear."""
    root = STORE.get_filesystem(ctx)
    failed = JobStatus(
        syncjob.FAILED,
        "3.6.13",
        url,
        "2025-01-01T00:00:00Z",
        message=f"cannot fetch {url}/streams/v1/index2.json: HTTP 503",
    )
    (root / syncjob.STATUS_FILE).write_text(json.dumps(failed.__dict__))
    out = ctx.run(ctx.on.update_status(), state(url))
    assert "sync of 3.6.13 failed: cannot fetch http://" in out.unit_status.message
    assert SECRET not in out.unit_status.message


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(f'{SECRET}"x', id="double-quote"),
        pytest.param(f"{SECRET}<x>", id="angle-brackets"),
        pytest.param(f"{SECRET}\\x", id="backslash"),
    ],
)
def test_a_password_with_quotes_or_backslashes_is_hidden(
    ctx, server: FaultyServer, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A generated password pasted unencoded may hold any of these; it works and stays hidden."""
    url = server.url.replace("http://", f"http://mirror-user:{password}@")
    server.add_fault("index2.json", Fault("status", status=404))
    with caplog.at_level(logging.DEBUG), pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("plan-upgrade"), state(url))
    assert "mirror-user:***@" in failure.value.message
    status = status_after(failure.value)
    assert_hidden(everything_shown(ctx, caplog, failure.value.message, status))


def test_an_invalid_stream_url_with_a_space_in_the_password_is_hidden(
    ctx, caplog: pytest.LogCaptureFixture
) -> None:
    """The invalid-config status quotes the URL: a space must not end what is hidden."""
    url = f"https://mirror-user:{SECRET[:4]} {SECRET}@127.0.0.1:1/tools"
    with caplog.at_level(logging.DEBUG):
        out = ctx.run(ctx.on.config_changed(), state(url))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "invalid stream-url 'https://mirror-user:***@127.0.0.1:1/tools'" in (
        out.unit_status.message
    )
    assert_hidden(everything_shown(ctx, caplog, out.unit_status.message))
    assert SECRET[:4] not in out.unit_status.message


def test_a_password_with_an_unencoded_slash_is_not_quoted_as_a_port(
    ctx, caplog: pytest.LogCaptureFixture
) -> None:
    """urlsplit ends the netloc at the "/": the password's first part then reads as a port."""
    url = f"http://mirror-user:{SECRET}/rest=@127.0.0.1:1/tools"
    with caplog.at_level(logging.DEBUG), pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("plan-upgrade"), state(url))
    status = status_after(failure.value)
    assert_hidden(everything_shown(ctx, caplog, failure.value.message, status))
