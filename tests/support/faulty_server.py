"""A real HTTP server on 127.0.0.1 that serves a directory (with Range support) and misbehaves
on demand: truncated bodies, wrong Content-Length, corrupted bytes, error statuses, stalls,
connection resets, ignored Range headers, slow transfers, slow headers.

Usage::

    with FaultyServer(root) as server:
        server.add_fault("juju-3.6.12-ubuntu-amd64.tgz", Fault("truncate", at=100))
        ... fetch f"{server.url}/agent/..." ...
        assert server.requests[-1].range == "bytes=100-"

A fault applies to every request whose path ends with the given suffix, for its first
``times`` matching requests (``None``: for ever). Offsets (``at``) are positions in the whole
file, so a fault behaves the same for a resumed (ranged) request.
"""

from __future__ import annotations

import dataclasses
import http.server
import re
import socket
import struct
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Literal

FaultKind = Literal[
    "status",  # answer with `status` (and `reason`, if given) and no body
    "truncate",  # announce the full length, send the body up to `at`, close (IncompleteRead)
    "short",  # announce no length, send the body up to `at`, close (looks complete)
    "length",  # announce `length` bytes as Content-Length, send the real body
    "corrupt",  # flip the byte at `at`
    "stall",  # send the body up to `at`, then go silent for `delay` seconds, then close
    "reset",  # send the body up to `at`, then reset the connection (TCP RST)
    "ignore-range",  # answer a ranged request with 200 and the whole file
    "slow",  # send at `rate` bytes per second
    "slow-headers",  # send the status line and headers at `rate` bytes per second, then all
]

_RANGE = re.compile(r"bytes=(\d+)-\Z")
_CHUNK = 64 * 1024


@dataclasses.dataclass
class Fault:
    """One way to misbehave (see :data:`FaultKind`)."""

    kind: FaultKind
    at: int = 0
    status: int = 500
    length: int = 0
    delay: float = 5.0
    rate: int = 1024 * 1024
    times: int | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Request:
    """A request the server received."""

    path: str
    range: str | None
    status: int
    authorization: str | None = None


class FaultyServer:
    """Serve ``root`` on 127.0.0.1 with configurable faults; a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.requests: list[Request] = []
        self.active = 0
        self.max_active = 0
        self._faults: list[tuple[str, Fault]] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.faulty = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_fault(self, suffix: str, fault: Fault) -> None:
        """Misbehave for requests whose path ends with ``suffix``."""
        with self._lock:
            self._faults.append((suffix, fault))

    def clear_faults(self) -> None:
        """Behave from now on."""
        with self._lock:
            self._faults.clear()

    def requests_for(self, suffix: str) -> list[Request]:
        """The requests received for paths ending with ``suffix``."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def take_fault(self, path: str) -> Fault | None:
        """The fault for this request, counting it against ``times``."""
        with self._lock:
            for suffix, fault in self._faults:
                if path.endswith(suffix) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def started(self) -> None:
        """Count a response in progress."""
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def ended(self) -> None:
        """Count a response done."""
        with self._lock:
            self.active -= 1

    def log(self, request: Request) -> None:
        """Record a request."""
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> FaultyServer:
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output clean."""

    @property
    def faulty(self) -> FaultyServer:
        return self.server.faulty  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.faulty.started()
        try:
            self._get()
        finally:
            self.faulty.ended()

    def _get(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        ranged = self.headers.get("Range")
        root = self.faulty.root.resolve()
        target = (root / path.lstrip("/")).resolve()
        if root not in target.parents or not target.is_file():
            self._status(path, ranged, 404)
            return
        fault = self.faulty.take_fault(path) or Fault("slow", rate=0)
        if fault.kind == "status":
            self._status(path, ranged, fault.status, fault.reason)
            return
        size = target.stat().st_size
        match = _RANGE.match(ranged or "")
        start = int(match.group(1)) if match and fault.kind != "ignore-range" else 0
        if start >= size > 0:
            self._status(path, ranged, 416)
            return
        self._headers(path, ranged, start, size, fault)
        self._body(target, start, size, fault)

    def _status(
        self, path: str, ranged: str | None, status: int, reason: str | None = None
    ) -> None:
        self.faulty.log(Request(path, ranged, status, self.headers.get("Authorization")))
        self.send_response(status, reason)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _headers(self, path: str, ranged: str | None, start: int, size: int, fault: Fault) -> None:
        status = 206 if start else 200
        self.faulty.log(Request(path, ranged, status, self.headers.get("Authorization")))
        self.send_response(status)
        if fault.kind != "short":
            length = fault.length if fault.kind == "length" else size - start
            self.send_header("Content-Length", str(length))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        if fault.kind == "slow-headers":
            self.send_header("X-Padding", "p" * 4096)  # enough to trickle for a while
            self._headers_buffer.append(b"\r\n")  # pyright: ignore[reportAttributeAccessIssue]
            head = b"".join(self._headers_buffer)  # pyright: ignore[reportAttributeAccessIssue]
            self._headers_buffer = []
            self._trickle(head, fault.rate)
            return
        self.end_headers()

    def _trickle(self, data: bytes, rate: int) -> None:
        """Send ``data`` at ``rate`` bytes per second, a byte at a time."""
        for position in range(len(data)):
            try:
                self.wfile.write(data[position : position + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1 / rate)

    def _body(self, target: Path, start: int, size: int, fault: Fault) -> None:
        stop = fault.at if fault.kind in ("truncate", "short", "stall", "reset") else size
        chunk_size = max(1, min(_CHUNK, fault.rate // 20)) if fault.rate else _CHUNK
        position = start
        with open(target, "rb") as stream:
            stream.seek(start)
            while position < stop:
                chunk = bytearray(stream.read(min(chunk_size, stop - position)))
                if not chunk:
                    break
                if fault.kind == "corrupt" and position <= fault.at < position + len(chunk):
                    chunk[fault.at - position] ^= 0xFF
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except OSError:
                    return
                position += len(chunk)
                if fault.kind == "slow" and fault.rate:
                    time.sleep(len(chunk) / fault.rate)
        self._end(fault)

    def _end(self, fault: Fault) -> None:
        if fault.kind == "stall":
            time.sleep(fault.delay)
        if fault.kind == "reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
            self.close_connection = True
