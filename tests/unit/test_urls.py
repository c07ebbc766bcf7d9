"""Tests for upgrader.urls: the credentials of URLs are hidden wherever they are shown."""

from __future__ import annotations

import pytest

from upgrader.urls import redact_text, redact_url, redact_values


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


def test_redact_values() -> None:
    results = {"source": "https://u:secret@host/tools", "versions": "3.6.1"}
    assert redact_values(results) == {"source": "https://u:***@host/tools", "versions": "3.6.1"}


@pytest.mark.parametrize("password", ['se"cret', "se<cr>et", "se\\cret", "se'cret"])
def test_quotes_and_backslashes_in_a_password_are_hidden(password: str) -> None:
    url = f"https://user:{password}@host/tools"
    assert redact_url(url) == "https://user:***@host/tools"
    for text in (f"cannot fetch {url}: 404", f"cannot fetch {url!r}: 404"):
        assert "cr" not in redact_text(text), redact_text(text)


def test_redact_url_hides_a_password_with_a_space() -> None:
    """A configured URL is quoted whole when it is refused: a space must not end the hiding."""
    assert redact_url("https://user:ab cd@host/tools") == "https://user:***@host/tools"
