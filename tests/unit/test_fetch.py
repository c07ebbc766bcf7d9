"""Tests for upgrader.fetch against real HTTP(S) servers and a real proxy on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import http.client
import http.server
import os
import re
import resource
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.proxy import ProxyServer
from support.tls import PKI, make_pki
from upgrader.errors import InvalidInputError, NotFoundError, StreamError, TransientError
from upgrader.fetch import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    Document,
    Fetcher,
    FetchSettings,
    NoProxy,
    check_ca_certificates,
)

BLOB = bytes(range(256)) * 40  # 10240 bytes
FAST = FetchSettings(connect_timeout=2.0, read_timeout=2.0, retries=3, backoff=0.001)

Route = Callable[["Handler"], None]


# --------------------------------------------------------------------------- test servers


class Handler(http.server.BaseHTTPRequestHandler):
    """Dispatches GETs to the routes registered on its server."""

    protocol_version = "HTTP/1.1"
    server: OriginServer  # pyright: ignore[reportIncompatibleVariableOverride]

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.server.seen.append(
            Seen(self.path, dict(self.headers.items()), self.client_address[1])
        )
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.reply(404, b"no such route\n")
        else:
            route(self)

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output clean."""


@dataclass
class Seen:
    """One request a server received."""

    path: str
    headers: dict[str, str]
    port: int = 0
    """The client's port: requests on one kept-alive connection share it."""


class OriginServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP (or HTTPS) server on 127.0.0.1 whose routes each test sets."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server_address[1]}"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def finish_request(self, request, client_address) -> None:  # noqa: ANN001 - stdlib hook
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        assert isinstance(request, socket.socket)
        with self.tls.wrap_socket(request, server_side=True) as connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - stdlib hook
        """Clients hang up on purpose in these tests; stay quiet."""


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        if isinstance(server, OriginServer):
            server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def origin_server() -> Iterator[OriginServer]:
    server = OriginServer()
    with serving(server):
        yield server


@pytest.fixture
def origin(origin_server: OriginServer) -> Iterator[OriginServer]:
    origin_server.routes.clear()
    origin_server.seen.clear()
    origin_server.release = threading.Event()
    yield origin_server
    origin_server.release.set()


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[ProxyServer]:
    server = ProxyServer()
    with serving(server):
        yield server


@pytest.fixture
def proxy(proxy_server: ProxyServer) -> ProxyServer:
    proxy_server.urls.clear()
    proxy_server.authorizations.clear()
    proxy_server.required = None
    return proxy_server


@pytest.fixture
def make_fetcher() -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(settings: FetchSettings = FAST, **kwargs: object) -> Fetcher:
        fetcher = Fetcher(settings, **kwargs)  # type: ignore[arg-type]
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


# --------------------------------------------------------------------------- routes


def body(data: bytes, status: int = 200, **headers: str) -> Route:
    def route(handler: Handler) -> None:
        handler.reply(status, data, {k.replace("_", "-"): v for k, v in headers.items()})

    return route


def in_turn(*routes: Route) -> Route:
    """Use each route once, in order; the last one repeats."""
    pending = list(routes)

    def route(handler: Handler) -> None:
        (pending.pop(0) if len(pending) > 1 else pending[0])(handler)

    return route


def reset(handler: Handler) -> None:
    """Abort the connection with a TCP RST instead of answering."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()


def stall(declared: int = 1000, sent: bytes = b"x" * 10) -> Route:
    """Send headers and part of the body, then go silent until the test ends."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(sent)
        handler.wfile.flush()
        handler.server.release.wait(10)
        handler.close_connection = True

    return route


def break_off(declared: int, sent: bytes) -> Route:
    """Send headers and part of the body, then reset the connection."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(sent)
        handler.wfile.flush()
        time.sleep(0.05)
        reset(handler)

    return route


def chunked(*chunks: bytes) -> Route:
    """Answer with a chunked body and no Content-Length."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in chunks:
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    return route


def ranged(data: bytes) -> Route:
    """Serve ``data`` honouring ``Range: bytes=N-``."""

    def route(handler: Handler) -> None:
        wanted = handler.headers.get("Range", "")
        if not wanted.startswith("bytes="):
            handler.reply(200, data)
            return
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        if start >= len(data):
            handler.reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        handler.reply(206, data[start:], headers)

    return route


def conditional(handler: Handler) -> None:
    """ETag "v1" and a fixed Last-Modified; answers 304 when either condition matches."""
    stamp = "Wed, 05 Nov 2025 12:00:00 GMT"
    if handler.headers.get("If-None-Match") == '"v1"' or (
        handler.headers.get("If-Modified-Since") == stamp
    ):
        handler.reply(304, b"", {"Content-Length": "0", "ETag": '"v1"'})
        return
    handler.reply(200, b'{"v": 1}', {"ETag": '"v1"', "Last-Modified": stamp})


# --------------------------------------------------------------------------- settings


def test_charm_environ_supplies_proxies() -> None:
    settings = FetchSettings.from_charm_environ(
        {
            "JUJU_CHARM_HTTP_PROXY": "http://squid.internal:3128",
            "JUJU_CHARM_HTTPS_PROXY": "squid.internal:3129",
            "JUJU_CHARM_NO_PROXY": "127.0.0.1,localhost,::1",
            "HTTP_PROXY": "http://ignored:1",
        },
        ca_certificates=None,
    )

    assert settings.http_proxy == "http://squid.internal:3128"
    assert settings.https_proxy == "http://squid.internal:3129"
    assert settings.no_proxy == "127.0.0.1,localhost,::1"
    assert (settings.retries, settings.connect_timeout, settings.read_timeout) == (3, 10.0, 60.0)
    assert settings.max_document_bytes == DEFAULT_MAX_DOCUMENT_BYTES == 64 * 1024 * 1024


def test_charm_environ_without_proxies() -> None:
    settings = FetchSettings.from_charm_environ({"JUJU_CHARM_HTTP_PROXY": ""})

    assert (settings.http_proxy, settings.https_proxy, settings.no_proxy) == (None, None, None)


@pytest.mark.parametrize(
    ("variable", "setting"),
    [
        ("JUJU_CHARM_HTTP_PROXY", "juju-http-proxy"),
        ("JUJU_CHARM_HTTPS_PROXY", "juju-https-proxy"),
    ],
)
def test_bad_charm_proxy_names_the_model_setting(variable: str, setting: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        FetchSettings.from_charm_environ({variable: "socks5://proxy:1080"})

    assert str(caught.value) == (
        f"{variable}: unsupported proxy URL 'socks5://proxy:1080'; expected http://host:port "
        f"or https://host:port (set by the model's {setting} setting: "
        f"juju model-config {setting})"
    )


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        ("http://[::1", "http://[::1"),
        ("[::1:3128", "http://[::1:3128"),
        ("http://user:s3cret@[::1:3128", "http://user:***@[::1:3128"),
    ],
)
def test_a_proxy_url_that_cannot_be_split_names_the_model_setting(proxy: str, shown: str) -> None:
    """urlsplit raises ValueError for an unclosed '[': it reached every hook that fetches."""
    with pytest.raises(InvalidInputError) as caught:
        FetchSettings.from_charm_environ({"JUJU_CHARM_HTTPS_PROXY": proxy})

    assert str(caught.value) == (
        f"JUJU_CHARM_HTTPS_PROXY: invalid proxy URL {shown!r}; expected http://host:port or "
        "https://host:port (set by the model's juju-https-proxy setting: juju model-config "
        "juju-https-proxy)"
    )


