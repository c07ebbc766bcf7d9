"""A small HTTP(S)/file client for reading simplestreams metadata and downloading tarballs.

Everything here reads from sources we do not control, so it is defensive:

* Proxies come only from :class:`FetchSettings`, so ``HTTP_PROXY`` and friends in the
  process environment are ignored unless a caller builds the settings from them on purpose
  (:meth:`FetchSettings.from_client_environ`).
* TLS verification is always on, against the machine's trust store and certifi's bundle;
  the operator's extra CA certificates are added to them.
* Timeouts apply to connecting and to every read, so a server that stalls mid-response is
  cut off. Connection failures, timeouts and HTTP 5xx/408/429 are retried with a doubling
  back-off (capped at :data:`MAX_BACKOFF` seconds), then reported as
  :class:`~upgrader.errors.TransientError`.
* HTTP 404 and 401 mean "not found" (:class:`~upgrader.errors.NotFoundError`, never
  retried), as in Juju, which then moves on to the next path or source. HTTP 403 is *not*
  treated as "not found": like Juju, it is an error (:class:`~upgrader.errors.StreamError`)
  because it usually means a permission problem the operator must fix.
* Metadata documents are size-limited and read in full; downloads are streamed in chunks,
  so no tarball is ever held in memory.

Redirects are followed by this module (at most :data:`MAX_REDIRECTS`) so that each hop gets
its own proxy decision; a redirect from ``https`` to ``http`` is refused.

The connections themselves (kept alive, proxied, TLS) are :mod:`upgrader.transport`'s.

A :class:`Fetcher` may be shared by threads (it keeps no per-request state and no cookies).
Call :meth:`Fetcher.close` (or use it as a context manager) to close its idle connections
early; otherwise they are closed when it is garbage-collected.
"""

from __future__ import annotations

import contextlib
import http
import http.client
import ipaddress
import os
import socket
import ssl
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from upgrader.errors import InvalidInputError, NotFoundError, StreamError, TransientError
from upgrader.transport import (
    DEFAULT_PORTS,
    ConnectTimeoutError,
    Pool,
    ProxyError,
    Response,
    UnsupportedRequestError,
)
from upgrader.urls import redact_url

MIB = 1024 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 64 * MIB
"""Largest metadata document accepted by default (official products files are a few MB)."""

MAX_BACKOFF = 5.0
"""Longest pause between two attempts, in seconds."""

MAX_REDIRECTS = 10
"""Most redirects followed for one request."""

SCHEMES = ("http", "https", "file")
"""URL schemes the fetcher accepts."""

CA_CERTIFICATES_OPTION = "ca-certificates"
"""Name of the operator-facing option that holds extra CA certificates (PEM)."""

USER_AGENT = "juju-upgrader"

_RETRIED_STATUSES = frozenset({408, 429})
"""HTTP statuses below 500 that are worth another attempt."""

