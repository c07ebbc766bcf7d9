"""The nginx site: rendering, installing with ``nginx -t``, and a real nginx serving a mirror."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
import requests

from support.nginx import REASON, free_port, make_layout, run_nginx, skip_without_nginx
from support.streams import Agent, write_stream
from upgrader import nginx
from upgrader.errors import InvalidInputError

F = TypeVar("F", bound=Callable[..., object])


def needs_nginx(func: F) -> F:
    """Skip without nginx, except under UPGRADER_CI=1, where a missing nginx fails the test."""
    return pytest.mark.needs_system(pytest.mark.skipif(skip_without_nginx(), reason=REASON)(func))


AGENTS = [
    Agent("3.6.12", "amd64"),
    Agent("3.6.12", "arm64"),
    Agent("3.6.11", "amd64"),
]
SSTREAM_MIRROR = Path(sys.executable).with_name("sstream-mirror")


# --- rendering -------------------------------------------------------------------------------


def test_render_site_serves_only_tools_read_only() -> None:
    text = nginx.render_site(nginx.Site(Path("/srv/binaries/0"), port=8081))
    assert "listen 8081;" in text
    assert 'root "/srv/binaries/0";' in text
    assert 'access_log "/var/log/nginx/upgrader-access.log";' in text
    assert "autoindex off;" in text
    assert "sendfile on;" in text
    assert "disable_symlinks on from=$document_root;" in text
    assert "return 405;" in text
    assert "location /tools/ {" in text
    assert "try_files $uri =404;" in text


@pytest.mark.parametrize(
    ("address", "listen"),
    [("", "8080"), ("10.1.2.3", "10.1.2.3:8080"), ("fd00::1", "[fd00::1]:8080")],
)
def test_listen_address(address: str, listen: str) -> None:
    site = nginx.Site(Path("/srv"), address=address)
    assert f"listen {listen};" in nginx.render_site(site)


@pytest.mark.parametrize("port", [0, 65536, -1, "8080", True, 80.0])
def test_bad_port_is_refused(port: object) -> None:
    with pytest.raises(
        InvalidInputError, match=r"invalid port .*: use a TCP port from 1 to 65535"
    ):
        nginx.Site(Path("/srv"), port=port)  # type: ignore[arg-type]


def test_bad_address_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="invalid address 'example.com': use an IP"):
        nginx.Site(Path("/srv"), address="example.com")


@pytest.mark.parametrize(
    "root",
    [
        Path("relative/dir"),
        Path("/srv/../etc"),
        Path('/srv/a"b'),
        Path("/srv/a\\b"),
        Path("/srv/$document_root"),
        Path("/srv/a\nb"),
        "/srv",
    ],
)
def test_unsafe_paths_are_refused(root: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid root .*: use an absolute path"):
        nginx.Site(root)  # type: ignore[arg-type]


def test_unsafe_log_path_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="invalid access-log 'x.log'"):
        nginx.Site(Path("/srv"), access_log=Path("x.log"))


# --- a staged mirror and a real nginx --------------------------------------------------------


@pytest.fixture
def mirror_root() -> Iterator[Path]:
    """A storage root holding a mirror under tools/, plus files that must never be served.

    Made outside pytest's private tmp dir so nginx's unprivileged workers can read it, as the
    package's www-data workers read the storage.
    """
    root = Path(tempfile.mkdtemp(prefix="upgrader-mirror-"))
    root.chmod(0o755)
    tools = root / "tools"
    tools.mkdir()
    write_stream(tools, AGENTS, index_name="index.json")
    write_stream(tools, AGENTS, index_name="index2.json")
    (root / "secret.txt").write_text("outside the mirror\n")
    (tools / ".lock").write_text("12345\n")
    (tools / "sync.lock").write_text("12345\n")
    (tools / "released" / "juju-3.6.13-ubuntu-amd64.tgz.partial").write_bytes(b"half")
    (tools / ".staging").mkdir()
    (tools / ".staging" / "index.json").write_text("{}")
    (tools / "staging.partial").mkdir()
    (tools / "staging.partial" / "juju.tgz").write_bytes(b"half")
    (tools / "streams" / "v1" / "index.json.tmp").write_text("{}")
    (tools / "released" / "escape.tgz").symlink_to(root / "secret.txt")
    (tools / "released" / "alias.tgz").symlink_to(
        tools / "released" / "juju-3.6.12-ubuntu-amd64.tgz"
    )
    (tools / "outside").symlink_to(root, target_is_directory=True)
    try:
        yield root
    finally:
        shutil.rmtree(root)


@pytest.fixture
def served(mirror_root: Path, tmp_path: Path) -> Iterator[tuple[str, Path, nginx.Site]]:
    """nginx serving ``mirror_root`` with the site file the charm installs; yields its URL."""
    layout = make_layout(tmp_path)
    site = nginx.Site(
        mirror_root,
        port=free_port(),
        address="127.0.0.1",
        access_log=tmp_path / "access.log",
        error_log=tmp_path / "site-error.log",
    )
    assert nginx.install_site(nginx.render_site(site), layout) is True
    with run_nginx(layout, site.port) as url:
        yield url, mirror_root, site


def raw_get(url: str, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the path exactly as given (clients normalise ``..`` away)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@needs_nginx
def test_files_are_served_with_length_and_ranges(served: tuple[str, Path, nginx.Site]) -> None:
    url, root, site = served
    path = "tools/released/juju-3.6.12-ubuntu-amd64.tgz"
    data = (root / path).read_bytes()

    got = requests.get(f"{url}/{path}", timeout=10)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["Content-Length"] == str(len(data))
    assert got.headers["Accept-Ranges"] == "bytes"

    head = requests.head(f"{url}/{path}", timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))

    part = requests.get(f"{url}/{path}", headers={"Range": "bytes=10-29"}, timeout=10)
    assert part.status_code == 206
    assert part.content == data[10:30]
    assert part.headers["Content-Range"] == f"bytes 10-29/{len(data)}"
    assert part.headers["Content-Length"] == "20"

    tail = requests.get(f"{url}/{path}", headers={"Range": "bytes=-7"}, timeout=10)
    assert (tail.status_code, tail.content) == (206, data[-7:])

    resume = requests.get(
        f"{url}/{path}", headers={"Range": f"bytes={len(data) - 5}-"}, timeout=10
    )
    assert (resume.status_code, resume.content) == (206, data[-5:])

    beyond = requests.get(f"{url}/{path}", headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert beyond.status_code == 416

    index = requests.get(f"{url}/tools/streams/v1/index2.json", timeout=10)
    assert index.status_code == 200
    assert index.content == (root / "tools/streams/v1/index2.json").read_bytes()

    log = site.access_log.read_text()
    assert f'GET /{path} HTTP/1.1" 206' in log
    assert 'GET /tools/streams/v1/index2.json HTTP/1.1" 200' in log


@needs_nginx
@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/", {404}),
        ("/secret.txt", {404}),
        ("/../", {400}),
        ("/../secret.txt", {400}),
        ("/tools/../secret.txt", {404}),
        ("/tools/%2e%2e/secret.txt", {404}),
        ("/tools/..%2fsecret.txt", {404}),
        ("/tools/released/../../secret.txt", {404}),
        ("/tools", {404}),
        ("/tools/", {404}),
        ("/tools/released/", {404}),
        ("/tools/released", {404}),
        ("/tools/streams/v1/", {404}),
        ("/tools/.lock", {404}),
        ("/tools/sync.lock", {404}),
        ("/tools/.staging/index.json", {404}),
        ("/tools/staging.partial/juju.tgz", {404}),
        ("/tools/released/juju-3.6.13-ubuntu-amd64.tgz.partial", {404}),
        ("/tools/streams/v1/index.json.tmp", {404}),
        ("/tools/released/escape.tgz", {404}),
        ("/tools/released/alias.tgz", {404}),
        ("/tools/outside/secret.txt", {404}),
        ("/etc/passwd", {404}),
    ],
)
def test_everything_outside_the_mirror_is_refused(
    served: tuple[str, Path, nginx.Site], path: str, statuses: set[int]
) -> None:
    url, _, _ = served
    status, body = raw_get(url, path)
    assert status in statuses, (path, status)
    assert b"outside the mirror" not in body
    assert b"Index of" not in body
    assert b"12345" not in body


@needs_nginx
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "MKCOL"])
def test_only_get_and_head_are_allowed(served: tuple[str, Path, nginx.Site], method: str) -> None:
    url, root, _ = served
    before = sorted(p for p in root.rglob("*"))
    response = requests.request(
        method, f"{url}/tools/released/juju-3.6.12-ubuntu-amd64.tgz", data=b"x", timeout=10
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    status, _ = raw_get(url, "/tools/released/new.tgz", method)
    assert status == 405
    assert sorted(p for p in root.rglob("*")) == before


@needs_nginx
@pytest.mark.skipif(not SSTREAM_MIRROR.exists(), reason="python-simplestreams is not installed")
def test_sstream_mirror_copies_the_served_mirror(
    served: tuple[str, Path, nginx.Site], tmp_path: Path
) -> None:
    url, root, _ = served
    out = tmp_path / "copy"
    subprocess.run(
        [
            str(SSTREAM_MIRROR),
            "--no-verify",
            "--path",
            "streams/v1/index.json",
            f"{url}/tools",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for agent in AGENTS:
        name = f"released/juju-{agent.version}-{agent.os}-{agent.arch}.tgz"
        copied = (out / name).read_bytes()
        assert (
            hashlib.sha256(copied).digest()
            == hashlib.sha256((root / "tools" / name).read_bytes()).digest()
        )


@needs_nginx
@pytest.mark.skipif(not SSTREAM_MIRROR.exists(), reason="python-simplestreams is not installed")
def test_sstream_mirror_checks_what_nginx_serves(
    served: tuple[str, Path, nginx.Site], tmp_path: Path
) -> None:
    """The copy above is checksum-verified: a corrupted tarball on the mirror fails it."""
    url, root, _ = served
    tarball = root / "tools/released/juju-3.6.11-ubuntu-amd64.tgz"
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    proc = subprocess.run(
        [
            str(SSTREAM_MIRROR),
            "--no-verify",
            "--path",
            "streams/v1/index.json",
            f"{url}/tools",
            str(tmp_path / "copy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "checksum" in (proc.stderr + proc.stdout).lower()


# --- installing the site ---------------------------------------------------------------------


@needs_nginx
def test_install_site_enables_it_and_disables_the_default(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    (layout.conf_dir / "sites-available" / "default").write_text("server { listen 127.0.0.1:1; }")
    layout.default_site.symlink_to(layout.conf_dir / "sites-available" / "default")
    text = nginx.render_site(
        nginx.Site(
            tmp_path, port=free_port(), access_log=tmp_path / "a.log", error_log=tmp_path / "e.log"
        )
    )

    assert nginx.install_site(text, layout) is True
    assert layout.available.read_text() == text
    assert os.readlink(layout.enabled) == str(layout.available)
    assert not layout.default_site.is_symlink()
    assert oct(layout.available.stat().st_mode & 0o777) == "0o644"
    assert nginx.install_site(text, layout) is False

    assert nginx.remove_site(layout) is True
    assert not layout.available.exists() and not layout.enabled.is_symlink()
    assert nginx.remove_site(layout) is False


@needs_nginx
def test_refused_site_leaves_the_previous_one(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    good = nginx.render_site(
        nginx.Site(
            tmp_path, port=free_port(), access_log=tmp_path / "a.log", error_log=tmp_path / "e.log"
        )
    )
    nginx.install_site(good, layout)
    (layout.conf_dir / "sites-available" / "default").write_text("# default\n")
    layout.default_site.symlink_to(layout.conf_dir / "sites-available" / "default")
    bad = nginx.render_site(
        nginx.Site(
            tmp_path,
            port=free_port(),
            access_log=tmp_path / "missing" / "a.log",
            error_log=tmp_path / "e.log",
        )
    )

    with pytest.raises(nginx.ServingError, match="nginx refused the configuration: .*missing"):
        nginx.install_site(bad, layout)
    assert layout.available.read_text() == good
    assert os.readlink(layout.enabled) == str(layout.available)
    assert layout.default_site.is_symlink()


@needs_nginx
def test_refused_first_site_is_not_left_enabled(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    bad = nginx.render_site(
        nginx.Site(
            tmp_path, access_log=tmp_path / "missing" / "a.log", error_log=tmp_path / "e.log"
        )
    )
    with pytest.raises(nginx.ServingError, match="nginx refused the configuration"):
        nginx.install_site(bad, layout)
    assert not layout.available.exists()
    assert not layout.enabled.is_symlink()


def test_check_config_without_nginx_says_so(tmp_path: Path) -> None:
    with pytest.raises(nginx.ServingError, match="cannot run .*/no-nginx -t"):
        nginx.check_config(nginx.Layout(tmp_path), nginx=str(tmp_path / "no-nginx"))


def test_unwritable_site_is_a_serving_error(tmp_path: Path) -> None:
    (tmp_path / "sites-available").write_text("not a directory")
    with pytest.raises(nginx.ServingError, match="cannot write the nginx site"):
        nginx.install_site("server {}\n", nginx.Layout(tmp_path))


def test_site_removal_failure_is_a_serving_error(tmp_path: Path) -> None:
    """stop/remove/storage-detaching catch ServingError: an OSError there would fail the hook."""
    layout = nginx.Layout(tmp_path)
    layout.available.mkdir(parents=True)  # unlink() refuses a directory
    with pytest.raises(nginx.ServingError, match="cannot remove the nginx site"):
        nginx.remove_site(layout)


def test_package_imports_without_charmlibs_or_ops() -> None:
    code = (
        "import sys; sys.modules['charmlibs'] = None; sys.modules['ops'] = None\n"
        "from upgrader import nginx\n"
        "from pathlib import Path\n"
        "print(nginx.render_site(nginx.Site(Path('/srv'))).count('server {'))"
    )
    lib = Path(nginx.__file__).parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(lib)},
    )
    assert out.stdout.strip() == "1"


# --- the service layer (apt and systemd recorded: OS services a unit test cannot own) ---------


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Record charmlibs' apt and systemd calls; ``running`` and ``fail`` steer the answers."""
    from charmlibs import apt, systemd

    state: dict = {"calls": [], "running": False, "fail": ""}

    def record(name: str):
        def call(*args: object, **kwargs: object) -> bool:
            state["calls"].append((name, *args))
            if state["fail"] == name:
                error = systemd.SystemdError if name.startswith("service") else apt.PackageError
                raise error(f"{name} failed")
            return state["running"] if name == "service_running" else True

        return call

    for name in (
        "service_enable",
        "service_disable",
        "service_start",
        "service_stop",
        "service_running",
    ):
        monkeypatch.setattr(systemd, name, record(name))
    monkeypatch.setattr(
        systemd,
        "service_reload",
        lambda unit, restart_on_failure=False: state["calls"].append(
            ("service_reload", unit, restart_on_failure)
        ),
    )
    monkeypatch.setattr(apt, "update", record("update"))
    monkeypatch.setattr(apt, "add_package", record("add_package"))
    return state


