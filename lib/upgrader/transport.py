"""HTTP/1.1 requests on the standard library: kept-alive connections, proxies and TLS.

This is the wire underneath :class:`upgrader.fetch.Fetcher`, which adds the policy (retries,
redirects, limits, messages). It is built on :mod:`http.client` rather than a third-party
client because a sync is short: importing ``requests`` cost 0.15 s, a third of syncing one
version of four agent binaries (see ``benchmarks/README.md``).

* One :class:`Pool` per fetcher keeps idle connections per origin (and proxy) for reuse, so
  a sync pays one TCP/TLS handshake per download thread, not one per file. A connection goes
  back to the pool only when its response was read to the end and the server keeps it
  open; an idle connection the server has closed in the meantime is noticed before reuse.
* Connecting is bounded by the connect timeout (TCP, TLS to an ``https://`` proxy, proxy
  tunnel and TLS handshake); every read after that by the read timeout, so a server that
  stalls mid-body is cut off.
* ``http://`` URLs go through a proxy as absolute-URI requests; ``https://`` URLs through a
  ``CONNECT`` tunnel, so TLS stays end to end. An ``https://`` proxy is spoken to over TLS;
  for an ``https://`` URL the origin's TLS then runs inside the proxy's ("TLS in TLS",
  :class:`InnerTLSSocket`). Proxy credentials from the proxy URL are sent as
  ``Proxy-Authorization``; credentials in a URL as ``Authorization`` (Basic).
* TLS is always verified, the proxy's as well as the origin's, against the machine's trust
  store, certifi's bundle and the operator's extra CA certificates.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

DEFAULT_PORTS = {"http": 80, "https": 443}

MAX_IDLE = 16
"""Idle connections kept per origin."""

_SAFE_PATH = "!#$%&'()*+,/:;=?@[]~"
"""Characters left as they are in a request target; others are percent-encoded (UTF-8)."""

_RECV_SIZE = 65536
"""Most bytes read from the proxy's TLS connection at once for the TLS inside it."""

_T = TypeVar("_T")


class ConnectTimeoutError(TimeoutError):
    """Establishing the connection (TCP, proxy tunnel or TLS handshake) took too long."""


class ProxyError(OSError):
    """The proxy could not be reached, or refused to tunnel or forward the request.

    Attributes:
        proxy: The proxy URL as configured (it may hold credentials: redact before showing).
        cause: What went wrong underneath.
    """

    def __init__(self, proxy: str, cause: BaseException) -> None:
        """Record which proxy failed and why."""
        super().__init__(str(cause))
        self.proxy = proxy
        self.cause = cause


class UnsupportedRequestError(ValueError):
    """The request cannot be made as asked (a host name that cannot be encoded, a bad URL)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes and how: the key of the connection pool.

    Attributes:
        scheme: ``http`` or ``https`` (of the connection itself: to the proxy, if any).
        host: Host to connect to (IDNA-encoded), the proxy's when there is one.
        port: Port to connect to.
        tunnel: ``(host, port)`` of the origin when an https URL is tunnelled via a proxy.
        tls_host: Name the origin's certificate must match (an https URL), or None. Through
            an https:// proxy, the origin's TLS runs inside the proxy's.
        proxy: The proxy URL, or None for a direct connection.
        proxy_tls_host: Name the proxy's certificate must match (an https:// proxy), else None.
    """

    scheme: str
    host: str
    port: int
    tunnel: tuple[str, int] | None = None
    tls_host: str | None = None
    proxy: str | None = None
    proxy_tls_host: str | None = None


@dataclass(frozen=True)
class Target:
    """One request: where to connect, what to send as the request line and headers."""

    endpoint: Endpoint
    request_target: str
    headers: dict[str, str]
    tunnel_headers: dict[str, str]


