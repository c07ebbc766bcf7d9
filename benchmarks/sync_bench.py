#!/usr/bin/env python3
"""Benchmark the staging engine against ``curl | sha256sum`` and ``sstream-mirror``.

One run generates a realistic agent stream (120 versions x 4 architectures, every ``linux``
tarball listed for ubuntu, centos and genericlinux: 1,440 items, condensed products file as the
official stream publishes it, clearsigned ``.sjson`` with a throwaway key when gpg is present),
serves it from 127.0.0.1 with nginx (or, without nginx, a threaded Python server), and measures
side by side, interleaved and repeated (median reported):

* ``one``: our sync of one version x 4 architectures;
* ``eight``: our sync of 8 versions x 4 architectures;
* ``big``: our sync of one version whose tarballs are twice as big (peak RSS must not grow);
* a no-change re-sync right after ``one`` and ``eight`` (must take < 5% of the first sync);
* ``one-wan``: ``one`` again with each connection capped by nginx (a long round trip caps one
  TCP stream; parallel downloads are meant for that);
* against the same bytes fetched with ``curl -s URL | sha256sum`` one file after the other,
  ``curl | openssl dgst -sha256`` (coreutils' sha256sum does not use the CPU's SHA
  instructions, OpenSSL does), and ``sstream-mirror`` (python-simplestreams, unsigned path);
* and against the machine's limit for the same job: ``curl URL | tee FILE | openssl sha256``
  for each file, then ``sync FILE...`` (fetched, hashed, written and durable, as ours), one
  file after the other and as many at a time as our sync.

Every run is checked: the right files, sizes and sha256. Our sync runs in a child process
(``sync_child.py``, importing what a sync needs and nothing of this script) that reports its
own peak RSS (VmHWM). Only the tarballs the workloads use exist on disk; the other items list
files that are never served. Python children (ours, sstream-mirror) run with compiled bytecode
kept in the work directory, each once before measuring, as an installed program runs.

Usage: ``benchmarks/sync_bench.py [--size-mb 40] [--repeats 5] [--quick] [--server auto]``.
See ``benchmarks/README.md`` for the targets and the figures measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import http.client
import inspect
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from sync_child import vm_hwm_mb

DESCRIPTION = "Benchmark the staging engine against curl | sha256sum and sstream-mirror."
REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().with_name("sync_child.py")
# The environment this script runs in (uv's .venv, a tox env) provides sstream-mirror.
VENV_BIN = Path(sys.executable).parent
MIB = 1024 * 1024
MB = 1_000_000

STREAM = "released"
CONTENT_ID = f"com.ubuntu.juju:{STREAM}:agents"
PRODUCTS_PATH = f"streams/v1/com.ubuntu.juju-{STREAM}-agents.json"
UPDATED = "Wed, 05 Nov 2025 12:00:00 +0000"
ARCHES = ("amd64", "arm64", "ppc64el", "s390x")
OS_NAMES = ("ubuntu", "centos", "genericlinux")
"""The official stream lists each ``linux`` tarball under these three OS names."""

SERIES = (
    ("2.9", 55),
    ("3.0", 4),
    ("3.1", 11),
    ("3.2", 5),
    ("3.3", 8),
    ("3.4", 7),
    ("3.5", 8),
    ("3.6", 15),
    ("4.0", 7),
)
"""Patch releases per major.minor, close to the released stream (120 versions)."""

BIG_SERIES = "4.0"
"""Tarballs of this series are listed at twice the size (Juju 4 bundles dqlite)."""

WAN_PREFIX = "/wan"
"""Served by nginx at a capped rate per connection, as a long round trip caps one TCP stream."""

TARGET_VS_CURL = 0.9
TARGET_VS_SSTREAM = 2.0
TARGET_RSS_MB = 100.0
TARGET_RESYNC = 0.05
TARGET_VS_LIMIT = 0.8
JUDGED = {"eight", "one-wan", "big"}
"""Workloads whose targets are judged; ``one`` (0.3 s, mostly interpreter start) is reported.
The limit is judged on ``eight`` only."""


# --------------------------------------------------------------------------------------------
# The stream


def all_versions() -> list[str]:
    """The 120 versions of the synthetic stream, oldest first."""
    return [f"{series}.{patch}" for series, count in SERIES for patch in range(count)]


@dataclasses.dataclass(frozen=True)
class Workload:
    """One sync job: these versions, every architecture, the ubuntu OS.

    Attributes:
        name: short name for the table.
        versions: the versions staged.
        description: what it is, for the settings header.
        contenders: who runs it (``ours``, ``curl``, ``openssl``, ``sstream``, ``limit1``,
            ``limitP``).
        resync: also time a no-change re-sync right after our sync.
        prefix: URL prefix on the server (``/wan`` is served at a capped rate per connection).
    """

    name: str
    versions: tuple[str, ...]
    description: str
    contenders: tuple[str, ...] = ("ours", "curl", "openssl", "sstream", "limit1", "limitP")
    resync: bool = True
    prefix: str = ""


def workloads(wan_rate_mb: float = 0) -> tuple[Workload, ...]:
    """The ``one``, ``eight`` and ``big`` workloads, and ``one-wan`` when ``wan_rate_mb``."""
    newest = {series: f"{series}.{count - 1}" for series, count in SERIES}
    eight = tuple(f"3.5.{patch}" for patch in range(8))
    found = (
        Workload("one", (newest["3.6"],), f"1 version ({newest['3.6']}) x 4 arches"),
        Workload("eight", eight, "8 versions (3.5.0-3.5.7) x 4 arches"),
        Workload(
            "big",
            (newest[BIG_SERIES],),
            f"1 version ({newest[BIG_SERIES]}) x 4 arches, tarballs 2x the size",
            contenders=("ours", "curl", "openssl", "limit1", "limitP"),
            resync=False,
        ),
    )
    if wan_rate_mb:
        found += (
            Workload(
                "one-wan",
                (newest["3.6"],),
                f"as one, each connection capped at {wan_rate_mb:g} MB/s",
                contenders=("ours", "curl", "sstream"),
                resync=False,
                prefix=WAN_PREFIX,
            ),
        )
    return found


def official_path(version: str, arch: str) -> str:
    """Where the official stream keeps a tarball."""
    return f"agent/{version}/juju-{version}-linux-{arch}.tgz"


@dataclasses.dataclass(frozen=True)
class Tarball:
    """One distinct tarball of the stream (listed under three OS names)."""

    version: str
    arch: str
    size: int
    sha256: str
    md5: str

    @property
    def path(self) -> str:
        """The item path, relative to the stream's base URL."""
        return official_path(self.version, self.arch)


