"""The machine a packed charm's unit runs on: this host, seen through namespaces of its own.

A :class:`Machine` is a process holding new mount, network and PID namespaces (``unshare``);
everything the unit runs enters them (``nsenter``). Inside:

- the network has only its own loopback, so whatever the charm serves (nginx listens on every
  address of the machine) is reachable on 127.0.0.1 there and nowhere else, and nothing the
  charm does can leave this host;
- ``/etc/nginx``, ``/var/log/nginx`` and ``/etc/systemd/system`` are empty directories of the
  machine's own, ``/usr/sbin`` is this host's less nginx, and ``/usr/bin/gpg`` and
  ``/usr/bin/gpgv`` are not there: nginx and GnuPG are not installed until the charm installs
  them, and what it writes there stays in the machine;
- ``apt-get``, ``apt-cache``, ``dpkg`` and ``systemctl`` in ``/usr/local/sbin`` are
  :mod:`support.ostools`, standing in for the package manager and the init system, with an
  archive holding ``nginx`` (this host's nginx binary, a Debian-shaped configuration), ``gnupg``
  and ``gpgv`` (this host's ``gpg`` and ``gpgv``);
- ``/usr/local/bin/python3`` is the interpreter the charm's venv was built with (on the charm's
  Ubuntu base both are the system python3).

The machine's PID 1 reaps orphans; when it ends, everything the unit left running (nginx, a
background job) ends with it. It needs root (nginx's workers switch to www-data, which an
unprivileged user namespace cannot map), util-linux's ``unshare``, ``nsenter`` and ``mount``,
and nginx, gpg and gpgv installed on this host.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from support import hooktools, ostools
from support.packing import base_python

READY_TIMEOUT = 30
RUN_TIMEOUT = 300

HOST_DIRS = (
    "/etc/nginx",
    "/var/log/nginx",
    "/etc/systemd/system",
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/bin",
)
"""Directories the machine replaces with its own (they must exist on this host)."""

GNUPG_TOOLS = {"gnupg": "/usr/bin/gpg", "gpgv": "/usr/bin/gpgv"}
"""The GnuPG programs the charm needs, by package: absent from the machine until installed."""

STANDINS = ("apt-get", "apt-cache", "dpkg", "systemctl")
MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The unit agent's PATH: systemd's default for services, which the agent runs as."""

_INIT = r"""
import fcntl, json, os, select, socket, struct, subprocess, sys
# Bring the machine's loopback up (SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP).
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    request = struct.pack("16sh", b"lo", 0)
    flags = struct.unpack("16sh", fcntl.ioctl(sock, 0x8913, request))[1]
    fcntl.ioctl(sock, 0x8914, struct.pack("16sh", b"lo", flags | 1))
for source, target in json.loads(sys.argv[1]):
    subprocess.run(["mount", "--bind", source, target], check=True)
print("ready", flush=True)
# PID 1 of the machine: reap orphans until the test closes stdin.
while True:
    readable, _, _ = select.select([sys.stdin], [], [], 0.2)
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    if readable and not os.read(sys.stdin.fileno(), 1024):
        break
"""


class MachineUnavailableError(Exception):
    """This host cannot make a machine (not root, no namespaces, no nginx): says what."""


def unavailable_reason() -> str:
    """Why a machine cannot be made here, or "" when it can."""
    if os.geteuid() != 0:
        return "the packed-charm machine needs root (mount and network namespaces)"
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    if not Path(ostools.NGINX).exists():
        return "nginx is not installed (CI installs it with apt-get)"
    for tool in GNUPG_TOOLS.values():
        if not Path(tool).is_file():
            return f"{tool} is not installed (CI installs gnupg and gpgv with apt-get)"
    for directory in HOST_DIRS:
        if not Path(directory).is_dir():
            return f"{directory} does not exist on this host"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--pid", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make namespaces here: {probe.stderr.strip()}"
    return ""


@dataclass(frozen=True)
class Served:
    """A directory served over HTTP inside the machine."""

    url: str


