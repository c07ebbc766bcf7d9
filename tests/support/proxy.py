"""A real forward HTTP proxy on 127.0.0.1 that records what it was asked for."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """A minimal forward proxy for absolute-URI GETs to 127.0.0.1 (nothing else)."""

    protocol_version = "HTTP/1.1"
    server: ProxyServer  # pyright: ignore[reportIncompatibleVariableOverride]

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        """Forward the request to 127.0.0.1 and relay the answer."""
        self.server.urls.append(self.path)
        target = urlsplit(self.path)
        if target.scheme != "http" or target.hostname != "127.0.0.1":
            self.send_error(403, "this test proxy only reaches 127.0.0.1")
            return
        skip = {"connection", "proxy-connection", "keep-alive", "host"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        headers["Via"] = "1.1 test-proxy"
        upstream = http.client.HTTPConnection("127.0.0.1", target.port or 80, timeout=5)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request("GET", path, headers=headers)
            response = upstream.getresponse()
            body = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            upstream.close()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output clean."""


class ProxyServer(http.server.ThreadingHTTPServer):
    """The forward proxy's server; records the absolute URLs it was asked for."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.urls: list[str] = []

    @property
    def url(self) -> str:
        """The proxy URL to configure."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def running_proxy() -> Iterator[ProxyServer]:
    """Run a :class:`ProxyServer` for the duration of the block."""
    server = ProxyServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
