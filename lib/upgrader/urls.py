"""Hiding the credentials of URLs wherever they are shown; making outside text safe to show.

:func:`redact_url` and :func:`redact_text` show a login as ``https://user:***@host/x`` (a token
alone as ``https://***@host/x``). :func:`for_display`, which every text shown to a person goes
through, also escapes control characters (:func:`escape_controls`) and cuts a one-line text to
:data:`MAX_LINE_CHARS`. ARCHITECTURE.md ("Credentials and text shown") says what counts as a
login, and why.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from .bounds import preview_text

HIDDEN = "***"
"""What replaces a password (or a token given as the user name)."""

MAX_LINE_CHARS = 2000
"""The longest one-line text shown (a status, a failure, a log line, a CLI note or error)."""

# C0 and C1 controls and DEL, the line and paragraph separators, and the bidirectional
# formatting characters (which reorder what a terminal shows: "Trojan source").
_UNSAFE = "\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_LINE = re.compile(f"[\n{_UNSAFE}]")
_UNSAFE_IN_LINES = re.compile(f"[{_UNSAFE}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# In a message, a URL's user information runs from its scheme's "://" to the last "@" of the
# run of non-space characters holding it. Quotes and backslashes do not end it: a password may
# hold them, and hiding too much is better than showing a part of a secret.
_RUN = re.compile(r"\S+")
_LETTERS = frozenset(string.ascii_letters)
_SCHEME_CHARS = _LETTERS | frozenset(string.digits + "+.-")


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
    return _redact_run(url)


def redact_text(text: str) -> str:
    """A message with the credentials of every URL it quotes hidden (see :func:`redact_url`).

    The time taken grows in proportion to the text, whatever it holds (a server may put
    anything in a reason phrase that a message quotes).
    """
    return _RUN.sub(lambda run: _redact_run(run[0]), text)


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` with every control character written as an escape (ESC as ``\x1b``).

    Escaped: C0 and C1 controls, DEL, the Unicode line and paragraph separators and the
    bidirectional formatting characters; newlines too unless ``keep_newlines``.
    """
    pattern = _UNSAFE_IN_LINES if keep_newlines else _UNSAFE_IN_LINE
    return pattern.sub(_escape, text)


def for_display(text: str, *, multiline: bool = False, limit: int | None = None) -> str:
    """Text as it may be shown to a person, in the charm and the CLI.

    Every status, action result and failure, log line and printed text goes through it.

    Credentials of quoted URLs are hidden (:func:`redact_text`), control characters escaped
    (:func:`escape_controls`; a multi-line text keeps its newlines), and a one-line text is cut
    to :data:`MAX_LINE_CHARS` characters (or ``limit``), saying how many more there were.
    """
    shown = escape_controls(redact_text(text), keep_newlines=multiline)
    if limit is None and not multiline:
        limit = MAX_LINE_CHARS
    return shown if limit is None else preview_text(shown, limit)


def display_values(values: Mapping[str, str]) -> dict[str, str]:
    """Action results as they may be shown: :func:`for_display` of each value, newlines kept."""
    return {key: for_display(value, multiline=True) for key, value in values.items()}


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _redact_run(run: str) -> str:
    """``run`` with the user information of its first URL hidden, up to its last ``@``.

    The first URL is the first ``scheme://`` (a letter, then letters, digits, ``+``, ``.``
    or ``-``) before that ``@``. Each character is looked at a bounded number of times, where
    a regular expression backtracking to the last ``@`` would take quadratic time.
    """
    at = run.rfind("@")
    separator = run.find("://")
    while 0 <= separator and separator + 3 <= at:
        start = separator
        while start > 0 and run[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < separator and run[start] not in _LETTERS:
            start += 1  # a scheme starts with a letter
        if start < separator:
            userinfo = run[separator + 3 : at]
            if not userinfo:
                return run
            user, colon, _ = userinfo.partition(":")
            hidden = f"{user}:{HIDDEN}" if colon else HIDDEN
            return f"{run[: separator + 3]}{hidden}{run[at:]}"
        separator = run.find("://", separator + 1)
    return run
