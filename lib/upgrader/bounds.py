"""Bounds on input from outside: the limits every reader applies, and the helpers applying them.

Servers, documents, archives, the ``juju`` command's output and files written by other
processes may be hostile or broken. Each reader refuses what lies beyond these limits with a
message naming the input and the accepted form, in time and memory bounded by the limit, not
by what the input claims. ARCHITECTURE.md ("Bounds on outside input") lists them all.
"""

from __future__ import annotations

import json
import sys
from itertools import compress
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB

MAX_FILE_BYTES = 8 * GIB
"""The largest agent tarball (or archive member) accepted; one is about 40-60 MB."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of a JSON document accepted; simplestreams documents nest 7 levels."""

MAX_DOCUMENT_BYTES = 64 * MIB
"""The largest metadata file read from local storage (the fetcher's document limit)."""

MAX_JSON_VALUES = 1_500_000
"""The most values one JSON document may hold (counted by its commas); 100,000 products items
of about ten fields each fit, and parsing the most it allows takes about 150 MB."""

MAX_ITEMS = 100_000
"""The most items one products file may list; the official agents file lists under 1,500."""

MAX_INDEX_ENTRIES = 1_000
"""The most content ids one index may list; the official index lists about ten."""

MAX_QUOTED = 20
"""The most names a message lists before saying how many more there are."""

MAX_VALUE_CHARS = 80
"""The most characters of a value from outside quoted in a message (:func:`preview`)."""

MAX_OPTION_TEXT_BYTES = 4 * MIB
"""The largest key or certificate text an option or file may give (a key block is a few KB)."""

MAX_JOB_FILE_BYTES = 16 * MIB
"""The largest background sync job file read (it holds keys and CA certificates)."""

MAX_STATUS_FILE_BYTES = MIB
"""The largest background sync status file read (a few hundred bytes)."""

_CONTAINERS = frozenset({dict, list}).__contains__


class TooLargeError(ValueError):
    """A file holds more than its limit; the message completes "<file>: ..."."""


def read_file(path: Path | str, limit: int) -> bytes:
    """The bytes of a file written by another process, reading no more than ``limit`` + 1.

    Raises:
        OSError: it cannot be read.
        TooLargeError: it holds more than ``limit`` bytes.
    """
    with open(path, "rb") as stream:
        body = stream.read(limit + 1)
    if len(body) > limit:
        raise TooLargeError(f"it holds more than {limit} bytes, the most accepted")
    return body


class MalformedJSONError(ValueError):
    """A JSON document is not valid JSON, or beyond the depth or value-count limits.

    The message completes "<where>: ...", e.g. ``not valid JSON (Expecting value: ...)``.
    """


def load_json(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON document from outside, refusing one too deep or with too many values.

    The C parser gives up with RecursionError at the interpreter's limit (about 1,000 levels)
    after reading only that deep; anything it accepts is then checked level by level, without
    recursion, so that no later reader recurses through an unbounded structure.

    Raises:
        MalformedJSONError: invalid JSON or text, nested too deeply, or more than
            :data:`MAX_JSON_VALUES` values.
    """
    too_deep = MalformedJSONError(
        f"malformed JSON: nested more than {max_depth} levels deep (the accepted form is a "
        f"JSON document nested at most {max_depth} levels)"
    )
    separators = body.count(b",") if isinstance(body, bytes) else body.count(",")
    if separators >= MAX_JSON_VALUES:
        # Checked before parsing: Python objects take 5 to 30 times the text's size
        # ("[{},{},...]" is the worst), so a document within the size limit could still
        # exhaust memory.
        raise MalformedJSONError(
            f"malformed JSON: more than {MAX_JSON_VALUES} values (the accepted form is a JSON "
            f"document of at most {MAX_JSON_VALUES}; an agent stream's products file holds a "
            "few tens of thousands)"
        )
    try:
        doc = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # UnicodeDecodeError included
        if "int_max_str_digits" in str(exc):
            # Python's own message asks for sys.set_int_max_str_digits(): not the sender's fix.
            raise MalformedJSONError(
                f"not valid JSON (a number of more than {_int_digits()} digits; the accepted "
                f"form is a JSON document whose whole numbers have at most {_int_digits()} "
                "digits)"
            ) from None
        raise MalformedJSONError(f"not valid JSON ({preview_text(str(exc), 200)})") from None
    if depth_exceeds(doc, max_depth):
        raise too_deep
    return doc


def _int_digits() -> int:
    """The most digits Python converts to an integer (4300 by default since 3.10.7)."""
    return getattr(sys, "get_int_max_str_digits", lambda: 4300)()


def depth_exceeds(doc: Any, max_depth: int) -> bool:
    """Whether JSON data nests objects and arrays more than ``max_depth`` levels deep."""
    level = [doc] if _CONTAINERS(type(doc)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        deeper: list[Any] = []
        for node in level:
            values = node.values() if type(node) is dict else node
            # The type test runs in C (map and compress), which keeps this walk several
            # times cheaper than parsing the document.
            deeper.extend(compress(values, map(_CONTAINERS, map(type, values))))
        level = deeper
    return False


def preview_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def preview(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A value from outside as a message quotes it: its ``repr``, cut to ``limit`` characters.

    Containers are described, not shown (``a list of 3 items``), so that a message never
    grows with, or recurses through, a hostile structure; a huge integer shows its first
    digits and its length.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        # str() of a huge integer is slow, and refused past 4,300 digits: compare first.
        return str(value) if abs(value) < 10**limit else f"a number of more than {limit} digits"
    if isinstance(value, str):
        return repr(preview_text(value, limit)) if len(value) > limit else repr(value)
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return type(value).__name__


def listed(
    names: list[str],
    limit: int = MAX_QUOTED,
    *,
    separator: str = ", ",
    chars: int = MAX_VALUE_CHARS,
) -> str:
    """``a, b, c``: at most ``limit`` names, each cut to ``chars``; ``none`` when empty.

    More names are counted: ``a, b and 3 more``.
    """
    shown = separator.join(preview_text(n, chars) for n in names[:limit]) or "none"
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def size_error(size: object, limit: int = MAX_FILE_BYTES) -> str | None:
    """Why an item's ``size`` from outside is refused, or None when it is a valid size.

    The reason completes "<where>: ...": a size is a whole number of bytes from 0 to ``limit``.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"size must be a non-negative integer, got {preview(size)}"
    if size > limit:
        return (
            f"size {preview(size, 20)} is more than the {limit} bytes ({limit // GIB} GiB) "
            "accepted for one agent tarball"
        )
    return None