_NOT_FOUND_STATUSES = frozenset({401, 404})
"""HTTP statuses that mean "not here, try the next path or source", as in Juju."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_CHARM_PROXY_SETTINGS = (
    ("JUJU_CHARM_HTTP_PROXY", "juju-http-proxy"),
    ("JUJU_CHARM_HTTPS_PROXY", "juju-https-proxy"),
)
"""The proxy variables Juju gives a charm, and the model settings they come from."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class FetchSettings:
    """How a :class:`Fetcher` reaches the network.

    Attributes:
        http_proxy: Proxy URL for ``http://`` URLs, or None for direct connections. A value
            without a scheme (``squid:3128``) is taken as ``http://squid:3128``.
        https_proxy: Proxy URL for ``https://`` URLs (tunnelled with CONNECT), or None.
        no_proxy: Comma-separated hosts that bypass the proxies: ``host``, ``.domain`` or
            ``domain`` (the domain and its subdomains), ``*.domain``, ``host:port``,
            ``[v6addr]:port``, IP addresses, CIDR ranges, or ``*`` for everything. Loopback
            addresses are not bypassed unless listed (Juju's defaults list them).
        ca_certificates: PEM certificates trusted in addition to the machine's trust store
            and certifi's bundle.
        connect_timeout: Seconds to wait for a TCP/TLS connection.
        read_timeout: Seconds to wait for each read from the server; a server that sends
            nothing for this long is cut off, even in the middle of a body.
        retries: Attempts in total (not extra attempts) for one request; at least 1.
        backoff: Pause before the second attempt, in seconds; it doubles before every
            further attempt, capped at :data:`MAX_BACKOFF`.
        max_document_bytes: Largest metadata document :meth:`Fetcher.get_document` reads.
        ca_option: How messages name the place to add a private CA: the charm's option, or
            the command-line tool's flag.
    """

    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None
    ca_certificates: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    ca_option: str = CA_CERTIFICATES_OPTION

    def __post_init__(self) -> None:
        """Normalise empty strings to None and check every value.

        Raises:
            InvalidInputError: A proxy URL is not an http(s) URL, or a number is out of range.
        """
        for name in ("http_proxy", "https_proxy"):
            object.__setattr__(self, name, _normalise_proxy(name, getattr(self, name)))
        no_proxy = (self.no_proxy or "").strip()
        object.__setattr__(self, "no_proxy", no_proxy or None)
        if self.ca_certificates is not None and not self.ca_certificates.strip():
            object.__setattr__(self, "ca_certificates", None)
        if not (self.connect_timeout > 0 and self.read_timeout > 0):
            raise InvalidInputError("fetch timeouts must be positive numbers of seconds")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise InvalidInputError(f"retries must be a whole number, not {self.retries!r}")
        if self.retries < 1:
            raise InvalidInputError(
                f"retries counts attempts and must be >= 1, not {self.retries}"
            )
        if self.backoff < 0:
            raise InvalidInputError(f"backoff must not be negative, not {self.backoff}")
        if self.max_document_bytes < 1:
            raise InvalidInputError(
                f"max_document_bytes must be positive, not {self.max_document_bytes}"
            )

    @classmethod
    def from_charm_environ(
        cls, environ: Mapping[str, str], ca_certificates: str | None = None
    ) -> FetchSettings:
        """Build settings from the proxy variables Juju gives a charm.

        Juju sets ``JUJU_CHARM_HTTP_PROXY``, ``JUJU_CHARM_HTTPS_PROXY`` and
        ``JUJU_CHARM_NO_PROXY`` from the ``juju-http-proxy``, ``juju-https-proxy`` and
        ``juju-no-proxy`` model settings.

        Args:
            environ: The hook environment (usually ``os.environ``).
            ca_certificates: PEM text of extra CA certificates (the ``ca-certificates``
                charm option), if any.

        Returns:
            The settings, with default timeouts and retries.

        Raises:
            InvalidInputError: A proxy variable is not an http(s) URL; the message names
                the variable and the model setting it comes from.
        """
        for variable, setting in _CHARM_PROXY_SETTINGS:
            try:
                _normalise_proxy(variable, environ.get(variable))
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"{exc} (set by the model's {setting} setting: juju model-config {setting})"
                ) from None
        return cls(
            http_proxy=environ.get("JUJU_CHARM_HTTP_PROXY"),
            https_proxy=environ.get("JUJU_CHARM_HTTPS_PROXY"),
            no_proxy=environ.get("JUJU_CHARM_NO_PROXY"),
            ca_certificates=ca_certificates,
        )

    @classmethod
    def from_client_environ(
        cls, environ: Mapping[str, str], ca_certificates: str | None = None
    ) -> FetchSettings:
        """Build settings from the conventional proxy variables of a user's shell.

        Lower-case names win over upper-case ones, as with curl and urllib.

        Args:
            environ: The process environment (usually ``os.environ``).
            ca_certificates: PEM text of extra CA certificates, if any.

        Returns:
            The settings, with default timeouts and retries.
        """

        def pick(name: str) -> str | None:
            return environ.get(name.lower()) or environ.get(name.upper()) or None

        return cls(
            http_proxy=pick("http_proxy"),
            https_proxy=pick("https_proxy"),
            no_proxy=pick("no_proxy"),
            ca_certificates=ca_certificates,
            ca_option="--ca-certificates FILE",
        )

    def backoff_delay(self, attempt: int) -> float:
        """Return the pause after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: The attempt that just failed.

        Returns:
            ``backoff * 2 ** (attempt - 1)``, capped at :data:`MAX_BACKOFF`.
        """
        return min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)


