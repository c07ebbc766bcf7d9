"""The HTTP client under :class:`upgrader.fetch.Fetcher`: a requests session, set up for it.

requests, on urllib3, speaks HTTP, proxies and TLS. This module sets it up as the fetcher needs
it (one TLS context, no cookies, no proxy or ``.netrc`` from the environment, the fetcher's
retries and back-off) and adds what it leaves out: logins sent as UTF-8 Basic authorization,
at most :data:`MAX_INTERIM` informational answers, every socket attached to the transfer's
:class:`~upgrader.watchdog.Watch`, and failures in plain words. The fetcher imports it for
http(s) URLs only. ARCHITECTURE.md ("HTTP") has the details.
"""

from __future__ import annotations

import base64
import contextvars
import email.utils
import http.client
import http.cookiejar
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from urllib3.util.retry import Retry

from upgrader.urls import redact_url
from upgrader.watchdog import LimitExceededError, Watch

MAX_RETRY_AFTER = 60.0
"""Longest pause a server's ``Retry-After`` gets, in seconds."""

MAX_INTERIM = 10
"""Most informational (1xx) answers accepted before the final one."""

POOL_SIZE = 16
"""Idle connections kept per server (and proxy)."""

_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "upgrader_webclient_call", default=None
)
"""The fetch this thread is making a request for: its watch and its attempts left."""


class RequestError(Exception):
    """A request failed; :attr:`description` says why in plain words."""

    def __init__(self, description: str) -> None:
        """Record the description."""
        super().__init__(description)
        self.description = description


class GaveUpError(RequestError):
    """Every attempt failed; the description is the last failure's."""


class RefusedError(RequestError):
    """The request failed in a way another attempt cannot fix (a bad URL, TLS verification)."""

    def __init__(self, description: str, *, tls_verification: bool = False) -> None:
        """Record the description, and whether a certificate was not trusted."""
        super().__init__(description)
        self.tls_verification = tls_verification


class ReadError(RequestError):
    """Reading a body broke off; ``error`` is what urllib3 raised."""

    def __init__(self, description: str, error: Exception) -> None:
        """Record the description and the failure."""
        super().__init__(description)
        self.error = error


class TooManyInterimResponses(http.client.HTTPException):
    """The server sent more than :data:`MAX_INTERIM` informational answers."""


class _StaleConnection(http.client.RemoteDisconnected):
    """A kept-alive connection was closed by the server as the request went out."""


class Call:
    """One fetch in progress: the watch bounding it and the attempts it has left.

    Attributes:
        watch: The fetch's time bounds.
        retry: urllib3's account of the attempts made and left; requests made for this call
            start from it, and it follows each response (redirect hops share it).
    """

    def __init__(self, watch: Watch, retry: Retry) -> None:
        """Start a call with a full set of attempts."""
        self.watch = watch
        self.retry = retry

    def failed(self, failure: ReadError) -> None:
        """Count an attempt whose body broke off, and pause before the next one.

        Raises:
            GaveUpError: That was the last attempt.
            LimitExceededError: The watch is broken, or the pause would break its deadline.
        """
        try:
            self.retry = self.retry.increment("GET", error=failure.error)
        except urllib3.exceptions.MaxRetryError:
            raise GaveUpError(failure.description) from None
        self.retry.sleep()