class _Pool:
    """Incompressible bytes, fast: slices of one random block at per-file random offsets."""

    def __init__(self, size: int = 32 * MIB) -> None:
        self.block = os.urandom(size)

    def chunks(self, seed: str, length: int, chunk: int = MIB) -> Iterator[bytes | memoryview]:
        rng = random.Random(seed)  # noqa: S311 - shuffles test data, not a secret
        view = memoryview(self.block)
        header = f"jujud {seed}\n".encode()
        yield header
        left = length - len(header)
        while left > 0:
            n = min(chunk, left)
            start = rng.randrange(0, len(self.block) - n)
            yield view[start : start + n]
            left -= n


def write_tarball(path: Path, seed: str, payload: int, pool: _Pool) -> Tarball:
    """Write a real ``.tgz`` (gzip, stored blocks) holding a ``jujud`` of random bytes."""
    import tarfile

    info = tarfile.TarInfo("jujud")
    info.size = payload
    info.mode = 0o755
    info.mtime = 0
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 is a published field
    gz = zlib.compressobj(0, zlib.DEFLATED, 31)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                out.write(data)
                sha.update(data)
                md5.update(data)
                size += len(data)

        emit(gz.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for piece in pool.chunks(seed, payload):
            emit(gz.compress(piece))
        emit(gz.compress(b"\0" * (-payload % 512) + b"\0" * 1024))
        emit(gz.flush())
    version, arch = seed.split("/")
    return Tarball(version, arch, size, sha.hexdigest(), md5.hexdigest())


def unpublished_tarball(version: str, arch: str, size: int) -> Tarball:
    """Metadata for a tarball that is listed but never written (the workloads skip it)."""
    name = official_path(version, arch).encode()
    return Tarball(
        version,
        arch,
        size,
        hashlib.sha256(b"unpublished " + name).hexdigest(),
        hashlib.md5(b"unpublished " + name).hexdigest(),  # noqa: S324 - published field
    )


def release_date(index: int) -> str:
    """A distinct release day per version, 12 days apart from June 2021."""
    day = datetime.date(2021, 6, 1) + datetime.timedelta(days=12 * index)
    return day.strftime("%Y%m%d")


def products_document(tarballs: dict[tuple[str, str], Tarball]) -> dict:
    """The products file in the condensed shape the official stream uses."""
    dates = {version: release_date(i) for i, version in enumerate(all_versions())}
    products: dict[str, dict] = {}
    for os_name in OS_NAMES:
        for arch in ARCHES:
            versions: dict[str, dict] = {}
            for version in all_versions():
                t = tarballs[(version, arch)]
                item = {"md5": t.md5, "path": t.path, "sha256": t.sha256, "size": t.size}
                versions[dates[version]] = {
                    "version": version,
                    "items": {f"{version}-{os_name}-{arch}": item},
                }
            products[f"com.ubuntu.juju:{os_name}:{arch}"] = {
                "arch": arch,
                "format": "products:1.0",
                "ftype": "tar.gz",
                "release": os_name,
                "versions": versions,
            }
    return {
        "content_id": CONTENT_ID,
        "datatype": "content-download",
        "format": "products:1.0",
        "products": products,
        "updated": UPDATED,
    }


def index_document(product_ids: Sequence[str]) -> dict:
    """The index naming the products file."""
    return {
        "format": "index:1.0",
        "index": {
            CONTENT_ID: {
                "datatype": "content-download",
                "format": "products:1.0",
                "path": PRODUCTS_PATH,
                "products": sorted(product_ids),
                "updated": UPDATED,
            }
        },
        "updated": UPDATED,
    }


@dataclasses.dataclass
class Stream:
    """The generated stream on disk."""

    root: Path
    tarballs: dict[tuple[str, str], Tarball]
    items: int
    products_bytes: int
    generated_seconds: float
    reused: bool
    keys: Path | None = None
    """The public key the ``.sjson`` files are signed with; None for an unsigned stream."""


def build_stream(root: Path, size_mb: float, materialise: set[str]) -> Stream:
    """Write the stream under ``root``; reuse it when an identical one is already there."""
    start = time.perf_counter()
    base_size = int(size_mb * MIB)
    manifest_path = root / "bench-manifest.json"
    key = {"size_mb": size_mb, "materialise": sorted(materialise), "versions": all_versions()}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and all(
            (root / official_path(v, a)).is_file() for v in materialise for a in ARCHES
        ):
            tarballs = {(t["version"], t["arch"]): Tarball(**t) for t in manifest["tarballs"]}
            products = root / PRODUCTS_PATH
            return Stream(root, tarballs, 1440, products.stat().st_size, 0.0, True)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pool = _Pool()
    tarballs: dict[tuple[str, str], Tarball] = {}
    for version in all_versions():
        factor = 2 if version.startswith(BIG_SERIES + ".") else 1
        for arch in ARCHES:
            payload = base_size * factor - 2048
            if version in materialise:
                path = root / official_path(version, arch)
                tarballs[(version, arch)] = write_tarball(path, f"{version}/{arch}", payload, pool)
            else:
                tarballs[(version, arch)] = unpublished_tarball(version, arch, payload + 2048)
    products = products_document(tarballs)
    (root / "streams/v1").mkdir(parents=True)
    text = json.dumps(products, indent=2, sort_keys=True)
    (root / PRODUCTS_PATH).write_text(text)
    index = json.dumps(index_document(list(products["products"])), indent=2, sort_keys=True)
    (root / "streams/v1/index2.json").write_text(index)
    (root / "streams/v1/index.json").write_text(index)
    manifest_path.write_text(
        json.dumps({"key": key, "tarballs": [dataclasses.asdict(t) for t in tarballs.values()]})
    )
    items = sum(
        len(v["items"]) for p in products["products"].values() for v in p["versions"].values()
    )
    return Stream(root, tarballs, items, len(text), time.perf_counter() - start, False)


def sign_stream(stream: Stream, home: Path) -> None:
    """Clearsign index2/index/products as ``.sjson`` with a throwaway key, as Canonical does.

    The signed index names the products file with ``.sjson``. Sets ``stream.keys``.
    """
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(mode=0o700, parents=True)

    def gpg(*args: str) -> bytes:
        result = subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"error: gpg {args[0]} failed: {result.stderr.decode()[-2000:]}")
        return result.stdout

    uid = "Sync Benchmark <sync-bench@example.invalid>"
    try:
        gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        (home / "public.asc").write_bytes(gpg("--armor", "--export", uid))
        v1 = stream.root / "streams/v1"
        for name in ("index2", "index", PRODUCTS_PATH.rsplit("/", 1)[1].removesuffix(".json")):
            text = (v1 / f"{name}.json").read_text()
            if name.startswith("index"):
                text = text.replace(".json", ".sjson")
            (v1 / f"{name}.unsigned").write_text(text)
            gpg(
                "--yes",
                "--clearsign",
                "--output",
                str(v1 / f"{name}.sjson"),
                str(v1 / f"{name}.unsigned"),
            )
            (v1 / f"{name}.unsigned").unlink()
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
        )
    stream.keys = home / "public.asc"