@dataclass(frozen=True)
class Document:
    """A metadata document as read by :meth:`Fetcher.get_document`.

    Attributes:
        url: The URL that was asked for (before any redirect).
        body: The whole body (content-decoded); empty when ``not_modified``.
        etag: The ``ETag`` the server sent (or, on a 304 without one, the one that was sent).
        last_modified: The ``Last-Modified`` value, with the same rule as ``etag``.
        not_modified: True when the server answered 304 to a conditional request.
    """

    url: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


class Download:
    """An open download: response metadata plus a chunk iterator over the body.

    Attributes:
        url: The URL that was asked for.
        status: HTTP status of the response (200 or 206; for ``file://`` URLs the same
            numbers are used: 206 when ``offset`` was honoured, else 200).
        offset: Where the body starts in the file: the requested offset if the server
            honoured the range, or 0 if it sent the whole file. The caller must then
            start over (truncate its partial file) before writing.
        length: Number of bytes the body will hold, if known.
    """

    def __init__(
        self,
        url: str,
        status: int,
        offset: int,
        length: int | None,
        chunks: Callable[[int], Iterator[bytes]],
    ) -> None:
        """Create a download.

        Args:
            url: The requested URL.
            status: Response status.
            offset: Start of the body within the file.
            length: Remaining length, if known.
            chunks: Function returning the body iterator for a given chunk size.
        """
        self.url = url
        self.status = status
        self.offset = offset
        self.length = length
        self._chunks = chunks

    def iter_chunks(self, chunk_size: int = MIB) -> Iterator[bytes]:
        """Stream the body, as served (no content decoding).

        Args:
            chunk_size: Largest chunk to yield, in bytes.

        Yields:
            Consecutive pieces of the body.

        Raises:
            TransientError: The connection failed or stalled (read timeout) mid-body.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        return self._chunks(chunk_size)

    def __repr__(self) -> str:
        """Describe the download for logs."""
        return (
            f"Download(url={self.url!r}, status={self.status}, offset={self.offset}, "
            f"length={self.length})"
        )


class _RetryableError(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RangeNotSatisfiableError(Exception):
    """The server refused the byte range (HTTP 416)."""


class Fetcher:
    """Reads documents and streams downloads over http, https and file URLs."""

    def __init__(
        self, settings: FetchSettings | None = None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Create a fetcher.

        Args:
            settings: Network settings; defaults to direct connections and default limits.
            sleep: Function used to wait between attempts (replaceable in tests).

        Raises:
            InvalidInputError: ``settings.ca_certificates`` holds no usable certificate.
        """
        self._settings = settings or FetchSettings()
        self._sleep = sleep
        self._no_proxy = NoProxy(self._settings.no_proxy)
        ca_certificates = self._settings.ca_certificates
        if ca_certificates is not None:
            ca_certificates = check_ca_certificates(ca_certificates)
        self._pool = Pool(
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            user_agent=USER_AGENT,
            ca_certificates=ca_certificates,
        )
        self._finalizer = weakref.finalize(self, self._pool.close)

    @property
    def settings(self) -> FetchSettings:
        """The settings this fetcher was built with."""
        return self._settings

    def close(self) -> None:
        """Close the idle connections kept for reuse."""
        self._finalizer()

    def __enter__(self) -> Fetcher:
        """Use the fetcher as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the fetcher."""
        self.close()

    def get_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Document:
        """Read a whole (metadata) document.

        Args:
            url: An ``http``, ``https`` or ``file`` URL.
            etag: ``ETag`` from an earlier read; sent as ``If-None-Match``.
            last_modified: ``Last-Modified`` from an earlier read; sent as
                ``If-Modified-Since``.

        Returns:
            The document; ``not_modified`` is set (and the body empty) on HTTP 304. File
            URLs are always read in full.

        Raises:
            NotFoundError: HTTP 404/401, or a missing file.
            TransientError: Every attempt failed with a connection error, a timeout or a
                retryable status.
            StreamError: Any other failure: unsupported scheme, other HTTP errors (403
                included), TLS verification failure, a body over ``max_document_bytes``.
        """
        parts = _split_url(url)
        if parts.scheme == "file":
            return self._read_file_document(url, parts)
        headers = {"Accept-Encoding": "gzip"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> Document:
            response = self._open(url, headers)
            with response:
                if response.status == http.HTTPStatus.NOT_MODIFIED:
                    return Document(
                        url=url,
                        body=b"",
                        etag=response.headers.get("ETag") or etag,
                        last_modified=response.headers.get("Last-Modified") or last_modified,
                        not_modified=True,
                    )
                _check_status(url, response)
                if response.status == http.HTTPStatus.PARTIAL_CONTENT:
                    raise StreamError(f"cannot fetch {url}: unexpected partial content (HTTP 206)")
                body = self._read_body(url, response)
                return Document(
                    url=url,
                    body=body,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                )

        return self._retrying(url, attempt)

    @contextlib.contextmanager
    def open_download(self, url: str, *, offset: int = 0) -> Iterator[Download]:
        """Open a URL for streaming, optionally resuming at a byte offset.

        With ``offset > 0`` an HTTP ``Range: bytes=<offset>-`` request is made. If the server
        ignores it (200), ``Download.offset`` is 0; if it refuses it (416, e.g. the file got
        shorter), the whole file is requested again and ``offset`` is 0 as well.

        Args:
            url: An ``http``, ``https`` or ``file`` URL.
            offset: Bytes already held by the caller.

        Yields:
            The open :class:`Download`; its connection is closed when the block ends.

        Raises:
            NotFoundError: HTTP 404/401, or a missing file.
            TransientError: No response could be established after all attempts; or (from
                ``iter_chunks``) the transfer broke off.
            StreamError: Other failures, as for :meth:`get_document`.
        """
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        parts = _split_url(url)
        if parts.scheme == "file":
            with self._open_file_download(url, parts, offset) as download:
                yield download
            return
        try:
            response, honoured = self._retrying(url, lambda: self._open_range(url, offset))
        except _RangeNotSatisfiableError:
            response, honoured = self._retrying(url, lambda: self._open_range(url, 0))
        with response:
            length = _content_length(response)
            yield Download(
                url=url,
                status=response.status,
                offset=honoured,
                length=length,
                chunks=lambda size: _response_chunks(url, response, size, self._settings),
            )

    def _open_range(self, url: str, offset: int) -> tuple[Response, int]:
        """Make one attempt at a (ranged) download request.

        Args:
            url: The URL.
            offset: Byte offset to ask for (0 for the whole file).

        Returns:
            The open response and the offset its body starts at.

        Raises:
            _RangeNotSatisfiableError: HTTP 416 for a ranged request.
        """
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._open(url, headers)
        try:
            if offset and response.status == http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
                raise _RangeNotSatisfiableError()
            _check_status(url, response)
            if response.status == http.HTTPStatus.PARTIAL_CONTENT:
                start = _content_range_start(response.headers.get("Content-Range", ""))
                if not offset or start != offset:
                    raise StreamError(
                        f"cannot download {url}: asked for bytes from {offset}, got a partial "
                        f"response with Content-Range {response.headers.get('Content-Range')!r}"
                    )
                return response, offset
            return response, 0
        except BaseException:
            response.close()
            raise

    def _retrying(self, url: str, attempt: Callable[[], _T]) -> _T:
        """Run ``attempt`` until it succeeds, retrying retryable failures with back-off.

        Args:
            url: The URL, for the final error message.
            attempt: One try; raises :class:`_RetryableError` for failures worth repeating.

        Returns:
            What the successful attempt returned.

        Raises:
            TransientError: Every attempt failed.
        """
        attempts = self._settings.retries
        reason = ""
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except _RetryableError as failure:
                reason = failure.reason
                if number < attempts:
                    self._sleep(self._settings.backoff_delay(number))
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise TransientError(f"cannot fetch {url}: gave up after {tries}; last failure: {reason}")

    def _open(self, url: str, headers: Mapping[str, str]) -> Response:
        """Send one GET (following redirects) and return the open, streaming response.

        Args:
            url: An http(s) URL.
            headers: Extra request headers.

        Returns:
            The final response, body not yet read.

        Raises:
            _RetryableError: Connection failure, timeout, or a retryable TLS failure.
            StreamError: TLS verification failure, bad redirect, malformed URL.
        """
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            proxy = self._proxy_for(current)
            try:
                response = self._pool.get(current, headers, proxy)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise _classify(url, exc, self._settings) from exc
            if response.status not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise StreamError(
                    f"cannot fetch {url}: HTTP {response.status} redirect without a Location"
                )
            try:
                target = urljoin(current, location)
                scheme = urlsplit(target).scheme.lower()
            except ValueError as exc:
                raise StreamError(
                    f"cannot fetch {url}: redirected to an invalid URL {location!r} ({exc})"
                ) from exc
            if scheme not in ("http", "https"):
                raise StreamError(f"cannot fetch {url}: redirected to unsupported URL {target}")
            if urlsplit(current).scheme.lower() == "https" and scheme == "http":
                raise StreamError(
                    f"cannot fetch {url}: refusing redirect from https to plain http ({target})"
                )
            current = _keep_login(current, target)
        raise StreamError(f"cannot fetch {url}: more than {MAX_REDIRECTS} redirects")

    def _proxy_for(self, url: str) -> str | None:
        """Choose the proxy for one URL, honouring ``no_proxy``.

        Args:
            url: An http(s) URL.

        Returns:
            The proxy URL, or None for a direct connection.
        """
        scheme = urlsplit(url).scheme.lower()
        proxy = self._settings.https_proxy if scheme == "https" else self._settings.http_proxy
        if proxy is None or self._no_proxy.matches_url(url):
            return None
        return proxy

    def _read_body(self, url: str, response: Response) -> bytes:
        """Read a document body, enforcing ``max_document_bytes``.

        Args:
            url: The URL, for messages.
            response: The open response.

        Returns:
            The (content-decoded) body.

        Raises:
            StreamError: The body is larger than the limit, or its content encoding is
                unknown or broken.
            _RetryableError: The connection failed or stalled while reading.
        """
        limit = self._settings.max_document_bytes
        declared = _content_length(response)
        if declared is not None and declared > limit:
            raise StreamError(
                f"{url} is too large: the server announced {declared} bytes, over the "
                f"{_format_size(limit)} limit for metadata documents"
            )
        decoder = _decoder(url, response)
        body = bytearray()
        try:
            while chunk := response.read(64 * 1024):
                if decoder is not None:  # at most one byte over the limit, to tell it
                    chunk, decoder = _decompress(decoder, chunk, limit + 1 - len(body))
                body += chunk
                if len(body) > limit:
                    raise StreamError(
                        f"{url} is too large: stopped reading after {len(body)} bytes, over the "
                        f"{_format_size(limit)} limit for metadata documents"
                    )
        except zlib.error as exc:
            raise StreamError(f"cannot fetch {url}: the body cannot be decoded ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _RetryableError(
                f"reading the body failed: {_describe(exc, self._settings)}"
            ) from exc
        if decoder is not None and not decoder.eof:
            raise StreamError(
                f"cannot fetch {url}: the body cannot be decoded (compressed data cut short)"
            )
        return bytes(body)

    def _read_file_document(self, url: str, parts: SplitResult) -> Document:
        """Read a ``file://`` document, enforcing ``max_document_bytes``.

        Args:
            url: The URL, for messages.
            parts: The parsed URL.

        Returns:
            The document.
        """
        limit = self._settings.max_document_bytes
        with _open_file(url, parts) as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                raise StreamError(
                    f"{url} is too large: {size} bytes, over the {_format_size(limit)} limit "
                    "for metadata documents"
                )
            body = stream.read(limit + 1)
        if len(body) > limit:
            raise StreamError(
                f"{url} is too large: over the {_format_size(limit)} limit for metadata documents"
            )
        return Document(url=url, body=body)

    @contextlib.contextmanager
    def _open_file_download(self, url: str, parts: SplitResult, offset: int) -> Iterator[Download]:
        """Open a ``file://`` URL as a download.

        Args:
            url: The URL.
            parts: The parsed URL.
            offset: Requested start; beyond the end of the file means "start over".

        Yields:
            The download.
        """
        with _open_file(url, parts) as stream:
            size = os.fstat(stream.fileno()).st_size
            honoured = offset if offset <= size else 0
            stream.seek(honoured)
            yield Download(
                url=url,
                status=206 if honoured else 200,
                offset=honoured,
                length=size - honoured,
                chunks=lambda chunk_size: _file_chunks(url, stream, chunk_size),
            )


class NoProxy:
    """A parsed ``no_proxy`` list that decides which hosts bypass the proxy."""

    def __init__(self, spec: str | None) -> None:
        """Parse a ``no_proxy`` value.

        Args:
            spec: Entries separated by commas and/or whitespace (see
                :attr:`FetchSettings.no_proxy`); None or empty means "always use the proxy".
        """
        self.everything = False
        self._domains: list[tuple[str, int | None]] = []
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for entry in (spec or "").replace(",", " ").split():
            self._add(entry.strip().lower())

    def _add(self, entry: str) -> None:
        if entry == "*":
            self.everything = True
            return
        host, port = _split_host_port(entry)
        if host.startswith("*."):
            host = host[2:]
        host = host.lstrip(".").rstrip(".")
        if not host:
            return
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            self._domains.append((host, port))
        else:
            self._networks.append((network, port))

    def matches(self, host: str, port: int | None = None) -> bool:
        """Tell whether a host (and port) bypasses the proxy.

        Args:
            host: Host name or IP address (IPv6 with or without brackets).
            port: Port the connection goes to.

        Returns:
            True for a direct connection.
        """
        if self.everything:
            return True
        host = host.strip("[]").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            for network, wanted in self._networks:
                if address in network and wanted in (None, port):
                    return True
        for domain, wanted in self._domains:
            if (host == domain or host.endswith("." + domain)) and wanted in (None, port):
                return True
        return False

    def matches_url(self, url: str) -> bool:
        """Tell whether the host of a URL bypasses the proxy.

        Args:
            url: An http(s) URL.

        Returns:
            True for a direct connection.
        """
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = 443 if parts.scheme.lower() == "https" else 80
        return self.matches(parts.hostname or "", port)


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """Split a ``no_proxy`` entry into host and optional port.

    Args:
        entry: ``host``, ``host:port``, ``[v6]``, ``[v6]:port``, bare IPv6 or a CIDR range.

    Returns:
        The host part and the port, if one was given.
    """
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _split_url(url: str) -> SplitResult:
    """Parse a URL and check its scheme.

    Args:
        url: The URL.

    Returns:
        Its parts.

    Raises:
        StreamError: The scheme is not one of :data:`SCHEMES` or there is no host.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise StreamError(
            f"cannot fetch {url!r}: unsupported URL scheme {parts.scheme + ':' if scheme else ''}"
            f"{'' if scheme else '(none)'}; use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme != "file" and not parts.hostname:
        raise StreamError(f"cannot fetch {url!r}: the URL has no host name")
    return parts


def _open_file(url: str, parts: SplitResult) -> BinaryIO:
    """Open the file a ``file://`` URL names.

    Args:
        url: The URL, for messages.
        parts: The parsed URL.

    Returns:
        The file, opened for binary reading.

    Raises:
        NotFoundError: The file does not exist.
        StreamError: The URL names another host, a directory, or an unreadable file.
    """
    if parts.netloc not in ("", "localhost"):
        raise StreamError(
            f"cannot read {url}: file URLs must name a local path (file:///path), "
            f"not host {parts.netloc!r}"
        )
    path = unquote(parts.path)  # decoded once: 'a%2520b' names the file 'a%20b'
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError as exc:
        raise NotFoundError(f"{url} not found (no such file)") from exc
    except IsADirectoryError as exc:
        raise StreamError(f"cannot read {url}: it is a directory") from exc
    except OSError as exc:
        raise StreamError(f"cannot read {url}: {exc.strerror or exc}") from exc


def _file_chunks(url: str, stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    """Yield a file's remaining content in chunks.

    Args:
        url: The URL, for messages.
        stream: The open file.
        chunk_size: Largest chunk.

    Yields:
        The chunks.
    """
    while True:
        try:
            chunk = stream.read(chunk_size)
        except OSError as exc:
            raise StreamError(f"cannot read {url}: {exc.strerror or exc}") from exc
        if not chunk:
            return
        yield chunk


def _response_chunks(
    url: str, response: Response, chunk_size: int, settings: FetchSettings
) -> Iterator[bytes]:
    """Yield a response body as served (no content decoding), turning failures into errors.

    Args:
        url: The URL, for messages.
        response: The open streaming response.
        chunk_size: Largest chunk.
        settings: For describing timeouts.

    Yields:
        The chunks.

    Raises:
        TransientError: The connection failed or stalled mid-body.
    """
    received = 0
    try:
        while chunk := response.read(chunk_size):
            received += len(chunk)
            yield chunk
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(
            f"download of {url} broke off after {received} bytes: {_describe(exc, settings)}"
        ) from exc


def _keep_login(current: str, target: str) -> str:
    """Carry the login of ``current`` over to a redirect ``target`` on the same server.

    As requests did: kept when the host, scheme and port stay the same (or http goes to
    https on the default ports), dropped for any other server.

    Args:
        current: The URL that answered with the redirect (with its login, if any).
        target: The absolute URL redirected to.

    Returns:
        ``target``, with the login of ``current`` when it stays on the same server.
    """
    old, new = urlsplit(current), urlsplit(target)
    if old.username is None or new.username is not None:
        return target
    try:
        old_port, new_port = old.port, new.port
    except ValueError:
        return target
    old_scheme, new_scheme = old.scheme.lower(), new.scheme.lower()
    same = old_scheme == new_scheme and (old_port or DEFAULT_PORTS[old_scheme]) == (
        new_port or DEFAULT_PORTS[new_scheme]
    )
    upgraded = old_scheme == "http" and new_scheme == "https" and old_port in (None, 80)
    upgraded = upgraded and new_port in (None, 443)
    if old.hostname != new.hostname or not (same or upgraded):
        return target
    login = old.netloc.rpartition("@")[0]
    return urlunsplit(new._replace(netloc=f"{login}@{new.netloc}"))


def _check_status(url: str, response: Response) -> None:
    """Turn an HTTP error status into the matching exception.

    Args:
        url: The URL, for messages.
        response: The response.

    Raises:
        NotFoundError: 404 or 401.
        _RetryableError: 5xx, 408 or 429.
        StreamError: 403, any other 4xx, or an unexpected status.
    """
    status = response.status
    if 200 <= status < 300:
        return
    label = f"HTTP {status} {_reason(response)}".rstrip()
    if status in _NOT_FOUND_STATUSES:
        raise NotFoundError(f"{url} not found ({label})")
    if status >= 500 or status in _RETRIED_STATUSES:
        raise _RetryableError(label)
    if status == http.HTTPStatus.FORBIDDEN:
        raise StreamError(f"cannot fetch {url}: access denied ({label})")
    raise StreamError(f"cannot fetch {url}: {label}")


def _reason(response: Response) -> str:
    """Return the reason phrase of a response, or the standard one for its status."""
    if response.reason:
        return str(response.reason)
    try:
        return http.HTTPStatus(response.status).phrase
    except ValueError:
        return ""


def _content_length(response: Response) -> int | None:
    """Return the ``Content-Length`` of a response, if it is present and valid."""
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _content_range_start(value: str) -> int | None:
    """Return the first byte position of a ``Content-Range: bytes a-b/n`` header."""
    unit, _, spec = value.strip().partition(" ")
    start = spec.partition("-")[0]
    if unit.lower() != "bytes" or not start.isdigit():
        return None
    return int(start)


def _classify(url: str, exc: BaseException, settings: FetchSettings) -> Exception:
    """Decide whether a failure to get a response is worth another attempt.

    Args:
        url: The URL, for messages.
        exc: The failure (from :mod:`upgrader.transport`, OS or TLS level).
        settings: For describing timeouts.

    Returns:
        A :class:`_RetryableError` or a :class:`StreamError` to raise.
    """
    description = _describe(exc, settings)
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in _causes(exc)):
        return StreamError(
            f"cannot fetch {url}: TLS {description}; if the server's certificate comes from a "
            f"private certificate authority, add that CA to {settings.ca_option}"
        )
    if isinstance(exc, UnsupportedRequestError | ValueError):
        return StreamError(f"cannot fetch {url}: {description}")
    if isinstance(exc, ProxyError):
        return _RetryableError(f"proxy {redact_url(exc.proxy)} failed: {description}")
    return _RetryableError(description)


def _causes(exc: BaseException) -> list[BaseException]:
    """List an exception and everything it wraps (causes, contexts, proxy causes)."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(found) < 32:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "cause", None)]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return found


_PLAIN_CAUSES: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (BrokenPipeError, "connection closed by peer"),
    (http.client.RemoteDisconnected, "the server closed the connection without a response"),
    (http.client.IncompleteRead, "the connection closed before the whole body arrived"),
    (socket.gaierror, "cannot resolve the host name"),
]
"""Low-level failures with a fixed plain-words description, most specific first."""


