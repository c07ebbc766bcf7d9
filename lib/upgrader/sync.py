"""Staging agent binaries: plan what to fetch from a stream, download it verified, publish it.

:func:`sync` is the one engine the action, the CLI, the background job and the benchmark use;
:func:`plan_sync` says what it would do. ARCHITECTURE.md ("The staged mirror and staging")
gives the guarantees: a file is listed only once its size and sha256 matched, an interrupted
download resumes, and a killed sync leaves a valid mirror.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .errors import (
    InvalidInputError,
    SelectionError,
    StreamError,
    TransientError,
    UpgraderError,
)
from .fetch import Fetcher
from .mirror import (
    CHUNK_SIZE,
    Mirror,
    MirrorError,
    describe_os_error,
    format_bytes,
    fsync_directory,
    hash_file,
    storage_name,
)
from .streams import AgentEntry, StreamContents
from .versions import BinaryVersion, SeriesFilter, Version

PROGRESS_INTERVAL = 0.25
"""Seconds between two progress reports for one file while it downloads."""

WRITEBACK_STEP = 16 * 1024 * 1024
"""Bytes written between two hints to the kernel to start writing them to disk."""

MAX_PARALLEL = 16
_FILE_MODE = 0o644


class SyncError(UpgraderError):
    """Some files could not be staged; the rest were published.

    Attributes:
        failures: (file name, cause) for every file that failed.
        result: what was published despite the failures.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, str]], result: SyncResult):
        """Record the failures and the partial result."""
        super().__init__(message)
        self.failures = tuple(failures)
        self.result = result


