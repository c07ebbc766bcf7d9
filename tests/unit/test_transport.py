"""Tests for upgrader.transport: request planning, and idle connections on a real socket.

The fetcher's tests (test_fetch.py) drive the transport end to end through real servers and
a real proxy; these cover what they cannot observe from outside.
"""

from __future__ import annotations

import base64
import os
import resource
import socket
import threading
import time

import pytest

from upgrader.transport import Connection, Endpoint, UnsupportedRequestError, plan


def basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()


def test_direct_request_uses_the_path_and_a_host_header() -> None:
    target = plan("https://streams.example.com/tools/index2.json?x=1", None, {"A": "b"})

    assert target.endpoint == Endpoint(
        "https", "streams.example.com", 443, None, "streams.example.com"
    )
    assert target.request_target == "/tools/index2.json?x=1"
    assert target.headers == {"Host": "streams.example.com", "A": "b"}
    assert target.tunnel_headers == {}


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("http://[::1]/x", "[::1]"),
        ("http://example.com:80/x", "example.com"),
        ("https://example.com:8443/x", "example.com:8443"),
        ("http://bücher.example/x", "xn--bcher-kva.example"),
    ],
)
def test_host_header(url: str, host: str) -> None:
    assert plan(url, None, {}).headers["Host"] == host


def test_http_through_a_proxy_is_an_absolute_uri_request() -> None:
    target = plan("http://u:p@mirror.lan:8080/a b", "http://pu:pp@squid:3128", {})

    assert target.endpoint == Endpoint("http", "squid", 3128, proxy="http://pu:pp@squid:3128")
    assert target.request_target == "http://mirror.lan:8080/a%20b"
    assert target.headers["Authorization"] == basic("u:p")
    assert target.headers["Proxy-Authorization"] == basic("pu:pp")


def test_https_through_a_proxy_is_tunnelled() -> None:
    target = plan("https://streams.example.com/x", "http://pu:pp@squid:3128", {})

    assert target.endpoint.tunnel == ("streams.example.com", 443)
    assert (target.endpoint.host, target.endpoint.port) == ("squid", 3128)
    assert target.endpoint.tls_host == "streams.example.com"
    assert target.endpoint.scheme == "http"
    assert target.endpoint.proxy_tls_host is None  # plain HTTP to the proxy
    assert target.request_target == "/x"
    assert "Proxy-Authorization" not in target.headers  # the proxy sees only CONNECT
    assert target.tunnel_headers == {"Proxy-Authorization": basic("pu:pp")}


def test_http_through_an_https_proxy_speaks_tls_to_the_proxy() -> None:
    target = plan("http://mirror.lan/x", "https://squid:3129", {})

    assert target.endpoint == Endpoint(
        "https", "squid", 3129, proxy="https://squid:3129", proxy_tls_host="squid"
    )


def test_https_through_an_https_proxy_is_tunnelled_over_tls_to_the_proxy() -> None:
    target = plan("https://streams.example.com/x", "https://pu:pp@squid:3129", {})

    assert target.endpoint == Endpoint(
        "https",
        "squid",
        3129,
        tunnel=("streams.example.com", 443),
        tls_host="streams.example.com",  # the origin's TLS, inside the proxy's
        proxy="https://pu:pp@squid:3129",
        proxy_tls_host="squid",
    )
    assert target.request_target == "/x"
    assert "Proxy-Authorization" not in target.headers  # the proxy sees only CONNECT
    assert target.tunnel_headers == {"Proxy-Authorization": basic("pu:pp")}


def test_an_https_proxy_has_its_own_pool_key() -> None:
    url = "https://streams.example.com/x"
    keys = {
        plan(url, None, {}).endpoint,
        plan(url, "http://squid:3129", {}).endpoint,
        plan(url, "https://squid:3129", {}).endpoint,
        plan("http://streams.example.com/x", "https://squid:3129", {}).endpoint,
    }

    assert len(keys) == 4


def test_a_url_without_a_host_is_refused() -> None:
    with pytest.raises(UnsupportedRequestError, match="no host name"):
        plan("http:///x", None, {})


def test_an_idle_connection_knows_when_the_server_closed_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        connection = Connection(
            Endpoint("http", "127.0.0.1", port),
            context=None,
            connect_timeout=2,
            read_timeout=2,
            tunnel_headers={},
        )
        assert connection.is_dropped()  # never opened
        accepted: list[socket.socket] = []
        acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
        acceptor.start()
        connection.connect()
        acceptor.join()
        try:
            assert not connection.is_dropped()
            accepted[0].close()
            time.sleep(0.05)
            assert connection.is_dropped()
        finally:
            connection.close()


@pytest.mark.parametrize(
    ("url", "pair"),
    [
        ("https://user:p%40ss@h/x", "user:p@ss"),
        ("https://token@h/x", "token:"),  # a token alone, as curl and git send it
        ("https://user:@h/x", "user:"),
    ],
)
def test_url_credentials_become_basic_authorization(url: str, pair: str) -> None:
    target = plan(url, None, {})

    assert target.headers["Authorization"] == basic(pair)
    assert target.headers["Host"] == "h"


def test_no_authorization_without_credentials() -> None:
    assert "Authorization" not in plan("https://h/x", None, {}).headers


def test_the_tunnel_request_brackets_ipv6_hosts_and_carries_proxy_credentials() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        received: list[bytes] = []

        def proxy() -> None:
            accepted, _ = listener.accept()
            with accepted:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += accepted.recv(4096)
                received.append(data)
                accepted.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                accepted.recv(1)  # until the client hangs up

        thread = threading.Thread(target=proxy)
        thread.start()
        connection = Connection(
            Endpoint("http", "127.0.0.1", port, ("::1", 8443), proxy="http://127.0.0.1"),
            context=None,
            connect_timeout=2,
            read_timeout=2,
            tunnel_headers={"Proxy-Authorization": basic("u:p")},
        )
        connection.connect()
        connection.close()
        thread.join()

    assert received == [
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
        b"Proxy-Authorization: " + basic("u:p").encode() + b"\r\n\r\n"
    ]


def test_a_percent_sign_that_is_not_an_escape_is_encoded() -> None:
    # As requests did: "100%.tgz" is not a valid request target (servers answer 400).
    assert plan("http://h/100%.tgz?q=5%", None, {}).request_target == "/100%25.tgz?q=5%25"
    assert plan("http://h/a%20b", None, {}).request_target == "/a%20b"


def test_an_idle_connection_on_a_high_descriptor_is_still_checked() -> None:
    # select() cannot watch descriptors >= 1024; a busy process has them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        connection = Connection(
            Endpoint("http", "127.0.0.1", listener.getsockname()[1]),
            context=None,
            connect_timeout=2,
            read_timeout=2,
            tunnel_headers={},
        )
        connection.connect()
        assert connection.sock is not None
        low = connection.sock
        connection.sock = socket.socket(fileno=os.dup2(low.fileno(), 2000))
        low.close()
        accepted, _ = listener.accept()
        try:
            assert connection.sock.fileno() == 2000
            assert not connection.is_dropped()
            accepted.close()
            time.sleep(0.05)
            assert connection.is_dropped()
        finally:
            connection.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