def _describe(exc: BaseException, settings: FetchSettings) -> str:
    """Describe a network failure in plain words.

    Args:
        exc: The failure (transport, OS, TLS or HTTP protocol level).
        settings: For the timeout values.

    Returns:
        A short description such as ``connection refused``.
    """
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message or cause.reason}"
    for kind, text in _PLAIN_CAUSES:
        if any(isinstance(cause, kind) for cause in causes):
            return text
    if any(isinstance(cause, ConnectTimeoutError) for cause in causes):
        return f"timed out connecting (connect timeout {settings.connect_timeout:g} s)"
    if any(isinstance(cause, TimeoutError) for cause in causes):
        return f"no data received for {settings.read_timeout:g} s (read timeout)"
    return _describe_other(exc, causes)


def _describe_other(exc: BaseException, causes: list[BaseException]) -> str:
    """Describe a failure that is not a common network one: TLS, OS, protocol, or as is."""
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    for cause in causes:
        if isinstance(cause, http.client.HTTPException):
            text = f"not a valid HTTP response ({type(cause).__name__}: {cause})"
            break
    else:
        text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _normalise_proxy(name: str, value: str | None) -> str | None:
    """Check a proxy URL, adding ``http://`` when the scheme is missing.

    Args:
        name: Setting name, for messages.
        value: The configured value.

    Returns:
        The proxy URL, or None when unset.

    Raises:
        InvalidInputError: Not an http(s) URL with a host.
    """
    text = (value or "").strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise InvalidInputError(f"{name}: invalid port in proxy URL {redact_url(text)!r}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"{name}: unsupported proxy URL {redact_url(text)!r}; expected http://host:port "
            "or https://host:port"
        )
    return text


