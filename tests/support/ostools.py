"""apt and systemd for a packed charm under test: apt-get, apt-cache, dpkg and systemctl.

The charm installs nginx and GnuPG with charmlibs-apt and runs nginx (and its background sync
job) with charmlibs-systemd. A test cannot own the machine's package database or its init
system, so :class:`support.machine.Machine` puts this program, under those four names, first on
the unit's PATH. It keeps a package database and unit states in ``<machine>/os/`` and records
every call in ``os-calls.jsonl`` there.

What is real: a package is a directory tree that ``apt-get install`` copies into the machine's
filesystem (the nginx package holds this host's ``/usr/sbin/nginx`` binary and a Debian-shaped
``/etc/nginx``); ``systemctl start nginx.service`` runs that nginx as Debian's unit does
(``nginx -t``, then ``nginx -g 'daemon on; master_process on;'``), ``reload`` and ``stop`` signal
it; another unit's ``ExecStart`` runs in the background with its ``Environment``, and its exit
status decides ``is-active``/``is-failed``. The answers and errors are apt's, dpkg's and
systemd's own words.

It uses the standard library only: it runs on the machine's python3, outside the charm's venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES_FILE = "packages.json"
UNITS_FILE = "units.json"
CALLS_FILE = "os-calls.jsonl"
LOCK_FILE = "os.lock"
NGINX = "/usr/sbin/nginx"
NGINX_UNIT = "nginx.service"
NGINX_FLAGS = ["-g", "daemon on; master_process on;"]
UNIT_DIR = Path("/etc/systemd/system")


class CommandError(Exception):
    """A failed command: what it prints on stderr, and its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def _lock(os_dir: Path) -> Iterator[None]:
    with open(os_dir / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def locked(os_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    """One of the JSON state files, read and written back under an exclusive lock."""
    with _lock(os_dir):
        path = os_dir / name
        data = json.loads(path.read_text())
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)


# --- apt and dpkg ------------------------------------------------------------------------------


def dpkg(os_dir: Path, args: list[str]) -> str:
    with locked(os_dir, PACKAGES_FILE) as db:
        if args == ["--print-architecture"]:
            return db["arch"] + "\n"
        if len(args) == 2 and args[0] == "-l":
            name = args[1]
            if name not in db["installed"]:
                raise CommandError(f"dpkg-query: no packages found matching {name}\n", 1)
            return (
                "Desired=Unknown/Install/Remove/Purge/Hold\n"
                "| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n"
                "|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n"
                "||/ Name           Version      Architecture Description\n"
                "+++-==============-============-============-=================================\n"
                f"ii  {name:<14} {db['installed'][name]:<12} {db['arch']:<12} {name}\n"
            )
    raise CommandError(f"dpkg: error: unknown option {' '.join(args)}\n", 2)


def apt_cache(os_dir: Path, args: list[str]) -> str:
    if len(args) != 2 or args[0] != "show":
        raise CommandError(f"E: Invalid operation {' '.join(args)}\n", 100)
    with locked(os_dir, PACKAGES_FILE) as db:
        package = db["archive"].get(args[1])
        if package is None:
            raise CommandError("E: No packages found\n", 100)
        return (
            f"Package: {args[1]}\nArchitecture: {db['arch']}\nVersion: {package['version']}\n"
            f"Description: {args[1]}\n\n"
        )


def apt_get(os_dir: Path, args: list[str]) -> str:
    words = [a for a in args if not a.startswith("-")]
    if words[:1] == ["update"]:
        with locked(os_dir, PACKAGES_FILE) as db:
            if not db.get("reachable", True):
                raise CommandError(
                    "E: Failed to fetch the package lists (no archive reachable)\n", 100
                )
        return "Reading package lists...\n"
    if words[:1] != ["install"] or len(words) < 2:
        raise CommandError(f"E: Invalid operation {' '.join(words[:1])}\n", 100)
    done = []
    with locked(os_dir, PACKAGES_FILE) as db:
        for spec in words[1:]:
            name, _, version = spec.partition("=")
            package = db["archive"].get(name)
            if package is None:
                raise CommandError(f"E: Unable to locate package {name}\n", 100)
            if version and version != package["version"]:
                raise CommandError(f"E: Version '{version}' for '{name}' was not found\n", 100)
        for spec in words[1:]:
            name = spec.partition("=")[0]
            package = db["archive"][name]
            _unpack(Path(package["tree"]))
            db["installed"][name] = package["version"]
            done.append(f"Setting up {name} ({package['version']}) ...\n")
    return "".join(done)


def _unpack(tree: Path) -> None:
    """Copy a package's files to where they belong on the machine (``/`` of its namespace)."""
    for path in sorted(tree.rglob("*")):
        target = Path("/") / path.relative_to(tree)
        if path.is_dir() and not path.is_symlink():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, target)


# --- systemd -----------------------------------------------------------------------------------


def _unit_exists(name: str) -> bool:
    if name == NGINX_UNIT:
        return Path(NGINX).exists()
    return (UNIT_DIR / name).is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running; as this machine's PID 1 reaps orphans, that is brief.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def _nginx_pid() -> int | None:
    conf = (
        Path("/etc/nginx/nginx.conf").read_text() if Path("/etc/nginx/nginx.conf").exists() else ""
    )
    match = re.search(r"^\s*pid\s+([^;]+);", conf, re.MULTILINE)
    pid_file = Path(match.group(1)) if match else Path("/run/nginx.pid")
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _state(units: dict[str, Any], name: str) -> str:
    """``active``, ``inactive`` or ``failed``, as ``systemctl is-active`` says."""
    if name == NGINX_UNIT:
        return "active" if _nginx_pid() else units.get(name, {}).get("result", "inactive")
    unit = units.get(name, {})
    if unit.get("pid") and _pid_alive(unit["pid"]):
        return "active"
    return unit.get("result", "inactive")