def test_client_environ_prefers_lower_case() -> None:
    settings = FetchSettings.from_client_environ(
        {
            "HTTP_PROXY": "http://upper:1",
            "http_proxy": "http://lower:2",
            "HTTPS_PROXY": "http://upper:3",
            "NO_PROXY": ".example.com",
        }
    )

    assert settings.http_proxy == "http://lower:2"
    assert settings.https_proxy == "http://upper:3"
    assert settings.no_proxy == ".example.com"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"http_proxy": "socks5://proxy:1080"},
        {"https_proxy": 3128},
        {"https_proxy": "http://proxy:notaport"},
        {"retries": 0},
        {"connect_timeout": 0},
        {"read_timeout": -1},
        {"backoff": -1},
        {"max_document_bytes": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        FetchSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("login", ["user:secret", "secret"])  # a token alone too
def test_proxy_password_is_not_shown_in_errors(login: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        FetchSettings(http_proxy=f"ftp://{login}@proxy:21")

    assert "secret" not in str(caught.value)
    assert "@proxy:21" in str(caught.value)


def test_backoff_doubles_and_is_capped(origin: OriginServer) -> None:
    origin.routes["/down"] = body(b"", status=503)
    pauses: list[float] = []
    settings = FetchSettings(retries=6, backoff=1.0)

    with Fetcher(settings, sleep=pauses.append) as fetcher, pytest.raises(TransientError):
        fetcher.get_document(f"{origin.url}/down")

    assert pauses == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(origin.seen) == 6


@pytest.mark.parametrize(
    ("spec", "host", "port", "bypass"),
    [
        (None, "example.com", 80, False),
        ("", "example.com", 80, False),
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 80, True),
        ("example.com", "mirror.example.com", 80, True),
        ("example.com", "notexample.com", 80, False),
        (".example.com", "example.com", 80, True),
        (".example.com", "a.b.example.com", 443, True),
        ("*.example.com", "a.example.com", 443, True),
        ("EXAMPLE.com.", "Mirror.Example.COM", 80, True),
        ("example.com:8080", "example.com", 8080, True),
        ("example.com:8080", "example.com", 80, False),
        ("10.0.0.0/8", "10.20.30.40", 80, True),
        ("10.0.0.0/8", "11.0.0.1", 80, False),
        ("192.168.1.5", "192.168.1.5", 80, True),
        ("192.168.1.5:3128", "192.168.1.5", 80, False),
        ("::1", "::1", 80, True),
        ("[::1]:8080", "[::1]", 8080, True),
        ("[::1]", "::1", 443, True),
        # A bad port makes the entry match nothing (Go's httpproxy), not every port of ::1.
        ("[::1]:abc", "::1", 80, False),
        ("[::1]:\u00b2", "::1", 80, False),
        ("fd00::/8", "fd12::1", 443, True),
        ("localhost, 127.0.0.1 ,::1", "127.0.0.1", 80, True),
        ("localhost,::1", "127.0.0.1", 80, False),
        ("10.0.0.0/8", "ten.example", 80, False),
    ],
)
def test_no_proxy_matching(spec: str | None, host: str, port: int, bypass: bool) -> None:
    assert NoProxy(spec).matches(host, port) is bypass


@pytest.mark.parametrize(
    "spec",
    ["example.com:\u00b2", "[::1]:\u00b2", "example.com:" + "9" * 5000, "[::1]:" + "9" * 5000],
)
def test_a_no_proxy_port_that_is_not_ascii_digits_is_no_port(spec: str) -> None:
    """str.isdigit takes '\u00b2' and 5,000 digits, which int() refuses with a ValueError: it came
    out of every hook that fetches (juju-no-proxy) and the CLI (no_proxy)."""
    settings = FetchSettings.from_charm_environ({"JUJU_CHARM_NO_PROXY": spec})
    Fetcher(settings).close()

    assert NoProxy(spec).matches("example.com", 80) is False


def test_no_proxy_uses_the_default_port_of_the_scheme() -> None:
    rules = NoProxy("mirror.example:443")

    assert rules.matches_url("https://mirror.example/streams")
    assert not rules.matches_url("http://mirror.example/streams")


# --------------------------------------------------------------------------- get_document


def test_document_is_read_with_its_validators(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b'{"a": 1}', ETag='"e1"', Last_Modified="Tue, 04 Nov 2025")

    document = make_fetcher().get_document(f"{origin.url}/doc")

    assert document.body == b'{"a": 1}'
    assert (document.etag, document.last_modified) == ('"e1"', "Tue, 04 Nov 2025")
    assert not document.not_modified
    assert document.url == f"{origin.url}/doc"
    assert "If-None-Match" not in origin.seen[0].headers


def test_gzip_encoded_document_is_decoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(gzip.compress(b'{"a": 2}'), Content_Encoding="gzip")

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b'{"a": 2}'


def test_deflate_encoded_document_is_decoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(zlib.compress(b'{"a": 3}'), Content_Encoding="deflate")

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b'{"a": 3}'


def test_documents_ask_for_gzip_and_downloads_for_the_bytes_as_stored(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"x")
    fetcher = make_fetcher()

    fetcher.get_document(f"{origin.url}/doc")
    with fetcher.open_download(f"{origin.url}/doc") as download:
        assert b"".join(download.iter_chunks()) == b"x"

    assert [seen.headers.get("Accept-Encoding") for seen in origin.seen] == ["gzip", "identity"]
    assert {seen.headers.get("User-Agent") for seen in origin.seen} == {"juju-upgrader"}


@pytest.mark.parametrize(
    ("data", "encoding", "reason"),
    [
        (b"{}", "br", "unsupported Content-Encoding 'br'; gzip was asked for"),
        (gzip.compress(b'{"a": 1}' * 100)[:-20], "gzip", "compressed data cut short"),
        (b"not gzip at all", "gzip", "Error -3 while decompressing data"),
    ],
)
def test_badly_encoded_documents_are_refused(
    origin: OriginServer,
    make_fetcher: Callable[..., Fetcher],
    data: bytes,
    encoding: str,
    reason: str,
) -> None:
    origin.routes["/doc"] = body(data, Content_Encoding=encoding)
    url = f"{origin.url}/doc"

    with pytest.raises(StreamError) as caught:
        make_fetcher().get_document(url)

    assert not isinstance(caught.value, TransientError)
    assert str(caught.value).startswith(f"cannot fetch {url}: the body cannot be decoded (")
    assert reason in str(caught.value)
    assert len(origin.seen) == 1


def test_a_document_cut_short_is_retried_not_returned(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    def short(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b'{"a": 1}')  # then a clean close, 92 bytes short
        handler.close_connection = True

    origin.routes["/doc"] = in_turn(short, body(b'{"a": 2}'))

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b'{"a": 2}'
    origin.routes["/doc"] = short
    with pytest.raises(TransientError, match="closed before the whole body arrived$"):
        make_fetcher().get_document(f"{origin.url}/doc")


def test_compressed_document_is_limited_by_its_decoded_size(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    assert len(bomb) < 10_000
    origin.routes["/doc"] = body(bomb, Content_Encoding="gzip")
    settings = FetchSettings(max_document_bytes=100_000, retries=1)

    with pytest.raises(StreamError, match="stopped reading after 100001 bytes, over the"):
        make_fetcher(settings).get_document(f"{origin.url}/doc")


def test_credentials_in_the_url_are_sent_as_basic_authorization(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"ok")
    origin.routes["/old"] = body(b"", status=302, Location="/doc")
    secured = origin.url.replace("http://", "http://user:p%40ss@")
    fetcher = make_fetcher()

    assert fetcher.get_document(f"{secured}/old").body == b"ok"
    assert fetcher.get_document(f"{origin.url}/doc").body == b"ok"

    expected = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert [seen.headers.get("Authorization") for seen in origin.seen] == [
        expected,
        expected,
        None,
    ]
    assert all("p%40ss" not in seen.headers.get("Host", "") for seen in origin.seen)


def test_unsafe_characters_in_paths_are_percent_encoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent/juju%203.6%C3%A9.tgz"] = body(b"odd name")

    document = make_fetcher().get_document(f"{origin.url}/agent/juju 3.6\u00e9.tgz?a=b c")

    assert document.body == b"odd name"
    assert origin.paths() == ["/agent/juju%203.6%C3%A9.tgz?a=b%20c"]


def test_connections_are_kept_alive_between_requests(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"doc")
    origin.routes["/blob"] = body(BLOB)
    fetcher = make_fetcher()

    fetcher.get_document(f"{origin.url}/doc")
    with fetcher.open_download(f"{origin.url}/blob") as download:
        assert b"".join(download.iter_chunks(1000)) == BLOB
    fetcher.get_document(f"{origin.url}/doc")

    assert len({seen.port for seen in origin.seen}) == 1


def test_a_download_left_unfinished_does_not_leave_its_connection_for_reuse(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/blob"] = body(BLOB * 10)
    origin.routes["/doc"] = body(b"doc")
    fetcher = make_fetcher()

    with fetcher.open_download(f"{origin.url}/blob") as download:
        assert len(next(download.iter_chunks(100))) == 100

    assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    assert len({seen.port for seen in origin.seen}) == 2


def test_an_idle_connection_the_server_closed_is_not_reused(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    def answer_then_hang_up(handler: Handler) -> None:
        handler.reply(200, b"doc")  # no "Connection: close": the client cannot know
        handler.close_connection = True

    origin.routes["/doc"] = answer_then_hang_up
    fetcher = make_fetcher(FetchSettings(retries=1))

    assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    time.sleep(0.1)
    assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    assert len({seen.port for seen in origin.seen}) == 2


def test_a_kept_connection_closed_as_the_request_goes_out_is_replaced_once(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    def hang_up_on_the_second_request(handler: Handler) -> None:
        if getattr(handler, "answered", False):
            handler.close_connection = True  # read the request, close without an answer
            return
        handler.answered = True  # type: ignore[attr-defined]
        handler.reply(200, b"doc")

    origin.routes["/doc"] = hang_up_on_the_second_request
    fetcher = make_fetcher(FetchSettings(retries=1))

    assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    assert len(origin.seen) == 3
    assert len({seen.port for seen in origin.seen}) == 2


def test_a_fresh_connection_closed_without_an_answer_is_not_replaced_silently(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    def hang_up(handler: Handler) -> None:
        handler.close_connection = True

    origin.routes["/doc"] = hang_up

    hung_up = "(the server closed the connection without a response|connection reset by peer)$"
    with pytest.raises(TransientError, match=f"gave up after 1 attempt; last failure: {hung_up}"):
        make_fetcher(FetchSettings(retries=1)).get_document(f"{origin.url}/doc")
    assert len(origin.seen) == 1


def test_connecting_is_cut_by_the_connect_timeout(make_fetcher: Callable[..., Fetcher]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with contextlib.ExitStack() as held:
            for _ in range(3):  # fill the accept queue: further connections get no answer
                waiting = held.enter_context(socket.socket())
                waiting.setblocking(False)
                waiting.connect_ex(("127.0.0.1", port))
            time.sleep(0.1)
            settings = FetchSettings(connect_timeout=0.3, retries=1)
            started = time.monotonic()

            with pytest.raises(TransientError) as caught:
                make_fetcher(settings).get_document(f"http://127.0.0.1:{port}/doc")

    assert time.monotonic() - started < 3
    assert str(caught.value).endswith("timed out connecting (connect timeout 0.3 s)")


@pytest.mark.parametrize("status", [404, 401])
def test_not_found_statuses_are_final(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], status: int
) -> None:
    origin.routes["/gone"] = body(b"nope", status=status)

    with pytest.raises(NotFoundError, match=rf"/gone not found \(HTTP {status} "):
        make_fetcher().get_document(f"{origin.url}/gone")

    assert len(origin.seen) == 1


def test_forbidden_is_an_error_not_not_found(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/secret"] = body(b"", status=403)

    with pytest.raises(StreamError, match=r"access denied \(HTTP 403 Forbidden\)") as caught:
        make_fetcher().get_document(f"{origin.url}/secret")

    assert not isinstance(caught.value, NotFoundError | TransientError)
    assert len(origin.seen) == 1


def test_other_client_errors_are_not_retried(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/teapot"] = body(b"", status=418)

    with pytest.raises(StreamError, match="HTTP 418") as caught:
        make_fetcher().get_document(f"{origin.url}/teapot")

    assert not isinstance(caught.value, TransientError)
    assert len(origin.seen) == 1


def test_server_error_then_success_is_retried(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/flaky"] = in_turn(body(b"", status=500), body(b"", status=502), body(b"ok"))

    assert make_fetcher().get_document(f"{origin.url}/flaky").body == b"ok"
    assert len(origin.seen) == 3


def test_persistent_server_error_gives_up(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/broken"] = body(b"", status=500)
    url = f"{origin.url}/broken"

    with pytest.raises(TransientError) as caught:
        make_fetcher().get_document(url)

    assert str(caught.value) == (
        f"cannot fetch {url}: gave up after 3 attempts; last failure: "
        "HTTP 500 Internal Server Error"
    )
    assert len(origin.seen) == 3


def test_connection_refused_is_transient(make_fetcher: Callable[..., Fetcher]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(TransientError, match="3 attempts; last failure: connection refused"):
        make_fetcher().get_document(f"http://127.0.0.1:{port}/index2.json")


def test_connection_reset_is_retried(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/reset"] = in_turn(reset, body(b"after reset"))

    assert make_fetcher().get_document(f"{origin.url}/reset").body == b"after reset"
    assert len(origin.seen) == 2


def test_connection_reset_every_time_gives_up(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/reset"] = reset

    with pytest.raises(TransientError, match="gave up after 3 attempts; last failure: "):
        make_fetcher().get_document(f"{origin.url}/reset")

    assert len(origin.seen) == 3


def test_stalled_body_is_cut_by_the_read_timeout(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/stall"] = stall()
    settings = FetchSettings(read_timeout=0.3, retries=2, backoff=0.001)
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        make_fetcher(settings).get_document(f"{origin.url}/stall")

    assert time.monotonic() - started < 3
    assert "gave up after 2 attempts" in str(caught.value)
    assert "no data received for 0.3 s (read timeout)" in str(caught.value)


def test_oversized_document_is_refused_by_content_length(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # The server announces 10 MiB, sends a little, then stalls: reading the body would hang.
    origin.routes["/huge"] = stall(declared=10 * 1024 * 1024)
    settings = FetchSettings(read_timeout=5, max_document_bytes=1000)
    url = f"{origin.url}/huge"
    started = time.monotonic()

    with pytest.raises(StreamError) as caught:
        make_fetcher(settings).get_document(url)

    assert time.monotonic() - started < 2
    assert not isinstance(caught.value, TransientError)
    assert str(caught.value) == (
        f"{url} is too large: the server announced 10485760 bytes, over the 1000 bytes limit "
        "for metadata documents"
    )
    assert len(origin.seen) == 1


def test_oversized_chunked_document_is_refused_while_reading(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/huge"] = chunked(*[b"y" * 1024] * 8)
    settings = FetchSettings(max_document_bytes=4096)

    with pytest.raises(StreamError, match=r"too large: stopped reading after \d+ bytes, over"):
        make_fetcher(settings).get_document(f"{origin.url}/huge")

    origin.routes["/small"] = chunked(b"a" * 2048, b"b" * 2048)
    assert make_fetcher(settings).get_document(f"{origin.url}/small").body == (
        b"a" * 2048 + b"b" * 2048
    )


def test_not_modified_by_etag(origin: OriginServer, make_fetcher: Callable[..., Fetcher]) -> None:
    origin.routes["/cond"] = conditional
    fetcher = make_fetcher()
    first = fetcher.get_document(f"{origin.url}/cond")

    again = fetcher.get_document(f"{origin.url}/cond", etag=first.etag)

    assert again.not_modified
    assert again.body == b""
    assert again.etag == '"v1"'
    assert origin.seen[1].headers["If-None-Match"] == '"v1"'


def test_not_modified_by_last_modified(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/cond"] = conditional
    fetcher = make_fetcher()
    first = fetcher.get_document(f"{origin.url}/cond")

    again = fetcher.get_document(f"{origin.url}/cond", last_modified=first.last_modified)

    assert again.not_modified
    assert again.last_modified == "Wed, 05 Nov 2025 12:00:00 GMT"
    assert origin.seen[1].headers["If-Modified-Since"] == "Wed, 05 Nov 2025 12:00:00 GMT"
    assert "If-None-Match" not in origin.seen[1].headers


def test_not_modified_to_a_request_that_was_not_conditional_is_refused(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    """A 304 without validators sent has no document to stand for: it was read as an empty
    body, which the stream reader then called invalid JSON."""
    origin.routes["/index.json"] = body(b"", status=304, ETag='"v1"')
    url = f"{origin.url}/index.json"

    with pytest.raises(StreamError) as caught:
        make_fetcher().get_document(url)

    assert str(caught.value) == (
        f"cannot fetch {url}: HTTP 304 Not Modified answers a conditional request, and this "
        "one was not (no If-None-Match or If-Modified-Since was sent)"
    )
    assert len(origin.seen) == 1


def test_stale_validators_get_the_new_document(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/cond"] = conditional

    document = make_fetcher().get_document(f"{origin.url}/cond", etag='"v0"')

    assert not document.not_modified
    assert document.body == b'{"v": 1}'


def test_redirects_are_followed(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/old"] = body(b"", status=301, Location="/new")
    origin.routes["/new"] = body(b"moved")

    assert make_fetcher().get_document(f"{origin.url}/old").body == b"moved"


def test_redirect_loops_are_stopped(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/loop"] = body(b"", status=302, Location="/loop")

    with pytest.raises(StreamError, match="more than 10 redirects"):
        make_fetcher().get_document(f"{origin.url}/loop")


@pytest.mark.parametrize(
    "url", ["ftp://mirror.example/tools", "mirror.example/tools", "gopher://x/"]
)
def test_unsupported_schemes_are_refused(make_fetcher: Callable[..., Fetcher], url: str) -> None:
    with pytest.raises(StreamError, match="use one of http://, https://, file://"):
        make_fetcher().get_document(url)
    with pytest.raises(StreamError, match="unsupported URL scheme"):
        with make_fetcher().open_download(url):
            pass


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http:///x", "the URL has no host name"),
        ("http://mirror.example:notaport/x", "the URL's port is not a number"),
        ("http://user:abc/def@mirror.example/x", "the URL's port is not a number"),
        ("http://[::1/x", "not a valid URL (Invalid IPv6 URL)"),
        ("http://\u0300.example/x", "Label begins with an illegal combining character"),
    ],
)
def test_urls_that_cannot_be_requested_are_refused_before_any_connection(
    make_fetcher: Callable[..., Fetcher], url: str, reason: str
) -> None:
    with pytest.raises(StreamError) as caught:
        make_fetcher().get_document(url)

    assert not isinstance(caught.value, TransientError)
    assert str(caught.value).startswith("cannot fetch ")
    assert str(caught.value).endswith(f": {reason}")
    assert "cast to integer" not in str(caught.value)  # urlsplit's message quotes the "port"


# --------------------------------------------------------------------------- file URLs


def test_file_document(tmp_path: Path, make_fetcher: Callable[..., Fetcher]) -> None:
    (tmp_path / "my index.json").write_bytes(b"{}")

    document = make_fetcher().get_document((tmp_path / "my index.json").as_uri())

    assert document.body == b"{}"
    assert not document.not_modified


def test_file_url_is_percent_decoded_once(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher]
) -> None:
    (tmp_path / "a%20b.json").write_bytes(b"literal")
    (tmp_path / "a b.json").write_bytes(b"space")
    fetcher = make_fetcher()

    assert fetcher.get_document((tmp_path / "a%20b.json").as_uri()).body == b"literal"
    assert fetcher.get_document((tmp_path / "a b.json").as_uri()).body == b"space"


def test_a_file_url_percent_encoding_bytes_that_are_not_utf8_is_read(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher]
) -> None:
    """A local directory named in another encoding becomes file:///.../s%FF (Path.as_uri); its
    %FF was decoded as U+FFFD, naming another file: the stream was 'not found'."""
    directory = tmp_path / os.fsdecode(b"s\xff")
    directory.mkdir()
    (directory / "index.json").write_bytes(b"{}")
    url = (directory / "index.json").as_uri()
    assert "/s%FF/" in url

    assert make_fetcher().get_document(url).body == b"{}"
    assert make_fetcher().get_document(url.replace("%FF", "\udcff")).body == b"{}"


def test_missing_file_is_not_found(tmp_path: Path, make_fetcher: Callable[..., Fetcher]) -> None:
    url = (tmp_path / "index2.sjson").as_uri()

    with pytest.raises(NotFoundError, match="not found"):
        make_fetcher().get_document(url)
    with pytest.raises(NotFoundError):
        with make_fetcher().open_download(url):
            pass


def test_file_limits_and_oddities(tmp_path: Path, make_fetcher: Callable[..., Fetcher]) -> None:
    (tmp_path / "big.json").write_bytes(b"x" * 2000)
    fetcher = make_fetcher(FetchSettings(max_document_bytes=1000))

    with pytest.raises(StreamError, match="too large: 2000 bytes, over the 1000 bytes limit"):
        fetcher.get_document((tmp_path / "big.json").as_uri())
    with pytest.raises(StreamError, match="is a directory"):
        fetcher.get_document(tmp_path.as_uri())
    with pytest.raises(StreamError, match="must name a local path"):
        fetcher.get_document("file://otherhost/etc/hosts")


def test_file_download_resumes_at_offset(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher]
) -> None:
    (tmp_path / "agent.tgz").write_bytes(BLOB)
    url = (tmp_path / "agent.tgz").as_uri()
    fetcher = make_fetcher()

    with fetcher.open_download(url, offset=4000) as download:
        assert (download.status, download.offset, download.length) == (206, 4000, 6240)
        assert b"".join(download.iter_chunks(1000)) == BLOB[4000:]
    with fetcher.open_download(url, offset=len(BLOB) + 1) as download:
        assert (download.status, download.offset, download.length) == (200, 0, len(BLOB))
        assert b"".join(download.iter_chunks()) == BLOB


# --------------------------------------------------------------------------- open_download


def test_download_streams_in_chunks(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = ranged(BLOB)

    with make_fetcher().open_download(f"{origin.url}/agent.tgz") as download:
        assert (download.status, download.offset, download.length) == (200, 0, len(BLOB))
        chunks = list(download.iter_chunks(chunk_size=1000))

    assert b"".join(chunks) == BLOB
    assert max(len(chunk) for chunk in chunks) <= 1000
    assert "Range" not in origin.seen[0].headers
    assert origin.seen[0].headers["Accept-Encoding"] == "identity"


def test_download_resumes_with_range(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = ranged(BLOB)

    with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=5000) as download:
        assert (download.status, download.offset, download.length) == (206, 5000, 5240)
        assert b"".join(download.iter_chunks()) == BLOB[5000:]

    assert origin.seen[0].headers["Range"] == "bytes=5000-"


def test_download_from_server_ignoring_range_starts_over(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = body(BLOB)

    with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=5000) as download:
        assert (download.status, download.offset, download.length) == (200, 0, len(BLOB))
        assert b"".join(download.iter_chunks()) == BLOB


def test_unsatisfiable_range_starts_over(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = ranged(BLOB)

    with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=20000) as download:
        assert (download.status, download.offset) == (200, 0)
        assert b"".join(download.iter_chunks()) == BLOB

    assert [seen.headers.get("Range") for seen in origin.seen] == ["bytes=20000-", None]


def test_wrong_content_range_is_refused(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = body(
        BLOB[100:], status=206, Content_Range="bytes 100-10239/10240"
    )

    with pytest.raises(StreamError, match="asked for bytes from 5000"):
        with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=5000):
            pass


def test_download_is_not_content_decoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    tarball = gzip.compress(BLOB)
    origin.routes["/agent.tgz"] = body(tarball, Content_Encoding="gzip")

    with make_fetcher().open_download(f"{origin.url}/agent.tgz") as download:
        assert b"".join(download.iter_chunks()) == tarball


def test_download_retries_establishing_the_response(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = in_turn(body(b"", status=503), reset, ranged(BLOB))

    with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=10000) as download:
        assert (download.status, download.offset) == (206, 10000)
        assert b"".join(download.iter_chunks()) == BLOB[10000:]

    assert len(origin.seen) == 3


def test_download_not_found(origin: OriginServer, make_fetcher: Callable[..., Fetcher]) -> None:
    with pytest.raises(NotFoundError, match=r"not found \(HTTP 404 Not Found\)"):
        with make_fetcher().open_download(f"{origin.url}/missing.tgz"):
            pass
    assert len(origin.seen) == 1


def test_download_gives_up_on_persistent_errors(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = body(b"", status=500)

    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        with make_fetcher().open_download(f"{origin.url}/agent.tgz"):
            pass


def test_download_stalling_mid_body_is_cut_by_the_read_timeout(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = stall(declared=len(BLOB), sent=BLOB[:4096])
    received = bytearray()
    started = time.monotonic()

    with make_fetcher(FetchSettings(read_timeout=0.3)).open_download(
        f"{origin.url}/agent.tgz"
    ) as download:
        with pytest.raises(TransientError, match=r"broke off after \d+ bytes: no data received"):
            for chunk in download.iter_chunks(1024):
                received += chunk

    assert received == BLOB[:4096]
    assert time.monotonic() - started < 3


def test_download_connection_lost_mid_body(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = break_off(declared=len(BLOB), sent=BLOB[:2048])

    with make_fetcher().open_download(f"{origin.url}/agent.tgz") as download:
        with pytest.raises(TransientError, match="broke off after"):
            for _ in download.iter_chunks(1024):
                pass


# --------------------------------------------------------------------------- proxies


def test_http_proxy_setting_routes_through_the_proxy(
    origin: OriginServer, proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"via proxy")
    url = f"{origin.url}/doc"
    fetcher = make_fetcher(FetchSettings(http_proxy=proxy.url, retries=1))

    assert fetcher.get_document(url).body == b"via proxy"
    with fetcher.open_download(url) as download:
        assert b"".join(download.iter_chunks()) == b"via proxy"

    assert proxy.urls == [url, url]
    assert all(seen.headers.get("Via") == "1.1 test-proxy" for seen in origin.seen)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "localhost,127.0.0.1"])
def test_no_proxy_bypasses_the_proxy(
    origin: OriginServer,
    proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
    no_proxy: str,
) -> None:
    origin.routes["/doc"] = body(b"direct")
    settings = FetchSettings(http_proxy=proxy.url, no_proxy=no_proxy, retries=1)

    assert make_fetcher(settings).get_document(f"{origin.url}/doc").body == b"direct"

    assert proxy.urls == []
    assert "Via" not in origin.seen[0].headers


def test_environment_proxies_are_ignored_unless_asked_for(
    origin: OriginServer,
    proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin.routes["/doc"] = body(b"doc")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    url = f"{origin.url}/doc"

    assert make_fetcher(FetchSettings(retries=1)).get_document(url).body == b"doc"
    assert proxy.urls == []

    import os

    settings = FetchSettings.from_client_environ(os.environ)
    assert make_fetcher(settings).get_document(url).body == b"doc"
    assert proxy.urls == [url]


def test_unreachable_proxy_is_transient(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy_url = f"http://user:hunter2@127.0.0.1:{port}"
    settings = FetchSettings(http_proxy=proxy_url, retries=2, backoff=0.001)

    with pytest.raises(TransientError) as caught:
        make_fetcher(settings).get_document(f"{origin.url}/doc")

    assert str(caught.value).endswith(
        f"gave up after 2 attempts; last failure: proxy http://user:***@127.0.0.1:{port} "
        "failed: connection refused"
    )

    assert origin.seen == []


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: PKI) -> Iterator[OriginServer]:
    server = OriginServer(tls=pki.server_context())
    server.routes["/doc"] = body(b"secure")
    server.routes["/downgrade"] = body(b"", status=302, Location="http://127.0.0.1:9/doc")
    with serving(server):
        yield server


def test_private_ca_is_refused_without_ca_certificates(
    tls_server: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    url = f"{tls_server.url}/doc"
    before = len(tls_server.seen)

    with pytest.raises(StreamError) as caught:
        make_fetcher().get_document(url)

    assert not isinstance(caught.value, TransientError)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch {url}: TLS certificate verify failed: ")
    assert "add that CA to ca-certificates" in message
    assert len(tls_server.seen) == before


def test_private_ca_is_trusted_with_ca_certificates(
    tls_server: OriginServer, pki: PKI, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(FetchSettings(ca_certificates=pki.ca_pem))

    assert fetcher.get_document(f"{tls_server.url}/doc").body == b"secure"
    with fetcher.open_download(f"{tls_server.url}/doc") as download:
        assert b"".join(download.iter_chunks()) == b"secure"


def test_https_to_http_redirect_is_refused(
    tls_server: OriginServer, pki: PKI, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(FetchSettings(ca_certificates=pki.ca_pem))

    with pytest.raises(StreamError, match="refusing redirect from https to plain http"):
        fetcher.get_document(f"{tls_server.url}/downgrade")


def test_ca_certificates_are_checked_when_the_fetcher_is_made(pki: PKI) -> None:
    with pytest.raises(InvalidInputError, match="^ca-certificates: no PEM certificate found"):
        Fetcher(FetchSettings(ca_certificates="not a certificate"))

    assert Fetcher(FetchSettings(ca_certificates=f"\n{pki.ca_pem}\n")).settings.ca_certificates


def test_https_through_a_proxy_tunnel(
    tls_server: OriginServer, pki: PKI, proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    proxy.required = "Basic " + base64.b64encode(b"user:hunter2").decode()
    port = proxy.server_address[1]
    settings = FetchSettings(
        https_proxy=f"http://user:hunter2@127.0.0.1:{port}", ca_certificates=pki.ca_pem
    )
    fetcher = make_fetcher(settings)

    assert fetcher.get_document(f"{tls_server.url}/doc").body == b"secure"
    with fetcher.open_download(f"{tls_server.url}/doc") as download:
        assert b"".join(download.iter_chunks()) == b"secure"

    tunnel = f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"
    assert proxy.urls == [tunnel]  # one tunnel, kept alive for the second request
    assert proxy.authorizations == [proxy.required]


def test_proxy_refusing_the_tunnel_is_reported_with_its_status(
    tls_server: OriginServer, pki: PKI, proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    proxy.required = "Basic " + base64.b64encode(b"user:hunter2").decode()
    port = proxy.server_address[1]
    settings = FetchSettings(
        https_proxy=f"http://user:wrong@127.0.0.1:{port}",
        ca_certificates=pki.ca_pem,
        retries=1,
    )

    with pytest.raises(TransientError) as caught:
        make_fetcher(settings).get_document(f"{tls_server.url}/doc")

    assert str(caught.value).endswith(
        f"last failure: proxy http://user:***@127.0.0.1:{port} failed: "
        "Tunnel connection failed: 407 Proxy Authentication Required"
    )
    assert "wrong" not in str(caught.value)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A second CA, which the `pki` servers' certificates do not chain to."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def tls_proxy_server(pki: PKI) -> Iterator[ProxyServer]:
    server = ProxyServer(tls=pki.server_context())
    with serving(server):
        yield server


@pytest.fixture
def tls_proxy(tls_proxy_server: ProxyServer) -> ProxyServer:
    """An https:// proxy whose certificate comes from `pki`, as the TLS origin's does."""
    tls_proxy_server.urls.clear()
    tls_proxy_server.authorizations.clear()
    tls_proxy_server.required = None
    return tls_proxy_server


@pytest.fixture
def other_tls_proxy(other_pki: PKI) -> Iterator[ProxyServer]:
    """An https:// proxy whose certificate comes from `other_pki`."""
    server = ProxyServer(tls=other_pki.server_context())
    with serving(server):
        yield server


def test_https_through_an_https_proxy_is_tls_in_tls(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    settings = FetchSettings(https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, retries=1)
    fetcher = make_fetcher(settings)
    before = len(tls_server.seen)

    assert fetcher.get_document(f"{tls_server.url}/doc").body == b"secure"
    with fetcher.open_download(f"{tls_server.url}/doc") as download:
        assert b"".join(download.iter_chunks()) == b"secure"

    assert tls_proxy.url.startswith("https://")
    assert tls_proxy.urls == [f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"]
    assert tls_proxy.authorizations == [None]
    seen = tls_server.seen[before:]
    assert [s.path for s in seen] == ["/doc", "/doc"]
    assert seen[0].port == seen[1].port  # one tunnel, kept alive for the second request


def test_https_proxy_credentials_are_sent_as_proxy_authorization(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    tls_proxy.required = "Basic " + base64.b64encode(b"user:hunter2").decode()
    port = tls_proxy.server_address[1]
    settings = FetchSettings(
        https_proxy=f"https://user:hunter2@127.0.0.1:{port}",
        ca_certificates=pki.ca_pem,
        retries=1,
    )

    assert make_fetcher(settings).get_document(f"{tls_server.url}/doc").body == b"secure"

    assert tls_proxy.urls == [f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"]
    assert tls_proxy.authorizations == [tls_proxy.required]


def test_a_body_that_ends_when_the_origin_closes_through_an_https_proxy(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    # No Content-Length: the body ends with the connection, which http.client hands over
    # to the response while the body is still to be read.
    def until_close(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(BLOB)
        handler.close_connection = True

    tls_server.routes["/until-close"] = until_close
    settings = FetchSettings(https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, retries=1)
    fetcher = make_fetcher(settings)
    try:
        assert fetcher.get_document(f"{tls_server.url}/until-close").body == BLOB
        with fetcher.open_download(f"{tls_server.url}/until-close") as download:
            assert b"".join(download.iter_chunks(1000)) == BLOB
    finally:
        del tls_server.routes["/until-close"]

    assert len(tls_proxy.urls) == 2  # a new tunnel for each: the origin closed the first


@pytest.mark.parametrize("untrusted", ["proxy", "origin"])
def test_an_untrusted_certificate_through_an_https_proxy_is_refused(
    tls_server: OriginServer,
    pki: PKI,
    other_pki: PKI,
    other_tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
    untrusted: str,
) -> None:
    # The proxy's certificate comes from other_pki, the origin's from pki: trust one of them.
    trusted = pki if untrusted == "proxy" else other_pki
    settings = FetchSettings(https_proxy=other_tls_proxy.url, ca_certificates=trusted.ca_pem)
    url = f"{tls_server.url}/doc"
    before = len(tls_server.seen)

    with pytest.raises(StreamError) as caught:
        make_fetcher(settings).get_document(url)

    assert not isinstance(caught.value, TransientError)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch {url}: TLS certificate verify failed: ")
    assert "add that CA to ca-certificates" in message
    tunnels = [f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"]
    assert other_tls_proxy.urls == ([] if untrusted == "proxy" else tunnels)  # refused first
    assert len(tls_server.seen) == before


def test_a_stalled_origin_through_an_https_proxy_is_cut_by_the_read_timeout(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    tls_server.routes["/stall.tgz"] = stall(declared=len(BLOB), sent=BLOB[:4096])
    tls_server.release = threading.Event()
    settings = FetchSettings(
        https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, read_timeout=0.3
    )
    received = bytearray()
    started = time.monotonic()
    try:
        with make_fetcher(settings).open_download(f"{tls_server.url}/stall.tgz") as download:
            with pytest.raises(TransientError) as caught:
                for chunk in download.iter_chunks(1024):
                    received += chunk
    finally:
        tls_server.release.set()
        del tls_server.routes["/stall.tgz"]

    assert received == BLOB[:4096]
    assert "no data received for 0.3 s (read timeout)" in str(caught.value)
    assert time.monotonic() - started < 3


def test_an_origin_silent_through_an_https_proxy_is_cut_by_the_connect_timeout(
    pki: PKI, tls_proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # The proxy's tunnel is up, but the origin never answers the TLS handshake inside it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        settings = FetchSettings(
            https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, connect_timeout=0.3, retries=1
        )
        started = time.monotonic()

        with pytest.raises(TransientError) as caught:
            make_fetcher(settings).get_document(f"https://127.0.0.1:{port}/doc")

    assert time.monotonic() - started < 3
    assert str(caught.value).endswith("timed out connecting (connect timeout 0.3 s)")
    assert tls_proxy.urls == [f"CONNECT 127.0.0.1:{port}"]


def test_http_through_an_https_proxy(
    origin: OriginServer, pki: PKI, tls_proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"via tls proxy")
    settings = FetchSettings(http_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, retries=1)
    url = f"{origin.url}/doc"

    assert make_fetcher(settings).get_document(url).body == b"via tls proxy"

    assert tls_proxy.urls == [url]
    assert origin.seen[0].headers.get("Via") == "1.1 test-proxy"


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("not a certificate", "no PEM certificate found"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not valid PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
    ],
)
def test_bad_ca_certificates_name_the_option(pem: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^ca-certificates: .*{reason}"):
        Fetcher(FetchSettings(ca_certificates=pem))
    with pytest.raises(InvalidInputError, match=f"^ca-certificates: .*{reason}"):
        check_ca_certificates(pem)


def test_a_block_that_is_no_certificate_is_refused_with_the_accepted_form() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(InvalidInputError) as refused:
        check_ca_certificates(pem)
    assert str(refused.value) == (
        "ca-certificates: not valid PEM certificates (a -----BEGIN CERTIFICATE----- block "
        "does not hold a base64 DER certificate); expected one or more "
        "-----BEGIN CERTIFICATE----- blocks"
    )


def test_good_ca_certificates_pass_the_check(pki: PKI) -> None:
    assert check_ca_certificates(f"\n{pki.ca_pem}\n\n") == pki.ca_pem.strip()


# --------------------------------------------------------------------------- review findings


def test_an_ipv6_origin_is_tunnelled_with_its_address_in_brackets(
    proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # The test proxy refuses (403) to tunnel anywhere but 127.0.0.1: nothing reaches ::1.
    settings = FetchSettings(https_proxy=proxy.url, retries=1)

    with pytest.raises(TransientError, match="Tunnel connection failed: 403"):
        make_fetcher(settings).get_document("https://[::1]:8443/doc")

    assert proxy.urls == ["CONNECT [::1]:8443"]


def test_informational_responses_before_the_answer_are_skipped(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    def early_hints(handler: Handler) -> None:
        handler.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        handler.reply(200, b"doc")

    origin.routes["/doc"] = early_hints

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b"doc"


def test_a_redirect_to_the_same_host_keeps_the_url_credentials(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/old"] = body(b"", status=301, Location=f"{origin.url}/doc")  # absolute
    origin.routes["/doc"] = body(b"ok")
    secured = origin.url.replace("http://", "http://user:pw@")

    assert make_fetcher().get_document(f"{secured}/old").body == b"ok"

    expected = "Basic " + base64.b64encode(b"user:pw").decode()
    assert [seen.headers.get("Authorization") for seen in origin.seen] == [expected, expected]


def test_a_redirect_to_another_host_drops_the_url_credentials(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    other = origin.url.replace("127.0.0.1", "127.1")  # another name for 127.0.0.1
    origin.routes["/old"] = body(b"", status=301, Location=f"{other}/doc")
    origin.routes["/doc"] = body(b"ok")
    secured = origin.url.replace("http://", "http://user:pw@")

    assert make_fetcher().get_document(f"{secured}/old").body == b"ok"

    assert origin.seen[1].headers.get("Authorization") is None


def test_a_malformed_redirect_location_is_a_stream_error(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/old"] = body(b"", status=302, Location="http://[::1/doc")

    with pytest.raises(StreamError, match="redirected to an invalid URL"):
        make_fetcher().get_document(f"{origin.url}/old")


def test_a_gzip_document_of_several_members_is_decoded_whole(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    data = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    origin.routes["/doc"] = body(data, Content_Encoding="gzip")

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b'{"a": 1}'


def test_a_gzip_member_starting_at_a_chunk_boundary_is_decoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    first, second = gzip.compress(b'{"a": '), gzip.compress(b"1}")

    def in_pieces(handler: Handler) -> None:  # a read returns at most one chunk
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for piece in (first, second[:1], second[1:]):
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    origin.routes["/doc"] = in_pieces

    assert make_fetcher().get_document(f"{origin.url}/doc").body == b'{"a": 1}'


def test_a_large_download_through_an_https_proxy(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    """5 MB of TLS records inside the proxy's TLS records: none lost, none reordered."""
    large = bytes(range(256)) * (5 * 4096) + b"tail"  # 5 MiB and 4 bytes
    tls_server.routes["/large"] = body(large)
    tls_server.routes["/doc-after"] = body(b"after")
    settings = FetchSettings(https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, retries=1)
    fetcher = make_fetcher(settings)
    try:
        with fetcher.open_download(f"{tls_server.url}/large") as download:
            got = b"".join(download.iter_chunks(65_537))
        assert len(got) == len(large)
        assert got == large
        assert fetcher.get_document(f"{tls_server.url}/large").body == large
        assert fetcher.get_document(f"{tls_server.url}/doc-after").body == b"after"
    finally:
        del tls_server.routes["/large"], tls_server.routes["/doc-after"]
    assert len(tls_proxy.urls) == 1  # one tunnel, reused after each body was read through


def test_an_idle_tls_in_tls_connection_the_origin_closed_is_not_reused(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    def answer_then_hang_up(handler: Handler) -> None:
        handler.reply(200, b"doc")  # no "Connection: close": the client cannot know
        handler.close_connection = True

    tls_server.routes["/hang-up"] = answer_then_hang_up
    settings = FetchSettings(https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, retries=1)
    fetcher = make_fetcher(settings)
    try:
        assert fetcher.get_document(f"{tls_server.url}/hang-up").body == b"doc"
        time.sleep(0.2)
        assert fetcher.get_document(f"{tls_server.url}/hang-up").body == b"doc"
    finally:
        del tls_server.routes["/hang-up"]
    assert len(tls_proxy.urls) == 2


# --------------------------------------------------------------------------- bounds: time


def within(seconds: float, action: Callable[[], object]) -> object:
    """Run ``action`` in a thread: fail the test, instead of hanging, if it takes longer."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: unbounded")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def trickle(head: bytes, body: bytes, *, pause: float, slow_head: bool) -> Route:
    """Send ``head`` (status line and headers) and ``body``, byte by byte, ``pause`` apart.

    Only the body trickles unless ``slow_head``. Every pause is far below the read timeout
    of the tests that use it: only a bound on the whole transfer cuts this off.
    """

    def route(handler: Handler) -> None:
        handler.close_connection = True
        try:
            if not slow_head:
                handler.wfile.write(head)
            for byte in (head if slow_head else b"") + body:
                if handler.server.release.is_set():
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(pause)
        except OSError:  # the client hung up: cut off, as it should be
            return

    return route


SLOW_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Padding: " + b"p" * 5000 + b"\r\n\r\n"
# "Connection: close": http.client closes the connection and reads the body from its socket.
SLOW_BODY_HEAD = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n"


@pytest.mark.parametrize("slow_head", [False, True], ids=["body", "headers"])
def test_a_document_sent_a_byte_at_a_time_is_cut_off_by_the_document_timeout(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], slow_head: bool
) -> None:
    head, data = (SLOW_HEAD, b"abcd") if slow_head else (SLOW_BODY_HEAD, b"x" * 5000)
    origin.routes["/doc"] = trickle(head, data, pause=0.02, slow_head=slow_head)
    settings = FetchSettings(read_timeout=2.0, document_timeout=1.0, retries=3, backoff=0)
    url = f"{origin.url}/doc"
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        within(10, lambda: make_fetcher(settings).get_document(url))

    elapsed = time.monotonic() - started
    assert str(caught.value) == f"cannot fetch {url}: not complete within 1 s (document timeout)"
    assert 1.0 <= elapsed < 2.5  # the bound, not the read timeout, nor 5000 bytes' worth
    assert len(origin.seen) == 1  # a broken deadline is not retried


def test_a_document_slowed_down_through_an_https_proxy_is_cut_off_too(
    tls_server: OriginServer,
    pki: PKI,
    tls_proxy: ProxyServer,
    make_fetcher: Callable[..., Fetcher],
) -> None:
    tls_server.routes["/slow"] = trickle(SLOW_BODY_HEAD, b"x" * 5000, pause=0.02, slow_head=False)
    tls_server.release = threading.Event()
    settings = FetchSettings(
        https_proxy=tls_proxy.url, ca_certificates=pki.ca_pem, document_timeout=1.0
    )
    url = f"{tls_server.url}/slow"
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match=r"not complete within 1 s \(document timeout\)$"):
            within(10, lambda: make_fetcher(settings).get_document(url))
    finally:
        tls_server.release.set()
        del tls_server.routes["/slow"]

    assert 1.0 <= time.monotonic() - started < 2.5
    assert tls_proxy.urls == [f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"]


def test_the_document_timeout_covers_the_pauses_between_attempts(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"", status=503, Retry_After="30")
    settings = FetchSettings(document_timeout=1.0, retries=3)
    url = f"{origin.url}/doc"
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        within(10, lambda: make_fetcher(settings).get_document(url))

    assert str(caught.value) == f"cannot fetch {url}: not complete within 1 s (document timeout)"
    assert time.monotonic() - started < 1.0  # a 30 s pause cannot end in time: no waiting
    assert len(origin.seen) == 1


def test_a_document_within_its_timeout_is_read(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = trickle(
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", b"y" * 20, pause=0.02, slow_head=False
    )
    settings = FetchSettings(read_timeout=2.0, document_timeout=1.5)

    assert make_fetcher(settings).get_document(f"{origin.url}/doc").body == b"y" * 20


@pytest.mark.parametrize("slow_head", [False, True], ids=["body", "headers"])
def test_a_download_below_the_minimum_rate_is_cut_off(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], slow_head: bool
) -> None:
    head, data = (SLOW_HEAD, b"abcd") if slow_head else (SLOW_BODY_HEAD, b"x" * 5000)
    origin.routes["/agent.tgz"] = trickle(head, data, pause=0.02, slow_head=slow_head)
    settings = FetchSettings(read_timeout=2.0, min_download_rate=1024, min_rate_window=0.5)
    url = f"{origin.url}/agent.tgz"
    fetcher = make_fetcher(settings)
    started = time.monotonic()

    def download() -> bytes:
        with fetcher.open_download(url) as download:
            return b"".join(download.iter_chunks())

    with pytest.raises(TransientError) as caught:
        within(10, download)

    elapsed = time.monotonic() - started
    limit = "slower than 1 KiB/s for 0.5 s (minimum download rate)"
    if slow_head:
        assert str(caught.value) == f"cannot fetch {url}: {limit}"
    else:
        assert re.fullmatch(
            rf"download of {re.escape(url)} broke off after \d+ bytes: {re.escape(limit)}",
            str(caught.value),
        )
    assert 0.5 <= elapsed < 1.5  # the window (judged in eighths of it), not 5000 bytes' worth
    assert len(origin.seen) == 1


def test_a_download_above_the_minimum_rate_is_not_cut_off(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # 100 bytes every 20 ms (~5 KiB/s) for 1.5 s: three windows above 1 KiB/s.
    data = bytes(range(256)) * 30

    def steady(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for start in range(0, len(data), 100):
            handler.wfile.write(data[start : start + 100])
            handler.wfile.flush()
            time.sleep(0.02)

    origin.routes["/agent.tgz"] = steady
    settings = FetchSettings(min_download_rate=1024, min_rate_window=0.5)

    with make_fetcher(settings).open_download(f"{origin.url}/agent.tgz") as download:
        assert within(10, lambda: b"".join(download.iter_chunks())) == data


def test_a_pause_before_another_attempt_does_not_count_against_the_rate(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = in_turn(body(b"", status=503, Retry_After="1"), body(BLOB))
    settings = FetchSettings(min_download_rate=1024, min_rate_window=0.5, retries=2)
    started = time.monotonic()

    with make_fetcher(settings).open_download(f"{origin.url}/agent.tgz") as download:
        assert b"".join(download.iter_chunks()) == BLOB

    assert time.monotonic() - started >= 1.0  # the server's pause, longer than the window
    assert len(origin.seen) == 2


def interim(count: int | None, status: bytes = b"100 Continue") -> Route:
    """Send ``count`` informational answers (None: for ever), then the answer."""

    def route(handler: Handler) -> None:
        sent = 0
        try:
            while count is None or sent < count:
                if handler.server.release.is_set():
                    return
                handler.wfile.write(b"HTTP/1.1 " + status + b"\r\n\r\n")
                sent += 1
        except OSError:  # the client gave up on us
            handler.close_connection = True
            return
        handler.reply(200, b"doc")

    return route


@pytest.mark.parametrize("status", [b"100 Continue", b"103 Early Hints"])
def test_an_endless_run_of_informational_responses_ends(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], status: bytes
) -> None:
    origin.routes["/doc"] = interim(None, status)
    url = f"{origin.url}/doc"

    with pytest.raises(TransientError) as caught:
        within(10, lambda: make_fetcher(FetchSettings(retries=2, backoff=0)).get_document(url))

    assert str(caught.value) == (
        f"cannot fetch {url}: gave up after 2 attempts; last failure: "
        "more than 10 informational (1xx) responses before the answer"
    )


@pytest.mark.parametrize(("count", "fine"), [(10, True), (11, False)])
def test_at_most_ten_informational_responses_are_skipped(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], count: int, fine: bool
) -> None:
    origin.routes["/doc"] = interim(count, b"103 Early Hints")
    fetcher = make_fetcher(FetchSettings(retries=1))

    if fine:
        assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    else:
        with pytest.raises(TransientError, match=r"more than 10 informational \(1xx\)"):
            fetcher.get_document(f"{origin.url}/doc")


@pytest.mark.parametrize(
    ("kwargs", "accepted"),
    [
        ({"document_timeout": 0}, "must be a number of seconds, above 0 and at most 86400"),
        ({"min_rate_window": float("nan")}, "must be a number of seconds, above 0 and at most"),
        ({"min_download_rate": 1.5}, "must be a whole number of bytes per second, 1 or more"),
        ({"read_timeout": "60"}, "must be a number of seconds, above 0 and at most 3600"),
        ({"retries": True}, "counts attempts and must be a whole number, 1 or more and at"),
        ({"retries": 1000}, "counts attempts and must be a whole number, 1 or more and at"),
    ],
)
def test_bad_bounds_are_refused_with_the_accepted_form(
    kwargs: dict[str, object], accepted: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        FetchSettings(**kwargs)  # type: ignore[arg-type]

    ((name, value),) = kwargs.items()
    assert str(caught.value).startswith(f"{name} {accepted}")
    assert str(caught.value).endswith(f", not {value!r}")


def test_the_default_bounds() -> None:
    settings = FetchSettings()

    assert settings.document_timeout == 300.0
    assert (settings.min_download_rate, settings.min_rate_window) == (8 * 1024, 60.0)
    # A 2 Mbit/s link shared by the sync's four downloads keeps each well above the minimum,
    # and brings the largest document accepted within its timeout.
    link = 2_000_000 / 8
    assert link / 4 > 5 * settings.min_download_rate
    assert settings.max_document_bytes / link < settings.document_timeout


# --------------------------------------------------------------------------- bounds: numbers


BAD_NUMBERS = [
    pytest.param("\u00b2", id="superscript-two"),
    pytest.param("1\u00b3", id="digit-and-superscript"),
    pytest.param("9" * 5000, id="5000-digits"),
    pytest.param("9" * 19, id="19-digits"),
    pytest.param("-1", id="negative"),
    pytest.param("0x10", id="hex"),
]


def raw(head: bytes, data: bytes = b"") -> Route:
    """Send a hand-made status line and headers (Latin-1, as HTTP has them), then ``data``."""

    def route(handler: Handler) -> None:
        handler.close_connection = True
        handler.wfile.write(head + b"\r\n\r\n" + data)

    return route


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_content_length_that_is_not_ascii_digits_is_refused(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], value: str
) -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + value.encode("latin-1")
    origin.routes["/doc"] = raw(head, b"data")
    url = f"{origin.url}/doc"
    fetcher = make_fetcher()
    shown = repr(value if len(value) <= 60 else value[:57] + "...")
    expected = (
        f"cannot fetch {url}: invalid Content-Length header {shown}; expected a number of "
        "bytes in at most 18 ASCII digits"
    )

    with pytest.raises(StreamError) as document:
        fetcher.get_document(url)
    with pytest.raises(StreamError) as download:
        with fetcher.open_download(url):
            pass

    for caught in (document, download):
        assert str(caught.value) == expected
        assert not isinstance(caught.value, TransientError)
    assert len(origin.seen) == 2  # refused at once, not retried


def test_a_content_length_of_eighteen_digits_is_read_as_a_number(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = raw(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 18)
    url = f"{origin.url}/doc"

    with pytest.raises(StreamError) as caught:
        make_fetcher().get_document(url)

    assert str(caught.value) == (
        f"{url} is too large: the server announced {'9' * 18} bytes, over the 64 MiB limit "
        "for metadata documents"
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("bytes \u00b2-10239/10240", id="superscript-start"),
        pytest.param("bytes 5000-" + "9" * 5000 + "/10240", id="5000-digit-end"),
        pytest.param("bytes 5000-10239/" + "9" * 30, id="30-digit-length"),
        pytest.param("bytes 5000-10239/4000", id="end-past-length"),
        pytest.param("items 5000-10239/10240", id="unit"),
        pytest.param("", id="empty"),
    ],
)
def test_a_malformed_content_range_is_refused(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], value: str
) -> None:
    head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5240\r\nContent-Range: "
    origin.routes["/agent.tgz"] = raw(head + value.encode("latin-1"), BLOB[5000:])
    url = f"{origin.url}/agent.tgz"
    shown = repr(value if len(value) <= 60 else value[:57] + "...")

    with pytest.raises(StreamError) as caught:
        with make_fetcher().open_download(url, offset=5000):
            pass

    assert str(caught.value) == (
        f"cannot fetch {url}: invalid Content-Range header {shown}; expected bytes "
        "FIRST-LAST/LENGTH in ASCII digits (at most 18 each)"
    )
    assert not isinstance(caught.value, TransientError)
    assert len(origin.seen) == 1


def test_a_content_range_of_unknown_length_is_accepted(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/agent.tgz"] = body(BLOB[5000:], status=206, Content_Range="bytes 5000-10239/*")

    with make_fetcher().open_download(f"{origin.url}/agent.tgz", offset=5000) as download:
        assert (download.offset, download.length) == (5000, 5240)
        assert b"".join(download.iter_chunks()) == BLOB[5000:]


@pytest.mark.parametrize(
    ("retry_after", "pauses"),
    [
        ("2", [2.0, 2.0]),
        ("100000", [60.0, 60.0]),  # capped at a minute
        ("9" * 5000, [0.5, 1.0]),  # not a sane number: the back-off instead
        ("Wed, 99 Foo 2025 99:99:99 GMT", [0.5, 1.0]),  # not a date either
    ],
)
def test_retry_after_is_honoured_within_bounds(
    origin: OriginServer, retry_after: str, pauses: list[float]
) -> None:
    origin.routes["/doc"] = in_turn(
        body(b"", status=503, Retry_After=retry_after),
        body(b"", status=429, Retry_After=retry_after),
        body(b"ok"),
    )
    slept: list[float] = []
    settings = FetchSettings(backoff=0.5, retries=3)

    with Fetcher(settings, sleep=slept.append) as fetcher:
        assert fetcher.get_document(f"{origin.url}/doc").body == b"ok"

    assert slept == pauses


# --------------------------------------------------------------------------- bounds: files


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "index2.json"
    os.mkfifo(path)
    yield path
    with contextlib.suppress(OSError):  # free a reader left blocked, if any
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_is_not_read_as_a_document(
    fifo: Path, make_fetcher: Callable[..., Fetcher]
) -> None:
    url = fifo.as_uri()
    fetcher = make_fetcher()

    with pytest.raises(StreamError) as document:
        within(5, lambda: fetcher.get_document(url))

    def download() -> None:
        with fetcher.open_download(url):
            pass

    with pytest.raises(StreamError) as opened:
        within(5, download)

    for caught in (document, opened):
        assert str(caught.value) == (
            f"cannot read {url}: it is a FIFO (named pipe); a regular file is needed"
        )


@pytest.mark.parametrize("name", ["tools%00x", "tools\x00x"])
def test_a_file_url_naming_a_nul_is_refused(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher], name: str
) -> None:
    """os.open raises ValueError for a path holding a NUL: it reached hooks and the CLI."""
    url = f"{tmp_path.as_uri()}/{name}/streams/v1/index2.json"
    fetcher = make_fetcher()

    with pytest.raises(StreamError) as document:
        fetcher.get_document(url)

    def download() -> None:
        with fetcher.open_download(url):
            pass

    with pytest.raises(StreamError) as opened:
        download()

    for caught in (document, opened):
        assert str(caught.value) == (
            f"cannot read {url}: a file path cannot hold a NUL character (%00)"
        )


def test_a_device_is_not_read_as_a_document(make_fetcher: Callable[..., Fetcher]) -> None:
    with pytest.raises(StreamError) as caught:
        within(5, lambda: make_fetcher().get_document("file:///dev/zero"))

    assert str(caught.value) == (
        "cannot read file:///dev/zero: it is a character device; a regular file is needed"
    )


def test_a_symbolic_link_to_a_regular_file_is_read(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher]
) -> None:
    (tmp_path / "real.json").write_bytes(b"{}")
    (tmp_path / "index2.json").symlink_to(tmp_path / "real.json")

    assert make_fetcher().get_document((tmp_path / "index2.json").as_uri()).body == b"{}"


# --------------------------------------------------------------------------- not as requests does


def endless_body(status: int, **headers: str) -> Route:
    """Answer ``status`` with a chunked body that never ends (until the client hangs up)."""

    def route(handler: Handler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        chunk = b"z" * 65536
        try:
            while not handler.server.release.is_set():
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            return

    return route


def test_the_body_of_a_redirect_is_not_read(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # requests reads a redirect's body whole into memory, even when it is not to follow it.
    origin.routes["/old"] = endless_body(302, Location="/doc")
    origin.routes["/doc"] = body(b"moved")

    document = within(5, lambda: make_fetcher().get_document(f"{origin.url}/old"))

    assert isinstance(document, Document)
    assert document.body == b"moved"


def test_the_body_of_an_answer_that_is_retried_is_not_read(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # urllib3 reads a retried answer to its end, to reuse the connection.
    origin.routes["/doc"] = in_turn(endless_body(503), body(b"ok"))

    document = within(5, lambda: make_fetcher().get_document(f"{origin.url}/doc"))

    assert isinstance(document, Document)
    assert document.body == b"ok"


# --------------------------------------------------------------------------- requests as sent


@pytest.mark.parametrize(
    ("login", "pair"),
    [
        ("user:p%40ss", "user:p@ss"),
        ("token", "token:"),  # a token alone, as curl and git send it
        ("user:", "user:"),
        ('user:s\\e"c<r>et', 'user:s\\e"c<r>et'),  # pasted unencoded: urllib3 would refuse it
        ("us%C3%A9r:p%C3%A4ss", "us\u00e9r:p\u00e4ss"),  # UTF-8, as RFC 7617 says
    ],
)
def test_url_credentials_become_basic_authorization(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], login: str, pair: str
) -> None:
    origin.routes["/doc"] = body(b"ok")

    url = origin.url.replace("http://", f"http://{login}@") + "/doc"
    assert make_fetcher().get_document(url).body == b"ok"

    expected = "Basic " + base64.b64encode(pair.encode("utf-8")).decode()
    assert origin.seen[0].headers.get("Authorization") == expected
    assert origin.seen[0].headers.get("Host") == origin.url.removeprefix("http://")


def test_a_login_holding_bytes_that_are_not_utf8_is_sent_as_given(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher], proxy: ProxyServer
) -> None:
    """Python decodes such bytes in argv and the environment as lone surrogates (PEP 383):
    encoding the login raised UnicodeEncodeError ('unexpected' in the CLI)."""
    origin.routes["/doc"] = body(b"ok")
    login = os.fsdecode(b"user:p\xe4ss")  # a Latin-1 password typed in a Latin-1 terminal
    url = origin.url.replace("http://", f"http://{login}@") + "/doc"
    proxy_url = proxy.url.replace("http://", f"http://{login}@")
    fetcher = make_fetcher(dataclasses.replace(FAST, http_proxy=proxy_url))

    assert fetcher.get_document(url).body == b"ok"

    expected = "Basic " + base64.b64encode(b"user:p\xe4ss").decode()
    assert origin.seen[0].headers.get("Authorization") == expected
    assert proxy.authorizations == [expected]


def test_a_percent_sign_that_is_not_an_escape_is_encoded(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # "100%.tgz" is not a valid request target (servers answer 400): its "%" is sent as %25.
    origin.routes["/100%25.tgz"] = body(b"odd")
    origin.routes["/a%20b"] = body(b"escaped")
    fetcher = make_fetcher()

    assert fetcher.get_document(f"{origin.url}/100%.tgz?q=5%").body == b"odd"
    assert fetcher.get_document(f"{origin.url}/a%20b").body == b"escaped"
    assert origin.paths() == ["/100%25.tgz?q=5%25", "/a%20b"]


def test_url_and_proxy_credentials_through_an_http_proxy(
    origin: OriginServer, proxy: ProxyServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    origin.routes["/doc"] = body(b"via proxy")
    proxy.required = "Basic " + base64.b64encode(b"pu:p\\w").decode()
    port = proxy.server_address[1]
    settings = FetchSettings(http_proxy=f"http://pu:p\\w@127.0.0.1:{port}", retries=1)
    url = origin.url.replace("http://", "http://user:pw@") + "/doc"

    assert make_fetcher(settings).get_document(url).body == b"via proxy"

    assert proxy.urls == [f"{origin.url}/doc"]  # an absolute URI, without the login
    assert proxy.authorizations == [proxy.required]
    login = "Basic " + base64.b64encode(b"user:pw").decode()
    assert origin.seen[0].headers["Authorization"] == login


def test_an_idle_connection_on_a_high_descriptor_is_still_checked(
    origin: OriginServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    # select() cannot watch descriptors >= 1024; a busy process has them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2048)), hard))
    filler: list[int] = []
    try:
        while not filler or filler[-1] < 1030:
            filler.append(os.open(os.devnull, os.O_RDONLY))

        def answer_then_hang_up(handler: Handler) -> None:
            handler.reply(200, b"doc")  # no "Connection: close": the client cannot know
            handler.close_connection = True

        origin.routes["/doc"] = answer_then_hang_up
        fetcher = make_fetcher(FetchSettings(retries=1))

        assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
        time.sleep(0.1)
        assert fetcher.get_document(f"{origin.url}/doc").body == b"doc"
    finally:
        for descriptor in filler:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len({seen.port for seen in origin.seen}) == 2