def plan(url: str, proxy: str | None, headers: Mapping[str, str]) -> Target:
    """Work out the connection and request for a GET of ``url``.

    Args:
        url: An ``http`` or ``https`` URL (credentials in it become Basic authorization).
        proxy: Proxy URL (``http://`` or ``https://``, credentials allowed) or None.
        headers: Extra request headers.

    Returns:
        The request to make.

    Raises:
        UnsupportedRequestError: The host cannot be encoded, or the port is not a number.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = _ascii_host(parts)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # its message quotes the port: a password cut at an unencoded "/"
        raise UnsupportedRequestError("the URL's port is not a number") from None
    request_headers = {"Host": _host_header(host, port, scheme)}
    authorization = _basic(parts)
    if authorization:
        request_headers["Authorization"] = authorization
    request_headers.update(headers)
    path = _quote(parts.path or "/")
    if parts.query:
        path += "?" + _quote(parts.query)
    if proxy is None:
        endpoint = Endpoint(scheme, host, port, tls_host=host if scheme == "https" else None)
        return Target(endpoint, path, request_headers, {})
    via = urlsplit(proxy)
    via_scheme = via.scheme.lower()
    via_host = _ascii_host(via)
    via_port = via.port or DEFAULT_PORTS[via_scheme]
    via_auth = {"Proxy-Authorization": auth} if (auth := _basic(via)) else {}
    via_tls_host = via_host if via_scheme == "https" else None
    if scheme == "https":
        endpoint = Endpoint(
            via_scheme, via_host, via_port, (host, port), host, proxy, via_tls_host
        )
        return Target(endpoint, path, request_headers, via_auth)
    absolute = urlunsplit(("http", request_headers["Host"], path, "", ""))
    endpoint = Endpoint(via_scheme, via_host, via_port, proxy=proxy, proxy_tls_host=via_tls_host)
    return Target(endpoint, absolute, request_headers | via_auth, {})


_LONE_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
"""A ``%`` that does not start an escape."""


def _quote(text: str) -> str:
    """Percent-encode a path or query, keeping its escapes unless a ``%`` is not one."""
    if _LONE_PERCENT.search(text):  # as requests does: then encode every "%"
        return quote(text, safe=_SAFE_PATH.replace("%", ""))
    return quote(text, safe=_SAFE_PATH)


def _ascii_host(parts: SplitResult) -> str:
    """Return a URL's host name as sent on the wire (IDNA for non-ASCII names)."""
    host = (parts.hostname or "").rstrip(".") if parts.hostname != "." else ""
    if not host:
        raise UnsupportedRequestError("the URL has no host name")
    if host.isascii():  # the usual case; the idna codec costs an import
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UnsupportedRequestError(f"the host name {host!r} cannot be encoded") from exc


def _host_header(host: str, port: int, scheme: str) -> str:
    """Return the ``Host`` header: brackets for IPv6, the port unless it is the default."""
    name = f"[{host}]" if ":" in host else host
    return name if port == DEFAULT_PORTS[scheme] else f"{name}:{port}"


def _basic(parts: SplitResult) -> str | None:
    """Return a Basic authorization value from a URL's user information, if it has any."""
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


class _FinalResponse(http.client.HTTPResponse):
    """A response that skips informational answers (``103 Early Hints``) before the final one.

    http.client skips ``100 Continue`` only and would take any other 1xx for the answer.
    """

    def begin(self) -> None:
        """Read the status line and headers of the final (non-1xx) response."""
        super().begin()
        while 101 < self.status < 200:  # its headers are read; the answer follows
            self.headers = self.msg = None  # pyright: ignore[reportAttributeAccessIssue]
            super().begin()