# --------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """nginx (as production servers run) or a threaded Python server, on 127.0.0.1."""

    def __init__(
        self,
        docroot: Path,
        workdir: Path,
        kind: str,
        wan_rate_mb: float = 0,
        *,
        tcp_nopush: bool = False,
    ) -> None:
        """A server of ``kind`` (nginx or python) for ``docroot``; its files go in ``workdir``.

        With nginx and ``wan_rate_mb``, ``/wan/`` serves the same tree at that rate per
        connection. ``tcp_nopush`` turns on nginx's option of that name (Debian's default):
        with sendfile it stalls about half of the responses on a reused keep-alive connection
        by ~40 ms here (the last partial segment waits for a delayed ACK), which only clients
        that reuse connections (ours) pay; off by default.
        """
        self.docroot = docroot
        self.workdir = workdir
        self.kind = kind
        self.tcp_nopush = tcp_nopush
        self.wan_rate_mb = wan_rate_mb if kind == "nginx" else 0.0
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.description = ""

    @property
    def url(self) -> str:
        """The stream's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it serves the index."""
        for _ in range(5):
            self.port = free_port()
            if self.kind == "nginx":
                self._start_nginx()
            else:
                self._start_python()
            if self._wait_ready():
                return
            self.stop()
        raise SystemExit(f"error: the {self.kind} server did not start; see {self.workdir}")

    def _start_nginx(self) -> None:
        prefix = self.workdir / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "temp" / sub).mkdir(parents=True, exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            # Workers would run as nobody and could not read a private temporary directory.
            user = "user root root;\n"
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes auto;\ndaemon off;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  access_log off;\n  sendfile on;\n"
            f"  tcp_nopush {'on' if self.tcp_nopush else 'off'};\n"
            "  default_type application/octet-stream;\n"
            "  types { application/json json; application/gzip tgz; }\n"
            + "".join(f"  {t}_temp_path {prefix}/temp/{t};\n" for t in ("proxy", "fastcgi"))
            + "".join(f"  {t}_temp_path {prefix}/temp/{t};\n" for t in ("uwsgi", "scgi"))
            + f"  client_body_temp_path {prefix}/temp/body;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    root {self.docroot};\n"
            "    location / { }\n"
            + (
                f"    location {WAN_PREFIX}/ {{\n      alias {self.docroot}/;\n"
                f"      limit_rate {int(self.wan_rate_mb * MB)};\n    }}\n"
                if self.wan_rate_mb
                else ""
            )
            + "  }\n}\n"
        )
        version = subprocess.run(
            ["nginx", "-v"], capture_output=True, text=True, check=False
        ).stderr.strip()
        nopush = "on" if self.tcp_nopush else "off"
        self.description = (
            f"{version.replace('nginx version: ', '')} (sendfile on, tcp_nopush {nopush}, "
            "1 worker/core)"
        )
        self.process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=(prefix / "stderr.log").open("wb"),
        )

    def _start_python(self) -> None:
        self.description = f"python {sys.version.split()[0]} http.server (ThreadingHTTPServer)"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(self.docroot),
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/streams/v1/index2.json")
                if conn.getresponse().status == 200:
                    return True
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# --------------------------------------------------------------------------------------------
# Measuring a child process