def _run_nginx(args: list[str]) -> None:
    result = subprocess.run(
        [NGINX, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise CommandError(
            f"Job for {NGINX_UNIT} failed because the control process exited with error code.\n"
            f'See "systemctl status {NGINX_UNIT}" and "journalctl -xeu {NGINX_UNIT}" '
            "for details.\n"
            f"{result.stderr}",
            1,
        )


def _start(os_dir: Path, units: dict[str, Any], name: str) -> None:
    if _state(units, name) == "active":
        return
    if name == NGINX_UNIT:
        try:
            _run_nginx(["-t", "-q", *NGINX_FLAGS])  # ExecStartPre
            _run_nginx(NGINX_FLAGS)
        except CommandError:
            units.setdefault(name, {})["result"] = "failed"
            raise
        deadline = time.monotonic() + 10
        while _nginx_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        units.setdefault(name, {})["result"] = "inactive"
        return
    command, env = _exec_start(UNIT_DIR / name)
    log = open(os_dir / f"{name}.journal", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", __file__, str(os_dir), "--supervise", name, *command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        cwd="/",
    )
    log.close()
    units[name] = {"pid": proc.pid, "result": "inactive"}


def _exec_start(path: Path) -> tuple[list[str], dict[str, str]]:
    """The ``ExecStart`` command and ``Environment`` of a unit file."""
    command: list[str] = []
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    for line in path.read_text().splitlines():
        key, eq, value = line.partition("=")
        if not eq:
            continue
        if key.strip() == "ExecStart":
            command = shlex.split(value)
        elif key.strip() == "Environment":
            for item in shlex.split(value):
                name, _, setting = item.partition("=")
                env[name] = setting
    if not command:
        raise CommandError(f"Failed to start {path.name}: Unit {path.name} has no ExecStart.\n", 1)
    return command, env


def _supervise(os_dir: Path, name: str, command: list[str]) -> int:
    """Run a unit's command as systemd's service manager would, and record how it ended."""
    status = subprocess.run(command, check=False).returncode
    with locked(os_dir, UNITS_FILE) as units:
        unit = units.setdefault(name, {})
        if unit.get("pid") == os.getpid():
            unit["pid"] = 0
            unit["result"] = "inactive" if status == 0 else "failed"
    return status


def _stop(units: dict[str, Any], name: str) -> None:
    if name == NGINX_UNIT:
        pid = _nginx_pid()
        if pid:
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        units.setdefault(name, {})["result"] = "inactive"
        return
    unit = units.get(name, {})
    pid = unit.get("pid")
    if pid and _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    units[name] = {"pid": 0, "result": "inactive"}


def systemctl(os_dir: Path, args: list[str]) -> str:
    words = [a for a in args if not a.startswith("-")]
    if words == ["daemon-reload"]:
        return ""
    if len(words) != 2:
        raise CommandError(f"Unknown command verb {' '.join(words[:1])}.\n", 1)
    verb, name = words
    with locked(os_dir, UNITS_FILE) as units:
        if verb in ("is-active", "is-failed"):
            return _is(units, verb, name, quiet="--quiet" in args)
        if not _unit_exists(name):
            if verb == "stop":
                raise CommandError(f"Failed to stop {name}: Unit {name} not loaded.\n", 5)
            if verb in ("enable", "disable"):
                raise CommandError(f"Failed to {verb} unit: Unit file {name} does not exist.\n", 1)
            raise CommandError(f"Failed to {verb} {name}: Unit {name} not found.\n", 5)
        _act(os_dir, units, verb, name)
    return ""


def _is(units: dict[str, Any], verb: str, name: str, *, quiet: bool) -> str:
    """``is-active`` (exit 3 when not) or ``is-failed`` (exit 1 when not)."""
    state = _state(units, name)
    wanted = "active" if verb == "is-active" else "failed"
    out = "" if quiet else f"{state}\n"
    if state != wanted:
        raise CommandError(out, 3 if verb == "is-active" else 1)
    return out


def _act(os_dir: Path, units: dict[str, Any], verb: str, name: str) -> None:
    """enable, disable, start, stop, restart or reload an existing unit."""
    if verb in ("enable", "disable"):
        units.setdefault(name, {})["enabled"] = verb == "enable"
    elif verb == "start":
        _start(os_dir, units, name)
    elif verb == "stop":
        _stop(units, name)
    elif verb == "restart":
        _stop(units, name)
        _start(os_dir, units, name)
    elif verb == "reload":
        if _state(units, name) != "active":
            raise CommandError(f"{name} is not active, cannot reload.\n", 1)
        if name != NGINX_UNIT:
            raise CommandError(f"Failed to reload {name}: Job type reload is not applicable.\n", 1)
        _run_nginx([*NGINX_FLAGS, "-s", "reload"])
    else:
        raise CommandError(f"Unknown command verb {verb}.\n", 1)


COMMANDS = {"apt-get": apt_get, "apt-cache": apt_cache, "dpkg": dpkg, "systemctl": systemctl}


def main(argv: list[str]) -> int:
    """``ostools.py OS_DIR NAME ARGS...``: run the stand-in NAME; record the call."""
    os_dir, name, args = Path(argv[1]), Path(argv[2]).name, argv[3:]
    if argv[2] == "--supervise":
        return _supervise(os_dir, name=args[0], command=args[1:])
    status, out, err = 0, "", ""
    try:
        out = COMMANDS[name](os_dir, args)
    except CommandError as exc:
        status, err = exc.status, str(exc)
    with _lock(os_dir), open(os_dir / CALLS_FILE, "a") as calls:
        calls.write(json.dumps({"command": name, "args": args, "status": status}) + "\n")
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
