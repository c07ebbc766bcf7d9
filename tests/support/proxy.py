"""A real forward HTTP proxy on 127.0.0.1 that records what it was asked for.

``running_proxy()`` runs it as a separate process (this file is also a script), the way a
proxy really sits beside the charm; ``ProxyServer`` is the same proxy in a thread, which can
also listen with TLS (an ``https://`` proxy).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import select
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """A minimal forward proxy to 127.0.0.1 (nothing else): absolute-URI GETs and CONNECT."""

    protocol_version = "HTTP/1.1"
    server: ProxyServer  # pyright: ignore[reportIncompatibleVariableOverride]

    def authorized(self) -> bool:
        """Check ``Proxy-Authorization`` when the server wants one; answer 407 if it is wrong."""
        given = self.headers.get("Proxy-Authorization")
        self.server.authorizations.append(given)
        if self.server.required is None or given == self.server.required:
            return True
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib name
        """Open a tunnel to 127.0.0.1 and relay bytes both ways until one side closes."""
        self.server.record(f"CONNECT {self.path}")
        self.close_connection = True
        if not self.authorized():
            return
        host, _, port = self.path.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit():
            self.send_error(403, "this test proxy only tunnels to 127.0.0.1")
            return
        with socket.create_connection((host, int(port)), timeout=5) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            _relay(self.connection, upstream)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        """Forward the request to 127.0.0.1 and relay the answer."""
        self.server.record(self.path)
        if not self.authorized():
            return
        target = urlsplit(self.path)
        if target.scheme != "http" or target.hostname != "127.0.0.1":
            self.send_error(403, "this test proxy only reaches 127.0.0.1")
            return
        skip = {"connection", "proxy-connection", "keep-alive", "host", "proxy-authorization"}
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


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes between two sockets until either closes or both are idle for 10 s."""
    sockets = [client, upstream]
    while True:
        # A TLS socket may hold decrypted bytes that select() cannot see.
        readable = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not readable:
            readable, _, _ = select.select(sockets, [], [], 10)
        if not readable:
            return
        for source in readable:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            (upstream if source is client else client).sendall(data)


class ProxyServer(http.server.ThreadingHTTPServer):
    """The forward proxy's server; records what it was asked for.

    ``urls`` lists absolute URLs of GETs and ``CONNECT host:port`` of tunnels; ``authorizations``
    the ``Proxy-Authorization`` header of each request (None when absent). Set ``required`` to
    a header value to answer 407 to requests without it.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, log: Path | None = None, tls: ssl.SSLContext | None = None) -> None:
        """Listen on a free port of 127.0.0.1; append each URL asked for to ``log`` too.

        With ``tls`` (a server context), clients speak TLS to the proxy: an https:// proxy.
        """
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.urls: list[str] = []
        self.authorizations: list[str | None] = []
        self.required: str | None = None
        self.tls = tls
        self._log = log

    def finish_request(self, request, client_address) -> None:  # noqa: ANN001 - stdlib hook
        """Serve one connection, after a TLS handshake when the proxy listens with TLS."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        assert isinstance(request, socket.socket)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except OSError:  # the client refused the certificate or hung up: nothing to serve
            return
        with connection:
            super().finish_request(connection, client_address)

    def record(self, url: str) -> None:
        """Remember a URL asked for (before the request is forwarded)."""
        self.urls.append(url)
        if self._log is not None:
            with self._log.open("a") as log:
                log.write(url + "\n")

    @property
    def url(self) -> str:
        """The proxy URL to configure."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server_address[1]}"


class ProxyProcess:
    """A :class:`ProxyServer` running in a child process."""

    def __init__(self, url: str, log: Path) -> None:
        """Remember where the child listens and where it logs."""
        self.url = url
        self._log = log

    @property
    def urls(self) -> list[str]:
        """The absolute URLs the proxy was asked for, in order."""
        return self._log.read_text().splitlines()


@contextlib.contextmanager
def running_proxy() -> Iterator[ProxyProcess]:
    """Run the proxy as a separate process on 127.0.0.1 for the duration of the block."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.log"
        log.touch()
        child = subprocess.Popen(
            [sys.executable, __file__, str(log)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            url = child.stdout.readline().strip()
            if not url.startswith("http://127.0.0.1:"):
                raise RuntimeError(f"the test proxy did not start: {url!r}")
            yield ProxyProcess(url, log)
        finally:
            child.terminate()
            child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()


def _main(log: str) -> None:
    server = ProxyServer(Path(log))
    print(server.url, flush=True)
    server.serve_forever(0.05)


if __name__ == "__main__":
    _main(sys.argv[1])