def check_ca_certificates(pem: str) -> str:
    """Check the text of the ``ca-certificates`` option: PEM CA certificates only.

    Args:
        pem: One or more PEM certificates.

    Returns:
        The text, stripped of surrounding whitespace.

    Raises:
        InvalidInputError: ``pem`` holds no valid certificate, or holds a private key.
    """
    if "PRIVATE KEY-----" in pem:
        raise InvalidInputError(
            f"{CA_CERTIFICATES_OPTION}: holds a private key; give only CA certificates "
            "(-----BEGIN CERTIFICATE-----)"
        )
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidInputError(
            f"{CA_CERTIFICATES_OPTION}: no PEM certificate found; expected one or more "
            "-----BEGIN CERTIFICATE----- blocks"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidInputError(
            f"{CA_CERTIFICATES_OPTION}: not valid PEM certificates ({getattr(exc, 'reason', exc)})"
        ) from exc
    return pem.strip()


def _decoder(url: str, response: Response) -> zlib._Decompress | None:
    """Return the decoder a document's ``Content-Encoding`` needs (None for none).

    Raises:
        StreamError: An encoding other than gzip or deflate.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise StreamError(
        f"cannot fetch {url}: the body cannot be decoded (unsupported Content-Encoding "
        f"{encoding!r}; gzip was asked for)"
    )


def _decompress(
    decoder: zlib._Decompress, data: bytes, room: int
) -> tuple[bytes, zlib._Decompress]:
    """Decompress ``data`` into at most ``room`` bytes, going on into further gzip members.

    A gzip body may be several gzip members one after the other (RFC 1952), as gzip, curl and
    requests read it; zlib stops at the end of the first one.

    Returns:
        The decompressed bytes and the decoder to use for the next data.
    """
    out = b""
    while True:
        if decoder.eof:
            data = decoder.unused_data + data
            if not data or not b"\x1f\x8b".startswith(data[:2]):  # trailing bytes: ignored
                return out, decoder
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += decoder.decompress(data, room - len(out))
        if not (decoder.eof and decoder.unused_data) or len(out) >= room:
            return out, decoder
        data = b""


def _format_size(size: int) -> str:
    """Format a byte count for messages (``64 MiB``, ``1000 bytes``)."""
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"