def check_parallel(value: object, *, option: str = "parallel") -> int:
    """Accept a whole number of parallel downloads from 1 to :data:`MAX_PARALLEL`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        raise InvalidInputError(
            f"invalid {option} {value!r}: use a whole number from 1 to {MAX_PARALLEL}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class SyncRequest:
    """Which binaries to stage.

    Give exactly one of ``series`` and ``versions``.

    Attributes:
        series: every version of this major[.minor] (``parse_major_minor("2.03")``).
        versions: exactly these versions (e.g. the plan's target).
        os_names: agent OS names (``ubuntu``); the first names files shared by several.
        architectures: the architectures to stage.
    """

    series: SeriesFilter | None = None
    versions: tuple[Version, ...] = ()
    os_names: tuple[str, ...] = ("ubuntu",)
    architectures: tuple[str, ...] = ("amd64",)

    def __post_init__(self) -> None:
        """Check that the request says what to stage."""
        if (self.series is None) == (not self.versions):
            raise InvalidInputError(
                "give either a major[.minor] series or exact versions to sync, not both or none"
            )
        if not self.os_names or not self.architectures:
            raise InvalidInputError("give at least one agent OS and one architecture to sync")

    @functools.cached_property
    def _wanted(self) -> frozenset[Version]:
        return frozenset(self.versions)

    def matches(self, entry: AgentEntry) -> bool:
        """True for an entry of a wanted version, OS and architecture."""
        if entry.os not in self.os_names or entry.arch not in self.architectures:
            return False
        if self.series is not None:
            return self.series.matches(entry.version)
        return entry.version in self._wanted

    def describe(self) -> str:
        """``3.6 (ubuntu; amd64 arm64)`` for messages."""
        what = str(self.series) if self.series else ", ".join(str(v) for v in self.versions)
        return f"{what} ({' '.join(self.os_names)}; {' '.join(self.architectures)})"


@dataclasses.dataclass(frozen=True)
class FileJob:
    """One file to download: distinct content, possibly listed under several binaries.

    Attributes:
        name: the file name, for progress and messages.
        url: where to download it from.
        path: where it goes, relative to ``tools/``.
        size: the size the metadata lists.
        sha256: the sha256 the metadata lists.
        binaries: every binary version this file serves.
    """

    name: str
    url: str
    path: str
    size: int
    sha256: str
    binaries: tuple[BinaryVersion, ...]


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    """What a sync will do.

    Attributes:
        stream: the stream name.
        source: the stream's base URL.
        versions: the versions chosen, newest first.
        entries: every listing the sync publishes (paths relative to ``tools/``).
        present: binaries already staged with the same content (skipped).
        staged: binaries that will be newly listed.
        downloads: the files to fetch.
        missing: wanted binaries (version x OS x arch) the stream does not have.
    """

    stream: str
    source: str
    versions: tuple[Version, ...]
    entries: tuple[AgentEntry, ...]
    present: tuple[BinaryVersion, ...]
    staged: tuple[BinaryVersion, ...]
    downloads: tuple[FileJob, ...]
    missing: tuple[BinaryVersion, ...] = ()

    @property
    def download_bytes(self) -> int:
        """Total size of the files to fetch."""
        return sum(job.size for job in self.downloads)


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes:
        name: the file name.
        size: its size.
        done: bytes of it on disk (a resumed prefix included).
        rate: bytes per second transferred for it in this run.
        finished: the file is verified and in place.
        total_done: bytes done over all files of this sync.
        total_size: bytes of all files of this sync.
    """

    name: str
    size: int
    done: int
    rate: float
    finished: bool
    total_done: int
    total_size: int


ProgressCallback = Callable[[Progress], None]


@dataclasses.dataclass(frozen=True)
class FileOutcome:
    """How one file was staged.

    Attributes:
        name: the file name.
        size: its size.
        downloaded: bytes transferred in this run (0 when an in-place file was adopted).
        resumed_from: bytes of a partial download reused.
        seconds: time spent on it.
    """

    name: str
    size: int
    downloaded: int
    resumed_from: int
    seconds: float

    @property
    def rate(self) -> float:
        """Bytes per second transferred."""
        return self.downloaded / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """What a sync did (or, for a dry run, would do).

    Attributes:
        stream: the stream name.
        source: the stream's base URL.
        versions: the versions chosen, newest first.
        staged: binaries newly listed in the mirror (would be, for a dry run).
        present: binaries already staged and listed, skipped.
        bytes_downloaded: bytes transferred (for a dry run: bytes a real run would fetch).
        dry_run: nothing was changed.
        missing: wanted binaries the stream does not have.
        files: per-file outcomes.
        seconds: wall time.
    """

    stream: str
    source: str
    versions: tuple[Version, ...]
    staged: tuple[BinaryVersion, ...]
    present: tuple[BinaryVersion, ...]
    bytes_downloaded: int
    dry_run: bool = False
    missing: tuple[BinaryVersion, ...] = ()
    files: tuple[FileOutcome, ...] = ()
    seconds: float = 0.0


def sync_results(result: SyncResult, agent_metadata_url: str) -> dict[str, str]:
    """The ``sync-binaries`` action results; keys exactly as documented in the README."""
    return {
        "versions": ", ".join(str(v) for v in result.versions),
        "staged": ", ".join(str(b) for b in result.staged),
        "present": ", ".join(str(b) for b in result.present),
        "bytes-downloaded": str(result.bytes_downloaded),
        "agent-metadata-url": agent_metadata_url,
        "dry-run": "true" if result.dry_run else "false",
    }


# --- planning ------------------------------------------------------------------------------


def select_entries(contents: StreamContents, request: SyncRequest) -> list[AgentEntry]:
    """The stream's entries the request wants, newest first.

    Raises:
        SelectionError: nothing matches, or an exact version is not in the stream; the message
            names the request, the stream and the major.minor series it has.
    """
    chosen = [e for e in contents.entries if request.matches(e)]
    found = {e.version for e in chosen}
    absent = [v for v in request.versions if v not in found]
    if not chosen or absent:
        what = ", ".join(str(v) for v in absent) if absent else request.describe()
        series = sorted(
            {e.version.major_minor for e in contents.entries if e.os in request.os_names},
            reverse=True,
        )
        have = ", ".join(f"{major}.{minor}" for major, minor in series) or "none"
        raise SelectionError(
            f"no agent binaries for {what} in the {contents.stream} stream at "
            f"{contents.base_url} for {' '.join(request.os_names)} "
            f"({' '.join(request.architectures)}); major.minor series available: {have}"
        )
    return sorted(chosen, key=lambda e: (e.version, _os_rank(request, e.os), e.arch), reverse=True)


def _os_rank(request: SyncRequest, os_name: str) -> int:
    """Sort key placing the first requested OS last, so newest-first order lists it first."""
    return -request.os_names.index(os_name)


def plan_sync(
    contents: StreamContents,
    staged: Mapping[str, Sequence[AgentEntry]],
    request: SyncRequest,
    *,
    chosen: Sequence[AgentEntry] | None = None,
) -> SyncPlan:
    """Decide what to download and list, from the stream and what the mirror holds.

    Args:
        contents: the (verified) upstream stream.
        staged: every stream's staged entries (``Mirror.staged_all()``).
        request: what to stage.
        chosen: ``select_entries(contents, request)``, when the caller has it already.

    Raises:
        SelectionError: nothing in the stream matches the request.
        MirrorError: a wanted binary is staged with other content (``metadata mismatch``), or
            the stream lists one sha256 with two sizes.
    """
    if chosen is None:
        chosen = select_entries(contents, request)
    mine = {e.binary: e for e in staged.get(contents.stream, ())}
    by_sha: dict[str, str] = {}
    for entries in staged.values():
        for entry in entries:
            by_sha.setdefault(entry.sha256, entry.path)
    present: list[BinaryVersion] = []
    new: list[AgentEntry] = []
    jobs: dict[str, FileJob] = {}
    for entry in chosen:
        old = mine.get(entry.binary)
        if old is not None:
            _check_same(old, entry, contents)
            present.append(entry.binary)
            continue
        path = by_sha.get(entry.sha256)
        job = jobs.get(entry.sha256)
        if job is not None:
            if job.size != entry.size:
                raise MirrorError(
                    f"the {contents.stream} stream at {contents.base_url} lists sha256 "
                    f"{entry.sha256} with sizes {job.size} and {entry.size}"
                )
            jobs[entry.sha256] = dataclasses.replace(job, binaries=(*job.binaries, entry.binary))
            path = job.path
        elif path is None:
            path = storage_name(contents.stream, entry.binary)
            jobs[entry.sha256] = FileJob(
                name=path.rsplit("/", 1)[-1],
                url=contents.url_of(entry),
                path=path,
                size=entry.size,
                sha256=entry.sha256,
                binaries=(entry.binary,),
            )
        new.append(dataclasses.replace(entry, path=path, date=""))
    versions = sorted({e.version for e in chosen}, reverse=True)
    return SyncPlan(
        stream=contents.stream,
        source=contents.base_url,
        versions=tuple(versions),
        entries=tuple(new),
        present=tuple(present),
        staged=tuple(e.binary for e in new),
        downloads=tuple(jobs.values()),
        missing=_missing(chosen, request),
    )


def _check_same(old: AgentEntry, entry: AgentEntry, contents: StreamContents) -> None:
    if (old.sha256, old.size) != (entry.sha256, entry.size):
        raise MirrorError(
            f"metadata mismatch for {entry.binary}: the mirror holds sha256 {old.sha256} "
            f"({old.size} bytes) but the {contents.stream} stream at {contents.base_url} lists "
            f"{entry.sha256} ({entry.size} bytes); remove the staged copy (prune-binaries) "
            "before staging the new one"
        )


def _missing(chosen: Iterable[AgentEntry], request: SyncRequest) -> tuple[BinaryVersion, ...]:
    have = {e.binary for e in chosen}
    versions = sorted({b.number for b in have}, reverse=True)
    return tuple(
        BinaryVersion(v, os_name, arch)
        for v in versions
        for os_name in request.os_names
        for arch in request.architectures
        if BinaryVersion(v, os_name, arch) not in have
    )


# --- downloading ---------------------------------------------------------------------------


class _FileError(Exception):
    """A file cannot be staged in this run; ``retry`` when another attempt may work."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class _Reporter:
    """Aggregates progress over files and calls the callback (thread-safe)."""

    def __init__(self, callback: ProgressCallback | None, total_size: int) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self.total_size = total_size

    def report(self, job: FileJob, done: int, rate: float, *, finished: bool = False) -> None:
        with self._lock:
            self._done[job.sha256] = done
            total = sum(self._done.values())
        if self._callback is not None:
            self._callback(
                Progress(job.name, job.size, done, rate, finished, total, self.total_size)
            )


@dataclasses.dataclass
class _Transfer:
    """State of one file's download across attempts."""

    job: FileJob
    part: str
    downloaded: int = 0
    resumed_from: int = -1
    started: float = dataclasses.field(default_factory=time.monotonic)


def _hash_prefix(part: str, size: int) -> tuple[int, hashlib._Hash]:
    """The length and running hash of a partial download (0 and empty if unusable)."""
    digest = hashlib.sha256()
    try:
        length = os.stat(part).st_size
    except FileNotFoundError:
        return 0, digest
    if length > size:
        os.unlink(part)
        return 0, digest
    with open(part, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return length, digest


def _attempt(state: _Transfer, fetcher: Fetcher, reporter: _Reporter) -> None:
    """One attempt at completing ``state.part``; raises _FileError when it falls short."""
    job = state.job
    part = state.part
    offset, digest = _hash_prefix(part, job.size)
    if state.resumed_from < 0:
        state.resumed_from = offset
    if offset == job.size and job.size:  # complete already (interrupted before the rename)
        if digest.hexdigest() == job.sha256:
            return
        _discard(part)
        offset, digest = 0, hashlib.sha256()
    try:
        with fetcher.open_download(job.url, offset=offset) as download:
            if download.offset != offset:
                offset, digest = 0, hashlib.sha256()
            if download.length is not None and offset + download.length != job.size:
                _discard(part)
                raise _FileError(
                    f"the server announced {offset + download.length} bytes, the metadata "
                    f"lists {job.size}"
                )
            done = _receive(state, download.iter_chunks(CHUNK_SIZE), offset, digest, reporter)
    except TransientError as exc:  # broke off, or no answer: another attempt resumes it
        raise _FileError(str(exc), retry=True) from None
    except StreamError as exc:  # refused (4xx, TLS, a bad redirect): it would be refused again
        raise _FileError(str(exc)) from None
    if done < job.size:
        raise _FileError(f"the transfer ended after {done} of {job.size} bytes", retry=True)
    if digest.hexdigest() != job.sha256:
        _discard(part)
        raise _FileError(
            f"sha256 mismatch: got {digest.hexdigest()}, the metadata lists {job.sha256}",
            retry=offset > 0,  # a stale prefix may be to blame: start over once
        )


def _receive(
    state: _Transfer,
    chunks: Iterable[bytes],
    offset: int,
    digest: hashlib._Hash,
    reporter: _Reporter,
) -> int:
    """Append the body to the partial file while hashing; returns the bytes now held."""
    job = state.job
    part = state.part
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if offset else os.O_TRUNC)
    done = offset
    flushed = offset
    last = 0.0
    try:
        descriptor = os.open(part, flags, _FILE_MODE)
        try:
            for chunk in chunks:
                if done + len(chunk) > job.size:
                    raise _FileError(f"the server sent more than the {job.size} bytes listed")
                _write_all(descriptor, chunk)
                digest.update(chunk)
                done += len(chunk)
                state.downloaded += len(chunk)
                if done - flushed >= WRITEBACK_STEP:
                    _start_writeback(descriptor, flushed, done - flushed)
                    flushed = done
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    reporter.report(job, done, _rate(state))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except _FileError:
        _discard(part)
        raise
    except OSError as exc:
        _discard(part)
        raise _FileError(f"cannot write {part}: {describe_os_error(exc)}") from None
    return done


def _write_all(descriptor: int, data: bytes) -> None:
    """Write all of ``data`` (a regular file may take less than asked, e.g. at a size limit)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _start_writeback(descriptor: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a finished range to disk now, without waiting for it.

    The final fsync then waits for little, and dirty pages do not pile up in memory.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(descriptor, offset, length, os.POSIX_FADV_DONTNEED)


def _rate(state: _Transfer) -> float:
    elapsed = time.monotonic() - state.started
    return state.downloaded / elapsed if elapsed > 0 else 0.0


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _adopt(final: str, job: FileJob) -> bool:
    """True when ``final`` already holds the right content (left by an interrupted run)."""
    try:
        if os.stat(final).st_size != job.size:
            return False
        return hash_file(Path(final)) == (job.sha256, job.size)
    except OSError:
        return False


def _stage_file(
    job: FileJob,
    mirror: Mirror,
    fetcher: Fetcher,
    *,
    reporter: _Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FileOutcome:
    """Download one file into ``tools/<job.path>``, verified; resume and retry as needed.

    Raises:
        _FileError: the file could not be staged; nothing was put in ``tools/``.
    """
    reporter = reporter or _Reporter(None, job.size)
    final = mirror.tools / job.path
    state = _Transfer(job, os.fspath(mirror.partial_path(job.sha256)))
    reporter.report(job, 0, 0.0)
    if _adopt(os.fspath(final), job):
        reporter.report(job, job.size, 0.0, finished=True)
        return FileOutcome(job.name, job.size, 0, 0, time.monotonic() - state.started)
    try:
        mirror.partial_dir.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _FileError(f"cannot create directories: {describe_os_error(exc)}") from None
    settings = fetcher.settings
    for number in range(1, settings.retries + 1):
        try:
            _attempt(state, fetcher, reporter)
            break
        except _FileError as failure:
            if not failure.retry or number == settings.retries:
                kept = os.path.exists(state.part)
                note = (
                    "; the partial download is kept and the next sync resumes it" if kept else ""
                )
                tries = f" (after {number} attempts)" if number > 1 else ""
                raise _FileError(f"{failure}{tries}{note}") from None
            sleep(settings.backoff_delay(number))
    _install(state.part, os.fspath(final))
    seconds = time.monotonic() - state.started
    reporter.report(job, job.size, _rate(state), finished=True)
    return FileOutcome(job.name, job.size, state.downloaded, max(state.resumed_from, 0), seconds)


def _install(part: str, final: str) -> None:
    try:
        os.replace(part, final)
        fsync_directory(Path(final).parent)
    except OSError as exc:
        raise _FileError(f"cannot move it into place: {describe_os_error(exc)}") from None


def _download_all(
    jobs: Sequence[FileJob],
    mirror: Mirror,
    fetcher: Fetcher,
    *,
    parallel: int = 4,
    progress: ProgressCallback | None = None,
) -> tuple[list[tuple[FileJob, FileOutcome]], list[tuple[FileJob, str]]]:
    """Stage every job with up to ``parallel`` threads; one failure does not stop the others.

    Returns:
        (job, outcome) for the files now in place, and (job, cause) for the others.
    """
    check_parallel(parallel)
    reporter = _Reporter(progress, sum(job.size for job in jobs))
    done: list[tuple[FileJob, FileOutcome]] = []
    failed: list[tuple[FileJob, str]] = []
    if not jobs:
        return done, failed
    workers = min(parallel, len(jobs))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
        futures = {
            pool.submit(_stage_file, job, mirror, fetcher, reporter=reporter): job for job in jobs
        }
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                done.append((job, future.result()))
            except _FileError as exc:
                failed.append((job, str(exc)))
    order = {job.sha256: n for n, job in enumerate(jobs)}
    done.sort(key=lambda pair: order[pair[0].sha256])
    failed.sort(key=lambda pair: order[pair[0].sha256])
    return done, failed


# --- the whole sync ------------------------------------------------------------------------


def sync(
    mirror: Mirror,
    contents: StreamContents,
    request: SyncRequest,
    fetcher: Fetcher,
    *,
    parallel: int = 4,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> SyncResult:
    """Stage the binaries the request selects from ``contents`` into ``mirror``.

    Args:
        mirror: the staged mirror.
        contents: the upstream stream (read, and verified where signed, by the caller).
        request: which versions, OS names and architectures.
        fetcher: downloads the tarballs (its retries and timeouts apply).
        parallel: downloads at once, 1 to 16.
        dry_run: only plan; nothing is downloaded or written and no lock is taken.
        progress: called from worker threads with :class:`Progress` reports.

    Returns:
        What was staged.

    Raises:
        InvalidInputError: ``parallel`` out of range.
        SelectionError: nothing in the stream matches the request.
        MirrorBusyError: another sync or prune is running.
        InsufficientSpaceError: the storage is too small (both numbers given).
        MirrorError: the staged metadata is unreadable or cannot be written.
        SyncError: some files failed (named with their causes); the rest were published.
    """
    check_parallel(parallel)
    started = time.monotonic()
    chosen = select_entries(contents, request)  # refuses an impossible request before locking
    if dry_run:
        plan = plan_sync(contents, mirror.staged_all(), request, chosen=chosen)
        return _result(plan, plan.download_bytes, (), started, dry_run=True)
    with mirror.lock("sync"):
        plan = plan_sync(contents, _intact_entries(mirror), request, chosen=chosen)
        mirror.check_free_space(_still_needed(plan, mirror), what=_what(plan))
        done, failed = _download_all(
            plan.downloads, mirror, fetcher, parallel=parallel, progress=progress
        )
        verified = {b for job, _ in done for b in job.binaries}
        pending = {b for job, _ in failed for b in job.binaries}
        publish = [e for e in plan.entries if e.binary not in pending]
        if publish:
            mirror.add(plan.stream, publish)
        outcomes = tuple(outcome for _, outcome in done)
        published = dataclasses.replace(
            plan,
            entries=tuple(publish),
            staged=tuple(b for b in plan.staged if b not in pending),
        )
        result = _result(published, sum(o.downloaded for o in outcomes), outcomes, started)
        if failed:
            raise SyncError(
                _failure_message(failed, len(verified), plan),
                [(job.name, cause) for job, cause in failed],
                result,
            )
        return result


def _intact_entries(mirror: Mirror) -> dict[str, tuple[AgentEntry, ...]]:
    """The staged entries whose file is in place with the listed size (a cheap ``stat``).

    A listed file that went missing or changed size is left out, so a sync fetches it again;
    its sha256 was checked when it was written (:meth:`Mirror.verify` re-hashes everything).
    """
    sizes: dict[str, int | None] = {}
    intact: dict[str, tuple[AgentEntry, ...]] = {}
    for stream, entries in mirror.staged_all().items():
        for entry in entries:
            if entry.path not in sizes:
                try:
                    sizes[entry.path] = mirror.path_of(entry).stat().st_size
                except OSError:
                    sizes[entry.path] = None
        intact[stream] = tuple(e for e in entries if sizes[e.path] == e.size)
    return intact


def _still_needed(plan: SyncPlan, mirror: Mirror) -> int:
    """Bytes the downloads still need on disk: partial files already hold part of them."""
    needed = 0
    for job in plan.downloads:
        try:
            held = min(os.stat(mirror.partial_path(job.sha256)).st_size, job.size)
        except OSError:
            held = 0
        needed += job.size - held
    return needed


def _what(plan: SyncPlan) -> str:
    count = len(plan.downloads)
    noun = "agent binary" if count == 1 else "agent binaries"
    return f"{count} {noun} ({format_bytes(plan.download_bytes)})"


def _result(
    plan: SyncPlan,
    bytes_downloaded: int,
    files: tuple[FileOutcome, ...],
    started: float,
    *,
    dry_run: bool = False,
) -> SyncResult:
    return SyncResult(
        stream=plan.stream,
        source=plan.source,
        versions=plan.versions,
        staged=plan.staged,
        present=plan.present,
        bytes_downloaded=bytes_downloaded,
        dry_run=dry_run,
        missing=plan.missing,
        files=files,
        seconds=time.monotonic() - started,
    )


def _failure_message(failed: Sequence[tuple[FileJob, str]], succeeded: int, plan: SyncPlan) -> str:
    total = len(plan.downloads)
    files = "file" if total == 1 else "files"
    head = f"could not stage {len(failed)} of {total} {files} from {plan.source}"
    causes = "; ".join(f"{job.name} ({job.url}): {cause}" for job, cause in failed)
    tail = (
        "the mirror lists only verified binaries"
        + (f" ({succeeded} newly staged)" if succeeded else "")
        + "; run the sync again to retry"
    )
    return f"{head}: {causes}; {tail}"
