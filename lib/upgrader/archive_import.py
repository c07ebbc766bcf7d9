"""Importing an agent-binary archive into the staged mirror (the air-gapped path).

The archive is checked in full first (:mod:`upgrader.archive`); the listed tarballs are then
extracted under names of our own into a temporary directory on the mirror's filesystem, each
hashed as it streams, and only when every check passed is anything merged into the mirror. A
refused archive leaves the mirror exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from .archive import (
    DEFAULT_LIMITS,
    ArchiveContents,
    ArchiveError,
    ArchiveTotalError,
    Limits,
    check_contents,
    newest_first,
    scan_archive,
    walk_files,
)
from .bounds import TooLargeError, read_file
from .mirror import (
    InsufficientSpaceError,
    Mirror,
    MirrorError,
    describe_os_error,
    fsync_directory,
    hash_file,
    storage_name,
    write_atomic,
)
from .streams import AgentEntry
from .versions import BinaryVersion


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What an import did.

    Attributes:
        source: the archive's name.
        imported: binaries newly listed in the mirror, newest first.
        present: binaries the mirror already listed with the same content, newest first.
        skipped: archive members that are not metadata and that the metadata does not list.
        streams: the streams the archive's metadata lists.
        signed: True when the archive's metadata was signed and verified.
        empty: True when the archive was an empty file (Juju's placeholder resource).
        bytes_written: bytes of tarballs written into the mirror.
        sha256: the archive's sha256, when :func:`import_resource` computed it.
        already_imported: True when :func:`import_resource` skipped an archive it had
            imported before.
    """

    source: str
    imported: tuple[BinaryVersion, ...] = ()
    present: tuple[BinaryVersion, ...] = ()
    skipped: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    signed: bool = False
    empty: bool = False
    bytes_written: int = 0
    sha256: str = ""
    already_imported: bool = False

    def summary(self) -> str:
        """One line for a log or a status message."""
        if self.empty:
            return f"no binaries in {self.source} (it is empty)"
        if self.already_imported:
            return f"{self.source} (sha256 {self.sha256[:12]}) was already imported"
        parts = [f"imported {len(self.imported)} agent binaries from {self.source}"]
        if self.present:
            parts.append(f"{len(self.present)} already present")
        if self.skipped:
            parts.append(f"{len(self.skipped)} unlisted files skipped")
        return ", ".join(parts)

    def results(self) -> dict[str, str]:
        """The ``import-binaries`` results.

        Keys: imported, present, skipped, streams, signed, bytes-written, summary, and sha256
        when the archive's digest was computed.
        """
        return {
            "imported": ", ".join(str(b) for b in self.imported),
            "present": ", ".join(str(b) for b in self.present),
            "skipped": ", ".join(self.skipped),
            "streams": ", ".join(self.streams),
            "signed": "true" if self.signed else "false",
            "bytes-written": str(self.bytes_written),
            "summary": self.summary(),
            **({"sha256": self.sha256} if self.sha256 else {}),
        }


@dataclasses.dataclass
class _Content:
    """One distinct file (by sha256) to bring into the mirror, and what lists it."""

    member: str
    sha256: str
    size: int
    listings: list[tuple[str, AgentEntry]]
    target: str = ""
    staged_path: Path | None = None


def _plan(
    contents: ArchiveContents, staged: Mapping[str, Sequence[AgentEntry]]
) -> tuple[list[_Content], list[BinaryVersion]]:
    """Which archive files the mirror lacks, and which binaries it already has.

    As in a sync, one content is stored once: a file the mirror already holds under any
    stream is reused, otherwise it is named after its first listing (ubuntu preferred).

    Raises:
        ArchiveError: a binary the mirror lists with other content.
    """
    by_sha: dict[str, str] = {}
    listed: dict[str, str] = {}
    for entries in staged.values():
        for entry in entries:
            by_sha.setdefault(entry.sha256, entry.path)
            listed[entry.path] = entry.sha256
    new: dict[str, _Content] = {}
    present: list[BinaryVersion] = []
    for stream, entries in sorted(contents.streams.items()):
        current = {e.binary: e for e in staged.get(stream, ())}
        for entry in entries:
            old = current.get(entry.binary)
            if old is None:
                content = new.setdefault(
                    entry.sha256,
                    _Content(contents.member_of(entry), entry.sha256, entry.size, []),
                )
                content.listings.append((stream, entry))
            elif (old.sha256, old.size) == (entry.sha256, entry.size):
                present.append(entry.binary)
            else:
                raise ArchiveError(
                    f"{contents.source}: {entry.binary} (stream {stream}) has sha256 "
                    f"{entry.sha256} ({entry.size} bytes), but the mirror already has it "
                    f"with sha256 {old.sha256} ({old.size} bytes); refusing the whole "
                    "archive (prune the staged version first to replace it)"
                )
    for content in new.values():
        stream, first = min(
            content.listings, key=lambda s_e: (s_e[1].os != "ubuntu", s_e[0], str(s_e[1].binary))
        )
        content.target = by_sha.get(content.sha256) or storage_name(stream, first.binary)
        if listed.get(content.target, content.sha256) != content.sha256:
            raise ArchiveError(
                f"{contents.source}: {first.binary} would be stored at {content.target}, "
                "which the mirror lists with other content; refusing the whole archive"
            )
    return sorted(new.values(), key=lambda c: c.target), present


