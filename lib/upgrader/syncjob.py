"""The background sync job: staging outside Juju hooks, as a systemd service with a status file.

The charm writes a :class:`JobSpec` and starts the service (:func:`render_unit`,
:class:`JobService`); the job (:func:`run`, ``python -m upgrader.syncjob SPEC``) stages with
:func:`upgrader.sync.sync` and keeps a :class:`JobStatus` file the unit status shows.
ARCHITECTURE.md ("The background job") has the whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .bounds import (
    MAX_JOB_FILE_BYTES,
    MAX_STATUS_FILE_BYTES,
    MalformedJSONError,
    TooLargeError,
    load_json,
    preview,
    read_file,
)
from .config import CharmConfig, check_os, parse_architectures
from .errors import InvalidInputError, UpgraderError
from .fetch import Fetcher, FetchSettings
from .mirror import Mirror, MirrorError, format_bytes, write_atomic
from .plan import staged_versions
from .serving import LeaderMirror
from .streams import (
    AgentEntry,
    StreamContents,
    TrustPolicy,
    check_stream_name,
    check_stream_url,
    read_stream,
)
from .sync import Progress, SyncRequest, check_parallel, sync
from .upstream import read_upstream
from .urls import for_display, redact_url
from .versions import parse

logger = logging.getLogger(__name__)

JOB_FILE = ".upgrader-job.json"
STATUS_FILE = ".upgrader-job-status.json"
SYSTEMD_DIR = Path("/etc/systemd/system")
STATUS_INTERVAL = 1.0
"""Seconds between two writes of the status file while downloading."""

RUNNING, DONE, FAILED = "running", "done", "failed"
_UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*\.service\Z")
# systemd would expand % specifiers and split on whitespace; quotes and backslashes are escapes.
_UNSAFE_EXEC = re.compile(r"[\s%\"'\\$;]")


class JobError(UpgraderError):
    """The background job could not be set up, started or read."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What one background sync stages, and from where.

    Attributes:
        root: the storage root (the mirror is ``<root>/tools``).
        stream_url: the source stream: upstream, or the leader's ``http://ADDR:PORT/tools``.
        stream: the stream name.
        os_name: the agent OS.
        architectures: the architectures to stage.
        versions: the exact versions to stage (canonical strings); empty with ``follow``.
        follow: copy the source exactly (every version it lists; drop what it does not).
        internal: the source is the leader's mirror, whose metadata is unsigned.
        verify_signatures: refuse an upstream source without valid signed metadata (the
            ``verify-signatures`` option; ignored for the leader's mirror).
        signing_keys: ASCII-armoured keys for a private upstream stream (``signing-keys``);
            empty for Juju's release key.
        parallel: downloads at once.
        fetch: :class:`~upgrader.fetch.FetchSettings` fields (proxies, CA certificates).

    Raises:
        InvalidInputError: a field is malformed (naming it and the accepted form).
    """

    root: str
    stream_url: str
    stream: str
    os_name: str
    architectures: tuple[str, ...]
    versions: tuple[str, ...] = ()
    follow: bool = False
    internal: bool = False
    verify_signatures: bool = True
    signing_keys: str = ""
    parallel: int = 4
    fetch: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check every field, so a bad job file fails with a message, not a traceback."""
        if (
            not isinstance(self.root, str)
            or not Path(self.root).is_absolute()
            or "\x00" in self.root  # no path holds one: os calls would raise ValueError
        ):
            raise InvalidInputError(f"invalid root {preview(self.root)}: use an absolute path")
        check_stream_url(self.stream_url)
        check_stream_name(self.stream)
        check_os(self.os_name, option="os_name")
        parse_architectures(" ".join(self.architectures))
        for version in self.versions:
            parse(version)
        for name in ("follow", "internal", "verify_signatures"):
            value = getattr(self, name)
            if not isinstance(value, bool):  # "false" would be true
                raise InvalidInputError(f"invalid {name} {preview(value)}: use true or false")
        if not isinstance(self.signing_keys, str):
            raise InvalidInputError(
                f"invalid signing_keys {preview(self.signing_keys)}: use the armoured keys as text"
            )
        if self.follow == bool(self.versions):
            raise InvalidInputError(
                "invalid job: give the versions to stage, or follow=true to copy the source"
            )
        check_parallel(self.parallel)
        if not isinstance(self.fetch, Mapping):
            raise InvalidInputError(f"invalid fetch {preview(self.fetch)}: use an object")
        self.fetch_settings()  # validates the fetch fields

    def fetch_settings(self) -> FetchSettings:
        """The fetcher's settings."""
        names = {f.name for f in dataclasses.fields(FetchSettings)}
        unknown = sorted(set(self.fetch) - names)
        if unknown:
            raise InvalidInputError(
                f"invalid fetch setting {unknown[0]!r}: use one of {', '.join(sorted(names))}"
            )
        return FetchSettings(**self.fetch)

    def request(self, versions: Iterable[str]) -> SyncRequest:
        """The sync request for these versions."""
        return SyncRequest(
            versions=tuple(parse(v) for v in versions),
            os_names=(self.os_name,),
            architectures=self.architectures,
        )

    def describe(self) -> str:
        """``3.6.13`` or ``the leader's mirror``, for the status."""
        return ", ".join(self.versions) if self.versions else "the leader's mirror"

    def to_json(self) -> str:
        """The job file's text."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "job file") -> JobSpec:
        """Parse a job file.

        Raises:
            InvalidInputError: not a JSON object of the job's fields, naming ``where``.
        """
        try:
            doc = load_json(text)
        except MalformedJSONError as exc:
            raise InvalidInputError(f"{where} is {exc}") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(doc, dict) or not set(doc) <= names or "root" not in doc:
            keys = ", ".join(sorted(names))
            raise InvalidInputError(f"{where} is not a sync job: use an object with keys {keys}")
        for key in ("architectures", "versions"):
            if key in doc:
                if not isinstance(doc[key], list):
                    raise InvalidInputError(f"{where}: {key} must be a list of strings")
                doc[key] = tuple(doc[key])
        try:
            return cls(**doc)
        except (InvalidInputError, TypeError) as exc:
            raise InvalidInputError(f"{where}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """What the job is doing or did, as written to the status file.

    Attributes:
        state: ``running``, ``done`` or ``failed``.
        what: what it stages (versions, or the leader's mirror).
        source: the stream URL.
        started: when it started (ISO 8601, UTC).
        finished: when it ended, if it did.
        done_bytes: bytes downloaded and verified so far.
        total_bytes: bytes to download in all.
        message: the outcome (staged versions) or the error.
        pid: the job's process id.
    """

    state: str
    what: str
    source: str
    started: str
    finished: str = ""
    done_bytes: int = 0
    total_bytes: int = 0
    message: str = ""
    pid: int = 0

    def describe(self) -> str:
        """One line for the unit status.

        ``syncing 3.6.13: 45% (90.0 MiB of 200.0 MiB)``, ``synced 3.6.13``, or
        ``sync of 3.6.13 failed: <error>``.
        """
        if self.state == RUNNING:
            if self.total_bytes:
                percent = 100 * self.done_bytes // self.total_bytes
                return (
                    f"syncing {self.what}: {percent}% ({format_bytes(self.done_bytes)} of "
                    f"{format_bytes(self.total_bytes)})"
                )
            return f"syncing {self.what}"
        if self.state == DONE:
            return f"synced {self.what}"
        return f"sync of {self.what} failed: {self.message}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_spec(root: Path, spec: JobSpec) -> Path:
    """Write the job file (mode 0600: it may hold proxy credentials); returns its path.

    Raises:
        MirrorError: the file cannot be written.
    """
    path = root / JOB_FILE
    _write_private(path, spec.to_json(), what="the sync job")
    return path


def _write_private(path: Path, text: str, *, what: str) -> None:
    """Replace ``path`` atomically with a file of mode 0600 from the start.

    It may hold a URL with credentials; the job runs as root, so never through a planted link.

    Raises:
        MirrorError: the file cannot be written, naming ``what``; ``path`` is unchanged.
    """
    write_atomic(
        path, text.encode(), mode=0o600, what=what, unchanged=f"{what} is unchanged", parents=False
    )


_INT_LIMITS = {"done_bytes": 2**63, "total_bytes": 2**63, "pid": 2**31}  # pid: os.kill's pid_t


def read_status(root: Path) -> JobStatus | None:
    """The last status the job wrote, or None when there is none (or it is unreadable).

    A file whose fields have other types (damaged, or written by another charm revision)
    also reads as None: the charm shows the status in every hook, where it must not raise.
    """
    try:
        doc = load_json(read_file(root / STATUS_FILE, MAX_STATUS_FILE_BYTES))
        status = JobStatus(**doc) if isinstance(doc, dict) else None
    except (OSError, ValueError, TypeError):  # MalformedJSONError and TooLargeError too
        return None
    if status is None or status.state not in (RUNNING, DONE, FAILED):
        return None
    for field in dataclasses.fields(JobStatus):
        value = getattr(status, field.name)
        if field.name in _INT_LIMITS:
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            if not 0 <= value < _INT_LIMITS[field.name]:
                return None
        elif not isinstance(value, str):
            return None
    return status


def current_status(root: Path) -> JobStatus | None:
    """:func:`read_status`, with a ``running`` job whose process is gone shown as failed."""
    status = read_status(root)
    if status is not None and status.state == RUNNING and not _alive(status.pid):
        return dataclasses.replace(
            status,
            state=FAILED,
            message="it stopped before finishing (killed or the machine restarted); "
            "the next run resumes it",
        )
    return status


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class _StatusWriter:
    """Writes the status file, at most every :data:`STATUS_INTERVAL` seconds while running."""

    def __init__(self, root: Path, status: JobStatus) -> None:
        self.path = root / STATUS_FILE
        self.status = status
        self.lock = threading.Lock()
        self.written = 0.0
        self.write(status)

    def write(self, status: JobStatus) -> None:
        with self.lock:
            self.status = status
            self.written = time.monotonic()
            # The unit status shows it: the credentials of the source URL are hidden, and the
            # message (often an error quoting a server) is shown as for_display shows it.
            shown = dataclasses.replace(
                status, source=redact_url(status.source), message=for_display(status.message)
            )
            _write_private(self.path, json.dumps(dataclasses.asdict(shown)), what="the status")

    def progress(self, report: Progress) -> None:
        with self.lock:
            if time.monotonic() - self.written < STATUS_INTERVAL and not report.finished:
                return
        self.write(
            dataclasses.replace(
                self.status, done_bytes=report.total_done, total_bytes=report.total_size
            )
        )


def _read_source(spec: JobSpec, mirror: Mirror, fetcher: Fetcher) -> StreamContents:
    """Read the job's source stream.

    An upstream source is read with :func:`~upgrader.upstream.read_upstream`, as the
    sync-binaries action reads it: when one conditional request finds the index unchanged,
    the verified metadata ``mirror`` kept from its last read is used; a full read is kept for
    the next run. The record holds the URL and trust settings it was read with, so it is
    never used for another source or policy; a damaged one means a full read.

    The leader's mirror (``internal``) is read in full every time, without the record: its
    unsigned metadata would never be kept, and would remove what this unit kept from upstream.

    Raises:
        StreamError: the source cannot be read or holds malformed metadata.
    """
    if spec.internal:
        # The leader's mirror publishes unsigned metadata of binaries it verified itself.
        trust = TrustPolicy(verify_signatures=False)
        return read_stream(spec.stream_url, spec.stream, fetcher, trust=trust)
    trust = TrustPolicy(keys=spec.signing_keys or None, verify_signatures=spec.verify_signatures)
    read = read_upstream(mirror, spec.stream_url, spec.stream, fetcher, trust=trust)
    logger.info("%s", for_display(read.note))
    return read.contents


def run(spec: JobSpec) -> JobStatus:
    """Run one sync as the job file says, keeping the status file current.

    Never raises for a failure it can describe: the returned (and written) status is
    ``failed`` with the message.
    """
    root = Path(spec.root)
    status = JobStatus(RUNNING, spec.describe(), spec.stream_url, _now(), pid=os.getpid())
    try:
        writer = _StatusWriter(root, status)
        with Fetcher(spec.fetch_settings()) as fetcher:
            message = _stage(spec, root, fetcher, writer)
        status = dataclasses.replace(writer.status, state=DONE, message=message)
    except UpgraderError as exc:
        status = dataclasses.replace(status, state=FAILED, message=str(exc))
    status = dataclasses.replace(status, finished=_now())
    with contextlib.suppress(MirrorError):  # storage gone: the exit status and journal tell
        _StatusWriter(root, status)
    return status


def _stage(spec: JobSpec, root: Path, fetcher: Fetcher, writer: _StatusWriter) -> str:
    mirror = Mirror(root)
    contents = _read_source(spec, mirror, fetcher)
    versions = spec.versions
    if spec.follow:
        available = contents.available(spec.os_name, spec.architectures)
        if not available:
            _refuse_to_empty(mirror, spec)
            return "the source lists no agents"
        versions = tuple(str(v) for v in sorted(available, reverse=True))
    staged = ""
    if versions:
        result = sync(
            mirror,
            contents,
            spec.request(versions),
            fetcher,
            parallel=spec.parallel,
            progress=writer.progress,
        )
        staged = ", ".join(str(b) for b in result.staged) or "nothing new"
    dropped = _drop_unlisted(mirror, spec, contents) if spec.follow else []
    message = f"staged {staged}" if staged else "the source lists no agents"
    if dropped:
        message += f"; removed {', '.join(dropped)}"
    return message


def _refuse_to_empty(mirror: Mirror, spec: JobSpec) -> None:
    """A source listing no agents of ours is never copied: it would delete this whole mirror.

    The leader's mirror is empty when a unit with new storage became leader, or for a moment
    while it is being rebuilt; the units that follow it keep what they serve.

    Raises:
        JobError: this unit serves binaries (the status then says why they are kept).
    """
    staged = sum(len(entries) for entries in mirror.staged_all().values())
    if staged:
        raise JobError(
            f"{spec.stream_url} lists no {spec.os_name} agents for "
            f"{', '.join(spec.architectures)}; this unit keeps the {staged} agent binaries "
            "it serves"
        )


def _drop_unlisted(mirror: Mirror, spec: JobSpec, contents: StreamContents) -> list[str]:
    """Unlist and delete what the source no longer has (a follower copies the leader)."""
    wanted = {_revision_key(e) for e in contents.entries}
    with mirror.lock("follow"):
        every_stream = mirror.staged_all()
        staged = every_stream.get(spec.stream, ())
        keep = [e for e in staged if _revision_key(e) in wanted]
        if len(keep) == len(staged):
            return []
        mirror.replace(spec.stream, keep)
        # One content is stored once for all streams: keep what another stream still lists.
        others = (e for s, entries in every_stream.items() if s != spec.stream for e in entries)
        kept_paths = {e.path for e in keep} | {e.path for e in others}
        dropped = [e for e in staged if e not in keep]
        for path in sorted({e.path for e in dropped} - kept_paths):
            try:
                (mirror.tools / path).unlink(missing_ok=True)
            except OSError as exc:
                raise MirrorError(f"cannot remove {mirror.tools / path}: {exc}") from exc
        return [str(e.binary) for e in dropped]


def _revision_key(entry: AgentEntry) -> str:
    """What makes two units' listings of a binary the same: binary, sha256 and size."""
    return f"{entry.binary} {entry.sha256} {entry.size}"


def mirror_revision(
    entries: Iterable[AgentEntry], os_name: str, architectures: Iterable[str]
) -> str:
    """A digest of the staged binaries of one OS and these architectures.

    Equal on units that serve the same binaries: file paths and dates are left out, as units
    may store shared content under other names.
    """
    arches = set(architectures)
    lines = sorted(_revision_key(e) for e in entries if e.os == os_name and e.arch in arches)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def auto_sync_job(
    config: CharmConfig,
    root: Path,
    entries: Iterable[AgentEntry],
    versions: Sequence[str],
    environ: Mapping[str, str],
) -> JobSpec | None:
    """The leader's auto-sync: stage what the route to the newest target needs, if anything.

    Args:
        config: the charm's options (source, trust, architectures, parallel downloads).
        root: the storage root.
        entries: what the mirror lists now.
        versions: what the route to the newest target needs staged (from the last read).
        environ: the hook's environment (Juju's proxy settings for charms).
    """
    staged = staged_versions(entries, config.agent_os, config.arch_list)
    missing = tuple(v for v in versions if parse(v) not in staged)
    if not missing:
        return None
    return _job(
        config,
        root,
        stream_url=config.stream_url,
        versions=missing,
        verify_signatures=config.verify_signatures,
        signing_keys=config.signing_keys,
        fetch=dataclasses.asdict(config.fetch_settings(environ)),
    )


def follow_job(
    config: CharmConfig, root: Path, entries: Iterable[AgentEntry], leader: LeaderMirror | None
) -> JobSpec | None:
    """Another unit's copy of the leader's mirror, when the leader serves something else.

    A leader that lists nothing is never copied: the copy would empty this unit's mirror.
    """
    if leader is None:
        return None
    arches = config.arch_list
    staged = list(entries)
    if leader.revision in (
        mirror_revision(staged, config.agent_os, arches),
        mirror_revision((), config.agent_os, arches),
    ):
        return None
    return _job(config, root, stream_url=leader.url, follow=True, internal=True)


def _job(config: CharmConfig, root: Path, **fields: Any) -> JobSpec:
    """A job staging into ``root`` what the options ask for (stream, OS, arches, parallel)."""
    return JobSpec(
        root=str(root),
        stream=config.stream,
        os_name=config.agent_os,
        architectures=config.arch_list,
        parallel=config.parallel_downloads,
        **fields,
    )


def render_unit(
    *, description: str, python: str, pythonpath: Sequence[str], spec_path: Path
) -> str:
    """The systemd service running the job once, in the background, at low priority.

    Raises:
        InvalidInputError: a path would need quoting in a unit file (spaces, quotes, ``%``).
    """
    for value in (python, *pythonpath, str(spec_path)):
        if not value.startswith("/") or _UNSAFE_EXEC.search(value):
            raise InvalidInputError(
                f"invalid path {value!r} for the sync job: use an absolute path without "
                "spaces, quotes, backslashes, '%', '$' or ';'"
            )
    if "\n" in description or "%" in description:
        raise InvalidInputError(f"invalid description {description!r}: one line without '%'")
    return f"""\
# Written by the upgrader charm: stages agent binaries outside Juju hooks.
[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
Environment=PYTHONPATH={":".join(pythonpath)}
ExecStart={python} -m upgrader.syncjob {spec_path}
Nice=10
IOSchedulingClass=idle
TimeoutStopSec=30
"""


class JobService:
    """The job's systemd service: install, start without waiting, stop, remove.

    charmlibs-systemd is imported only when a method runs. Methods raise :class:`JobError`.
    """

    def __init__(self, name: str, unit_dir: Path = SYSTEMD_DIR) -> None:
        """Manage ``<unit_dir>/<name>`` (a ``.service`` name)."""
        if not _UNIT_NAME.match(name):
            raise InvalidInputError(f"invalid unit name {name!r}: use letters, digits and '-'")
        self.name = name
        self.path = unit_dir / name

    def install(self, text: str) -> bool:
        """Write the unit file when it differs and reload systemd; returns whether it changed."""
        try:
            if self.path.exists() and self.path.read_text() == text:
                return False
            write_atomic(self.path, text.encode())
        except (OSError, MirrorError) as exc:
            raise JobError(f"cannot write {self.path}: {exc}") from None
        self._call("daemon_reload")
        return True

    def start(self) -> None:
        """Start the job and return at once; a job already running is left to finish."""
        self._call("service_start", "--no-block", self.name)

    def running(self) -> bool:
        """Whether the job runs now."""
        from charmlibs import systemd  # imported here: optional at import time

        return systemd.service_running(self.name)

    def stop(self) -> None:
        """Stop a running job (its partial downloads are resumed by the next run)."""
        if self.path.exists():
            self._call("service_stop", self.name)

    def remove(self) -> None:
        """Stop the job and delete its unit file."""
        if not self.path.exists():
            return
        self.stop()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise JobError(f"cannot remove {self.path}: {exc}") from None
        self._call("daemon_reload")

    def _call(self, function: str, *args: str) -> None:
        from charmlibs import systemd  # imported here: optional at import time

        try:
            getattr(systemd, function)(*args)
        except systemd.SystemdError as exc:
            raise JobError(f"systemctl failed for {self.name}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m upgrader.syncjob JOB_FILE``: run the job; exit 0 when it succeeded.

    What it does (such as how it read the stream) goes to stderr, which systemd journals.
    """
    logging.basicConfig(level=logging.INFO, format="upgrader sync job: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m upgrader.syncjob JOB_FILE", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        text = read_file(path, MAX_JOB_FILE_BYTES).decode("utf-8", errors="replace")
        spec = JobSpec.from_json(text, where=str(path))
    except (OSError, InvalidInputError, TooLargeError) as exc:
        print(for_display(f"upgrader sync job: cannot read {path}: {exc}"), file=sys.stderr)
        return 2
    status = run(spec)
    # The journal keeps this line: the credentials of the source URL are hidden.
    print(
        for_display(f"upgrader sync job: {status.describe()}; {status.message}"), file=sys.stderr
    )
    return 0 if status.state == DONE else 1


if __name__ == "__main__":  # pragma: no cover - run by systemd
    raise SystemExit(main())