@dataclasses.dataclass(frozen=True)
class Run:
    """One measured run of a child process."""

    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    stdout: str
    flush_seconds: float = 0.0
    engine_seconds: float | None = None
    metadata_seconds: float | None = None
    metadata_kept: bool = False


class _PeakSampler(threading.Thread):
    """Samples a child's VmHWM every 10 ms until it exits (the last sample is kept)."""

    def __init__(self, pid: int) -> None:
        """Watch process ``pid``."""
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        """Sample until told to stop or the process is gone."""
        while not self.done.is_set():
            value = vm_hwm_mb(self.pid)
            if value is None:
                return
            self.peak = max(self.peak, value)
            self.done.wait(0.01)


def run_child(argv: Sequence[str], work: Path) -> Run:
    """Run a command to completion: wall time, CPU time (``wait4``) and peak RSS.

    CPU time includes the child's own children (curl and sha256sum under sh). Peak RSS is the
    child's ``VmHWM`` sampled every 10 ms (our sync reports its exact own figure instead):
    ``wait4``'s ``ru_maxrss`` cannot be used, as it counts this parent's memory at fork time.
    """
    out_path = work / "child.out"
    err_path = work / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        sampler = _PeakSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        os.sync()  # what the child left unwritten (sstream-mirror does not fsync)
        flush_seconds = time.perf_counter() - start - seconds
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"error: {' '.join(argv[:3])}... exited with {proc.returncode}:\n"
            + err_path.read_text(errors="replace")[-3000:]
        )
    return Run(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_mb=sampler.peak,
        stdout=out_path.read_text(errors="replace"),
        flush_seconds=flush_seconds,
    )


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def fresh_dir(path: Path) -> Path:
    """An empty directory at ``path``; flush dirty pages so runs do not pay for each other."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.sync()
    return path


# --------------------------------------------------------------------------------------------
# The contenders


def expected_tarballs(stream: Stream, workload: Workload) -> list[Tarball]:
    """The tarballs a workload stages, in a fixed order."""
    return [stream.tarballs[(v, a)] for v in workload.versions for a in ARCHES]


DIGESTERS = {
    "curl": ("sha256sum", "curl | sha256sum"),
    "openssl": ("openssl dgst -sha256 -r", "curl | openssl sha256"),
}
"""Baselines: coreutils sha256sum (the target's reference) and OpenSSL (hardware SHA)."""


def run_curl(
    server: Server, stream: Stream, workload: Workload, work: Path, digester: str = "curl"
) -> Run:
    """``curl -s URL | sha256sum`` for every tarball, one after the other, in one shell."""
    wanted = expected_tarballs(stream, workload)
    script = f'for u in "$@"; do curl -sS "$u" | {DIGESTERS[digester][0]}; done'
    urls = [f"{server.url}{workload.prefix}/{t.path}" for t in wanted]
    run = run_child(["sh", "-c", script, "sh", *urls], work)
    got = [line.split()[0] for line in run.stdout.splitlines()]
    if got != [t.sha256 for t in wanted]:
        raise SystemExit(f"error: {DIGESTERS[digester][1]} gave wrong digests for {workload.name}")
    return run


LIMIT_SCRIPT = (
    'd=$1; p=$2; shift 2; printf "%s\\n" "$@" | xargs -P "$p" -I{} sh -c '
    '\'f="$0/${1##*/}"; curl -sS "$1" | tee "$f" | openssl dgst -sha256 -r -out "$f.sha256"\' '
    '"$d" {} && sync "$d"/*.tgz "$d"'
)
"""The machine's limit for our job: fetch, write and hash each file (OpenSSL, hardware SHA),
``parallel`` at a time, then make the files durable (``sync FILE...`` fsyncs each)."""


def run_limit(
    server: Server, stream: Stream, workload: Workload, work: Path, parallel: int
) -> Run:
    """``curl URL | tee FILE | openssl sha256`` per file, ``parallel`` at a time, then ``sync``."""
    out = fresh_dir(work / "limit")
    wanted = expected_tarballs(stream, workload)
    urls = [f"{server.url}{workload.prefix}/{t.path}" for t in wanted]
    run = run_child(["sh", "-c", LIMIT_SCRIPT, "sh", str(out), str(parallel), *urls], work)
    for t in wanted:
        path = out / Path(t.path).name
        digest = (out / f"{path.name}.sha256").read_text().split()[0]
        if digest != t.sha256 or path.stat().st_size != t.size:
            raise SystemExit(f"error: the limit run wrote a wrong {path} for {workload.name}")
    return run


def sstream_filters(workload: Workload) -> list[str]:
    """Filters that make sstream-mirror take exactly the workload's items."""
    versions = "|".join(re.escape(v) for v in workload.versions)
    return [
        f"content_id={CONTENT_ID}",
        "release=ubuntu",
        f"arch~^({'|'.join(ARCHES)})$",
        f"version~^({versions})$",
    ]


def run_sstream(
    server: Server, stream: Stream, workload: Workload, work: Path, *, check_sha: bool
) -> Run:
    """``sstream-mirror`` of the workload's items over the unsigned index2.json path."""
    out = fresh_dir(work / "sstream")
    argv = [
        str(VENV_BIN / "sstream-mirror"),
        "--no-verify",
        "--path",
        "streams/v1/index2.json",
        f"{server.url}{workload.prefix}/",  # sstream-mirror joins without adding a slash
        str(out),
        *sstream_filters(workload),
    ]
    run = run_child(argv, work)
    got = sorted(str(p.relative_to(out)) for p in out.glob("agent/*/*.tgz"))
    wanted = expected_tarballs(stream, workload)
    if got != sorted(t.path for t in wanted):
        raise SystemExit(f"error: sstream-mirror fetched {got}, wanted the {workload.name} set")
    for t in wanted:
        path = out / t.path
        if path.stat().st_size != t.size or (check_sha and sha256_file(path) != t.sha256):
            raise SystemExit(f"error: sstream-mirror wrote a wrong {path}")
    return run


def run_ours(
    server: Server,
    stream: Stream,
    workload: Workload,
    target: Path,
    work: Path,
    settings: Settings,
    check_sha: bool | None,
) -> Run:
    """Our sync in a child process (``sync_child.py``), checked against the stream.

    ``check_sha`` None means a re-sync, which must download nothing.
    """
    argv = [
        sys.executable,
        str(CHILD),
        "--url",
        server.url + workload.prefix,
        "--root",
        str(target),
        "--arches",
        ",".join(ARCHES),
        "--versions",
        ",".join(workload.versions),
    ]
    if settings.parallel is not None:
        argv += ["--parallel", str(settings.parallel)]
    if stream.keys is not None:
        argv += ["--keys", str(stream.keys)]
    run = run_child(argv, work)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    wanted = expected_tarballs(stream, workload)
    want_bytes = 0 if check_sha is None else sum(t.size for t in wanted)
    if report["bytes_downloaded"] != want_bytes:
        raise SystemExit(
            f"error: our sync of {workload.name} downloaded {report['bytes_downloaded']} bytes, "
            f"expected {want_bytes}"
        )
    check_staged(target, wanted, check_sha=bool(check_sha))
    kept = report["metadata_kept"]
    if kept != (check_sha is None and stream.keys is not None):
        raise SystemExit(
            f"error: our sync of {workload.name} {'used' if kept else 'did not use'} the "
            "upstream metadata kept by the previous sync"
        )
    return dataclasses.replace(
        run,
        engine_seconds=report["engine_seconds"],
        max_rss_mb=report["peak_rss_mb"],
        metadata_seconds=report["metadata_seconds"],
        metadata_kept=kept,
    )


def check_staged(root: Path, wanted: list[Tarball], *, check_sha: bool) -> None:
    """The staged mirror lists exactly the wanted tarballs (ubuntu), present and intact."""
    sys.path.insert(0, str(REPO / "lib"))
    from upgrader.mirror import Mirror

    mirror = Mirror(root)
    entries = mirror.staged(STREAM)
    listed = {(str(e.version), e.arch): e for e in entries}
    if {e.os for e in entries} != {"ubuntu"} or set(listed) != {
        (t.version, t.arch) for t in wanted
    }:
        raise SystemExit(f"error: the staged mirror under {root} lists {sorted(listed)}")
    for t in wanted:
        entry = listed[(t.version, t.arch)]
        path = mirror.path_of(entry)
        if entry.sha256 != t.sha256 or entry.size != t.size or path.stat().st_size != t.size:
            raise SystemExit(f"error: staged {path} does not match the upstream item")
        if check_sha and sha256_file(path) != t.sha256:
            raise SystemExit(f"error: staged {path} has a wrong sha256")


# --------------------------------------------------------------------------------------------
# The run


@dataclasses.dataclass
class Settings:
    """What one benchmark run does."""

    size_mb: float
    repeats: int
    server: str
    parallel: int | None
    workdir: Path | None
    keep: bool
    strict: bool
    quick: bool
    signed: bool
    openssl: bool
    wan_rate_mb: float
    tcp_nopush: bool = False


def parse_args(argv: Sequence[str]) -> Settings:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--size-mb", type=float, default=None, help="tarball size (default 40)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5, quick 1)")
    parser.add_argument("--quick", action="store_true", help="tiny tarballs, one repeat (CI)")
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--parallel", type=int, default=None, help="our sync's parallelism")
    parser.add_argument("--workdir", type=Path, default=None, help="keep/reuse files here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    parser.add_argument(
        "--wan-rate-mb",
        type=float,
        default=None,
        help="per-connection cap of the one-wan workload, MB/s (default 25, quick 10; 0: skip)",
    )
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="our sync reads unsigned metadata (default: signed .sjson, verified with gpgv)",
    )
    parser.add_argument(
        "--tcp-nopush",
        action="store_true",
        help="nginx with tcp_nopush on (Debian's default), which stalls reused connections",
    )
    args = parser.parse_args(argv)
    size = args.size_mb if args.size_mb is not None else (0.25 if args.quick else 40.0)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if not 0.01 <= size <= 4096:
        parser.error(f"--size-mb {size}: use a size between 0.01 and 4096 (MiB)")
    if repeats < 1:
        parser.error(f"--repeats {repeats}: use 1 or more")
    wan_rate = args.wan_rate_mb
    if wan_rate is None:
        wan_rate = 10.0 if args.quick else 25.0
    if not 0 <= wan_rate <= 10_000:
        parser.error(f"--wan-rate-mb {wan_rate}: use 0 (skip) to 10000 (MB/s per connection)")
    if args.parallel is not None and args.parallel < 1:
        parser.error(f"--parallel {args.parallel}: use 1 or more")
    server = args.server
    if server == "auto":
        server = "nginx" if shutil.which("nginx") else "python"
    elif server == "nginx" and not shutil.which("nginx"):
        parser.error("--server nginx: nginx is not installed (apt install nginx)")
    return Settings(
        size_mb=size,
        repeats=repeats,
        server=server,
        parallel=args.parallel,
        workdir=args.workdir,
        keep=args.keep,
        strict=args.strict,
        quick=args.quick,
        signed=not args.unsigned and shutil.which("gpg") is not None,
        openssl=shutil.which("openssl") is not None,
        wan_rate_mb=wan_rate if server == "nginx" else 0.0,
        tcp_nopush=args.tcp_nopush,
    )