def import_bundle(
    archive_path: Path | str,
    mirror: Mirror,
    *,
    keys: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    source: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ImportResult:
    """Check an agent-binary archive and merge the binaries it holds into the mirror.

    Args:
        archive_path: the archive (for the charm, the fetched ``agent-binaries`` resource).
        mirror: the staged mirror to merge into; its lock is held for the whole import.
        keys: armoured public keys allowed to sign ``.sjson`` metadata in the archive; None
            for Juju's release key.
        limits: member count and size limits.
        source: how to name the archive in messages (default: its file name).
        log: called with one line per file written.

    Returns:
        What was imported, what was already present, what was skipped. An empty file (Juju's
        placeholder for a resource nobody attached) imports nothing and is not an error.

    Raises:
        ArchiveError: the archive is unsafe, damaged, inconsistent or does not match its
            metadata; nothing was changed.
        SignatureError: its signed metadata does not verify; nothing was changed.
        MirrorError: the mirror is busy, unreadable, or lacks the space; nothing was changed.
    """
    path = Path(archive_path)
    source = source or path.name
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ArchiveError(f"cannot read {source}: {describe_os_error(exc)}") from None
    with raw:
        if os.fstat(raw.fileno()).st_size == 0:
            return ImportResult(source=source, empty=True)
        room = _storage_room(limits, mirror)
        try:
            members, metadata = scan_archive(
                raw, source, dataclasses.replace(limits, max_total_bytes=room)
            )
        except ArchiveTotalError:
            if room >= limits.max_total_bytes:
                raise
            raise InsufficientSpaceError(
                f"not enough free space on {mirror.root} for importing {source}: its files "
                f"total more than the {room} bytes the storage can hold (its free space, less "
                f"{limits.reserve_bytes} bytes kept free, plus what is staged); refusing the "
                "whole archive"
            ) from None
        contents = check_contents(source, members, metadata, keys)
        with mirror.lock("import"):
            work, present = _plan(contents, mirror.staged_all())
            needed = sum(c.size for c in work)
            mirror.check_free_space(
                needed + limits.reserve_bytes, what=f"importing {source} ({needed} bytes)"
            )
            try:
                temp = Path(tempfile.mkdtemp(prefix=".import-", dir=mirror.root))
            except OSError as exc:
                raise MirrorError(
                    f"cannot use storage {mirror.root}: {describe_os_error(exc)}"
                ) from None
            try:
                written = _extract(raw, contents, work, temp)
                imported = _publish(mirror, work, log)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
    return ImportResult(
        source=source,
        imported=newest_first(imported),
        present=newest_first(present),
        skipped=contents.unlisted,
        streams=tuple(sorted(contents.streams)),
        signed=contents.signed,
        bytes_written=written,
    )


def _storage_room(limits: Limits, mirror: Mirror) -> int:
    """The most an archive's files may total: what the storage can hold, within ``limits``.

    That is its free space, less the reserve, plus what is staged (an archive may repeat
    binaries the mirror holds, which are not written again). Checked at each member's header,
    it bounds the time a scan takes: a gzip of zeros is a thousandth of its size.
    """
    try:
        free = mirror.free_bytes()
    except OSError:
        return limits.max_total_bytes  # the lock and the space check after the scan say why
    staged = {e.path: e.size for entries in mirror.staged_all().values() for e in entries}
    return min(limits.max_total_bytes, max(0, free - limits.reserve_bytes + sum(staged.values())))


RESOURCE_RECORD = ".agent-binaries.sha256"
"""File in the storage root holding the sha256 of the last archive imported in full."""


def file_sha256(path: Path | str) -> str:
    """The sha256 of a file, read in chunks.

    Raises:
        ArchiveError: the file cannot be read.
    """
    try:
        return hash_file(Path(path))[0]
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {describe_os_error(exc)}") from None


def import_resource(
    archive_path: Path | str,
    mirror: Mirror,
    *,
    force: bool = False,
    keys: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    source: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import an archive unless the same archive was already imported into this mirror.

    The sha256 of every archive imported in full is remembered in the storage root
    (:data:`RESOURCE_RECORD`), so a charm can call this on every upgrade-charm and
    config-changed and only a newly attached archive does any work. The record lives with
    the mirror, so a fresh storage imports the archive again.

    Args:
        archive_path: the archive.
        mirror: the mirror to merge into.
        force: import even when this archive was imported before (e.g. after a prune).
        keys: as for :func:`import_bundle`.
        limits: as for :func:`import_bundle`.
        source: as for :func:`import_bundle`.
        log: as for :func:`import_bundle`.

    Returns:
        The import's result, with ``sha256`` set; ``already_imported`` when skipped.

    Raises:
        As :func:`import_bundle`.
    """
    source = source or Path(archive_path).name
    sha256 = file_sha256(archive_path)
    record = mirror.root / RESOURCE_RECORD
    try:
        previous = read_file(record, 1024).decode("ascii", errors="replace").strip()
    except (OSError, TooLargeError):
        previous = ""
    if previous == sha256 and not force:
        return ImportResult(source=source, sha256=sha256, already_imported=True)
    result = import_bundle(archive_path, mirror, keys=keys, limits=limits, source=source, log=log)
    if not result.empty:
        write_atomic(record, f"{sha256}\n".encode())
    return dataclasses.replace(result, sha256=sha256)


def _extract(raw: BinaryIO, contents: ArchiveContents, work: list[_Content], temp: Path) -> int:
    """Second pass: hash every listed tarball, write the new ones into ``temp``.

    Files are written under names of our own (``00012.tgz``), never the archive's.

    Returns:
        The bytes written.

    Raises:
        ArchiveError: the archive differs from the first pass, a tarball's sha256 does not
            match the metadata, or the files cannot be written.
    """
    source = contents.source
    expected = contents.tarballs()
    to_write = {c.member: c for c in work}
    written = 0
    for number, name, chunks in walk_files(raw, contents):
        content = to_write.get(name)
        target = temp / f"{number:05d}.tgz" if content is not None else None
        digest = _copy_member(chunks, name, source, target)
        if name in expected and digest != expected[name][0]:
            raise ArchiveError(
                f"{source}: member {name!r} has sha256 {digest}, the metadata lists "
                f"{expected[name][0]}; refusing the whole archive"
            )
        if content is not None:
            content.staged_path = target
            written += content.size
    return written


def _copy_member(chunks: Iterable[bytes], name: str, source: str, target: Path | None) -> str:
    """Read one member to its end, hashing it and, when ``target`` is given, writing it there.

    Returns:
        The member's sha256.

    Raises:
        ArchiveError: a truncated member, or ``target`` cannot be written (disk full).
    """
    digest = hashlib.sha256()
    try:
        with open(target, "xb") if target is not None else contextlib.nullcontext() as output:
            for chunk in chunks:
                digest.update(chunk)
                if output is not None:
                    output.write(chunk)
            if output is not None:
                output.flush()
                os.fsync(output.fileno())
    except OSError as exc:
        raise ArchiveError(
            f"{source}: cannot extract {name!r} into {target}: "
            f"{describe_os_error(exc)}; nothing was imported"
        ) from None
    return digest.hexdigest()


def _publish(
    mirror: Mirror, work: list[_Content], log: Callable[[str], None] | None
) -> list[BinaryVersion]:
    """Move the verified files into place, then list them in the metadata, stream by stream."""
    by_stream: dict[str, list[AgentEntry]] = {}
    for content in work:
        target = mirror.tools / content.target
        if content.staged_path is None:
            raise MirrorError(f"{content.member} was not extracted; nothing was published")
        if not (target.exists() and _same_content(target, content)):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(content.staged_path, 0o644)
                os.replace(content.staged_path, target)
                fsync_directory(target.parent)
            except OSError as exc:
                raise MirrorError(
                    f"cannot move {content.target} into {mirror.tools}: "
                    f"{describe_os_error(exc)}; the published metadata is unchanged"
                ) from None
        if log is not None:
            log(f"imported {content.target} ({content.size} bytes)")
        for stream, entry in content.listings:
            by_stream.setdefault(stream, []).append(
                dataclasses.replace(entry, path=content.target, date="")
            )
    imported: list[BinaryVersion] = []
    for stream, entries in sorted(by_stream.items()):
        mirror.add(stream, entries)
        imported.extend(e.binary for e in entries)
    return imported


def _same_content(path: Path, content: _Content) -> bool:
    try:
        return hash_file(path) == (content.sha256, content.size)
    except OSError:
        return False
