"""The staged mirror: agent tarballs in storage and the simplestreams metadata listing them.

The layout is the one ``juju sync-agent-binary --local-dir`` writes (ARCHITECTURE.md, "The
staged mirror and staging"); :class:`Mirror` merges, prunes and locks it, and publishes its
metadata atomically, products before index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import email.utils
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .bounds import MAX_DOCUMENT_BYTES, MalformedJSONError, TooLargeError, load_json, read_file
from .errors import InvalidInputError, NotFoundError, StreamError, UpgraderError
from .files import fsync_directory, replace_file
from .streams import (
    DATATYPE,
    INDEX_FORMAT,
    PRODUCTS_FORMAT,
    AgentEntry,
    content_id,
    parse_index,
    parse_products,
    product_id,
)
from .versions import BinaryVersion, Version

MIB = 1024 * 1024
CHUNK_SIZE = MIB
"""Read/write size for tarballs: large enough to be fast, small enough for constant memory."""

TOOLS_DIR = "tools"
METADATA_DIR = "streams/v1"
INDEX2 = f"{METADATA_DIR}/index2.json"
INDEX = f"{METADATA_DIR}/index.json"
PARTIAL_DIR = ".partial"
UPSTREAM_DIR = ".upstream"
"""Holds the last upstream metadata read for each stream (:mod:`upgrader.upstream`); private."""
LOCK_FILE = ".upgrader.lock"
RELEASED = "released"
METADATA_RESERVE = MIB
"""Free space kept back for rewriting the metadata files, on top of the tarballs' sizes."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
_CONTENT_ID = re.compile(r"com\.ubuntu\.juju:([a-z0-9][a-z0-9.-]*):agents\Z")
_FILE_MODE = 0o644  # served by a web server running as another user


class MirrorError(UpgraderError):
    """The staged mirror cannot be read or written."""


class MirrorBusyError(MirrorError):
    """Another sync or prune holds the mirror's lock."""


class InsufficientSpaceError(MirrorError):
    """The storage filesystem has less free space than a sync needs."""


def storage_name(stream: str, binary: BinaryVersion) -> str:
    """The path of a tarball relative to ``tools/``: ``released/juju-3.6.12-ubuntu-amd64.tgz``.

    Raises:
        MirrorError: the stream, OS or architecture would not make a plain file name (they
            come from upstream metadata, so a hostile ``arch`` such as ``../x`` is refused).
    """
    for what, value in (("stream", stream), ("OS", binary.release), ("architecture", binary.arch)):
        if not _NAME.match(value):
            raise MirrorError(
                f"refusing to stage {binary}: its {what} {value!r} is not a plain name "
                "(letters, digits, '.', '_', '+', '-'; not starting with '.')"
            )
    return f"{stream}/juju-{binary}.tgz"


def products_path(stream: str) -> str:
    """The products file of a stream, relative to ``tools/``."""
    return f"{METADATA_DIR}/com.ubuntu.juju-{stream}-agents.json"


def format_updated(when: datetime.datetime) -> str:
    """RFC 1123 with a numeric zone (Go's RFC1123Z): ``Wed, 05 Nov 2025 12:00:00 +0000``."""
    return email.utils.format_datetime(when.astimezone(datetime.timezone.utc))


def agent_metadata_url(address: str, port: int) -> str:
    """The ``agent-metadata-url`` of a mirror served from the storage root at address:port.

    IPv6 addresses are bracketed: ``http://[fd00::1]:8080/tools``.
    """
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"http://{host}:{port}/{TOOLS_DIR}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _sorted_entries(entries: Iterable[AgentEntry]) -> list[AgentEntry]:
    """Newest version first, then OS and architecture."""
    return sorted(entries, key=lambda e: (e.version, e.os, e.arch), reverse=True)