def check_tools() -> None:
    """curl, sha256sum and sstream-mirror must be there."""
    missing = [tool for tool in ("curl", "sha256sum") if shutil.which(tool) is None]
    if not (VENV_BIN / "sstream-mirror").exists():
        missing.append(
            f"{VENV_BIN / 'sstream-mirror'} (run this script with the unit group's python: "
            "uv run --group unit python benchmarks/sync_bench.py)"
        )
    if missing:
        raise SystemExit(f"error: missing {', '.join(missing)}")


Results = dict[tuple[str, str], list[Run]]


def use_compiled_bytecode(work: Path) -> Path:
    """Make Python children keep compiled bytecode in ``work``, whatever PYTHONDONTWRITEBYTECODE.

    An installed program starts from compiled bytecode; a child that compiled our modules (or
    python-simplestreams', which ships none) on every start would be measured compiling.
    """
    prefix = work / "pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    return prefix


def warm_up(settings: Settings, server: Server, stream: Stream, work: Path) -> None:
    """Run our sync and sstream-mirror once, unmeasured: bytecode compiled, caches warm."""
    one = workloads()[0]
    print(f"  warm-up: {one.name} ours, sstream")
    run_ours(server, stream, one, fresh_dir(work / "ours"), work, settings, False)
    run_sstream(server, stream, one, work, check_sha=False)


