"""Time bounds on whole transfers: a deadline, and a minimum rate over a sliding window.

A read timeout bounds each receive only: a server that sends a byte a second never trips it
and can hold a fetch for days. A :class:`Watch` bounds the whole transfer instead. The sockets
a transfer uses are attached to its watch; when a bound is broken, one watchdog thread (shared
by every watch, started when needed, gone when idle) shuts those sockets down, so that a read
blocked on them returns at once, and :attr:`Watch.broken` says which bound it was. A socket is
shut down, not closed: its owner still closes it, and its descriptor cannot be reused under it
(the watch shuts it down through a descriptor of its own).

Standard library only: a fetch from a local directory imports this module too.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from typing import Literal

Bound = Literal["deadline", "rate"]
"""Which bound a watch broke: its deadline, or its minimum rate."""

RATE_SAMPLES = 8
"""Progress samples taken per rate window (the window is judged to within 1/8 of itself)."""


class LimitExceededError(Exception):
    """A watched transfer broke one of its bounds; ``bound`` says which."""

    def __init__(self, bound: Bound) -> None:
        """Record which bound was broken."""
        super().__init__(bound)
        self.bound: Bound = bound


class Watch:
    """The bounds of one transfer, and the sockets it is using.

    Use it as a context manager: the watchdog watches it inside the block only.

    Attributes:
        deadline: Seconds the whole transfer may take, or None.
        min_rate: Bytes per second the transfer must keep up, judged over every ``window``
            seconds since the last :meth:`restart`; 0 for no minimum.
        window: Seconds over which ``min_rate`` is judged.
        received: Bytes counted so far (:meth:`count`).
        broken: The bound that was broken, or None.
    """

    def __init__(
        self, *, deadline: float | None = None, min_rate: float = 0, window: float = 0
    ) -> None:
        """Set the bounds; the deadline runs from now.

        Args:
            deadline: Seconds the whole transfer may take, or None for no deadline.
            min_rate: Least bytes per second over ``window``; 0 for no minimum.
            window: Seconds over which the rate is judged (needed with ``min_rate``).
        """
        if min_rate and window <= 0:
            raise ValueError("a minimum rate needs a positive window")
        now = time.monotonic()
        self.deadline = deadline
        self.min_rate = min_rate
        self.window = window
        self.received = 0
        self.broken: Bound | None = None
        self._ends = None if deadline is None else now + deadline
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._next_sample = now
        self._paused = False
        self._sockets: list[socket.socket] = []
        self.restart()

    def __enter__(self) -> Watch:
        """Start watching."""
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop watching."""
        _WATCHDOG.remove(self)

    def count(self, size: int) -> None:
        """Count bytes received."""
        self.received += size

    def restart(self) -> None:
        """Judge the rate afresh from now (a new attempt starts; the deadline runs on)."""
        now = time.monotonic()
        with _WATCHDOG.lock:
            self._samples.clear()
            self._samples.append((now, self.received))
            self._next_sample = now + self.window / RATE_SAMPLES
            self._paused = False

    def pause(self) -> None:
        """Stop judging the rate until :meth:`restart` (a pause between two attempts)."""
        with _WATCHDOG.lock:
            self._paused = True

    def remaining(self) -> float | None:
        """Seconds left until the deadline (never negative), or None without one."""
        if self._ends is None:
            return None
        return max(0.0, self._ends - time.monotonic())

    def check(self) -> None:
        """Raise :class:`LimitExceededError` if a bound was broken."""
        if self.broken is not None:
            raise LimitExceededError(self.broken)

    def expire(self) -> None:
        """Break the deadline now: the transfer cannot end in time (say, a pause is too long).

        Raises:
            LimitExceededError: Always.
        """
        with _WATCHDOG.lock:
            self._break("deadline")
        self.check()

    def attach(self, sock: socket.socket) -> socket.socket | None:
        """Shut the connection of ``sock`` down if a bound is broken while it is attached.

        The watch keeps a second descriptor of the connection, its handle: TLS moves a
        connection into a new socket object and leaves the first without a descriptor, and
        shutting down through any descriptor of a connection shuts the connection down.

        Args:
            sock: The connection's socket (connected).

        Returns:
            The handle, to :meth:`detach` with; None if the connection is already closed.
        """
        try:
            handle = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return None
        with _WATCHDOG.lock:
            self._sockets.append(handle)
            if self.broken is not None:
                _shut_down(handle)
        return handle

    def detach(self, handle: socket.socket) -> None:
        """Stop watching a connection (it goes back to the pool, or is closed)."""
        with _WATCHDOG.lock:
            self._sockets = [s for s in self._sockets if s is not handle]
        handle.close()  # the connection closes when its owner closes it too

    def _judge(self, now: float) -> float | None:
        """Break a bound that ``now`` is past; return when to judge next (None: no need).

        Called with the watchdog's lock held.
        """
        if self._ends is not None and now >= self._ends:
            self._break("deadline")
            return None
        due = self._ends
        if self.min_rate and not self._paused:
            if now >= self._next_sample:
                self._samples.append((now, self.received))
                self._next_sample = now + self.window / RATE_SAMPLES
                # The oldest sample kept is the newest one at least a window old.
                while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
                    self._samples.popleft()
                since, received = self._samples[0]
                if since <= now - self.window and self.received - received < self.min_rate * (
                    now - since
                ):
                    self._break("rate")
                    return None
            due = self._next_sample if due is None else min(due, self._next_sample)
        return due

    def _break(self, bound: Bound) -> None:
        """Record the broken bound and shut the attached sockets down (lock held)."""
        if self.broken is None:
            self.broken = bound
        for sock in self._sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    """Shut a socket down both ways, so that a blocked read on it returns at once."""
    try:
        # socket.socket's own method: ssl.SSLSocket's would drop its TLS state under a reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # closed already, or never connected
        pass


class _Watchdog:
    """The thread that judges every open watch when one of them is due."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._watches: set[Watch] = set()
        self._running = False

    def add(self, watch: Watch) -> None:
        """Watch ``watch`` until :meth:`remove`."""
        with self.lock:
            self._watches.add(watch)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="upgrader-watchdog", daemon=True).start()
            self.lock.notify()

    def remove(self, watch: Watch) -> None:
        """Stop watching ``watch``."""
        with self.lock:
            self._watches.discard(watch)
            handles, watch._sockets = watch._sockets, []  # noqa: SLF001 - its own bookkeeping
        for handle in handles:
            handle.close()

    def _run(self) -> None:
        with self.lock:
            while self._watches:
                now = time.monotonic()
                wake: float | None = None
                for watch in list(self._watches):
                    due = watch._judge(now)  # noqa: SLF001 - the watchdog's own bookkeeping
                    if due is None:
                        if watch.broken is not None:
                            self._watches.discard(watch)
                        continue
                    wake = due if wake is None else min(wake, due)
                self.lock.wait(None if wake is None else max(wake - now, 0.001))
            self._running = False


_WATCHDOG = _Watchdog()

if hasattr(os, "register_at_fork"):  # a forked child has no watchdog thread: start afresh
    os.register_at_fork(after_in_child=lambda: _WATCHDOG.__init__())
