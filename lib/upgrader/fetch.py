"""Reading metadata documents and downloading tarballs from http(s)://, file:// or a directory.

:class:`Fetcher` is what the rest of the package reads a source with, defensively: proxies only
from :class:`FetchSettings`, TLS always verified, retries with a capped back-off, redirects
followed here (each hop its own proxy decision, never from ``https`` to ``http``), every
transfer bounded in size and time (:mod:`upgrader.watchdog`), and failures worded for an
operator (404 and 401 are :class:`~upgrader.errors.NotFoundError`, as in Juju). The HTTP itself
is requests', through :mod:`upgrader.webclient`, imported for http(s) URLs only.
ARCHITECTURE.md ("HTTP", "Bounds on outside input") has the whole.
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import math
import os
import ssl
import stat
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from upgrader.errors import InvalidInputError, NotFoundError, StreamError, TransientError
from upgrader.urls import redact_url
from upgrader.watchdog import LimitExceededError, Watch

if TYPE_CHECKING:
    from upgrader.webclient import Call, Client, Response

MIB = 1024 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 64 * MIB
"""Largest metadata document accepted by default (official products files are a few MB)."""

DEFAULT_DOCUMENT_TIMEOUT = 300.0
"""Seconds a metadata document may take in all by default: 64 MiB at 2 Mbit/s takes 268 s."""

DEFAULT_MIN_DOWNLOAD_RATE = 8 * 1024
"""Bytes per second a download must keep up by default (a 2 Mbit/s link shared by four
downloads gives each ~60 KiB/s)."""

DEFAULT_MIN_RATE_WINDOW = 60.0
"""Seconds over which the download rate is judged by default."""

MAX_BACKOFF = 5.0
"""Longest pause between two attempts, in seconds (a server's ``Retry-After`` aside)."""

MAX_REDIRECTS = 10
"""Most redirects followed for one request."""

MAX_HEADER_DIGITS = 18
"""Most digits accepted in a number of bytes sent in a header (under 1 EB)."""

SCHEMES = ("http", "https", "file")
"""URL schemes the fetcher accepts."""

DEFAULT_PORTS = {"http": 80, "https": 443}

CA_CERTIFICATES_OPTION = "ca-certificates"
"""Name of the operator-facing option that holds extra CA certificates (PEM)."""

USER_AGENT = "juju-upgrader"

_NOT_FOUND_STATUSES = frozenset({401, 404})
"""HTTP statuses that mean "not here, try the next path or source", as in Juju."""

RETRIED_STATUSES = frozenset({408, 429, *range(500, 600)})
"""HTTP statuses worth another attempt."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_CHARM_PROXY_SETTINGS = (
    ("JUJU_CHARM_HTTP_PROXY", "juju-http-proxy"),
    ("JUJU_CHARM_HTTPS_PROXY", "juju-https-proxy"),
)
"""The proxy variables Juju gives a charm, and the model settings they come from."""

_SECONDS = "must be a number of seconds"
_NUMBERS: dict[str, tuple[float, bool, float, str]] = {
    "connect_timeout": (0, False, 3600, _SECONDS),
    "read_timeout": (0, False, 3600, _SECONDS),
    "document_timeout": (0, False, 86400, _SECONDS),
    "min_rate_window": (0, False, 3600, _SECONDS),
    "backoff": (0, True, 3600, _SECONDS),
    "min_download_rate": (1, True, 2**40, "must be a whole number of bytes per second"),
    "max_document_bytes": (1, True, 2**40, "must be a whole number of bytes"),
    "retries": (1, True, 100, "counts attempts and must be a whole number"),
}
"""Numeric settings: lowest value, whether it is allowed, highest value, what they are."""


@dataclass(frozen=True)
class FetchSettings:
    """How a :class:`Fetcher` reaches the network, and the bounds it keeps.

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
        connect_timeout: Seconds to wait for a connection (TCP, proxy tunnel, TLS handshake).
        read_timeout: Seconds to wait for each read from the server; a server that sends
            nothing for this long is cut off, even in the middle of a body.
        retries: Attempts in total (not extra attempts) for one request; 1 to 100.
        backoff: Pause before the second attempt, in seconds; it doubles before every
            further attempt, capped at :data:`MAX_BACKOFF`.
        max_document_bytes: Largest metadata document :meth:`Fetcher.get_document` reads.
        document_timeout: Seconds one :meth:`Fetcher.get_document` may take in all: every
            attempt, redirect and pause, and the body (default 300: at 2 Mbit/s, enough for
            a document of the default 64 MiB limit).
        min_download_rate: Bytes per second a download must keep up (default 8 KiB/s: a
            2 Mbit/s link shared by four downloads gives each ~60 KiB/s); judged over
            every ``min_rate_window`` seconds, waiting for the answer included.
        min_rate_window: Seconds over which ``min_download_rate`` is judged (default 60).
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
    document_timeout: float = DEFAULT_DOCUMENT_TIMEOUT
    min_download_rate: int = DEFAULT_MIN_DOWNLOAD_RATE
    min_rate_window: float = DEFAULT_MIN_RATE_WINDOW
    ca_option: str = CA_CERTIFICATES_OPTION

    def __post_init__(self) -> None:
        """Normalise empty strings to None and check every value.

        Raises:
            InvalidInputError: A proxy URL is not an http(s) URL, or a number is out of range.
        """
        for name in ("http_proxy", "https_proxy"):
            object.__setattr__(self, name, _normalise_proxy(name, getattr(self, name)))
        for name in ("no_proxy", "ca_certificates"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{name} must be text, not {type(value).__name__}")
        no_proxy = (self.no_proxy or "").strip()
        object.__setattr__(self, "no_proxy", no_proxy or None)
        if self.ca_certificates is not None and not self.ca_certificates.strip():
            object.__setattr__(self, "ca_certificates", None)
        for name, (lowest, inclusive, highest, form) in _NUMBERS.items():
            _check_number(name, getattr(self, name), lowest, inclusive, highest, form)

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
            The settings, with default timeouts, retries and bounds.

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
            The settings, with default timeouts, retries and bounds.
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
        return min(self.backoff * 2 ** min(attempt - 1, 64), MAX_BACKOFF)


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
        """Stream the body, as served (no content decoding), as it arrives.

        Args:
            chunk_size: Largest chunk to yield, in bytes.

        Yields:
            Consecutive pieces of the body.

        Raises:
            TransientError: The connection failed, stalled (read timeout) or fell below the
                minimum rate mid-body.
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
        self._ca_certificates = ca_certificates
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def settings(self) -> FetchSettings:
        """The settings this fetcher was built with."""
        return self._settings

    def close(self) -> None:
        """Close the idle connections kept for reuse."""
        with self._lock:
            finalizer = self._finalizer
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> Fetcher:
        """Use the fetcher as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the fetcher."""
        self.close()

    def _http(self) -> Client:
        """The HTTP client, made (and requests imported) on first use."""
        with self._lock:
            if self._client is None:
                from upgrader.webclient import Client  # noqa: PLC0415 - only http(s) needs it

                settings = self._settings
                self._client = Client(
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.read_timeout,
                    retries=settings.retries,
                    backoff_delay=settings.backoff_delay,
                    retried_statuses=RETRIED_STATUSES,
                    user_agent=USER_AGENT,
                    proxies=(settings.http_proxy, settings.https_proxy),
                    ca_certificates=self._ca_certificates,
                    sleep=self._sleep,
                )
                self._finalizer = weakref.finalize(self, self._client.close)
            return self._client

    def get_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Document:
        """Read a whole (metadata) document, within ``document_timeout`` seconds in all.

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
                retryable status, or the document did not arrive within
                ``document_timeout``.
            StreamError: Any other failure: unsupported scheme, other HTTP errors (403
                included, and 304 to a request without validators), TLS verification
                failure, a body over ``max_document_bytes``, a malformed header, a ``file://``
                URL naming something else than a file.
        """
        parts = _split_url(url)
        if parts.scheme.lower() == "file":
            return self._read_file_document(url, parts)
        headers = {"Accept-Encoding": "gzip"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        client = self._http()
        limit = self._settings.document_timeout
        with Watch(deadline=limit) as watch:
            try:
                return self._read_document(url, headers, client.call(watch), etag, last_modified)
            except (StreamError, LimitExceededError) as exc:
                if watch.broken is None:
                    raise
                raise TransientError(
                    f"cannot fetch {url}: not complete within {limit:g} s (document timeout)"
                ) from exc

    def _read_document(
        self,
        url: str,
        headers: Mapping[str, str],
        call: Call,
        etag: str | None,
        last_modified: str | None,
    ) -> Document:
        """Read a document over http(s), starting over when its body breaks off."""
        from upgrader.webclient import GaveUpError, ReadError  # noqa: PLC0415

        while True:
            with self._open(url, headers, call) as response:
                if response.status == http.HTTPStatus.NOT_MODIFIED:
                    if not (etag or last_modified):  # no document it could stand for
                        raise StreamError(
                            f"cannot fetch {url}: HTTP 304 Not Modified answers a conditional "
                            "request, and this one was not (no If-None-Match or "
                            "If-Modified-Since was sent)"
                        )
                    return Document(
                        url=url,
                        body=b"",
                        etag=response.headers.get("ETag") or etag,
                        last_modified=response.headers.get("Last-Modified") or last_modified,
                        not_modified=True,
                    )
                self._check_status(url, response)
                if response.status == http.HTTPStatus.PARTIAL_CONTENT:
                    raise StreamError(f"cannot fetch {url}: unexpected partial content (HTTP 206)")
                try:
                    body = self._read_body(url, response)
                except ReadError as failure:
                    broken = failure
                else:
                    return Document(
                        url=url,
                        body=body,
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                    )
            try:  # the broken answer closed: count the attempt, pause, try again
                call.failed(broken)
            except GaveUpError as gave_up:
                raise self._gave_up(url, f"reading the body failed: {gave_up}") from None

    @contextlib.contextmanager
    def open_download(self, url: str, *, offset: int = 0) -> Iterator[Download]:
        """Open a URL for streaming, optionally resuming at a byte offset.

        With ``offset > 0`` an HTTP ``Range: bytes=<offset>-`` request is made. If the server
        ignores it (200), ``Download.offset`` is 0; if it refuses it (416, e.g. the file got
        shorter), the whole file is requested again and ``offset`` is 0 as well. Over http(s)
        the transfer must keep up ``min_download_rate``, waiting for the answer included.

        Args:
            url: An ``http``, ``https`` or ``file`` URL.
            offset: Bytes already held by the caller.

        Yields:
            The open :class:`Download`; its connection is closed when the block ends.

        Raises:
            NotFoundError: HTTP 404/401, or a missing file.
            TransientError: No response could be established after all attempts, or none
                within the minimum rate; or (from ``iter_chunks``) the transfer broke off.
            StreamError: Other failures, as for :meth:`get_document`.
        """
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        parts = _split_url(url)
        if parts.scheme.lower() == "file":
            with self._open_file_download(url, parts, offset) as download:
                yield download
            return
        client = self._http()
        settings = self._settings
        with Watch(min_rate=settings.min_download_rate, window=settings.min_rate_window) as watch:
            try:
                try:
                    response, honoured = self._open_range(url, offset, client.call(watch))
                except _RangeNotSatisfiableError:
                    response, honoured = self._open_range(url, 0, client.call(watch))
            except (StreamError, LimitExceededError) as exc:
                if watch.broken is None:
                    raise
                raise TransientError(f"cannot fetch {url}: {self._too_slow()}") from exc
            with response:
                yield Download(
                    url=url,
                    status=response.status,
                    offset=honoured,
                    length=_content_length(url, response.headers),
                    chunks=lambda size: self._response_chunks(url, response, size, watch),
                )

    def _open_range(self, url: str, offset: int, call: Call) -> tuple[Response, int]:
        """Open a (ranged) download request.

        Args:
            url: The URL.
            offset: Byte offset to ask for (0 for the whole file).
            call: The attempts left, and the watch.

        Returns:
            The open response and the offset its body starts at.

        Raises:
            _RangeNotSatisfiableError: HTTP 416 for a ranged request.
        """
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._open(url, headers, call)
        try:
            if offset and response.status == http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
                raise _RangeNotSatisfiableError()
            self._check_status(url, response)
            _content_length(url, response.headers)  # refused now if malformed
            if response.status == http.HTTPStatus.PARTIAL_CONTENT:
                value = response.headers.get("Content-Range", "")
                start = _content_range_start(url, value)
                if not offset or start != offset:
                    raise StreamError(
                        f"cannot download {url}: asked for bytes from {offset}, got a partial "
                        f"response with Content-Range {_quote_header(value)}"
                    )
                return response, offset
            return response, 0
        except BaseException:
            response.close()
            raise

    def _open(self, url: str, headers: Mapping[str, str], call: Call) -> Response:
        """Send a GET, following redirects, and return the open response, body unread.

        Args:
            url: An http(s) URL.
            headers: Extra request headers.
            call: The attempts left (shared by every hop), and the watch.

        Returns:
            The final response.

        Raises:
            TransientError: Every attempt failed (connection failure, timeout).
            StreamError: TLS verification failure, bad redirect, malformed URL.
            LimitExceededError: The watch's bound was broken.
        """
        from upgrader.webclient import GaveUpError, RefusedError  # noqa: PLC0415

        client = self._http()
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            call.watch.check()
            try:
                response = client.get(current, headers, self._proxy_for(current), call)
            except RefusedError as refused:
                if refused.tls_verification:
                    raise StreamError(
                        f"cannot fetch {url}: {refused}; if the server's certificate comes from "
                        f"a private certificate authority, add that CA to "
                        f"{self._settings.ca_option}"
                    ) from None
                raise StreamError(f"cannot fetch {url}: {refused}") from None
            except GaveUpError as gave_up:
                raise self._gave_up(url, str(gave_up)) from None
            if response.status not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            response.close()
            current = _redirect_target(url, current, response.status, location)
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

    def _check_status(self, url: str, response: Response) -> None:
        """Turn an HTTP error status into the matching exception.

        Raises:
            NotFoundError: 404 or 401.
            TransientError: 5xx, 408 or 429 (it was retried: no attempt is left).
            StreamError: 403, any other 4xx, or an unexpected status.
        """
        status = response.status
        if 200 <= status < 300:
            return
        label = f"HTTP {status} {_reason(response)}".rstrip()
        if status in _NOT_FOUND_STATUSES:
            raise NotFoundError(f"{url} not found ({label})")
        if status in RETRIED_STATUSES:
            raise self._gave_up(url, label)
        if status == http.HTTPStatus.FORBIDDEN:
            raise StreamError(f"cannot fetch {url}: access denied ({label})")
        raise StreamError(f"cannot fetch {url}: {label}")

    def _gave_up(self, url: str, reason: str) -> TransientError:
        """The error for a fetch whose every attempt failed."""
        attempts = self._settings.retries
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        return TransientError(f"cannot fetch {url}: gave up after {tries}; last failure: {reason}")

    def _too_slow(self) -> str:
        """How a download below the minimum rate is described."""
        settings = self._settings
        return (
            f"slower than {_format_size(settings.min_download_rate)}/s for "
            f"{settings.min_rate_window:g} s (minimum download rate)"
        )

    def _read_body(self, url: str, response: Response) -> bytes:
        """Read a document body, enforcing ``max_document_bytes``.

        Args:
            url: The URL, for messages.
            response: The open response.

        Returns:
            The (content-decoded) body.

        Raises:
            StreamError: The body is larger than the limit, its content encoding is unknown
                or broken, or its length is malformed.
            ReadError: The connection failed or stalled while reading.
        """
        limit = self._settings.max_document_bytes
        declared = _content_length(url, response.headers)
        if declared is not None and declared > limit:
            raise StreamError(
                f"{url} is too large: the server announced {declared} bytes, over the "
                f"{_format_size(limit)} limit for metadata documents"
            )
        decoder = _decoder(url, response.headers)
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
        if decoder is not None and not decoder.eof:
            raise StreamError(
                f"cannot fetch {url}: the body cannot be decoded (compressed data cut short)"
            )
        return bytes(body)

    def _response_chunks(
        self, url: str, response: Response, chunk_size: int, watch: Watch
    ) -> Iterator[bytes]:
        """Yield a download's body as it arrives, turning failures into errors.

        Raises:
            TransientError: The connection failed, stalled, or fell below the minimum rate.
        """
        from upgrader.webclient import ReadError  # noqa: PLC0415

        received = 0
        try:
            while chunk := response.read(chunk_size):
                received += len(chunk)
                yield chunk
        except (ReadError, LimitExceededError) as exc:
            reason = self._too_slow() if watch.broken else str(exc)
            raise TransientError(
                f"download of {url} broke off after {received} bytes: {reason}"
            ) from exc

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
        if not rest:
            return host, None
        port = _port_number(rest[1:]) if rest.startswith(":") else None
        # A bad port makes the entry match nothing, as in Go's httpproxy (Juju's clients),
        # rather than every port of the host.
        return (host, port) if port is not None else (entry, None)
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        number = _port_number(port)
        if number is not None:
            return host, number
    return entry, None


def _port_number(text: str) -> int | None:
    """A port written in at most five ASCII digits, or None.

    ``str.isdigit`` takes other digits (``\u00b2``) and any number of them, which ``int`` refuses
    with a ValueError.
    """
    return int(text) if 0 < len(text) <= 5 and text.isascii() and text.isdigit() else None


def _split_url(url: str) -> SplitResult:
    """Parse a URL and check its scheme, host and port.

    Args:
        url: The URL.

    Returns:
        Its parts.

    Raises:
        StreamError: The scheme is not one of :data:`SCHEMES`, there is no host, or the
            port is not a number.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StreamError(f"cannot fetch {url!r}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise StreamError(
            f"cannot fetch {url!r}: unsupported URL scheme {parts.scheme + ':' if scheme else ''}"
            f"{'' if scheme else '(none)'}; use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme != "file" and not parts.hostname:
        raise StreamError(f"cannot fetch {url!r}: the URL has no host name")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:  # its message quotes the port: a password cut at an unencoded "/"
        raise StreamError(f"cannot fetch {url!r}: the URL's port is not a number") from None
    return parts


def _redirect_target(url: str, current: str, status: int, location: str | None) -> str:
    """Check a redirect and return the URL to request next.

    Args:
        url: The URL first asked for, for messages.
        current: The URL that answered with the redirect.
        status: Its status.
        location: Its ``Location`` header.

    Returns:
        The absolute target, with the login of ``current`` if it is the same server.

    Raises:
        StreamError: No or an invalid location, another scheme than http(s), or a
            redirect from https to plain http.
    """
    if not location:
        raise StreamError(f"cannot fetch {url}: HTTP {status} redirect without a Location")
    try:
        target = urljoin(current, location)
        target_parts = urlsplit(target)
        target_parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise StreamError(
            f"cannot fetch {url}: redirected to an invalid URL {_quote_header(location)} ({exc})"
        ) from exc
    scheme = target_parts.scheme.lower()
    if scheme not in ("http", "https") or not target_parts.hostname:
        raise StreamError(f"cannot fetch {url}: redirected to unsupported URL {target}")
    if urlsplit(current).scheme.lower() == "https" and scheme == "http":
        raise StreamError(
            f"cannot fetch {url}: refusing redirect from https to plain http ({target})"
        )
    return _keep_login(current, target)


def _keep_login(current: str, target: str) -> str:
    """Carry the login of ``current`` over to a redirect ``target`` on the same server.

    As requests does for its own redirects: kept when the host, scheme and port stay the
    same (or http goes to https on the default ports), dropped for any other server.

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


def _open_file(url: str, parts: SplitResult) -> BinaryIO:
    """Open the regular file a ``file://`` URL names.

    It is opened without blocking and checked before anything is read: a FIFO would block
    the open until a writer came, and a device (``/dev/zero``) would never end.

    Args:
        url: The URL, for messages.
        parts: The parsed URL.

    Returns:
        The file, opened for binary reading.

    Raises:
        NotFoundError: The file does not exist.
        StreamError: The URL names another host, a path holding a NUL, a directory, something
            else than a regular file, or an unreadable file.
    """
    if parts.netloc not in ("", "localhost"):
        raise StreamError(
            f"cannot read {url}: file URLs must name a local path (file:///path), "
            f"not host {parts.netloc!r}"
        )
    # Decoded once ('a%2520b' names the file 'a%20b'), into the bytes of the name: %FF from a
    # name in another encoding stays 0xFF (os.open encodes the surrogate back).
    path = unquote(parts.path, errors="surrogateescape")
    if "\x00" in path:  # os.open would raise ValueError
        raise StreamError(f"cannot read {url}: a file path cannot hold a NUL character (%00)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{url} not found (no such file)") from exc
    except OSError as exc:
        raise StreamError(f"cannot read {url}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise StreamError(f"cannot read {url}: {_not_a_file(mode)}; a regular file is needed")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


_FILE_KINDS = (
    (stat.S_ISDIR, "it is a directory"),
    (stat.S_ISFIFO, "it is a FIFO (named pipe)"),
    (stat.S_ISCHR, "it is a character device"),
    (stat.S_ISBLK, "it is a block device"),
    (stat.S_ISSOCK, "it is a socket"),
)


def _not_a_file(mode: int) -> str:
    """Say what a file that is not a regular file is."""
    return next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")


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


def _reason(response: Response) -> str:
    """Return the reason phrase of a response, or the standard one for its status."""
    if response.reason:
        return str(response.reason)
    try:
        return http.HTTPStatus(response.status).phrase
    except ValueError:
        return ""


def _byte_count(text: str) -> int | None:
    """A number of bytes written in ASCII digits (at most :data:`MAX_HEADER_DIGITS`), or None.

    ``str.isdigit`` and ``int`` accept other digits (``²``, ``٣``), and ``int`` refuses
    thousands of digits with a ValueError: neither belongs in an HTTP header.
    """
    if 0 < len(text) <= MAX_HEADER_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def _quote_header(value: str) -> str:
    """Quote a header value for a message, shortened if long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _content_length(url: str, headers: Mapping[str, str]) -> int | None:
    """Return the ``Content-Length`` of a response, if it has one.

    Raises:
        StreamError: It is not a number of bytes in at most 18 ASCII digits.
    """
    value = headers.get("Content-Length")
    if value is None:
        return None
    length = _byte_count(value.strip())
    if length is None:
        raise StreamError(
            f"cannot fetch {url}: invalid Content-Length header {_quote_header(value)}; "
            f"expected a number of bytes in at most {MAX_HEADER_DIGITS} ASCII digits"
        )
    return length


def _content_range_start(url: str, value: str) -> int:
    """Return the first byte position of a ``Content-Range: bytes first-last/length`` header.

    Raises:
        StreamError: The header is missing or not of that form, its numbers ASCII digits of
            at most 18 (``*`` for an unknown length), with ``first <= last < length``.
    """
    unit, _, spec = value.strip().partition(" ")
    span, _, total = spec.strip().partition("/")
    first, _, last = span.partition("-")
    start, end = _byte_count(first), _byte_count(last)
    size = None if total == "*" else _byte_count(total)
    valid = unit.lower() == "bytes" and start is not None and end is not None and start <= end
    if not valid or (total != "*" and (size is None or end >= size)):  # type: ignore[operator]
        raise StreamError(
            f"cannot fetch {url}: invalid Content-Range header {_quote_header(value)}; "
            f"expected bytes FIRST-LAST/LENGTH in ASCII digits (at most {MAX_HEADER_DIGITS} "
            "each)"
        )
    assert start is not None  # noqa: S101 - checked above
    return start


def _check_number(
    name: str, value: object, lowest: float, inclusive: bool, highest: float, form: str
) -> None:
    """Check a numeric setting.

    Raises:
        InvalidInputError: ``value`` is not a number (or not a whole one, when ``form`` says
            whole), is not finite, or is out of range; the message gives the accepted form.
    """
    kinds = (int,) if "a whole number" in form else (int, float)
    above = f"{lowest:g} or more" if inclusive else f"above {lowest:g}"
    refused = InvalidInputError(f"{name} {form}, {above} and at most {highest:g}, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise refused
    number = float(value)
    too_low = number < lowest if inclusive else number <= lowest
    if not math.isfinite(number) or too_low or number > highest:
        raise refused


def _normalise_proxy(name: str, value: str | None) -> str | None:
    """Check a proxy URL, adding ``http://`` when the scheme is missing.

    Args:
        name: Setting name, for messages.
        value: The configured value.

    Returns:
        The proxy URL, or None when unset.

    Raises:
        InvalidInputError: Not an http(s) URL with a host, or not a URL at all.
    """
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{name}: expected a proxy URL (http://host:port), not {value!r}")
    text = (value or "").strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise InvalidInputError(
            f"{name}: invalid proxy URL {redact_url(text)!r}; expected http://host:port or "
            "https://host:port"
        ) from None
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
        # OpenSSL gives no reason for a block it cannot decode (the SSLError's is None).
        reason = getattr(exc, "reason", None) or (
            "a -----BEGIN CERTIFICATE----- block does not hold a base64 DER certificate"
        )
        raise InvalidInputError(
            f"{CA_CERTIFICATES_OPTION}: not valid PEM certificates ({reason}); expected one or "
            "more -----BEGIN CERTIFICATE----- blocks"
        ) from exc
    return pem.strip()


def _decoder(url: str, headers: Mapping[str, str]) -> zlib._Decompress | None:
    """Return the decoder a document's ``Content-Encoding`` needs (None for none).

    Raises:
        StreamError: An encoding other than gzip or deflate.
    """
    encoding = headers.get("Content-Encoding", "").strip().lower()
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
