"""Hiding the credentials of URLs wherever they are shown.

A ``stream-url`` may carry credentials (``https://user:token@host/path``, or a token alone as
``https://token@host/path``); the fetcher sends them as HTTP Basic auth, so the real URL is
kept for requests. Everything shown to a person (action results and failures, unit status,
logs, the CLI's output, the background job's status file) goes through :func:`redact_url` or,
for a message that may quote any number of URLs (errors name index, products and tarball
URLs derived from the stream URL), :func:`redact_text`.

``https://user:secret@host/x`` is shown as ``https://user:***@host/x`` and
``https://token@host/x`` as ``https://***@host/x``. In a message, the user information is
taken to be everything between ``scheme://`` and the last ``@`` before the next whitespace.
That is wider than :func:`urllib.parse.urlsplit`, whose network location ends at the first
``/``, ``?`` or ``#``: a token pasted unencoded (``https://user:abc/def=@host``, base64, or
a generated password holding quotes, ``<``, ``>`` or backslashes) is hidden whole, at the
cost of hiding part of a URL that has an ``@`` in its path (rare in agent streams), or the
text up to an ``@`` that follows a URL without a space, when none of it is secret.
:func:`redact_url`, given one URL, hides everything up to its last ``@`` (a password may even
hold a space there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

HIDDEN = "***"
"""What replaces a password (or a token given as the user name)."""

# A scheme, then the user information: the longest run without whitespace, up to its last
# "@" (the regex backtracks to it). Quotes and backslashes do not end it: a password may hold
# them, and hiding too much is better than showing a part of a secret.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>\S*)@")
_ONE_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>.*)@", re.DOTALL)


def redact_url(url: str) -> str:
    """The URL with the password (or a lone user name, a token) of its user info as ``***``.

    The whole text is taken to be one URL (as when a configured value is quoted), so its user
    information ends at its last ``@`` even past a space, which no valid URL holds.

    Args:
        url: any URL; one without user information is returned unchanged.

    Returns:
        ``https://user:***@host/path`` for ``https://user:secret@host/path``,
        ``https://***@host/path`` for ``https://token@host/path``.
    """
    return _ONE_URL.sub(_hide, url, count=1)


def redact_text(text: str) -> str:
    """A message with the credentials of every URL it quotes hidden (see :func:`redact_url`)."""
    return _USERINFO.sub(_hide, text)


def redact_values(values: Mapping[str, str]) -> dict[str, str]:
    """Action or command results with the credentials of every URL in their values hidden."""
    return {key: redact_text(value) for key, value in values.items()}


def _hide(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    if not userinfo:
        return match[0]
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:{HIDDEN}" if colon else HIDDEN
    return f"{match['scheme']}{hidden}@"
