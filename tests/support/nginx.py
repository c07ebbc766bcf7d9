"""A real nginx, run in the foreground on 127.0.0.1 with the charm's own site file, for tests."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from upgrader import nginx

REASON = "nginx is not installed (CI installs it with apt-get)"


def nginx_binary() -> str | None:
    """The nginx executable, if installed (it lives in /usr/sbin, often off a user's PATH)."""
    if Path(nginx.NGINX_BINARY).exists():
        return nginx.NGINX_BINARY
    return shutil.which("nginx")


def skip_without_nginx() -> bool:
    """Skip when nginx is absent, except under UPGRADER_CI=1 where its absence must fail."""
    return nginx_binary() is None and os.environ.get("UPGRADER_CI") != "1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_layout(work: Path) -> nginx.Layout:
    """An nginx configuration tree under ``work`` shaped like the Debian package's.

    Its ``nginx.conf`` includes ``sites-enabled/*`` as the package's does, and keeps the pid file,
    error log and temporary directories under ``work``. Run as root, nginx's workers run as
    ``nobody``, as the package's run as ``www-data``: the mirror must be world-readable.
    """
    etc = work / "etc"
    for name in ("sites-available", "sites-enabled"):
        (etc / name).mkdir(parents=True, exist_ok=True)
    user = ""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"
    temp = "\n".join(
        f"    {kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    mime = "    include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    (etc / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{
    worker_connections 64;
}}
http {{
{mime}
    default_type application/octet-stream;
{temp}
    include {etc}/sites-enabled/*;
}}
"""
    )
    return nginx.Layout(conf_dir=etc)


@contextlib.contextmanager
def run_nginx(layout: nginx.Layout, port: int) -> Iterator[str]:
    """Run nginx in the foreground with ``layout``'s configuration; yields its base URL."""
    binary = nginx_binary()
    assert binary is not None, REASON
    work = layout.conf_dir.parent
    proc = subprocess.Popen(
        [binary, "-p", str(work), "-c", str(layout.main_config), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"nginx exited with {proc.returncode}: {output}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise AssertionError("nginx did not start listening within 10 s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