class InnerTLSSocket:
    """TLS to the origin inside the TLS connection to an ``https://`` proxy ("TLS in TLS").

    The ssl module cannot wrap an :class:`ssl.SSLSocket` in another, so the inner TLS runs on
    memory buffers (:meth:`ssl.SSLContext.wrap_bio`) whose records travel over the outer
    socket. This offers what http.client and :class:`Connection` use of a socket: ``sendall``,
    ``recv``, ``recv_into``, ``makefile("rb")``, ``settimeout``, ``gettimeout``, ``fileno`` and
    ``close``. Timeouts are the outer socket's, so a read that waits too long raises
    TimeoutError as on a plain socket; the end of the stream (TLS ``close_notify`` or EOF)
    reads as ``b""``. Handshake failures raise the same ssl errors as a direct connection.
    """

    def __init__(
        self, outer: ssl.SSLSocket, context: ssl.SSLContext, server_hostname: str
    ) -> None:
        """Prepare TLS to ``server_hostname`` over ``outer``; :meth:`do_handshake` starts it.

        Args:
            outer: The TLS connection to the proxy, with the tunnel to the origin open.
            context: The verifying TLS context.
            server_hostname: Name the origin's certificate must match.
        """
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._readers = 0
        self._closed = False

    def do_handshake(self) -> None:
        """Run the TLS handshake with the origin, within the outer socket's timeout.

        Raises:
            ssl.SSLCertVerificationError: The origin's certificate is not trusted.
            ssl.SSLError: Other TLS failures.
            OSError: The outer connection failed or timed out (TimeoutError).
        """
        self._run(self._tls.do_handshake)

    def sendall(self, data: ReadableBuffer) -> None:
        """Encrypt and send all of ``data``.

        Raises:
            OSError: The connection failed or timed out (TimeoutError).
        """
        view = memoryview(data).cast("B")
        while len(view):
            view = view[self._run(functools.partial(self._tls.write, view)) :]

    def recv(self, bufsize: int) -> bytes:
        """Receive up to ``bufsize`` decrypted bytes; ``b""`` at the end of the stream.

        Raises:
            OSError: The connection failed or timed out (TimeoutError).
        """
        try:
            return self._run(functools.partial(self._tls.read, bufsize))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0) -> int:
        """Receive decrypted bytes into ``buffer``; 0 at the end of the stream.

        Args:
            buffer: Where to put them.
            nbytes: Most bytes to receive; 0 for the size of ``buffer``.

        Returns:
            How many bytes were received.

        Raises:
            OSError: The connection failed or timed out (TimeoutError).
        """
        view = memoryview(buffer).cast("B")
        read = functools.partial(self._tls.read, nbytes or len(view), view)
        try:
            return cast("int", self._run(read))  # with a buffer, read() returns the count
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return 0

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        """Return a buffered reader of the decrypted stream (the only mode http.client uses).

        The connection stays open until the reader is closed too, as with a socket's files.
        """
        if mode != "rb":
            raise ValueError(f"only mode 'rb' is supported, not {mode!r}")
        self._readers += 1
        return io.BufferedReader(_InnerTLSReader(self))

    def settimeout(self, timeout: float | None) -> None:
        """Set the timeout of every later operation (the outer socket's)."""
        self._outer.settimeout(timeout)

    def gettimeout(self) -> float | None:
        """Return the timeout of operations (the outer socket's)."""
        return self._outer.gettimeout()

    def fileno(self) -> int:
        """Return the outer socket's descriptor (-1 once closed), for polling."""
        return self._outer.fileno()

    def close(self) -> None:
        """Close both layers, once no reader from :meth:`makefile` is open any more."""
        self._closed = True
        if self._readers == 0:
            self._outer.close()

    def _release_reader(self) -> None:
        """Note that a reader from :meth:`makefile` was closed."""
        self._readers -= 1
        if self._closed and self._readers == 0:
            self._outer.close()

    def _run(self, operation: Callable[[], _T]) -> _T:
        """Run a TLS operation, moving records over the outer socket until it completes."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self._flush()
                if self._incoming.eof:
                    raise ssl.SSLEOFError("EOF occurred in violation of protocol") from None
                data = self._outer.recv(_RECV_SIZE)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            except ssl.SSLError:
                try:
                    self._flush()  # the alert, so that the origin learns why, as over TCP
                except OSError:
                    pass
                raise
            self._flush()
            return result

    def _flush(self) -> None:
        """Send the TLS records waiting to go out."""
        if self._outgoing.pending:
            self._outer.sendall(self._outgoing.read())


class _InnerTLSReader(io.RawIOBase):
    """The raw stream under :meth:`InnerTLSSocket.makefile`."""

    def __init__(self, connection: InnerTLSSocket) -> None:
        """Read from ``connection``."""
        super().__init__()
        self._connection: InnerTLSSocket | None = connection

    def readable(self) -> bool:
        """Tell that the stream can be read."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read decrypted bytes into ``buffer``; 0 at the end of the stream."""
        if self._connection is None:
            raise ValueError("I/O operation on closed file")
        return self._connection.recv_into(buffer)

    def close(self) -> None:
        """Close the stream; the connection closes once it is closed too and no reader is open."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection._release_reader()  # noqa: SLF001 - its own helper
        super().close()


class Connection(http.client.HTTPConnection):
    """An HTTP(S) connection with separate connect and read timeouts.

    ``timeout`` bounds connecting (TCP, TLS to an https:// proxy, the proxy tunnel and the TLS
    handshake); once the connection is up, every read waits at most ``read_timeout``.
    """

    response_class = _FinalResponse

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        context: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        tunnel_headers: Mapping[str, str],
    ) -> None:
        """Prepare (not open) a connection to ``endpoint``.

        Args:
            endpoint: Where to connect.
            context: TLS context, required when ``endpoint.tls_host`` or
                ``endpoint.proxy_tls_host`` is set.
            connect_timeout: Seconds allowed for connecting.
            read_timeout: Seconds allowed for each read afterwards.
            tunnel_headers: Headers for the ``CONNECT`` request (proxy authorization).
        """
        super().__init__(endpoint.host, endpoint.port, timeout=connect_timeout)
        self._create_connection = _open_socket
        self.endpoint = endpoint
        self._context = context
        self._read_timeout = read_timeout
        self._tunnel_headers = dict(tunnel_headers)

    def connect(self) -> None:
        """Open the TCP connection, the proxy tunnel and TLS, then switch to the read timeout.

        With an https:// proxy for an https URL: TCP, TLS to the proxy, the tunnel, then TLS
        to the origin inside the proxy's (:class:`InnerTLSSocket`).

        Raises:
            ProxyError: The proxy could not be reached, its TLS failed (its certificate
                verification error is the cause), or it refused the tunnel.
            ConnectTimeoutError: Connecting to the origin took longer than the connect timeout.
            OSError: Other connection failures (refused, unresolvable, TLS).
        """
        try:
            super().connect()
            if self.endpoint.proxy_tls_host is not None:
                assert self._context is not None  # noqa: S101 - guaranteed by Pool
                self.sock = self._context.wrap_socket(
                    self.sock, server_hostname=self.endpoint.proxy_tls_host
                )
            if self.endpoint.tunnel is not None:
                self._open_tunnel(*self.endpoint.tunnel)
        except OSError as exc:
            self.close()
            cause: OSError = exc
            if isinstance(exc, TimeoutError):
                cause = ConnectTimeoutError(str(exc) or "timed out")
            if self.endpoint.proxy is not None:
                raise ProxyError(self.endpoint.proxy, cause) from exc
            raise cause from exc
        if self.endpoint.tls_host is not None:
            assert self._context is not None  # noqa: S101 - guaranteed by Pool
            try:
                if isinstance(self.sock, ssl.SSLSocket):  # TLS to the proxy: TLS in TLS
                    inner = InnerTLSSocket(self.sock, self._context, self.endpoint.tls_host)
                    inner.do_handshake()
                    self.sock = inner
                else:
                    self.sock = self._context.wrap_socket(
                        self.sock, server_hostname=self.endpoint.tls_host
                    )
            except TimeoutError as exc:
                self.close()
                raise ConnectTimeoutError("TLS handshake timed out") from exc
            except OSError:
                self.close()
                raise
        self.sock.settimeout(self._read_timeout)

    def _open_tunnel(self, host: str, port: int) -> None:
        """Ask the proxy for a ``CONNECT`` tunnel to ``host:port`` on the open socket.

        Done here rather than with ``set_tunnel``: http.client's tunnel leaks its socket when
        the proxy refuses (Python 3.10) and sends IPv6 hosts without brackets (before 3.12).

        Raises:
            OSError: The proxy refused (``Tunnel connection failed: 407 ...``) or hung up.
        """
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in self._tunnel_headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = http.client.HTTPResponse(self.sock, method="CONNECT")
        try:
            answer.begin()  # the status line and headers; a tunnel has no body to read
        except http.client.HTTPException as exc:
            raise OSError(f"Tunnel connection failed: not an HTTP answer ({exc!r})") from exc
        finally:
            answer.close()
        if answer.status != http.HTTPStatus.OK:
            raise OSError(f"Tunnel connection failed: {answer.status} {answer.reason.strip()}")

    def is_dropped(self) -> bool:
        """Tell whether an idle connection can no longer be used (closed or sent data)."""
        if self.sock is None:
            return True
        poller = select.poll()  # not select(): it fails for descriptors >= 1024
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True


def _open_socket(
    address: tuple[str, int], timeout: float | None, source_address: object = None
) -> socket.socket:
    """Connect a TCP socket, giving the resolver the host as ASCII bytes.

    A ``str`` host goes through the idna codec on every lookup, and its first use imports
    ``encodings.idna``: 1 ms of the 10 ms a sync with nothing new takes (medians of 12
    interleaved runs, 10.6 vs 9.6 ms). :func:`plan` has already made the host ASCII.
    """
    host, port = address
    return socket.create_connection(
        (host.encode("ascii"), port),  # pyright: ignore[reportArgumentType] - bytes work
        timeout,
        source_address,  # pyright: ignore[reportArgumentType]
    )


class Response:
    """An open response; its connection goes back to the pool if the body was read through."""

    def __init__(self, pool: Pool, connection: Connection, raw: http.client.HTTPResponse) -> None:
        """Wrap a response received on ``connection``.

        Args:
            pool: Where to return the connection.
            connection: The connection the response came on.
            raw: The response, headers read, body not yet.
        """
        self._pool = pool
        self._connection: Connection | None = connection
        self._raw = raw
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def read(self, amount: int) -> bytes:
        """Read up to ``amount`` bytes of the body as sent (b"" at the end).

        Raises:
            http.client.IncompleteRead: The connection closed before the declared length.
            OSError: The connection failed or the read timed out (TimeoutError).
        """
        expected = self._raw.length
        data = self._raw.read(amount)
        if not data and amount and expected:  # http.client returns b"" here; it is not the end
            raise http.client.IncompleteRead(b"", expected)
        return data

    def close(self) -> None:
        """Finish with the response: keep the connection if it is reusable, else close it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool.release(connection)
        else:
            self._raw.close()
            connection.close()

    def __enter__(self) -> Response:
        """Use the response as a context manager that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the response."""
        self.close()


