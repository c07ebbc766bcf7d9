"""The progress display: bars redrawn in place on a (fake) terminal, log lines elsewhere."""

from __future__ import annotations

import io
import threading

import pytest

from upgrader.progress import (
    TransferDisplay,
    bar,
    format_duration,
    format_size,
    is_terminal,
    terminal_width,
)
from upgrader.sync import Progress

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _capable_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars are drawn on any terminal but a ``dumb`` one; CI may set TERM=dumb."""
    monkeypatch.setenv("TERM", "xterm-256color")


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, recording everything written to it."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: handles \\r, \\n, cursor up and clear-down."""
    lines = [""]
    row = col = 0
    i = 0
    while i < len(text):
        if text.startswith("\x1b[A", i):
            row = max(row - 1, 0)
            i += 3
            continue
        if text.startswith("\x1b[J", i):
            lines[row] = lines[row][:col]
            del lines[row + 1 :]
            i += 3
            continue
        char = text[i]
        assert char != "\x1b", f"unexpected escape sequence at {i}: {text[i : i + 6]!r}"
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
        i += 1
    return lines


def report(
    name: str, size: int, done: int, rate: float, total_done: int, total_size: int, *,
    finished: bool = False,
) -> Progress:  # fmt: skip
    return Progress(name, size, done, rate, finished, total_done, total_size)


def test_terminal_bars_per_file_and_total_redrawn_in_place() -> None:
    term = FakeTerminal()
    clock = Clock()
    display = TransferDisplay(term, width=100, clock=clock)
    assert display.interactive
    display.start(2, 300 * MIB)
    display(report("a.tgz", 100 * MIB, 0, 0.0, 0, 300 * MIB))
    clock.now += 1
    display(report("b.tgz", 200 * MIB, 0, 0.0, 0, 300 * MIB))
    clock.now += 1
    display(report("a.tgz", 100 * MIB, 50 * MIB, 10 * MIB, 50 * MIB, 300 * MIB))
    clock.now += 1
    display(report("b.tgz", 200 * MIB, 20 * MIB, 5 * MIB, 70 * MIB, 300 * MIB))
    shown = screen(term.getvalue())
    assert shown == [
        "a.tgz     [###############...............]  50%  50.0 MiB/100.0 MiB  10.0 MiB/s    0:05",
        "b.tgz     [###...........................]  10%  20.0 MiB/200.0 MiB   5.0 MiB/s    0:36",
        "total 0/2 [#######.......................]  23%  70.0 MiB/300.0 MiB  15.0 MiB/s    0:15",
    ]
    clock.now += 4
    display(report("a.tgz", 100 * MIB, 100 * MIB, 10 * MIB, 120 * MIB, 300 * MIB, finished=True))
    shown = screen(term.getvalue())
    assert shown[0] == "staged a.tgz (100.0 MiB in 7.0 s, 10.0 MiB/s)"
    assert shown[1].startswith("b.tgz     [")
    assert shown[2].startswith("total 1/2 [")
    assert len(shown) == 3
    clock.now += 1
    display(report("b.tgz", 200 * MIB, 200 * MIB, 0.0, 300 * MIB, 300 * MIB, finished=True))
    display.close()
    assert screen(term.getvalue()) == [
        "staged a.tgz (100.0 MiB in 7.0 s, 10.0 MiB/s)",
        "staged b.tgz (200.0 MiB, already downloaded)",
        "",
    ]


def test_terminal_redraws_at_most_every_interval() -> None:
    term = FakeTerminal()
    clock = Clock()
    display = TransferDisplay(term, width=100, clock=clock, redraw_interval=0.1)
    display(report("a.tgz", 100, 0, 0.0, 0, 100))
    written = len(term.getvalue())
    for done in range(1, 50):
        clock.now += 0.001
        display(report("a.tgz", 100, done, 1000.0, done, 100))
    assert len(term.getvalue()) == written  # nothing redrawn within 0.1 s
    clock.now += 0.1
    display(report("a.tgz", 100, 60, 1000.0, 60, 100))
    assert len(term.getvalue()) > written
    assert " 60%" in screen(term.getvalue())[0]


@pytest.mark.parametrize("width", [30, 40, 64, 80, 120])
def test_terminal_lines_never_wrap(width: int) -> None:
    term = FakeTerminal()
    display = TransferDisplay(term, width=width, clock=Clock())
    name = "juju-3.6.12-ubuntu-amd64-with-a-very-long-name.tgz"
    display(report(name, 100 * MIB, 10 * MIB, 5.0 * MIB, 10 * MIB, 100 * MIB))
    shown = screen(term.getvalue())
    assert len(shown) == 2
    assert all(len(line) <= width - 1 for line in shown)
    assert shown[0].startswith("3.6.12-")  # juju- and .tgz are left out
    assert "…" in shown[0]
    assert ("[" in shown[0]) == (width >= 100)  # a bar only where there is room for one


