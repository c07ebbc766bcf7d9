"""Showing download progress: bars redrawn in place on a terminal, plain log lines elsewhere.

:class:`TransferDisplay` is the ``progress`` callback of :func:`upgrader.sync.sync`; it is
called from the download threads with :class:`upgrader.sync.Progress` reports (a file started,
bytes arrived, a file is verified and in place) and is thread-safe.

On a terminal it keeps a live area at the bottom of the stream: one line per file being
downloaded (bar, percentage, bytes, rate, time left) and a total line, redrawn in place at most
every :data:`REDRAW_INTERVAL` seconds; each finished file leaves a permanent line above it.
Elsewhere (a log file, CI, a pipe) it writes one line when a file starts, one when it is
staged, and a total line every :data:`LOG_INTERVAL` seconds, so logs stay short and readable.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from .urls import escape_controls

REDRAW_INTERVAL = 0.1
"""Seconds between two redraws of the terminal display."""

LOG_INTERVAL = 10.0
"""Seconds between two total-progress lines when not on a terminal."""

DEFAULT_WIDTH = 80
BAR_WIDTH = 30
"""Widest bar drawn; narrower when the terminal is."""
MIN_BAR = 5
"""Narrowest bar worth drawing; below it only the numbers are shown."""
MAX_LABEL = 32
MIN_LABEL = 8

_UP = "\x1b[A"
_CLEAR_DOWN = "\x1b[J"


class Report(Protocol):
    """What a progress report carries (``upgrader.sync.Progress``)."""

    @property
    def name(self) -> str:
        """The file name."""
        ...

    @property
    def size(self) -> int:
        """Its size in bytes."""
        ...

    @property
    def done(self) -> int:
        """Bytes of it on disk."""
        ...

    @property
    def rate(self) -> float:
        """Bytes per second transferred for it in this run."""
        ...

    @property
    def finished(self) -> bool:
        """The file is verified and in place."""
        ...

    @property
    def total_done(self) -> int:
        """Bytes done over all files."""
        ...

    @property
    def total_size(self) -> int:
        """Bytes of all files."""
        ...


def format_size(size: float) -> str:
    """``1.5 GiB``, ``40.0 MiB``, ``12.0 KiB``, ``512 B``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"


