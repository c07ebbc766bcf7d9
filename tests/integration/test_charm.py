"""Deploy the packed charm, point it at a small local stream, and plan an upgrade.

The stream is served from this machine by Python's http.server, on the address of this machine
that the deployed unit routes to (for a local LXD cloud, the bridge address). This is the only
test in the project that binds to something other than 127.0.0.1, and it only runs where a
developer has bootstrapped a Juju controller; elsewhere conftest.py skips it.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import socket
import threading
from collections.abc import Iterator

import jubilant
import pytest
import requests

from support.streams import Agent, write_stream

APP = "upgrader"
STREAM = "released"
VERSIONS = ("3.6.1", "3.6.4")


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the stream directory and remembers which paths were asked for."""

    requested: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Record the path instead of printing to stderr."""
        self.requested.append(self.path)


def address_towards(peer: str) -> str:
    """This machine's address on the route to ``peer`` (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((peer, 9))
        return sock.getsockname()[0]


@pytest.fixture(scope="module")
def deployed(juju: jubilant.Juju, charm_path: pathlib.Path) -> str:
    """Deploy the charm with its storage; return the unit's address."""
    juju.deploy(charm_path, APP, storage={"binaries": "2G"})
    juju.wait(lambda status: APP in status.apps and bool(status.apps[APP].units))
    status = juju.wait(
        lambda status: all(u.public_address for u in status.apps[APP].units.values())
    )
    unit = next(iter(status.apps[APP].units.values()))
    return unit.public_address


@pytest.fixture(scope="module")
def stream_server(
    deployed: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    """Serve a small stream where the unit can reach it; yield its URL and the request log."""
    root = tmp_path_factory.mktemp("stream")
    write_stream(root, [Agent(v, "amd64") for v in VERSIONS], stream=STREAM)
    host = os.environ.get("UPGRADER_TEST_HOST") or address_towards(deployed)
    requested: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(
        (host, 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_active_with_local_stream(juju: jubilant.Juju, stream_server: tuple[str, list[str]]):
    url, requested = stream_server
    # The stream is unsigned: the charm reads it only with verify-signatures off, after
    # looking for the signed form first.
    juju.config(
        APP,
        {
            "stream-url": url,
            "stream": STREAM,
            "architectures": "amd64",
            "verify-signatures": False,
        },
    )
    juju.wait(lambda status: jubilant.all_active(status, APP), error=jubilant.any_error)
    assert (
        "(unverified source)" in juju.status().apps[APP].units[f"{APP}/0"].workload_status.message
    )
    signed = [p for p in requested if p.endswith("/streams/v1/index2.sjson")]
    unsigned = [p for p in requested if p.endswith("/streams/v1/index2.json")]
    assert signed and unsigned and requested.index(signed[0]) < requested.index(unsigned[0])


def test_plan_upgrade(juju: jubilant.Juju, stream_server: tuple[str, list[str]]):
    task = juju.run(
        f"{APP}/0",
        "plan-upgrade",
        {"agent-version": VERSIONS[0], "policy": "juju-3"},
        wait=300,
    )
    assert task.status == "completed", task.message
    # Juju returns every result value as a string.
    assert task.results["outcome"] == "upgrade"
    assert task.results["target-version"] == VERSIONS[-1]
    assert task.results["source"] == stream_server[0]
    assert task.results["verified"] == "false"


def test_sync_and_serve(juju: jubilant.Juju, deployed: str):
    task = juju.run(f"{APP}/0", "sync-binaries", {"version": "3.6"}, wait=600)
    assert task.status == "completed", task.message
    assert task.results["versions"] == ", ".join(reversed(VERSIONS))
    url = task.results["agent-metadata-url"]
    assert url == f"http://{deployed}:8080/tools"
    juju.wait(lambda status: jubilant.all_active(status, APP), error=jubilant.any_error)
    message = juju.status().apps[APP].units[f"{APP}/0"].workload_status.message
    assert f"agent-metadata-url={url}" in message
    index = requests.get(f"{url}/streams/v1/index2.json", timeout=30)
    assert index.status_code == 200
    tarball = f"{url}/{STREAM}/juju-{VERSIONS[-1]}-ubuntu-amd64.tgz"
    response = requests.get(tarball, timeout=30)
    assert response.status_code == 200
    assert response.content == Agent(VERSIONS[-1], "amd64").data
    assert requests.get(f"{url}/", timeout=30).status_code == 404  # no listing