class Response:
    """An open response, its body still to read (as served: no content decoding).

    Attributes:
        status: The HTTP status.
        reason: The reason phrase as sent.
        headers: The headers (case-insensitive).
    """

    def __init__(self, response: requests.Response, watch: Watch, client: Client) -> None:
        """Wrap a streaming requests response."""
        self._response = response
        self._watch = watch
        self._client = client
        self.status = response.status_code
        self.reason = response.reason or ""
        self.headers: Mapping[str, str] = response.headers

    def read(self, amount: int) -> bytes:
        """Read what arrives next of the body, up to ``amount`` bytes; ``b""`` at its end.

        Raises:
            ReadError: The connection failed, stalled (read timeout) or ended early.
            LimitExceededError: The watch's bound was broken.
        """
        try:
            data = self._response.raw.read1(amount, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            self._watch.check()
            raise ReadError(self._client.describe(exc), exc) from exc
        if not data:  # a body that ends with the connection ends early if the watch cut it
            self._watch.check()
            return b""
        self._watch.count(len(data))
        return data

    def close(self) -> None:
        """Finish: the connection is kept for reuse only if the body was read to its end."""
        self._response.close()

    def __enter__(self) -> Response:
        """Use the response as a context manager that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the response."""
        self.close()


class Client:
    """A requests session for the fetcher; may be shared by threads."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        backoff_delay: Callable[[int], float],
        retried_statuses: frozenset[int],
        user_agent: str,
        proxies: tuple[str | None, ...] = (),
        ca_certificates: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Set the session up.

        Args:
            connect_timeout: Seconds allowed for connecting (TCP, proxy tunnel, TLS).
            read_timeout: Seconds allowed for each read.
            retries: Attempts in all for one call.
            backoff_delay: The pause after failed attempt number N (1-based), a server's
                ``Retry-After`` aside (:meth:`upgrader.fetch.FetchSettings.backoff_delay`).
            retried_statuses: HTTP statuses worth another attempt.
            user_agent: ``User-Agent`` of every request.
            proxies: The proxy URLs :meth:`get` may be given (their logins are taken out
                here, and sent as ``Proxy-Authorization``).
            ca_certificates: Extra PEM CA certificates to trust.
            sleep: Waits between attempts.
        """
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retries = retries
        self._backoff_delay = backoff_delay
        self._retried_statuses = retried_statuses
        self._sleep = sleep
        self._ca_certificates = ca_certificates
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        session = _Session()
        session.trust_env = False  # no proxy variables, no .netrc: the fetcher decides
        session.headers.clear()
        session.headers["User-Agent"] = user_agent
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        logins = dict(without_login(proxy) for proxy in proxies if proxy)
        adapter = _Adapter(self.tls_context, logins)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    def call(self, watch: Watch) -> Call:
        """Start a fetch bounded by ``watch``, with every attempt still to make."""
        retry = _Retry(
            total=self._retries - 1,
            redirect=False,  # the fetcher follows redirects, deciding the proxy of each hop
            allowed_methods=frozenset({"GET"}),
            status_forcelist=self._retried_statuses,
            raise_on_status=False,  # the last answer is returned, to be reported
            respect_retry_after_header=True,
            watch=watch,
            sleep_function=self._sleep,
            backoff_delay=self._backoff_delay,
        )
        return Call(watch, retry)

    def get(self, url: str, headers: Mapping[str, str], proxy: str | None, call: Call) -> Response:
        """Send a GET (no redirect followed) and return the response, its body unread.

        Args:
            url: An http(s) URL (credentials in it are sent as Basic authorization).
            headers: Extra request headers.
            proxy: Proxy URL, or None for a direct connection.
            call: The fetch this request is for.

        Returns:
            The response; retryable statuses come back only once no attempt is left.

        Raises:
            GaveUpError: Every attempt failed (connection, timeout, protocol, proxy failures).
            RefusedError: The URL cannot be requested, or a certificate is not trusted.
            LimitExceededError: The watch's bound was broken.
        """
        scheme = url.partition(":")[0].lower()
        target, authorization = without_login(url)
        sent = dict(headers)
        if authorization is not None:
            sent["Authorization"] = authorization
        token = _CURRENT.set(call)
        try:
            response = self._session.get(
                target,
                headers=sent,
                proxies={scheme: without_login(proxy)[0]} if proxy else {},
                stream=True,
                allow_redirects=False,
                timeout=(self._connect_timeout, self._read_timeout),
                verify=True,
            )
        except LimitExceededError:
            raise
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as exc:
            call.watch.check()
            raise self._failure(exc, proxy) from exc
        finally:
            _CURRENT.reset(token)
        if call.watch.broken is not None:  # the answer came as the watch cut it: cut short
            response.close()
            call.watch.check()
        if isinstance(response.raw.retries, Retry):
            call.retry = response.raw.retries
        return Response(response, call.watch, self)

    def close(self) -> None:
        """Close the idle connections."""
        self._session.close()

    def tls_context(self) -> ssl.SSLContext:
        """The verifying TLS context, made on first use (loading the CAs takes time)."""
        with self._lock:
            if self._context is None:
                self._context = tls_context(self._ca_certificates)
            return self._context

    def _failure(self, exc: BaseException, proxy: str | None) -> RequestError:
        """Tell a failed request as a :class:`GaveUpError` or a :class:`RefusedError`."""
        causes = _causes(exc)
        description = self.describe(exc)
        if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
            return RefusedError(f"TLS {description}", tls_verification=True)
        if any(isinstance(cause, urllib3.exceptions.ProxyError) for cause in causes) and proxy:
            description = f"proxy {redact_url(proxy)} failed: {description}"
        if any(isinstance(cause, urllib3.exceptions.MaxRetryError) for cause in causes):
            return GaveUpError(description)
        if isinstance(exc, ValueError | urllib3.exceptions.LocationValueError):
            return RefusedError(description)
        return GaveUpError(description)

    def describe(self, exc: BaseException) -> str:
        """Describe a network failure in plain words (``connection refused``).

        Args:
            exc: The failure (requests, urllib3, OS, TLS or HTTP protocol level).

        Returns:
            A short description.
        """
        causes = _causes(exc)
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return f"certificate verify failed: {cause.verify_message or cause.reason}"
        for kind, text in _PLAIN_CAUSES:
            if any(isinstance(cause, kind) for cause in causes):
                return text
        for cause in causes:
            if isinstance(cause, TooManyInterimResponses):
                return str(cause)
        if any(
            isinstance(cause, urllib3.exceptions.ConnectTimeoutError)
            and not isinstance(cause, urllib3.exceptions.NewConnectionError)
            for cause in causes
        ):
            return f"timed out connecting (connect timeout {self._connect_timeout:g} s)"
        if any(
            isinstance(cause, TimeoutError | urllib3.exceptions.ReadTimeoutError)
            for cause in causes
        ):
            return f"no data received for {self._read_timeout:g} s (read timeout)"
        return _describe_other(exc, causes)


_PLAIN_CAUSES: list[tuple[type[BaseException], str]] = [
    (ConnectionRefusedError, "connection refused"),
    (http.client.RemoteDisconnected, "the server closed the connection without a response"),
    (ConnectionResetError, "connection reset by peer"),
    (BrokenPipeError, "connection closed by peer"),
    (http.client.IncompleteRead, "the connection closed before the whole body arrived"),
    (socket.gaierror, "cannot resolve the host name"),
]
"""Low-level failures with a fixed plain-words description, most specific first."""

_WRAPPERS = (
    requests.RequestException,
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.ProxyError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.SSLError,
)
"""Exceptions that only carry another one: their own text is not worth showing."""


def without_login(url: str) -> tuple[str, str | None]:
    """Take the login out of a URL, as a Basic ``Authorization`` value (UTF-8, RFC 7617).

    urllib3 refuses some characters a pasted password may hold (a backslash, quotes), and
    requests encodes logins in Latin-1: the login is sent as a header of our own instead.

    Returns:
        The URL without its user information, and the header value (None without a login).
    """
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    # Bytes of argv or the environment that are not UTF-8 arrive as lone surrogates (PEP 383):
    # they are sent as the bytes the operator gave.
    value = "Basic " + base64.b64encode(pair.encode("utf-8", "surrogateescape")).decode("ascii")
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), value


