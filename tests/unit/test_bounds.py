"""Tests for upgrader.bounds: the limits on outside input and the helpers that apply them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upgrader import bounds
from upgrader.bounds import (
    MAX_FILE_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    MalformedJSONError,
    TooLargeError,
    depth_exceeds,
    listed,
    load_json,
    preview,
    read_file,
    size_error,
)

DEEP = 100_000


def nested(depth: int, *, objects: bool = False) -> str:
    """JSON nested ``depth`` levels: arrays, or objects keyed "a"."""
    if objects:
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "]" * depth


def test_a_json_number_too_long_for_python_names_the_accepted_form() -> None:
    digits = bounds._int_digits()
    with pytest.raises(MalformedJSONError) as caught:
        load_json(b'{"size": 1' + b"0" * digits + b"}")
    assert str(caught.value) == (
        f"not valid JSON (a number of more than {digits} digits; the accepted form is a JSON "
        f"document whose whole numbers have at most {digits} digits)"
    )


@pytest.mark.parametrize("objects", [False, True], ids=["arrays", "objects"])
def test_json_nested_100000_deep_is_malformed_at_once(objects: bool) -> None:
    text = nested(DEEP, objects=objects)
    started = time.monotonic()
    with pytest.raises(MalformedJSONError) as caught:
        load_json(text.encode())
    took = time.monotonic() - started
    assert str(caught.value) == (
        "malformed JSON: nested more than 64 levels deep (the accepted form is a JSON "
        "document nested at most 64 levels)"
    )
    assert caught.value.__suppress_context__  # no RecursionError traceback behind it
    assert took < 2  # the parser stops at its recursion limit: about a millisecond


@pytest.mark.parametrize("objects", [False, True], ids=["arrays", "objects"])
def test_depth_limit_is_exact_below_the_parser_recursion_limit(objects: bool) -> None:
    """65 levels parse (the C parser goes to about 1,000) and are refused all the same."""
    assert load_json(nested(MAX_JSON_DEPTH, objects=objects)) is not None
    with pytest.raises(MalformedJSONError, match="nested more than 64 levels deep"):
        load_json(nested(MAX_JSON_DEPTH + 1, objects=objects))


def test_depth_counts_the_deepest_branch_of_a_wide_document() -> None:
    doc = {"wide": [[] for _ in range(1000)], "deep": json.loads(nested(10))}
    assert not depth_exceeds(doc, 11)  # the object, then the 10 arrays
    assert depth_exceeds(doc, 10)
    assert not depth_exceeds(1, 0) and not depth_exceeds("text", 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", r"^not valid JSON \(Expecting value: line 1 column 1 \(char 0\)\)$"),
        (b"\xff\xfe\xfd", r"^not valid JSON \("),
        (b'{"a": 1' + b" " * 10_000, r"^not valid JSON \("),
        (b"1" * 5000, r"^not valid JSON \(.*"),  # past Python's limit on integer digits
    ],
)
def test_invalid_json_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedJSONError, match=message) as caught:
        load_json(body)
    assert len(str(caught.value)) < 300


def test_preview_quotes_values_from_outside_briefly() -> None:
    assert preview("amd64") == "'amd64'"
    assert preview("x" * 1000) == repr("x" * 80 + "... (920 more characters)")
    assert preview(10**400) == "a number of more than 80 digits"
    assert preview(-(10**400)) == "a number of more than 80 digits"
    assert preview(12345) == "12345"
    assert preview(1.5) == "1.5" and preview(True) == "True" and preview(None) == "None"
    assert preview([[1]] * 50) == "a list of 50 items"
    assert preview({"a": 1}) == "an object of 1 keys"
    assert preview(json.loads(nested(900))) == "a list of 1 items"  # no recursion


def test_listed_shows_at_most_twenty_names() -> None:
    names = [f"n{i}" for i in range(25)]
    assert listed(names) == ", ".join(names[:20]) + " and 5 more"
    assert listed([]) == "none"
    assert listed(["a", "b"], separator="; ") == "a; b"
    assert listed(["y" * 200]) == "y" * 80 + "... (120 more characters)"


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, None),
        (MAX_FILE_BYTES, None),
        (
            MAX_FILE_BYTES + 1,
            "size 8589934593 is more than the 8589934592 bytes (8 GiB) accepted for one agent "
            "tarball",
        ),
        (
            10**400,
            "size a number of more than 20 digits is more than the 8589934592 bytes (8 GiB) "
            "accepted for one agent tarball",
        ),
        (-1, "size must be a non-negative integer, got -1"),
        (1.0, "size must be a non-negative integer, got 1.0"),
        (True, "size must be a non-negative integer, got True"),
        ("40", "size must be a non-negative integer, got '40'"),
    ],
)
def test_size_error(size: object, message: str | None) -> None:
    assert size_error(size) == message


def test_read_file_reads_no_more_than_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_file(path, 10) == b"x" * 10
    with pytest.raises(TooLargeError, match="it holds more than 9 bytes, the most accepted"):
        read_file(path, 9)
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "missing", 9)


def test_read_file_of_an_endless_device_stops_at_its_limit() -> None:
    with pytest.raises(TooLargeError, match="more than 1048576 bytes"):
        read_file("/dev/zero", 1024 * 1024)


def test_json_with_too_many_values_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """8 MiB of '{},' would take about 220 MB parsed; refused at once, memory flat."""
    body = tmp_path / "many.json"
    body.write_bytes(b"[" + b"{}," * (MAX_JSON_VALUES + 1) + b"{}]")
    code = (
        "import sys\n"
        "from upgrader.bounds import MalformedJSONError, load_json\n"
        "try:\n"
        "    load_json(open(sys.argv[1], 'rb').read())\n"
        "except MalformedJSONError as exc:\n"
        "    print(exc)\n"
        # VmHWM is this process's own peak (ru_maxrss would carry pytest's over the exec).
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(body)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(bounds.__file__).parents[1])},
    )
    message, peak_kib = done.stdout.splitlines()
    assert message == (
        f"malformed JSON: more than {MAX_JSON_VALUES} values (the accepted form is a JSON "
        f"document of at most {MAX_JSON_VALUES}; an agent stream's products file holds a few "
        "tens of thousands)"
    )
    assert int(peak_kib) < 64 * 1024  # the 4.5 MB text and the interpreter, not its objects
    items = [{"a": 1} for _ in range(1000)]
    assert load_json(json.dumps(items)) == items