class Pool:
    """Connections kept alive between requests, shared by threads."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str,
        ca_certificates: str | None = None,
    ) -> None:
        """Create an empty pool.

        Args:
            connect_timeout: Seconds allowed for connecting.
            read_timeout: Seconds allowed for each read.
            user_agent: ``User-Agent`` sent with every request.
            ca_certificates: Extra PEM CA certificates to trust for TLS.
        """
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._user_agent = user_agent
        self._ca_certificates = ca_certificates
        self._context: ssl.SSLContext | None = None
        self._idle: dict[Endpoint, list[Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, url: str, headers: Mapping[str, str], proxy: str | None = None) -> Response:
        """Send a GET and return the response with its headers read and its body pending.

        A kept-alive connection the server closed just as the request went out is replaced
        by a new one once, as browsers and other clients do.

        Args:
            url: An ``http`` or ``https`` URL.
            headers: Extra request headers.
            proxy: Proxy URL, or None for a direct connection.

        Returns:
            The open response (close it, or use it as a context manager).

        Raises:
            UnsupportedRequestError: The request cannot be made (see :func:`plan`).
            ProxyError: The proxy failed.
            OSError: Connecting or sending failed; TimeoutError (ConnectTimeoutError while
                connecting) when a timeout expired; ssl errors for TLS failures.
            http.client.HTTPException: The server's answer is not valid HTTP.
        """
        target = plan(url, proxy, {"User-Agent": self._user_agent, **headers})
        connection, reused = self._take(target)
        try:
            return self._send(connection, target)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            if not reused:
                raise
        connection = self._new(target)
        try:
            return self._send(connection, target)
        except BaseException:
            connection.close()
            raise

    def _send(self, connection: Connection, target: Target) -> Response:
        """Send the request on ``connection`` and read the response headers."""
        try:
            connection.request("GET", target.request_target, headers=target.headers)
            raw = connection.getresponse()
        except http.client.InvalidURL as exc:
            connection.close()
            raise UnsupportedRequestError(str(exc)) from exc
        except BaseException:
            connection.close()
            raise
        return Response(self, connection, raw)

    def _take(self, target: Target) -> tuple[Connection, bool]:
        """Return a live idle connection for the target's endpoint, or a new one."""
        with self._lock:
            idle = self._idle.get(target.endpoint, [])
            while idle:
                connection = idle.pop()
                if connection.is_dropped():
                    connection.close()
                    continue
                return connection, True
        return self._new(target), False

    def _new(self, target: Target) -> Connection:
        """Create (unopened) a connection for the target; it connects on the first request."""
        endpoint = target.endpoint
        tls = endpoint.tls_host is not None or endpoint.proxy_tls_host is not None
        context = self._tls_context() if tls else None
        return Connection(
            target.endpoint,
            context=context,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            tunnel_headers=target.tunnel_headers,
        )

    def release(self, connection: Connection) -> None:
        """Keep a connection whose response was read through, or close it if the pool is full."""
        with self._lock:
            idle = self._idle.setdefault(connection.endpoint, [])
            if not self._closed and len(idle) < MAX_IDLE:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection; connections in use close when their response does."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        """Return the verifying TLS context, made on first use (loading CAs takes time)."""
        with self._lock:
            if self._context is None:
                self._context = tls_context(self._ca_certificates)
            return self._context


def tls_context(ca_certificates: str | None = None) -> ssl.SSLContext:
    """Make a verifying TLS client context.

    Args:
        ca_certificates: Extra PEM CA certificates to trust.

    Returns:
        A context trusting the machine's store, certifi's bundle and ``ca_certificates``.
    """
    import certifi  # noqa: PLC0415 - only https needs it

    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_certificates:
        context.load_verify_locations(cadata=ca_certificates)
    return context
