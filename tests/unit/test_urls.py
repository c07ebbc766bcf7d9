"""Tests for upgrader.urls: the credentials of URLs are hidden wherever they are shown, and
outside text is shown without its control characters."""

from __future__ import annotations

import random
import re
import time

import pytest

from upgrader.urls import (
    MAX_LINE_CHARS,
    display_values,
    escape_controls,
    for_display,
    redact_text,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://streams.canonical.com/juju/tools", "https://streams.canonical.com/juju/tools"),
        ("http://127.0.0.1:8080/tools", "http://127.0.0.1:8080/tools"),
        ("file:///srv/agents/tools", "file:///srv/agents/tools"),
        ("https://token@host/tools", "https://***@host/tools"),
        ("https://user:secret@host/tools", "https://user:***@host/tools"),
        ("https://user:secret@host:8443/tools", "https://user:***@host:8443/tools"),
        (
            "https://user:secret@[2001:db8::1]:8443/tools",
            "https://user:***@[2001:db8::1]:8443/tools",
        ),
        ("http://token@[::1]/tools", "http://***@[::1]/tools"),
        ("https://user:p%40ss%3Aw0rd@host/tools", "https://user:***@host/tools"),
        ("https://us%40er:secret@host", "https://us%40er:***@host"),
        ("https://user:@host/tools", "https://user:***@host/tools"),
        ("https://:secret@host/tools", "https://:***@host/tools"),
        # As urlsplit reads it: the user information ends at the last "@" of the netloc.
        ("https://user:p@ss@host/tools", "https://user:***@host/tools"),
        ("https://user:secret@host?q=1", "https://user:***@host?q=1"),
        ("HTTPS://user:secret@host/", "HTTPS://user:***@host/"),
        # A token pasted unencoded (base64: "/", "+", "="), which urlsplit would cut short.
        ("https://user:ab/c+d=@host/tools", "https://user:***@host/tools"),
        ("https://ab/c+d=@host/tools", "https://***@host/tools"),
        ("https://user:a?b#c@host/tools", "https://user:***@host/tools"),
        # An "@" in the path is hidden as if it ended user information: never too little.
        ("https://host/tools/@scope/x", "https://***@scope/x"),
        ("https://host/tools/agent.tgz", "https://host/tools/agent.tgz"),
        ("https://@host/tools", "https://@host/tools"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_is_idempotent() -> None:
    once = redact_url("https://user:secret@host/tools")
    assert redact_url(once) == once


def test_redact_text_hides_every_url_of_a_message() -> None:
    message = (
        "cannot read agent stream: no agent metadata at https://u:s3cret@host/tools: tried "
        "https://u:s3cret@host/tools/streams/v1/index2.sjson, "
        "'https://t0ken@host/tools/streams/v1/index.json' (not found); "
        'juju-3.6.1-ubuntu-amd64.tgz ("https://u:s3cret@[::1]:80/tools/agent/x.tgz"): 500'
    )
    shown = redact_text(message)
    assert "s3cret" not in shown and "t0ken" not in shown
    assert shown == (
        "cannot read agent stream: no agent metadata at https://u:***@host/tools: tried "
        "https://u:***@host/tools/streams/v1/index2.sjson, "
        "'https://***@host/tools/streams/v1/index.json' (not found); "
        'juju-3.6.1-ubuntu-amd64.tgz ("https://u:***@[::1]:80/tools/agent/x.tgz"): 500'
    )


def test_redact_text_leaves_other_text_alone() -> None:
    message = "mail admin@example.com; see https://host/tools (user: me, port 8080)"
    assert redact_text(message) == message


@pytest.mark.parametrize("password", ['se"cret', "se<cr>et", "se\\cret", "se'cret"])
def test_quotes_and_backslashes_in_a_password_are_hidden(password: str) -> None:
    url = f"https://user:{password}@host/tools"
    assert redact_url(url) == "https://user:***@host/tools"
    for text in (f"cannot fetch {url}: 404", f"cannot fetch {url!r}: 404"):
        assert "cr" not in redact_text(text), redact_text(text)


def test_redact_url_hides_a_password_with_a_space() -> None:
    """A configured URL is quoted whole when it is refused: a space must not end the hiding."""
    assert redact_url("https://user:ab cd@host/tools") == "https://user:***@host/tools"


# The expressions redact_text and redact_url used before they were made linear: the
# definition the scanning code must keep.
_OLD_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>\S*)@")
_OLD_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>.*)@", re.DOTALL)


