"""What the charm shows of hostile input: escaped, bounded, never a secret; bad URLs named."""

from __future__ import annotations

from pathlib import Path

import ops
import pytest
from ops import testing

from support.faulty_server import Fault, FaultyServer
from support.streams import Agent, write_stream
from upgrader.fetch import FetchSettings

pytestmark = pytest.mark.usefixtures("no_resource")

ESCAPES = "\x1b[31mred\x1b[0m\x07\r"


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FetchSettings, "backoff_delay", lambda self, attempt: 0.0)


def assert_no_controls(text: str) -> None:
    assert [c for c in text if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F] == [], repr(text)


def test_a_reason_phrase_with_escape_sequences_reaches_status_and_failure_escaped(
    ctx, tmp_path: Path
) -> None:
    write_stream(tmp_path, [Agent("3.6.12", "amd64")])
    with FaultyServer(tmp_path) as server:
        server.add_fault("index2.json", Fault("status", status=403, reason=f"No {ESCAPES}"))
        state = testing.State(config={"stream-url": server.url, "verify-signatures": False})
        with pytest.raises(testing.ActionFailed) as exc:
            ctx.run(ctx.on.action("plan-upgrade"), state)
    failure = exc.value
    assert_no_controls(failure.message)
    assert "No \\x1b[31mred\\x1b[0m\\x07" in failure.message
    assert isinstance(failure.state, testing.State)
    status = failure.state.unit_status
    assert isinstance(status, ops.BlockedStatus)
    assert_no_controls(status.message)
    assert "\\x1b[31mred" in status.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://h.example/tools?token=s3cret",
            "invalid config: invalid stream-url 'https://h.example/tools?***': a query ('?...') "
            "or fragment ('#...') is not accepted",
        ),
        (
            "https://h.example/tools#s3cret",
            "invalid config: invalid stream-url 'https://h.example/tools#***': a query ('?...') "
            "or fragment ('#...') is not accepted",
        ),
        ("http://[::1", "invalid config: invalid stream-url 'http://[::1': use an http://"),
        (
            "file:///srv/tools%00x",
            "invalid config: invalid stream-url 'file:///srv/tools%00x': a file path cannot "
            "hold a NUL character (%00); use an http://",
        ),
    ],
)
def test_a_stream_url_the_charm_cannot_use_blocks_and_refuses_naming_the_option(
    ctx, url: str, message: str
) -> None:
    state = testing.State(config={"stream-url": url})
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(message)
    assert "s3cret" not in out.unit_status.message
    with pytest.raises(testing.ActionFailed) as exc:
        ctx.run(ctx.on.action("plan-upgrade"), state)
    assert exc.value.message.startswith(message)
    assert "s3cret" not in exc.value.message


def test_a_long_status_is_cut_saying_how_much_more_there_was(ctx, tmp_path: Path) -> None:
    write_stream(tmp_path, [Agent("3.6.12", "amd64")])
    with FaultyServer(tmp_path) as server:
        server.add_fault("index2.json", Fault("status", status=403, reason="x" * 5000))
        state = testing.State(config={"stream-url": server.url, "verify-signatures": False})
        out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert len(out.unit_status.message) < 2100
    assert out.unit_status.message.endswith(" more characters)")