def measure(settings: Settings, server: Server, stream: Stream, work: Path) -> Results:
    """Run every contender on every workload, interleaved, ``settings.repeats`` times."""
    results: Results = {}
    warm_up(settings, server, stream, work)
    for repeat in range(settings.repeats):
        first = repeat == 0
        for workload in workloads(server.wan_rate_mb):
            contenders = [
                c
                for c in workload.contenders
                if settings.openssl or c not in ("openssl", "limit1", "limitP")
            ]
            shift = repeat % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                print(f"  repeat {repeat + 1}/{settings.repeats}: {workload.name} {contender}")
                if contender in DIGESTERS:
                    os.sync()
                    run = run_curl(server, stream, workload, work, contender)
                elif contender in ("limit1", "limitP"):
                    parallel = 1 if contender == "limit1" else our_parallel(settings)
                    run = run_limit(server, stream, workload, work, parallel)
                elif contender == "sstream":
                    run = run_sstream(server, stream, workload, work, check_sha=first)
                else:
                    target = fresh_dir(work / "ours")
                    run = run_ours(server, stream, workload, target, work, settings, first)
                    if workload.resync:
                        os.sync()
                        again = run_ours(server, stream, workload, target, work, settings, None)
                        results.setdefault((workload.name, "resync"), []).append(again)
                results.setdefault((workload.name, contender), []).append(run)
    for name in ("ours", "sstream", "limit"):
        shutil.rmtree(work / name, ignore_errors=True)
    return results


def median(runs: list[Run], attr: str = "seconds") -> float:
    """The median of one attribute over repeated runs."""
    return statistics.median(getattr(r, attr) for r in runs)


def fmt_ratio(value: float | None) -> str:
    """A ratio, or a dash."""
    return "-" if value is None else f"{value:.2f}x"


ROW_NAMES = {
    "ours": "our sync (process)",
    "engine": "our sync (engine only)",
    "resync": "our re-sync, no change",
    "curl": "curl | sha256sum",
    "openssl": "curl | openssl sha256",
    "sstream": "sstream-mirror",
    "limit1": "limit, 1 at a time",
    "limitP": "limit, P at a time",
}
"""Row names; P is our parallelism. "limit": curl | tee FILE | openssl sha256, then sync."""


def durable(runs: list[Run], attr: str = "seconds") -> float:
    """Median time until the data is on disk: the run, then the ``sync(2)`` right after it.

    sstream-mirror leaves its files in the page cache (``flush s``); our sync fsyncs every file
    before publishing it, so its flush is ~0. Comparing these figures compares the same
    durability.
    """
    return statistics.median(getattr(r, attr) + r.flush_seconds for r in runs)


RATIO_COLUMNS = (
    ("vs curl", "curl", "seconds"),
    ("vs sstream", "sstream", "seconds"),
    ("vs sst+sync", "sstream", "durable"),
    ("vs openssl", "openssl", "seconds"),
    ("vs lim 1", "limit1", "seconds"),
    ("vs lim P", "limitP", "seconds"),
)
"""Ratio columns: header, contender, and whether its time counts its flush to disk."""


Target = tuple[str, str, str]
"""A target: its name, PASS, FAIL or INFO (reported, not judged), and the figures."""


def verdict(name: str, judged: bool, passed: bool) -> tuple[str, str]:
    """The target's name and PASS or FAIL; INFO when it is reported, not judged."""
    if not judged:
        return f"{name} (reported, not judged)", "INFO"
    return name, "PASS" if passed else "FAIL"