def render_products(
    stream: str, entries: Iterable[AgentEntry], updated: datetime.datetime
) -> bytes:
    """The products document of one stream, as Juju's own writer lays it out.

    Top-level keys products, updated, format, content_id; per product (``com.ubuntu.juju:
    <os>:<arch>``) ``version`` (its newest version), ``arch`` and ``versions`` with a single
    date key (``updated``'s UTC date); every item keyed ``<version>-<os>-<arch>`` with release,
    version, arch, size, path, ftype and sha256. Maps are sorted by key and indented by four
    spaces, as Go's ``json.MarshalIndent`` prints them.
    """
    date_key = updated.astimezone(datetime.timezone.utc).strftime("%Y%m%d")
    by_product: dict[str, list[AgentEntry]] = {}
    for entry in _sorted_entries(entries):
        by_product.setdefault(product_id(entry.os, entry.arch), []).append(entry)
    products: dict[str, Any] = {}
    for pid in sorted(by_product):
        items = {
            str(e.binary): {
                "release": e.os,
                "version": str(e.version),
                "arch": e.arch,
                "size": e.size,
                "path": e.path,
                "ftype": "tar.gz",
                "sha256": e.sha256,
            }
            for e in by_product[pid]
        }
        newest = by_product[pid][0]
        products[pid] = {
            "version": str(newest.version),
            "arch": newest.arch,
            "versions": {date_key: {"items": dict(sorted(items.items()))}},
        }
    doc = {
        "products": products,
        "updated": format_updated(updated),
        "format": PRODUCTS_FORMAT,
        "content_id": content_id(stream),
    }
    return json.dumps(doc, indent=4).encode()


def render_index(streams: Mapping[str, Iterable[AgentEntry]], updated: datetime.datetime) -> bytes:
    """An index document with one ``com.ubuntu.juju:<stream>:agents`` entry per stream."""
    stamp = format_updated(updated)
    index: dict[str, Any] = {}
    for stream in sorted(streams, key=content_id):
        index[content_id(stream)] = {
            "updated": stamp,
            "format": PRODUCTS_FORMAT,
            "datatype": DATATYPE,
            "path": products_path(stream),
            "products": sorted({product_id(e.os, e.arch) for e in streams[stream]}),
        }
    doc = {"index": index, "updated": stamp, "format": INDEX_FORMAT}
    return json.dumps(doc, indent=4).encode()


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = _FILE_MODE,
    what: str = "",
    unchanged: str = "the published metadata is unchanged",
    parents: bool = True,
) -> None:
    """Replace ``path`` with ``data`` (:func:`upgrader.files.replace_file`), or MirrorError.

    Args:
        path: the file to replace.
        data: its new content.
        mode: the new file's permission bits (default: readable by all, for the web server).
        what: what the file is, for the error message (e.g. "the sync job").
        unchanged: what the error message says stays as it was.
        parents: create missing parent directories (off where a missing one is an error,
            such as an unmounted storage root).

    Raises:
        MirrorError: the file cannot be written (disk full, permissions); ``path`` is unchanged.
    """
    try:
        replace_file(path, data, mode=mode, parents=parents)
    except OSError as exc:
        name = f"{what} {path}" if what else str(path)
        raise MirrorError(f"cannot write {name}: {describe_os_error(exc)}; {unchanged}") from exc


def _size_or_zero(path: Path) -> int:
    """A file's size, or 0 when it is already gone."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def describe_os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``, for messages."""
    code = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{text} ({code})" if code else text