def _causes(exc: BaseException) -> list[BaseException]:
    """List an exception and everything it wraps (causes, contexts, reasons, arguments)."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(found) < 32:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend(_linked(current))
    return found


def _linked(exc: BaseException) -> list[BaseException]:
    """The exceptions ``exc`` carries: its cause, context, urllib3 reason, arguments."""
    linked = [
        exc.__cause__,
        exc.__context__,
        getattr(exc, "reason", None),
        getattr(exc, "original_error", None),
        *exc.args,
    ]
    return [item for item in linked if isinstance(item, BaseException)]


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
        # The innermost failure says most; the wrappers around it repeat it at length.
        leaves = [c for c in causes if not _linked(c) and not isinstance(c, _WRAPPERS)]
        text = str(leaves[0] if leaves else exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


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


# --------------------------------------------------------------------------- urllib3 parts


class _Retry(Retry):
    """urllib3's Retry with the fetcher's back-off and pauses, and its refusals.

    On top of urllib3's: the back-off doubles from the first failure on (urllib3 waits 0 after
    it), pauses go through the fetcher's ``sleep`` and stay within the watch's deadline, a
    ``Retry-After`` that is not a sane number or date is ignored (urllib3 raises), a TLS
    verification failure is not retried, and a stale kept-alive connection is replaced once
    for free. An answer that is retried is closed, not read to its end: its body may be huge.
    """

    RETRY_AFTER_STATUS_CODES = frozenset()  # the status list alone says what is retried

    def __init__(
        self,
        *args: Any,
        watch: Watch | None = None,
        sleep_function: Callable[[float], None] = time.sleep,
        backoff_delay: Callable[[int], float],
        replacements: int = 1,
        replacing: bool = False,
        **kwargs: Any,
    ) -> None:
        """Take urllib3's arguments, and the watch, sleep, back-off and free replacements."""
        super().__init__(*args, **kwargs)
        self.watch = watch
        self.sleep_function = sleep_function
        self.backoff_delay = backoff_delay
        self.replacements = replacements
        self.replacing = replacing

    def new(self, **kw: Any) -> _Retry:
        """Copy, carrying the watch, the sleep, the back-off and the replacements left."""
        kw.setdefault("watch", self.watch)
        kw.setdefault("sleep_function", self.sleep_function)
        kw.setdefault("backoff_delay", self.backoff_delay)
        kw.setdefault("replacements", self.replacements)
        return super().new(**kw)

    def increment(  # noqa: D417 - urllib3's arguments
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        """Count a failed attempt (urllib3's rules, with the refusals above).

        Raises:
            LimitExceededError: The watch is broken: no further attempt.
            urllib3.exceptions.MaxRetryError: No attempt left.
        """
        if self.watch is not None:
            self.watch.check()
        if response is not None:
            response.close()
        if error is not None:
            if any(isinstance(c, ssl.SSLCertVerificationError) for c in _causes(error)):
                raise error
            if self.replacements and _is_stale(error):
                return self.new(replacements=self.replacements - 1, replacing=True)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        """The fetcher's pause after the failures so far (``backoff_delay``); 0 before any."""
        failures = len(self.history)
        return float(self.backoff_delay(failures)) if failures else 0.0

    def sleep(self, response: Any = None) -> None:
        """Pause before the next attempt: ``Retry-After`` if the answer had a sane one.

        Raises:
            LimitExceededError: The pause would go past the watch's deadline.
        """
        if self.replacing:
            return
        delay = _retry_after(response) if response is not None else None
        if delay is None:
            delay = self.get_backoff_time()
        if delay <= 0:
            return
        if self.watch is not None:
            remaining = self.watch.remaining()
            if remaining is not None and delay >= remaining:
                self.watch.expire()
            self.watch.pause()  # waiting is not slowness: the next request judges afresh
        self.sleep_function(delay)
        if self.watch is not None:
            self.watch.check()


def _is_stale(error: Exception) -> bool:
    """Tell whether a failure is a kept-alive connection closed as the request went out."""
    return any(isinstance(cause, _StaleConnection) for cause in _causes(error))


def _retry_after(response: Any) -> float | None:
    """The pause a ``Retry-After`` header asks for, capped; None if absent or not sane."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _FinalResponse(http.client.HTTPResponse):
    """A response that skips informational answers (``103 Early Hints``), at most MAX_INTERIM.

    http.client skips ``100 Continue`` only, as many as come: an endless run of them would
    hold the reader for ever; any other 1xx it would take for the answer.
    """

    _statuses = 0

    def _read_status(self) -> tuple[str, int, str]:
        """Read a status line, refusing more than MAX_INTERIM informational ones."""
        self._statuses += 1
        if self._statuses > MAX_INTERIM + 1:
            raise TooManyInterimResponses(
                f"more than {MAX_INTERIM} informational (1xx) responses before the answer"
            )
        return super()._read_status()  # pyright: ignore[reportAttributeAccessIssue]

    def begin(self) -> None:
        """Read the status line and headers of the final (non-1xx) response."""
        super().begin()
        while 101 < self.status < 200:  # its headers are read; the answer follows
            self.headers = self.msg = None  # pyright: ignore[reportAttributeAccessIssue]
            super().begin()


class _Watched:
    """A urllib3 connection whose socket is attached to the watch of the call using it.

    The watch lets go of it when it goes back to the pool or is closed; but not when
    http.client closes it as it reads the headers of an answer that ends with the connection:
    that answer goes on reading from the socket.
    """

    response_class = _FinalResponse
    _watch: Watch | None = None
    _handle: socket.socket | None = None
    _sent = 0
    _answering = False

    def _new_conn(self) -> socket.socket:
        """Open the TCP connection and attach it to the current watch."""
        sock = super()._new_conn()  # pyright: ignore[reportAttributeAccessIssue]
        _detach(self)
        self._sent = 0
        _attach(self, sock)
        return sock

    def connect(self) -> None:
        """Connect; a timeout anywhere in it (proxy, tunnel, TLS) is a connect timeout."""
        try:
            super().connect()  # pyright: ignore[reportAttributeAccessIssue]
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"timed out connecting ({exc})"
            ) from exc

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Send a request, attached to the current watch (whose rate is judged afresh)."""
        sock = getattr(self, "sock", None)
        if sock is not None:  # a kept-alive connection; a new one attaches as it opens
            _attach(self, sock)
        call = _CURRENT.get()
        if call is not None:
            call.watch.restart()
        try:
            super().request(*args, **kwargs)  # pyright: ignore[reportAttributeAccessIssue]
        finally:  # counted once sent (a new connection is opened by the request itself)
            self._sent += 1

    def getresponse(self) -> Any:
        """Read the answer; a kept-alive connection closed before it is marked stale."""
        self._answering = True
        try:
            return super().getresponse()  # pyright: ignore[reportAttributeAccessIssue]
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as exc:
            if self._sent > 1:
                raise _StaleConnection(
                    "the server closed the kept-alive connection as the request went out"
                ) from exc
            raise
        finally:
            self._answering = False

    def close(self) -> None:
        """Close; off the watch too, unless an answer that ends with it is being read."""
        if not self._answering:
            _detach(self)
        super().close()  # pyright: ignore[reportAttributeAccessIssue]


def _attach(connection: _Watched, sock: Any) -> None:
    """Attach a connection to the watch of the current call (or to none)."""
    call = _CURRENT.get()
    watch = call.watch if call is not None else None
    if connection._watch is watch and connection._handle is not None:  # noqa: SLF001
        return
    _detach(connection)
    if watch is not None:
        connection._watch = watch  # noqa: SLF001 - this module's own connections
        connection._handle = watch.attach(sock)  # noqa: SLF001


def _detach(connection: Any) -> None:
    """Take a connection off its watch (it goes back to the pool, or is closed)."""
    if connection is None:
        return
    watch, handle = connection._watch, connection._handle  # noqa: SLF001
    connection._watch = connection._handle = None  # noqa: SLF001
    if watch is not None and handle is not None:
        watch.detach(handle)


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    """A watched plain connection."""


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    """A watched TLS connection."""


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    """A pool of watched plain connections."""

    # urllib3's own connection classes do not match its typing protocols either.
    ConnectionCls = _HTTPConnection  # pyright: ignore[reportAssignmentType]

    def _put_conn(self, conn: Any) -> None:
        _detach(conn)
        super()._put_conn(conn)


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    """A pool of watched TLS connections."""

    ConnectionCls = _HTTPSConnection  # pyright: ignore[reportAssignmentType]

    def _put_conn(self, conn: Any) -> None:
        _detach(conn)
        super()._put_conn(conn)


_POOL_CLASSES: dict[str, type[urllib3.connectionpool.HTTPConnectionPool]] = {
    "http": _HTTPPool,
    "https": _HTTPSPool,
}


class _Session(requests.Session):
    """A session that leaves redirects alone: the fetcher follows them, hop by hop.

    Even with ``allow_redirects=False``, requests prepares the next request of a redirect
    (for ``Response.next``), reading the redirect's body whole into memory first.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        """No redirect for requests to follow or prepare."""
        return None


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with watched pools, one TLS context, and the call's own retries."""

    def __init__(
        self, tls: Callable[[], ssl.SSLContext], logins: Mapping[str, str | None]
    ) -> None:
        """Create the adapter.

        Args:
            tls: Makes (once) the context to verify with.
            logins: ``Proxy-Authorization`` of each proxy (URL without its login).
        """
        self._tls = tls
        self._logins = dict(logins)
        self._fallback_retries = Retry(0, read=False)
        super().__init__(pool_connections=8, pool_maxsize=POOL_SIZE)

    @property
    def max_retries(self) -> Retry:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The current call's retries (requests reads them for every request it sends)."""
        call = _CURRENT.get()
        return self._fallback_retries if call is None else call.retry

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._fallback_retries = value

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Make requests' pool manager, with watched pools."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Make (once) the manager for a proxy: watched pools, TLS to an https:// proxy."""
        if proxy not in self.proxy_manager:
            if proxy.lower().startswith("https:"):
                proxy_kwargs["proxy_ssl_context"] = self._tls()
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return self.proxy_manager[proxy]

    def proxy_headers(self, proxy: str) -> dict[str, str]:
        """The ``Proxy-Authorization`` of a proxy, from the login of its configured URL."""
        login = self._logins.get(proxy)
        return {} if login is None else {"Proxy-Authorization": login}

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return requests' pool key, with the verifying context for https."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params.get("scheme") == "https":
            pool_kwargs["ssl_context"] = self._tls()
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Always verify, with the context alone (requests would load certifi's bundle again)."""
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