def test_typical_names_get_a_bar_on_an_80_column_terminal() -> None:
    term = FakeTerminal()
    clock = Clock()
    display = TransferDisplay(term, width=80, clock=clock)
    display.start(3, 120 * MIB)
    display(
        report("juju-3.6.12-ubuntu-amd64.tgz", 40 * MIB, 18 * MIB, 5.1 * MIB, 30 * MIB, 120 * MIB)
    )
    clock.now += 1
    display(
        report("juju-3.6.12-ubuntu-arm64.tgz", 40 * MIB, 12 * MIB, 4 * MIB, 30 * MIB, 120 * MIB)
    )
    assert screen(term.getvalue()) == [
        "3.6.12-ubuntu-amd64 [#####.......]  45%  18.0 MiB/40.0 MiB    5.1 MiB/s    0:04",
        "3.6.12-ubuntu-arm64 [###.........]  30%  12.0 MiB/40.0 MiB    4.0 MiB/s    0:07",
        "total 0/3           [###.........]  25%  30.0 MiB/120.0 MiB   9.1 MiB/s    0:10",
    ]


def test_reports_after_close_are_ignored() -> None:
    term = FakeTerminal()
    display = TransferDisplay(term, width=80, clock=Clock())
    with display:
        display(report("a.tgz", 100, 10, 5.0, 10, 100))
    after = term.getvalue()
    display(report("a.tgz", 100, 20, 5.0, 20, 100))
    assert term.getvalue() == after
    assert screen(after) == [""]


def test_log_lines_when_not_a_terminal() -> None:
    log = io.StringIO()
    clock = Clock()
    display = TransferDisplay(log, clock=clock, log_interval=10.0, prefix="juju-upgrader: ")
    assert not display.interactive
    display.start(2, 3 * MIB)
    display(report("a.tgz", MIB, 0, 0.0, 0, 3 * MIB))
    display(report("b.tgz", 2 * MIB, 0, 0.0, 0, 3 * MIB))
    for _ in range(8):  # 8 s of progress: no total line yet
        clock.now += 1
        display(report("a.tgz", MIB, 1000, 100.0, 3000, 3 * MIB))
    clock.now += 2
    display(report("b.tgz", 2 * MIB, 512 * 1024, 51.2 * 1024, 1536 * 1024, 3 * MIB))
    clock.now += 1
    display(report("a.tgz", MIB, MIB, 93.0 * 1024, 2560 * 1024, 3 * MIB, finished=True))
    display.close()
    assert log.getvalue().splitlines() == [
        "juju-upgrader: downloading 2 files, 3.0 MiB",
        "juju-upgrader: downloading a.tgz (1.0 MiB)",
        "juju-upgrader: downloading b.tgz (2.0 MiB)",
        "juju-upgrader: 1.5 MiB of 3.0 MiB (50%), 51.3 KiB/s, 0:30 left",
        "juju-upgrader: staged a.tgz (1.0 MiB in 11.0 s, 93.0 KiB/s)",
    ]
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()


def test_concurrent_reports_from_threads() -> None:
    term = FakeTerminal()
    display = TransferDisplay(term, width=120, redraw_interval=0.0)
    files = [f"f{n}.tgz" for n in range(6)]
    size = 1000

    def work(name: str) -> None:
        for done in range(0, size + 1, 50):
            display(report(name, size, done, 100.0, done, size * len(files)))
        display(report(name, size, size, 100.0, size, size * len(files), finished=True))

    threads = [threading.Thread(target=work, args=(name,)) for name in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    display.close()
    shown = screen(term.getvalue())
    assert sorted(shown[:-1]) == sorted(line for line in shown[:-1] if line.startswith("staged"))
    assert sorted(line.split()[1] for line in shown[:-1]) == files
    assert shown[-1] == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (7.4, "0:07"), (59.6, "1:00"), (754, "12:34"), (3723, "1:02:03"),
     (None, "--:--"), (-1, "--:--"), (float("nan"), "--:--"), (10**9, "--:--")],
)  # fmt: skip
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"), (40 * MIB, "40.0 MiB"),
     (3 * 1024**3, "3.0 GiB")],
)  # fmt: skip
def test_format_size(size: float, text: str) -> None:
    assert format_size(size) == text


def test_bar() -> None:
    assert bar(0, 10) == "[..........]"
    assert bar(0.55, 10) == "[#####.....]"
    assert bar(1, 10) == "[##########]"
    assert bar(7, 10) == "[##########]"
    assert bar(-1, 10) == "[..........]"


def test_is_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_terminal(FakeTerminal())
    assert not is_terminal(io.StringIO())
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(FakeTerminal())


def test_terminal_width_falls_back_to_80() -> None:
    assert terminal_width(io.StringIO()) == 80


@pytest.mark.parametrize("interactive", [True, False], ids=["terminal", "log"])
def test_file_names_are_shown_with_their_control_characters_escaped(interactive: bool) -> None:
    """The screen model above fails on any escape sequence but the display's own."""
    term = FakeTerminal()
    clock = Clock()
    display = TransferDisplay(term, width=100, clock=clock, interactive=interactive)
    name = "a\x1b[2J\x9b1A\r.tgz"
    display.start(1, 100)
    display(report(name, 100, 10, 10.0, 10, 100))
    clock.now += 1
    display(report(name, 100, 100, 10.0, 100, 100, finished=True))
    display.close()
    shown = screen(term.getvalue())
    assert any(line.startswith("staged a\\x1b[2J\\x9b1A\\r.tgz (") for line in shown), shown
    assert "\x9b" not in term.getvalue()