@needs_nginx
def test_service_serves_reloads_only_on_change_and_stops(tmp_path: Path, system: dict) -> None:
    service = nginx.NginxService(make_layout(tmp_path))
    site = nginx.Site(
        tmp_path, port=free_port(), access_log=tmp_path / "a.log", error_log=tmp_path / "e.log"
    )
    assert service.serve(site) is True
    assert system["calls"] == [
        ("service_enable", "nginx.service"),
        ("service_running", "nginx.service"),
        ("service_start", "nginx.service"),
    ]
    system["calls"].clear()
    system["running"] = True
    assert service.serve(site) is False
    assert ("service_reload", "nginx.service", True) not in system["calls"]
    assert service.serve(dataclasses.replace(site, port=free_port())) is True
    assert system["calls"][-1] == ("service_reload", "nginx.service", True)

    system["calls"].clear()
    service.stop_serving()
    assert not service.layout.enabled.exists()
    assert system["calls"] == [
        ("service_running", "nginx.service"),
        ("service_reload", "nginx.service", True),
    ]
    system["calls"].clear()
    service.stop()
    assert system["calls"] == [
        ("service_stop", "nginx.service"),
        ("service_disable", "nginx.service"),
    ]


def test_service_install_uses_the_archive(system: dict) -> None:
    nginx.NginxService().install()
    assert system["calls"] == [("update",), ("add_package", ["nginx", "gnupg", "gpgv"])]