def report(stream: Stream, results: Results, wan_rate_mb: float, parallel: int) -> list[Target]:
    """Print the table; return the targets as (name, PASS/FAIL/INFO, figures).

    Seconds are medians. "process" is the child's wall time from spawn to exit (as for the
    other contenders); "engine only" excludes interpreter start and imports. Ratios compare
    throughput on the same bytes: >1 means our sync is faster. "flush s" is how long writing
    back what the contender left in the page cache took after it exited (``sync``). "vs
    sstream" compares wall times as measured (raw); "vs sst+sync" compares the time until the
    data is on disk (wall time + flush, for both), i.e. the same durability. "vs lim 1" and
    "vs lim P" compare with the machine's limit for the same job, one file at a time and
    ``parallel`` at a time: both make the files durable before they end, as ours does.
    """
    header = (
        f"{'workload':<8} {'contender':<23} {'bytes':>13} {'median s':>8} {'min-max s':>11} "
        f"{'MB/s':>5} "
        + " ".join(f"{title:>{max(len(title), 7)}}" for title, _, _ in RATIO_COLUMNS)
        + f" {'CPU s':>6} {'flush s':>7} {'peak RSS':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    targets: list[Target] = []
    for workload in workloads(wan_rate_mb):
        size = sum(t.size for t in expected_tarballs(stream, workload))
        runs = {k[1]: v for k, v in results.items() if k[0] == workload.name}
        rows = [("ours", "seconds", size), ("engine", "engine_seconds", size)]
        rows += [
            (k, "seconds", size)
            for k in ("curl", "openssl", "sstream", "limit1", "limitP")
            if k in runs
        ]
        if "resync" in runs:
            rows.append(("resync", "engine_seconds", 0))
        for key, attr, nbytes in rows:
            group = runs["ours" if key == "engine" else key]
            values = [getattr(r, attr) for r in group]
            seconds = statistics.median(values)
            ratios = []
            for title, other, kind in RATIO_COLUMNS:
                value = None
                if key in ("ours", "engine") and other in runs:
                    if kind == "durable":
                        value = durable(runs[other]) / durable(group, attr)
                    else:
                        value = median(runs[other]) / seconds
                ratios.append(f"{fmt_ratio(value):>{max(len(title), 7)}}")
            rss = (
                "-"
                if key not in ("ours", "engine", "resync", "sstream")
                else (f"{median(group, 'max_rss_mb'):.1f} MB")
            )
            row_name = ROW_NAMES[key].replace(" P ", f" {parallel} ")
            spread = f"{min(values):.2f}-{max(values):.2f}"
            print(
                f"{workload.name:<8} {row_name:<23} {nbytes:>13,} {seconds:>8.3f} "
                f"{spread:>11} {(f'{nbytes / seconds / MB:.0f}' if nbytes else '-'):>5} "
                + " ".join(ratios)
                + f" {median(group, 'cpu_seconds'):>6.2f} {median(group, 'flush_seconds'):>7.2f} "
                f"{rss:>8}"
            )
        print()
        targets += workload_targets(workload.name, runs, parallel)
    peak = {
        name: max(
            r.max_rss_mb for r in results[(name, "ours")] + results.get((name, "resync"), [])
        )
        for name in (w.name for w in workloads(wan_rate_mb))
    }
    targets.append(
        (
            f"peak RSS of our sync < {TARGET_RSS_MB:.0f} MB",
            "PASS" if max(peak.values()) < TARGET_RSS_MB else "FAIL",
            ", ".join(f"{k} {v:.1f} MB" for k, v in peak.items())
            + f"; tarballs 2x the size: {peak['big'] - peak['one']:+.1f} MB vs one",
        )
    )
    return targets


def workload_targets(name: str, runs: dict[str, list[Run]], parallel: int) -> list[Target]:
    """The targets of one workload: throughput on the process time, re-sync on the engine's."""
    wall = median(runs["ours"])
    engine = median(runs["ours"], "engine_seconds")
    curl = median(runs["curl"])
    targets = [
        (
            *verdict(
                f"{name}: >= {TARGET_VS_CURL}x curl | sha256sum throughput",
                name in JUDGED,
                curl / wall >= TARGET_VS_CURL,
            ),
            f"{curl / wall:.2f}x (engine only {curl / engine:.2f}x)",
        )
    ]
    if "sstream" in runs:
        same = durable(runs["sstream"]) / durable(runs["ours"])
        same_engine = durable(runs["sstream"]) / durable(runs["ours"], "engine_seconds")
        raw = median(runs["sstream"]) / wall
        raw_engine = median(runs["sstream"]) / engine
        targets.append(
            (
                *verdict(
                    f"{name}: >= {TARGET_VS_SSTREAM}x faster than sstream-mirror + sync "
                    "(same durability)",
                    name in JUDGED,
                    same >= TARGET_VS_SSTREAM,
                ),
                f"{same:.2f}x (engine only {same_engine:.2f}x); raw, its writes left in the "
                f"page cache: {raw:.2f}x (engine only {raw_engine:.2f}x)",
            )
        )
    if "limit1" in runs and "limitP" in runs:
        one, many = median(runs["limit1"]), median(runs["limitP"])
        best = min(one, many)
        targets.append(
            (
                *verdict(
                    f"{name}: >= {TARGET_VS_LIMIT}x the machine's limit (curl | tee FILE | "
                    f"openssl sha256, then sync; the faster of 1 and {parallel} at a time)",
                    name == "eight",
                    best / wall >= TARGET_VS_LIMIT,
                ),
                f"{best / wall:.2f}x (1 at a time {one / wall:.2f}x, {parallel} at a time "
                f"{many / wall:.2f}x; engine only {best / engine:.2f}x)",
            )
        )
    if "resync" in runs:
        resync_engine = median(runs["resync"], "engine_seconds") / engine
        resync_wall = median(runs["resync"]) / wall
        kept = sum(r.metadata_kept for r in runs["resync"])
        metadata = median(runs["resync"], "metadata_seconds")
        first = median(runs["ours"], "metadata_seconds")
        targets.append(
            (
                *verdict(
                    f"{name}: no-change re-sync < {TARGET_RESYNC:.0%} of the first sync",
                    name in JUDGED,
                    resync_engine < TARGET_RESYNC,
                ),
                f"{resync_engine:.2%} engine only; {resync_wall:.1%} process to process "
                f"(interpreter start and imports included); kept upstream metadata used in "
                f"{kept} of {len(runs['resync'])} re-syncs: metadata {metadata * 1000:.0f} ms "
                f"(first sync, read and verified in full: {first * 1000:.0f} ms)",
            )
        )
    return targets


def default_parallel() -> int:
    """The engine's default number of parallel downloads."""
    sys.path.insert(0, str(REPO / "lib"))
    from upgrader import sync

    return inspect.signature(sync.sync).parameters["parallel"].default


def our_parallel(settings: Settings) -> int:
    """Our sync's downloads at once: ``--parallel``, else the engine's default."""
    return settings.parallel or default_parallel()


def print_settings(settings: Settings, server: Server, stream: Stream, work: Path) -> None:
    """What was measured, where, and how noisy the machine was."""
    sst = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('python-simplestreams'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print("settings:")
    print(
        f"  tarball size     {settings.size_mb:g} MiB (big workload: {2 * settings.size_mb:g} MiB)"
    )
    print(f"  repeats          {settings.repeats} (median reported), contenders interleaved")
    print(
        f"  stream           {len(all_versions())} versions x {len(ARCHES)} arches x "
        f"{len(OS_NAMES)} OS names = {stream.items} items, condensed products file "
        f"{stream.products_bytes:,} bytes"
    )
    how = "reused" if stream.reused else f"generated in {stream.generated_seconds:.1f} s"
    print(f"  tarballs on disk {sum(1 for _ in stream.root.glob('agent/*/*.tgz'))} ({how})")
    print(f"  server           {server.description} at {server.url}")
    print(f"  our parallelism  {settings.parallel or f'{default_parallel()} (engine default)'}")
    print(
        f"  python children  compiled bytecode kept in {work / 'pycache'}, one unmeasured "
        "warm-up run each (ours, sstream-mirror)"
    )
    how = "signed .sjson, verified with gpgv (throwaway key)" if stream.keys else "unsigned .json"
    print(f"  our metadata     {how}")
    print(
        f"  sstream-mirror   python-simplestreams {sst}, --no-verify --path "
        "streams/v1/index2.json, release=ubuntu + arch/version filters"
    )
    print(
        f"  limit            curl URL | tee FILE | openssl dgst -sha256, 1 and "
        f"{our_parallel(settings)} at a time (xargs -P), then sync FILE... (fsync each)"
    )
    for workload in workloads(server.wan_rate_mb):
        print(f"  workload {workload.name:<8}{workload.description}")
    if settings.server == "python" and settings.wan_rate_mb == 0:
        print("  (python server: no one-wan workload, it needs nginx's limit_rate)")
    print(
        f"  machine          {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f} at start; work dir {work}"
    )


WORKDIR_MARK = ".sync-bench"


def use_workdir(path: Path) -> Path:
    """The ``--workdir``: new, empty, or used by an earlier run (it deletes subdirectories)."""
    work = path.resolve()
    if work.exists() and not work.is_dir():
        raise SystemExit(f"error: --workdir {path} is not a directory: use a new or empty one")
    try:
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()) and not (work / WORKDIR_MARK).exists():
            raise SystemExit(
                f"error: --workdir {path}: use a new or empty directory, or one an earlier "
                "benchmark run used (this one holds other files)"
            )
        (work / WORKDIR_MARK).touch()
    except OSError as exc:
        raise SystemExit(f"error: --workdir {path}: {exc.strerror or exc}") from None
    return work


def prepare_stream(settings: Settings, work: Path) -> Stream:
    """Generate (or reuse) the stream, sign it or not, and warm the page cache with it."""
    materialise = {v for w in workloads() for v in w.versions}
    stream = build_stream(work / "stream", settings.size_mb, materialise)
    os.sync()  # the generated files: no run should pay for writing them back
    if settings.signed:
        sign_stream(stream, work / "gnupg")
    else:
        for signed in (stream.root / "streams/v1").glob("*.sjson"):
            signed.unlink()  # left by an earlier signed run in the same --workdir
    for path in stream.root.glob("agent/*/*.tgz"):  # the same warm page cache for everyone
        with path.open("rb") as f:
            while f.read(8 * MIB):
                pass
    return stream


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; 0 when every run was correct (targets are reported, not enforced)."""
    settings = parse_args(argv)
    check_tools()
    started = time.perf_counter()
    temp = None
    if settings.workdir is None:
        temp = Path(tempfile.mkdtemp(prefix="sync-bench-"))
        work = temp
    else:
        work = use_workdir(settings.workdir)
    server = Server(
        work / "stream",
        work,
        settings.server,
        settings.wan_rate_mb,
        tcp_nopush=settings.tcp_nopush,
    )
    use_compiled_bytecode(work)
    try:
        stream = prepare_stream(settings, work)
        server.docroot = stream.root
        server.start()
        print_settings(settings, server, stream, work)
        results = measure(settings, server, stream, work)
        targets = report(stream, results, server.wan_rate_mb, our_parallel(settings))
    finally:
        server.stop()
        if temp is not None and not settings.keep:
            shutil.rmtree(temp, ignore_errors=True)
    print(
        "targets (sstream-mirror does not fsync: it is judged by the time until its data is on "
        "disk, its run + sync(2), as our sync fsyncs every file; raw wall times are shown too):"
    )
    for name, status, figures in targets:
        print(f"  {status}  {name}: {figures}")
    print(
        f"done in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} "
        f"at the end ({os.cpu_count()} cores; other work on the machine shows as spread in "
        "min-max)"
    )
    if temp is not None and settings.keep:
        print(f"kept {temp}")
    if settings.strict and any(status == "FAIL" for _, status, _ in targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