class Machine:
    """One unit's machine (see the module docstring); use it as a context manager."""

    def __init__(self, *, python: Path | None = None) -> None:
        """A machine whose python3 is ``python`` (default: this interpreter's base)."""
        self.python = python or base_python()
        self.root = Path()
        self._holder: subprocess.Popen[str] | None = None

    @property
    def os_dir(self) -> Path:
        """Where the apt and systemd stand-ins keep their state and call records."""
        return self.root / "os"

    @property
    def fs(self) -> Path:
        """The machine's own directories, bound over this host's."""
        return self.root / "fs"

    # --- lifetime ----------------------------------------------------------------------------

    def __enter__(self) -> Machine:
        """Start the machine; its files live in a new temporary directory, ``root``.

        ``root`` is world-readable, as /var/lib/juju is, so that nginx's workers reach the
        storage inside it.

        Raises:
            MachineUnavailableError: this host cannot make one (the message says why).
        """
        reason = unavailable_reason()
        if reason:
            raise MachineUnavailableError(reason)
        self.root = Path(tempfile.mkdtemp(prefix="upgrader-machine-"))
        self.root.chmod(0o755)
        mounts = self._prepare()
        self._holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                str(self.python),
                "-I",
                "-c",
                _INIT,
                json.dumps(mounts),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        line = _readline(self._holder.stdout, READY_TIMEOUT)
        if line.strip() != "ready":
            self._holder.kill()
            _, errors = self._holder.communicate(timeout=10)
            self.__exit__(None, None, None)
            raise MachineUnavailableError(f"the machine did not start: {errors.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        if holder.stdin:
            holder.stdin.close()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream:
                stream.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _prepare(self) -> list[tuple[str, str]]:
        """Make the machine's directories, stand-ins and package archive; the bind mounts."""
        for sub in ("etc/nginx", "var/log/nginx", "etc/systemd/system", "usr/sbin"):
            (self.fs / sub).mkdir(parents=True)
        host_sbin = self.root / "host/usr/sbin"
        host_sbin.mkdir(parents=True)
        for entry in Path("/usr/sbin").iterdir():
            if entry.name != "nginx":
                (self.fs / "usr/sbin" / entry.name).symlink_to(host_sbin / entry.name)
        local_sbin = self.fs / "usr/local/sbin"
        local_bin = self.fs / "usr/local/bin"
        local_sbin.mkdir(parents=True)
        local_bin.mkdir(parents=True)
        (local_bin / "python3").symlink_to(self.python)
        self.os_dir.mkdir()
        (self.root / "run").mkdir()
        launcher = _launcher(self.python, Path(ostools.__file__), str(self.os_dir))
        for name in STANDINS:
            _write_executable(local_sbin / name, launcher)
        self._archive()
        (self.os_dir / ostools.UNITS_FILE).write_text("{}")
        # A file that is not executable where each GnuPG program is: `which` finds nothing
        # until apt-get writes the package's program over it.
        gnupg_mounts = []
        for package, tool in GNUPG_TOOLS.items():
            placeholder = self.fs / package / Path(tool).name
            placeholder.parent.mkdir(parents=True)
            placeholder.write_bytes(b"")
            placeholder.chmod(0o644)
            gnupg_mounts.append((str(placeholder), tool))
        return [
            *gnupg_mounts,
            ("/usr/sbin", str(host_sbin)),
            (str(self.fs / "usr/sbin"), "/usr/sbin"),
            (str(self.fs / "etc/nginx"), "/etc/nginx"),
            (str(self.fs / "var/log/nginx"), "/var/log/nginx"),
            (str(self.fs / "etc/systemd/system"), "/etc/systemd/system"),
            (str(local_sbin), "/usr/local/sbin"),
            (str(local_bin), "/usr/local/bin"),
        ]

    def _archive(self) -> None:
        """The site's apt archive: nginx (this host's binary, a Debian-shaped config), GnuPG."""
        versions = _host_versions(("nginx", "gnupg", "gpgv"))
        archive = self.root / "archive"
        nginx = archive / "nginx"
        (nginx / "usr/sbin").mkdir(parents=True)
        shutil.copy2(ostools.NGINX, nginx / "usr/sbin/nginx")
        _nginx_config(nginx / "etc/nginx", state=self.root / "nginx")
        (nginx / "var/log/nginx").mkdir(parents=True)
        for package, tool in GNUPG_TOOLS.items():
            (archive / package / "usr/bin").mkdir(parents=True)
            shutil.copy2(tool, archive / package / tool.lstrip("/"))
        packages = {
            "arch": _dpkg_architecture(),
            "archive": {
                name: {"version": versions[name], "tree": str(archive / name)}
                for name in ("nginx", "gnupg", "gpgv")
            },
            "installed": {},
        }
        (self.os_dir / ostools.PACKAGES_FILE).write_text(json.dumps(packages, indent=1))

    def remove_from_archive(self, name: str) -> None:
        """Take a package out of the site's apt archive (an air-gapped mirror that lacks it)."""
        path = self.os_dir / ostools.PACKAGES_FILE
        packages = json.loads(path.read_text())
        del packages["archive"][name]
        path.write_text(json.dumps(packages, indent=1))

    # --- running things inside ---------------------------------------------------------------

    def _enter(self) -> list[str]:
        assert self._holder is not None, "the machine is not running"
        pid = self._holder.pid
        return [
            "nsenter",
            "--target",
            str(pid),
            "--mount",
            "--net",
            f"--pid=/proc/{pid}/ns/pid_for_children",
        ]

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the machine with exactly ``env``, as Juju runs a hook."""
        wd = [f"--wd={cwd}"] if cwd else []
        return subprocess.run(
            [*self._enter(), *wd, "--", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def serve(self, directory: Path) -> Iterator[Served]:
        """Serve ``directory`` over HTTP on the machine's 127.0.0.1 (Python's http.server)."""
        log = open(self.root / f"http-{directory.name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                *self._enter(),
                "--",
                str(self.python),
                "-I",
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(directory),
                "0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = _readline(proc.stdout, READY_TIMEOUT)
            match = re.search(r"port (\d+)", line)
            assert match, f"http.server did not start: {line!r}"
            yield Served(f"http://127.0.0.1:{match.group(1)}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()
            log.close()

    def fetch(self, url: str) -> tuple[int, bytes]:
        """GET ``url`` from inside the machine with requests; the status and the body."""
        code = (
            "import base64, json, sys, requests\n"
            "r = requests.get(sys.argv[1], timeout=30)\n"
            "print(json.dumps([r.status_code, base64.b64encode(r.content).decode()]))\n"
        )
        result = self.run(
            [sys.executable, "-c", code, url], env={"PATH": MACHINE_PATH, "LANG": "C.UTF-8"}
        )
        assert result.returncode == 0, result.stderr
        status, body = json.loads(result.stdout)
        return status, base64.b64decode(body)

    # --- what the stand-ins saw --------------------------------------------------------------

    def os_calls(self) -> list[tuple[str, ...]]:
        """Every apt, dpkg and systemctl call so far, as ``(command, *args)``."""
        path = self.os_dir / ostools.CALLS_FILE
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [(c["command"], *c["args"]) for c in map(json.loads, lines)]

    def installed_packages(self) -> dict[str, str]:
        """The packages the stand-in dpkg says are installed, with their versions."""
        return json.loads((self.os_dir / ostools.PACKAGES_FILE).read_text())["installed"]

    def juju_tools(self, tools_dir: Path) -> None:
        """Fill a unit's tools directory: a launcher and one link per hook tool, as Juju does."""
        tools_dir.mkdir(parents=True)
        launcher = _launcher(self.python, Path(hooktools.__file__))
        _write_executable(tools_dir / "jujuc", launcher)
        for name in hooktools.TOOLS:
            (tools_dir / name).symlink_to("jujuc")

    def wait_for(self, check: Callable[[], bool], timeout: float = 60) -> None:
        """Poll ``check()`` until it is true; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting"
            time.sleep(0.2)


def _launcher(python: Path, program: Path, *first: str) -> str:
    quoted = " ".join(f"'{a}'" for a in (str(python), "-I", "-S", str(program), *first))
    return f'#!/bin/sh\nexec {quoted} "$0" "$@"\n'


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _readline(stream: IO[str], timeout: float) -> str:
    """One line from a pipe, or "" when none comes within ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline()