def test_service_install_failure_is_a_serving_error(system: dict) -> None:
    system["fail"] = "add_package"
    with pytest.raises(
        nginx.ServingError,
        match="cannot install nginx, gnupg, gpgv from the archive: add_package failed",
    ):
        nginx.NginxService().install()


@pytest.mark.parametrize(
    ("present", "installed"),
    [
        (("nginx", "gpg", "gpgv"), True),
        (("nginx", "gpgv"), False),  # a unit from a charm that installed only nginx
        (("nginx", "gpg"), False),
        (("gpg", "gpgv"), False),
    ],
)
def test_service_is_installed_only_with_gnupg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: tuple[str, ...], installed: bool
) -> None:
    for name in present:
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nginx, "NGINX_BINARY", str(tmp_path / "sbin/nginx"))
    assert nginx.NginxService().installed() is installed


@needs_nginx
def test_service_start_failure_is_a_serving_error(tmp_path: Path, system: dict) -> None:
    system["fail"] = "service_start"
    service = nginx.NginxService(make_layout(tmp_path))
    site = nginx.Site(
        tmp_path, port=free_port(), access_log=tmp_path / "a.log", error_log=tmp_path / "e.log"
    )
    with pytest.raises(
        nginx.ServingError, match="cannot start nginx.service: service_start failed"
    ):
        service.serve(site)