def format_duration(seconds: float | None) -> str:
    """``0:07``, ``12:34``, ``1:02:03``; ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds > 99 * 3600:
        return "--:--"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """``[#########...............]`` for a fraction from 0 to 1."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _eta(remaining: int, rate: float) -> float | None:
    return remaining / rate if rate > 0 else None


def _fraction(done: int, size: int) -> float:
    return done / size if size > 0 else 1.0


def _fit(text: str, width: int) -> str:
    """Cut a line to the terminal width, so that it never wraps (wrapping breaks redraws)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


@dataclasses.dataclass
class _File:
    size: int
    done: int = 0
    rate: float = 0.0
    started: float = 0.0


def is_terminal(stream: TextIO) -> bool:
    """True when the stream is an interactive terminal (and TERM is not ``dumb``)."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return interactive and os.environ.get("TERM") != "dumb"


def terminal_width(stream: TextIO) -> int:
    """The stream's terminal width in columns (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, ValueError, OSError):
        return DEFAULT_WIDTH


class TransferDisplay:
    """Progress of a set of downloads, as a ``progress`` callback for :func:`upgrader.sync.sync`.

    Use it as a context manager (or call :meth:`close`) so that the live terminal area is
    cleared at the end.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool | None = None,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
        redraw_interval: float = REDRAW_INTERVAL,
        prefix: str = "",
    ) -> None:
        """Create a display.

        Args:
            stream: where to write (the CLI passes stderr).
            interactive: draw bars (True) or write log lines (False); default: bars when the
                stream is a terminal.
            width: the line width for bars; default: the terminal's, asked at every redraw.
            clock: seconds, monotonic (replaceable in tests).
            log_interval: seconds between total lines in log mode.
            redraw_interval: seconds between redraws in terminal mode.
            prefix: put before every log line (e.g. ``juju-upgrader: ``).
        """
        self._stream = stream
        self._interactive = is_terminal(stream) if interactive is None else interactive
        self._width = width
        self._clock = clock
        self._log_interval = log_interval
        self._redraw_interval = redraw_interval
        self._prefix = prefix
        self._lock = threading.Lock()
        self._active: dict[str, _File] = {}
        self._finished = 0
        self._files: int | None = None
        self._total_done = 0
        self._total_size = 0
        self._drawn = 0
        self._last_draw = float("-inf")
        self._last_log = clock()
        self._closed = False

    @property
    def interactive(self) -> bool:
        """True when drawing bars on a terminal."""
        return self._interactive

    def start(self, files: int, total_bytes: int) -> None:
        """Announce how many files and bytes the sync will download (for the total line)."""
        with self._lock:
            self._files = files
            self._total_size = total_bytes
            if not self._interactive and files:
                self._line(f"downloading {files} {_files(files)}, {format_size(total_bytes)}")

    def __call__(self, report: Report) -> None:
        """Take one progress report (from any thread)."""
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            self._total_done = report.total_done
            self._total_size = report.total_size
            state = self._active.get(report.name)
            if report.finished:
                self._finish(report, state, now)
                return
            if state is None:
                state = self._active[report.name] = _File(report.size, started=now)
                if not self._interactive:
                    self._line(f"downloading {_shown(report.name)} ({format_size(report.size)})")
            state.done, state.rate = report.done, report.rate
            if self._interactive:
                if now - self._last_draw >= self._redraw_interval:
                    self._redraw(now)
            elif now - self._last_log >= self._log_interval:
                self._last_log = now
                self._line(self._total_text())

    def close(self) -> None:
        """Clear the live area (terminal) and stop taking reports."""
        with self._lock:
            if self._interactive:
                self._clear()
                self._stream.flush()
            self._closed = True

    def __enter__(self) -> TransferDisplay:
        """Use as a context manager."""
        return self

    def __exit__(self, *_: object) -> None:
        """Clear the live area."""
        self.close()

    # -- internals (called with the lock held) ---------------------------------------------

    def _finish(self, report: Report, state: _File | None, now: float) -> None:
        self._active.pop(report.name, None)
        self._finished += 1
        started = state.started if state is not None else now
        seconds = now - started
        if report.rate > 0:
            how = f"{format_size(report.size)} in {seconds:.1f} s, {format_size(report.rate)}/s"
        else:
            how = f"{format_size(report.size)}, already downloaded"
        message = f"staged {_shown(report.name)} ({how})"
        if self._interactive:
            self._clear()
            self._stream.write(message + "\n")
            self._draw(now)
        else:
            self._line(message)

    def _line(self, text: str) -> None:
        self._stream.write(f"{self._prefix}{text}\n")
        self._stream.flush()

    def _total_rate(self) -> float:
        return sum(f.rate for f in self._active.values())

    def _total_text(self) -> str:
        rate = self._total_rate()
        left = format_duration(_eta(self._total_size - self._total_done, rate))
        percent = int(_fraction(self._total_done, self._total_size) * 100)
        return (
            f"{format_size(self._total_done)} of {format_size(self._total_size)} ({percent}%), "
            f"{format_size(rate)}/s, {left} left"
        )

    def _redraw(self, now: float) -> None:
        self._clear()
        self._draw(now)

    def _clear(self) -> None:
        """Move to the start of the live area and erase it."""
        if self._drawn:
            self._stream.write("\r" + _UP * (self._drawn - 1) + _CLEAR_DOWN)
            self._drawn = 0

    def _draw(self, now: float) -> None:
        width = (self._width or terminal_width(self._stream)) - 1
        rows = [
            (_shown(_short_name(name)), state.done, state.size, state.rate)
            for name, state in self._active.items()
        ]
        if self._active or self._finished:
            count = f"{self._finished}/{self._files}" if self._files else str(self._finished)
            rows.append((f"total {count}", self._total_done, self._total_size, self._total_rate()))
        stats_width = max((len(_stats(*row[1:])) for row in rows), default=0)
        longest = max((len(row[0]) for row in rows), default=0)
        label_width = max(min(longest, MAX_LABEL, width - stats_width - 1), MIN_LABEL)
        lines = [_bar_line(*row, label_width=label_width, width=width) for row in rows]
        if lines:
            self._stream.write("\n".join(_fit(line, width) for line in lines))
        self._stream.flush()
        self._drawn = len(lines)
        self._last_draw = now


def _shown(name: str) -> str:
    """A file name from the metadata as shown: its control characters escaped."""
    return escape_controls(name)


def _short_name(name: str) -> str:
    """``3.6.12-ubuntu-amd64`` for ``juju-3.6.12-ubuntu-amd64.tgz``: what tells files apart."""
    if name.startswith("juju-") and name.endswith(".tgz"):
        return name[len("juju-") : -len(".tgz")]
    return name


def _stats(done: int, size: int, rate: float) -> str:
    """``  45%  18.0 MiB/40.0 MiB    5.1 MiB/s    0:04``."""
    fraction = _fraction(done, size)
    left = format_duration(_eta(size - done, rate))
    return (
        f"{int(fraction * 100):3}% {format_size(done):>9}/{format_size(size):<9} "
        f"{format_size(rate) + '/s':>11} {left:>7}"
    )


def _bar_line(
    label: str, done: int, size: int, rate: float, *, label_width: int, width: int
) -> str:
    """``label  [####....]  45%  18.0 MiB/40.0 MiB  5.1 MiB/s  0:04``, fitted to ``width``."""
    fraction = _fraction(done, size)
    stats = _stats(done, size, rate)
    label = label if len(label) <= label_width else label[: max(label_width - 1, 0)] + "…"
    room = width - label_width - len(stats) - 2
    if room >= MIN_BAR + 2:
        return f"{label:<{label_width}} {bar(fraction, min(room - 2, BAR_WIDTH))} {stats}"
    return f"{label:<{label_width}} {stats}"


def _files(count: int) -> str:
    return "file" if count == 1 else "files"