def hash_file(path: Path, *, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """The sha256 hex digest and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _entry_key(entry: AgentEntry) -> tuple[BinaryVersion, str, int, str]:
    """What makes two listings the same: binary, path, size and sha256 (not the date)."""
    return (entry.binary, entry.path, entry.size, entry.sha256)


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What :meth:`Mirror.prune` did.

    Attributes:
        removed: versions no longer listed, newest first.
        kept: versions still listed, newest first.
        files_removed: tarball paths (relative to ``tools/``) deleted.
        bytes_freed: bytes freed, stale partial downloads included.
    """

    removed: tuple[Version, ...]
    kept: tuple[Version, ...]
    files_removed: tuple[str, ...] = ()
    bytes_freed: int = 0


class Mirror:
    """The staged mirror under one storage root (see the module docstring for the layout).

    Reading needs no lock. Writers (sync, prune) hold :meth:`lock` around their whole run.
    """

    def __init__(self, root: Path | str) -> None:
        """Use the mirror under ``root`` (the storage mount point); nothing is created yet."""
        self.root = Path(root)
        self.tools = self.root / TOOLS_DIR
        self.partial_dir = self.root / PARTIAL_DIR

    def __repr__(self) -> str:
        """``Mirror('/srv/binaries')``."""
        return f"Mirror({str(self.root)!r})"

    # --- reading -------------------------------------------------------------------------

    def _read_json_file(self, relative: str) -> bytes | None:
        path = self.tools / relative
        try:
            return read_file(path, MAX_DOCUMENT_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MirrorError(f"cannot read {path}: {describe_os_error(exc)}") from exc
        except TooLargeError as exc:
            raise MirrorError(f"staged metadata {path}: {exc} for a metadata document") from None

    def streams(self) -> tuple[str, ...]:
        """The streams listed in ``index2.json``, sorted; empty for a new mirror.

        Raises:
            MirrorError: the index is unreadable or malformed.
        """
        body = self._read_json_file(INDEX2)
        if body is None:
            return ()
        where = str(self.tools / INDEX2)
        try:
            doc = load_json(body)
        except MalformedJSONError as exc:
            raise MirrorError(f"staged metadata {where} is {exc}") from None
        index = doc.get("index") if isinstance(doc, dict) else None
        if not isinstance(index, dict):
            raise MirrorError(f"staged metadata {where} has no 'index' object")
        found = (_CONTENT_ID.match(key) for key in index if isinstance(key, str))
        return tuple(sorted(match.group(1) for match in found if match))

    def staged(self, stream: str) -> tuple[AgentEntry, ...]:
        """Every tarball the stream's metadata lists (paths relative to ``tools/``), newest first.

        Raises:
            MirrorError: the metadata is unreadable or malformed.
        """
        index_body = self._read_json_file(INDEX2)
        if index_body is None:
            return ()
        try:
            relative = parse_index(index_body, str(self.tools / INDEX2), stream)
        except NotFoundError:
            return ()
        except StreamError as exc:
            raise MirrorError(f"staged metadata is malformed: {exc}") from None
        body = self._read_json_file(relative)
        if body is None:
            raise MirrorError(
                f"staged metadata is inconsistent: {self.tools / INDEX2} names "
                f"{relative}, which does not exist"
            )
        try:
            return tuple(parse_products(body, str(self.tools / relative), stream))
        except StreamError as exc:
            raise MirrorError(f"staged metadata is malformed: {exc}") from None

    def staged_all(self) -> dict[str, tuple[AgentEntry, ...]]:
        """Every stream's staged entries."""
        return {stream: self.staged(stream) for stream in self.streams()}

    def path_of(self, entry: AgentEntry) -> Path:
        """The file of a staged entry."""
        return self.tools / entry.path

    def partial_path(self, sha256: str) -> Path:
        """Where a download of this content is kept while in progress."""
        return self.partial_dir / f"{sha256}.part"

    def upstream_record(self, stream: str) -> Path:
        """Where the last upstream metadata read for ``stream`` is kept (not served)."""
        return self.root / UPSTREAM_DIR / f"{stream}.json"

    def verify(self, *, full: bool = True) -> list[str]:
        """Check every listed tarball: it exists, has the listed size and (``full``) sha256.

        Returns:
            One line per problem; empty when the mirror is valid.
        """
        problems: list[str] = []
        checked: dict[str, tuple[str, int] | str] = {}
        for stream, entries in self.staged_all().items():
            for entry in entries:
                if entry.path not in checked:
                    checked[entry.path] = self._inspect(entry, full)
                found = checked[entry.path]
                if isinstance(found, str):
                    problems.append(f"{stream} {entry.binary}: {found}")
                    continue
                sha256, size = found
                if size != entry.size:
                    problems.append(
                        f"{stream} {entry.binary}: {entry.path} holds {size} bytes, "
                        f"the metadata lists {entry.size}"
                    )
                elif full and sha256 != entry.sha256:
                    problems.append(
                        f"{stream} {entry.binary}: {entry.path} has sha256 {sha256}, "
                        f"the metadata lists {entry.sha256}"
                    )
        return problems

    def _inspect(self, entry: AgentEntry, full: bool) -> tuple[str, int] | str:
        path = self.path_of(entry)
        try:
            return hash_file(path) if full else ("", path.stat().st_size)
        except FileNotFoundError:
            return f"{entry.path} is missing"
        except OSError as exc:
            return f"{entry.path} cannot be read: {describe_os_error(exc)}"

    # --- writing -------------------------------------------------------------------------

    def add(
        self,
        stream: str,
        entries: Iterable[AgentEntry],
        *,
        updated: datetime.datetime | None = None,
    ) -> bool:
        """Merge entries into the stream's staged set and publish it.

        Their files must already be in place (``tools/<entry.path>``) and verified.

        Returns:
            True when the metadata changed.

        Raises:
            MirrorError: an entry conflicts with a staged one (same binary, other content), a
                file is missing or has another size, or the metadata cannot be written.
        """
        current = {e.binary: e for e in self.staged(stream)}
        for entry in entries:
            old = current.get(entry.binary)
            if old is not None and (old.sha256, old.size) != (entry.sha256, entry.size):
                raise MirrorError(
                    f"metadata mismatch for {entry.binary} in stream {stream}: staged with "
                    f"sha256 {old.sha256} ({old.size} bytes), new listing has {entry.sha256} "
                    f"({entry.size} bytes)"
                )
            current[entry.binary] = entry
        return self.replace(stream, current.values(), updated=updated)

    def replace(
        self,
        stream: str,
        entries: Iterable[AgentEntry],
        *,
        updated: datetime.datetime | None = None,
    ) -> bool:
        """Publish exactly these entries for the stream (none: drop the stream).

        Files are written products first, then ``index2.json``, then ``index.json``; a file
        whose content would not change (``updated`` aside) is left alone, so an unchanged
        sync leaves the metadata byte for byte as it was.

        Returns:
            True when any metadata file changed.

        Raises:
            MirrorError: as for :meth:`add`.
        """
        wanted = _sorted_entries(entries)
        self._check_files(wanted)
        when = updated or _now()
        all_streams: dict[str, Sequence[AgentEntry]] = dict(self.staged_all())
        changed = False
        old = {_entry_key(e) for e in all_streams.get(stream, ())}
        if old != {_entry_key(e) for e in wanted}:
            if wanted:
                write_atomic(
                    self.tools / products_path(stream), render_products(stream, wanted, when)
                )
            changed = True
        if wanted:
            all_streams[stream] = wanted
        else:
            all_streams.pop(stream, None)
        changed |= self._write_index(INDEX2, all_streams, when)
        released = {s: e for s, e in all_streams.items() if s == RELEASED}
        changed |= self._write_index(INDEX, released, when)
        if not wanted:
            self._remove_file(self.tools / products_path(stream))
        return changed

    def _check_files(self, entries: Sequence[AgentEntry]) -> None:
        for entry in entries:
            path = self.path_of(entry)
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise MirrorError(
                    f"cannot publish {entry.binary}: {path}: {describe_os_error(exc)}"
                ) from exc
            if size != entry.size:
                raise MirrorError(
                    f"cannot publish {entry.binary}: {path} holds {size} bytes, "
                    f"expected {entry.size}"
                )

    def _write_index(
        self, relative: str, streams: Mapping[str, Sequence[AgentEntry]], when: datetime.datetime
    ) -> bool:
        path = self.tools / relative
        if not streams:
            return self._remove_file(path)
        body = render_index(streams, when)
        old = self._read_json_file(relative)
        if old is not None and _without_updated(old) == _without_updated(body):
            return False
        write_atomic(path, body)
        return True

    def _remove_file(self, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise MirrorError(f"cannot remove {path}: {describe_os_error(exc)}") from exc
        fsync_directory(path.parent)
        return True

    # --- pruning -------------------------------------------------------------------------

    def prune(
        self,
        keep: int,
        *,
        protected: Iterable[Version] = (),
        updated: datetime.datetime | None = None,
    ) -> PruneResult:
        """Keep the newest ``keep`` versions of each major.minor in every stream; drop the rest.

        Protected versions (the controller's current version) are never removed and do not
        count towards ``keep``. The metadata is rewritten first; then tarballs no stream lists
        any more, stray tarballs left by an interrupted sync, and partial downloads are deleted.
        Call it with :meth:`lock` held.

        Raises:
            InvalidInputError: ``keep`` is not a whole number >= 1.
            MirrorError: the metadata cannot be read or written.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidInputError(
                f"invalid keep {keep!r}: give the number of versions to keep per major.minor, "
                "a whole number >= 1"
            )
        shielded = set(protected)
        removed: set[Version] = set()
        kept: set[Version] = set()
        for stream, entries in self.staged_all().items():
            dropped = _versions_to_drop({e.version for e in entries}, keep, shielded)
            removed |= dropped
            remaining = [e for e in entries if e.version not in dropped]
            kept |= {e.version for e in remaining}
            if dropped:
                self.replace(stream, remaining, updated=updated)
        files, freed = self._remove_unlisted()
        return PruneResult(
            removed=tuple(sorted(removed - kept, reverse=True)),
            kept=tuple(sorted(kept, reverse=True)),
            files_removed=tuple(files),
            bytes_freed=freed,
        )

    def _remove_unlisted(self) -> tuple[list[str], int]:
        """Delete tarballs no stream lists and every partial download."""
        listed = {e.path for entries in self.staged_all().values() for e in entries}
        files: list[str] = []
        freed = 0
        candidates = [p for p in self.tools.glob("*/*.tgz") if p.parent.name != "streams"]
        for path in sorted(candidates):
            relative = path.relative_to(self.tools).as_posix()
            if relative in listed:
                continue
            freed += _size_or_zero(path)
            self._remove_file(path)
            files.append(relative)
        for path in sorted(self.partial_dir.glob("*.part")):
            freed += _size_or_zero(path)
            self._remove_file(path)
        return files, freed

    # --- locking and space ---------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, operation: str = "sync") -> Iterator[None]:
        """Hold the mirror's lock (``fcntl.flock`` on ``<root>/.upgrader.lock``) for a writer.

        Raises:
            MirrorBusyError: another sync or prune holds it (in this or another process).
            MirrorError: the storage root does not exist or is not writable.
        """
        path = self.root / LOCK_FILE
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise MirrorError(f"cannot use storage {self.root}: {describe_os_error(exc)}") from exc
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
                raise MirrorBusyError(
                    f"another sync or prune is already running on {self.root}"
                    f"{f' ({holder})' if holder else ''}; wait for it to finish, then run again"
                ) from None
            stamp = _now().strftime("%Y-%m-%d %H:%M:%S UTC")
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{operation}, pid {os.getpid()}, since {stamp}".encode(), 0)
            yield
        finally:
            os.close(descriptor)

    def free_bytes(self) -> int:
        """Free space on the storage filesystem, for an unprivileged writer."""
        return shutil.disk_usage(self.root).free

    def check_free_space(self, needed: int, *, what: str = "the download") -> None:
        """Refuse when the filesystem has less than ``needed`` plus the metadata reserve.

        Raises:
            InsufficientSpaceError: giving both numbers.
        """
        free = self.free_bytes()
        wanted = needed + METADATA_RESERVE
        if free < wanted:
            raise InsufficientSpaceError(
                f"not enough free space on {self.root} for {what}: need {wanted} bytes "
                f"({format_bytes(wanted)}, metadata included), {free} bytes "
                f"({format_bytes(free)}) available"
            )


def _versions_to_drop(versions: set[Version], keep: int, protected: set[Version]) -> set[Version]:
    """Versions beyond the newest ``keep`` of their major.minor, protected ones excepted."""
    by_series: dict[tuple[int, int], list[Version]] = {}
    for version in versions - protected:
        by_series.setdefault(version.major_minor, []).append(version)
    drop: set[Version] = set()
    for series in by_series.values():
        drop.update(sorted(series, reverse=True)[keep:])
    return drop


def _without_updated(body: bytes) -> Any:
    """A metadata document with its ``updated`` stamps removed, for comparison."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "updated"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    try:
        return strip(load_json(body))  # the depth is bounded: strip's recursion is too
    except MalformedJSONError:
        return None


def format_bytes(size: float) -> str:
    """``1.5 GiB``, ``40.0 MiB``, ``512 bytes``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} bytes"