def _host_versions(names: tuple[str, ...]) -> dict[str, str]:
    """The versions of these packages on this host (the archive offers the same builds)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {name: found.get(name, "1.0") for name in names}


def _dpkg_architecture() -> str:
    result = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.strip() or "amd64"


def _nginx_config(etc: Path, *, state: Path) -> None:
    """The configuration the Debian/Ubuntu nginx package installs, in its shape.

    ``nginx.conf`` includes ``conf.d/*.conf`` and ``sites-enabled/*``; the default site
    (port 80) is enabled by a link, as the package's is. The pid file and temporary files are
    kept under ``state`` (the package's go to /run and /var/lib/nginx, this host's).
    """
    for sub in ("conf.d", "sites-available", "sites-enabled"):
        (etc / sub).mkdir(parents=True)
    state.mkdir(parents=True, exist_ok=True)
    mime = Path("/etc/nginx/mime.types")
    if mime.exists():
        shutil.copy2(mime, etc / "mime.types")
    else:
        (etc / "mime.types").write_text("types {\n    text/html html;\n}\n")
    temp = "\n".join(
        f"\t{kind}_temp_path {state}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (etc / "nginx.conf").write_text(
        f"""user www-data;
worker_processes auto;
pid {state}/nginx.pid;
error_log /var/log/nginx/error.log;

events {{
\tworker_connections 768;
}}

http {{
\tsendfile on;
\ttcp_nopush on;
\ttypes_hash_max_size 2048;
\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;
\taccess_log /var/log/nginx/access.log;
{temp}
\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}}
"""
    )
    (etc / "sites-available/default").write_text(
        """server {
\tlisten 80 default_server;
\tlisten [::]:80 default_server;
\troot /var/www/html;
\tindex index.html index.htm index.nginx-debian.html;
\tserver_name _;
\tlocation / {
\t\ttry_files $uri $uri/ =404;
\t}
}
"""
    )
    (etc / "sites-enabled/default").symlink_to("/etc/nginx/sites-available/default")