def _old_hide(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    if not userinfo:
        return match[0]
    user, colon, _ = userinfo.partition(":")
    return f"{match['scheme']}{user + ':***' if colon else '***'}@"


def test_redaction_matches_its_regular_expression_definition_on_random_text() -> None:
    pieces = ["://", "@", ":", "/", " ", "\n", "a", "B", "1", "+", ".", "-", "?", "#", "é", "h"]
    chooser = random.Random(1234)  # noqa: S311 - reproducible test data
    for _ in range(20_000):
        text = "".join(chooser.choice(pieces) for _ in range(chooser.randrange(1, 16)))
        assert redact_text(text) == _OLD_TEXT.sub(_old_hide, text), text
        assert redact_url(text) == _OLD_URL.sub(_old_hide, text, count=1), text


@pytest.mark.parametrize(
    "text",
    ["a://" * 400_000, "a" * 1_600_000 + "@", "x://" + "a" * 1_600_000 + "@b", "a://b@" * 250_000],
    ids=["schemes", "letters", "one-long-login", "many-logins"],
)
def test_redaction_takes_time_in_proportion_to_the_text(text: str) -> None:
    """A reason phrase of 64 KB of "a://" took 9 s with the expressions; 1.6 MB is instant."""
    started = time.monotonic()
    redact_text(text)
    redact_url(text)
    assert time.monotonic() - started < 2


HOSTILE = "3.6.12\x1b[2J\x1b]0;owned\x07\rFAKE\u009b31m\u202eevil\u2028next\x00\x7f"


def test_escape_controls_writes_every_control_character_as_an_escape() -> None:
    assert escape_controls(HOSTILE) == (
        "3.6.12\\x1b[2J\\x1b]0;owned\\x07\\rFAKE\\x9b31m\\u202eevil\\u2028next\\x00\\x7f"
    )
    assert escape_controls("a\nb\tc") == "a\\nb\\tc"
    assert escape_controls("a\nb\tc", keep_newlines=True) == "a\nb\\tc"
    assert escape_controls("plain: é, 中文, ✓") == "plain: é, 中文, ✓"


def test_for_display_redacts_escapes_and_cuts_one_line_texts() -> None:
    shown = for_display(f"cannot read https://u:s3cret@h/tools: 500 {HOSTILE}\nsecond")
    assert shown.startswith("cannot read https://u:***@h/tools: 500 3.6.12\\x1b[2J")
    assert shown.endswith("\\nsecond")
    assert not any(c in shown for c in "\x1b\x07\r\n\x9b\u202e\u2028\x00\x7f")
    long = for_display("x" * 10_000)
    assert long == "x" * MAX_LINE_CHARS + "... (8000 more characters)"
    assert for_display("x" * 10_000, limit=10) == "x" * 10 + "... (9990 more characters)"


def test_for_display_keeps_the_lines_of_multi_line_results() -> None:
    text = "Next steps:\n  juju upgrade-controller\x1b[8m --agent-version 3.6.12\n"
    assert for_display(text * 500, multiline=True) == (
        "Next steps:\n  juju upgrade-controller\\x1b[8m --agent-version 3.6.12\n" * 500
    )


def test_display_values_for_action_results() -> None:
    assert display_values({"source": "https://t@h/x\x1b[1m", "steps": "a\nb"}) == {
        "source": "https://***@h/x\\x1b[1m",
        "steps": "a\nb",
    }
    results = {"source": "https://u:secret@host/tools", "versions": "3.6.1"}
    assert display_values(results) == {"source": "https://u:***@host/tools", "versions": "3.6.1"}
