"""Real HTTP servers on 127.0.0.1 for tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, log: list[tuple[str, int]] | None = None, **kwargs: Any):
        self._log = log
        super().__init__(*args, **kwargs)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Record (path, status) when the test asked for a log."""
        if self._log is not None:
            status = int(code) if isinstance(code, int) or str(code).isdigit() else 0
            self._log.append((self.path, status))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output clean."""


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        with self.tls.wrap_socket(request, server_side=True) as connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that refuse the certificate hang up; stay quiet."""


@contextlib.contextmanager
def serve_directory(
    root: Path,
    *,
    log: list[tuple[str, int]] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    """Serve a directory over HTTP on 127.0.0.1; yields the base URL.

    Args:
        root: the directory.
        log: if given, every request's (path, status) is appended to it.
        tls: serve HTTPS with this server context (the URL is then ``https://``).
    """
    handler = functools.partial(_QuietHandler, directory=str(root), log=log)
    server = _TLSServer(("127.0.0.1", 0), handler)
    server.tls = tls
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
