"""Agent-binary archives: what an operator carries into an air-gapped site.

An archive (the charm's ``agent-binaries`` resource, made by ``juju-upgrader bundle``) is a
gzip-compressed tar of a staged mirror: the ``tools/`` tree that the charm and
``juju sync-agent-binary --local-dir`` write, that is simplestreams metadata under
``tools/streams/v1/`` and the agent tarballs it lists. Archives made by hand are accepted too:
the metadata may sit at the top (``streams/v1/...``) or under any one directory prefix
(``tools/``, ``mydir/tools/``), and the upstream signed form (``.sjson``) is verified and then
preferred over unsigned files.

Importing never trusts the archive. A first pass reads only headers and metadata and refuses
the archive as a whole for unsafe or inconsistent content (absolute or ``..`` names, links,
devices, too many members, duplicates, oversized members, a total that would not fit,
metadata naming a tarball it lacks, a size that disagrees); a second pass extracts the listed
tarballs under names of our own choosing into a temporary directory on the mirror's
filesystem, checking each one's size and SHA-256 as it streams. Only when every check passed
is anything merged into the mirror, so a refused archive leaves the mirror exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidInputError, NotFoundError, StreamError
from .mirror import (
    Mirror,
    MirrorError,
    describe_os_error,
    fsync_directory,
    hash_file,
    storage_name,
    write_atomic,
)
from .signing import juju_release_key, verify_clearsigned
from .streams import AgentEntry, parse_index, parse_products
from .versions import BinaryVersion

MAX_MEMBERS = 10_000
"""The most members an archive may have (a large mirror has a few hundred)."""

MAX_METADATA_BYTES = 32 * 1024 * 1024
"""The largest metadata file accepted (the official products file is well under 1 MB)."""

MAX_METADATA_TOTAL = 4 * MAX_METADATA_BYTES
"""The most metadata bytes accepted in all (the scan holds them in memory)."""

MAX_FILE_BYTES = 8 * 1024 * 1024 * 1024
"""The largest single member accepted (an agent tarball is about 40-60 MB)."""

RESERVE_BYTES = 64 * 1024 * 1024
"""Free space an import leaves on the storage filesystem, for metadata rewrites and logs."""

CHUNK = 1024 * 1024
_MAX_TRAILER = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_AGENTS_CONTENT_ID = re.compile(r"com\.ubuntu\.juju:([a-z0-9][a-z0-9.-]*):agents\Z")
_INDEX_NAMES = ("index2.sjson", "index.sjson", "index2.json", "index.json")
_METADATA_DIR = "streams/v1/"
_BUNDLE_PREFIX = "tools/"
_BUNDLE_MTIME = 946684800  # 2000-01-01: fixed, so the same mirror makes the same archive
_ACCEPTED_FORM = (
    "a gzip-compressed tar of a staged mirror (tools/streams/v1/index2.json and the tarballs "
    "it lists), as made by `juju-upgrader bundle DIR -o agents.tar.gz` or "
    "`tar -czf agents.tar.gz -C DIR tools` on a `juju sync-agent-binary --local-dir DIR` tree"
)


class ArchiveError(InvalidInputError):
    """An agent-binary archive was refused; the message names the archive and the reason."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much an archive may hold.

    Attributes:
        max_members: members (files and directories) at most.
        max_metadata_bytes: size of one metadata file at most.
        max_metadata_total: size of all metadata files together at most (they are read
            into memory).
        max_file_bytes: size of one member at most.
        reserve_bytes: free space to leave on the mirror's filesystem after extraction.
    """

    max_members: int = MAX_MEMBERS
    max_metadata_bytes: int = MAX_METADATA_BYTES
    max_metadata_total: int = MAX_METADATA_TOTAL
    max_file_bytes: int = MAX_FILE_BYTES
    reserve_bytes: int = RESERVE_BYTES


@dataclasses.dataclass(frozen=True)
class Member:
    """One archive member as the first pass saw it.

    Attributes:
        name: the normalised name (no leading ``./``, no trailing ``/``).
        size: the declared size in bytes (0 for directories).
        is_dir: True for a directory.
    """

    name: str
    size: int
    is_dir: bool


@dataclasses.dataclass(frozen=True)
class ArchiveContents:
    """What an archive holds, checked for safety and consistency but not yet for content.

    Attributes:
        source: the archive's name, for messages.
        prefix: the directory holding ``streams/v1`` inside the archive (``""`` or ending in
            ``/``).
        members: every member, in archive order.
        streams: the agent binaries the metadata lists, by stream.
        signed: True when the metadata came from verified ``.sjson`` documents.
        unlisted: regular members outside ``streams/v1`` that the metadata does not list.
    """

    source: str
    prefix: str
    members: tuple[Member, ...]
    streams: Mapping[str, tuple[AgentEntry, ...]]
    signed: bool
    unlisted: tuple[str, ...]

    def member_of(self, entry: AgentEntry) -> str:
        """The archive member that holds an entry's tarball."""
        return self.prefix + entry.path

    def tarballs(self) -> dict[str, tuple[str, int]]:
        """The (sha256, size) each listed member must have, by member name."""
        return {
            self.member_of(e): (e.sha256, e.size)
            for entries in self.streams.values()
            for e in entries
        }


def _quote(name: str) -> str:
    return repr(name)


# --------------------------------------------------------------------------------------------
# Reading gzip safely


class _GzipReader:
    """A read-only stream of the decompressed bytes of a gzip file.

    Unlike tarfile's own stream mode, it insists on complete gzip members (a truncated or
    corrupt file raises :class:`ArchiveError` instead of reading as a shorter archive), checks
    their CRC and length, and never decompresses more than asked for at once.
    """

    def __init__(self, raw: BinaryIO, source: str):
        self._raw = raw
        self._source = source
        self._decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = b""
        self._done = False
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` only at the true end of the file."""
        if size is None or size < 0:
            size = CHUNK
        out = bytearray()
        while len(out) < size and not self._done:
            if self._decompressor.unconsumed_tail:
                data = self._decompressor.unconsumed_tail
            else:
                data = self._pending or self._raw.read(CHUNK)
                self._pending = b""
                if not data:
                    if self._decompressor.eof:
                        self._done = True
                        break
                    raise ArchiveError(
                        f"{self._source}: the archive is truncated (the gzip data ends early); "
                        "copy or download it again"
                    )
            try:
                out += self._decompressor.decompress(data, size - len(out))
            except zlib.error as exc:
                raise ArchiveError(
                    f"{self._source}: the gzip data is corrupt ({exc}); copy or download it again"
                ) from None
            if self._decompressor.eof:
                rest = self._decompressor.unused_data
                if rest:
                    # Another gzip member follows (concatenated gzip files are one stream).
                    self._decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                    self._pending = rest
                elif self._raw_at_end():
                    self._done = True
                else:
                    self._decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.position += len(out)
        return bytes(out)

    def _raw_at_end(self) -> bool:
        data = self._raw.read(CHUNK)
        if not data:
            return True
        self._pending = data
        return False

    def finish(self, tar: tarfile.TarFile, limit: int) -> None:
        """Check the tar ended with its end-of-archive block, then read to the end.

        tarfile's stream mode takes the end of the data for the end of the archive; an
        archive cut at a member boundary would look complete without this check.

        Raises:
            ArchiveError: no end-of-archive block, more than ``limit`` bytes after it, or
                anything but zeros after it.
        """
        self.drain(limit)
        if self.position < tar.offset + tarfile.BLOCKSIZE:
            raise ArchiveError(
                f"{self._source}: the archive is truncated (the tar data ends without its "
                "end-of-archive block); copy or download it again"
            )

    def drain(self, limit: int) -> None:
        """Read to the end, refusing more than ``limit`` bytes after the tar's end marker."""
        seen = 0
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            seen += len(data)
            if seen > limit or data.strip(b"\0"):
                raise ArchiveError(
                    f"{self._source}: there is data after the end of the tar archive; "
                    f"expected {_ACCEPTED_FORM}"
                )


# tarfile raises ValueError (not TarError) for some crafted headers, e.g. a non-numeric
# GNU.sparse.map or a cut GNU sparse 1.0 map. ArchiveError is a ValueError too: re-raise it first.
_TAR_ERRORS = (tarfile.TarError, ValueError)


def _open_archive(raw: BinaryIO, source: str) -> tuple[_GzipReader, tarfile.TarFile]:
    raw.seek(0)
    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        raise ArchiveError(f"{source}: not a gzip-compressed file; expected {_ACCEPTED_FORM}")
    reader = _GzipReader(raw, source)
    try:
        tar = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]
    except ArchiveError:
        raise
    except _TAR_ERRORS as exc:
        raise ArchiveError(
            f"{source}: not a tar archive inside the gzip data ({exc}); expected {_ACCEPTED_FORM}"
        ) from None
    return reader, tar


def _members(tar: tarfile.TarFile, source: str) -> Iterator[tarfile.TarInfo]:
    """Iterate members, turning tarfile's errors into ArchiveError."""
    while True:
        try:
            info = tar.next()
        except ArchiveError:
            raise
        except _TAR_ERRORS as exc:
            raise ArchiveError(
                f"{source}: the tar data is damaged or truncated ({exc}); expected "
                f"{_ACCEPTED_FORM}"
            ) from None
        if info is None:
            return
        yield info


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, source: str) -> Iterator[bytes]:
    """Yield a member's data in chunks; a short member raises ArchiveError."""
    handle = tar.extractfile(info)
    if handle is None:  # pragma: no cover - only regular files are read
        return
    remaining = info.size
    while remaining:
        try:
            data = handle.read(min(CHUNK, remaining))
        except tarfile.TarError as exc:
            raise ArchiveError(
                f"{source}: member {_quote(info.name)} is truncated ({exc}); the archive is "
                "incomplete, copy or download it again"
            ) from None
        if not data:
            raise ArchiveError(
                f"{source}: member {_quote(info.name)} is truncated; the archive is incomplete"
            )
        remaining -= len(data)
        yield data


# --------------------------------------------------------------------------------------------
# First pass: structure and metadata


def _normalise_name(info: tarfile.TarInfo, source: str) -> str:
    raw = info.name
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/") if info.isdir() else name
    if raw.startswith("/") or name.startswith("/"):
        raise ArchiveError(
            f"{source}: member {_quote(raw)} has an absolute path; refusing the whole archive "
            "(members must be relative, e.g. tools/streams/v1/index2.json)"
        )
    segments = name.split("/")
    if ".." in segments:
        raise ArchiveError(
            f"{source}: member {_quote(raw)} has a '..' path component; refusing the whole "
            "archive (members must stay inside it)"
        )
    if name in ("", ".") and info.isdir():
        return ""
    if (
        any(s in ("", ".") for s in segments)
        or "\\" in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise ArchiveError(
            f"{source}: member {_quote(raw)} has an unusual name (empty or '.' components, "
            "backslashes or control characters); refusing the whole archive"
        )
    return name


def _check_type(info: tarfile.TarInfo, source: str) -> None:
    kind = None
    if info.issym():
        kind = f"a symbolic link (to {_quote(info.linkname)})"
    elif info.islnk():
        kind = f"a hard link (to {_quote(info.linkname)})"
    elif info.ischr() or info.isblk():
        kind = "a device file"
    elif info.isfifo():
        kind = "a FIFO"
    elif info.issparse():
        kind = "a sparse file"
    elif not (info.isreg() or info.isdir()):
        kind = f"of unsupported type {info.type!r}"
    if kind is not None:
        raise ArchiveError(
            f"{source}: member {_quote(info.name)} is {kind}; refusing the whole archive "
            "(only regular files and directories are accepted)"
        )


def _is_metadata(name: str) -> bool:
    head, _, leaf = name.rpartition("/")
    return (head == "streams/v1" or head.endswith("/streams/v1")) and leaf.endswith(
        (".json", ".sjson")
    )


def _check_member(
    info: tarfile.TarInfo, source: str, kinds: dict[str, bool], limits: Limits
) -> Member | None:
    """Check one header against the ones before it; None for the archive's root entry.

    Args:
        info: the header.
        source: the archive's name, for messages.
        kinds: the names seen so far, mapped to True for directories (updated).
        limits: the size limits.

    Raises:
        ArchiveError: an unsafe name or type, a duplicate, or a size over the limit.
    """
    _check_type(info, source)
    name = _normalise_name(info, source)
    if name == "":
        return None
    if name in kinds:
        raise ArchiveError(
            f"{source}: member {_quote(name)} appears more than once; refusing the whole archive"
        )
    parents = name.split("/")[:-1]
    for depth in range(1, len(parents) + 1):
        parent = "/".join(parents[:depth])
        if kinds.get(parent) is False:
            raise ArchiveError(
                f"{source}: member {_quote(name)} is inside {_quote(parent)}, which is a file; "
                "refusing the whole archive"
            )
    is_dir = info.isdir()
    kinds[name] = is_dir
    size = 0 if is_dir else info.size
    if size < 0:
        raise ArchiveError(
            f"{source}: member {_quote(name)} declares a negative size ({size}); refusing the "
            "whole archive"
        )
    metadata = _is_metadata(name)
    limit = limits.max_metadata_bytes if metadata else limits.max_file_bytes
    if size > limit:
        raise ArchiveError(
            f"{source}: member {_quote(name)} declares {size} bytes, more than the {limit} "
            f"accepted for one {'metadata file' if metadata else 'file'}; refusing the whole "
            "archive"
        )
    return Member(name, size, is_dir)


def scan_archive(
    raw: BinaryIO, source: str, limits: Limits = Limits()
) -> tuple[list[Member], dict[str, bytes]]:
    """First pass: check every member header and collect the metadata files.

    Args:
        raw: the archive, opened for binary reading and seekable.
        source: the archive's name, for messages.
        limits: the size and count limits.

    Returns:
        Every member (archive order) and the bytes of every metadata file, by member name.

    Raises:
        ArchiveError: for anything unsafe, damaged or over a limit.
    """
    reader, tar = _open_archive(raw, source)
    members: list[Member] = []
    kinds: dict[str, bool] = {}
    metadata: dict[str, bytes] = {}
    metadata_total = 0
    for count, info in enumerate(_members(tar, source), start=1):
        if count > limits.max_members:
            raise ArchiveError(
                f"{source}: more than {limits.max_members} members; refusing the whole archive "
                "(a mirror of every released agent has a few hundred files)"
            )
        member = _check_member(info, source, kinds, limits)
        if member is None:
            continue
        members.append(member)
        if not member.is_dir:
            chunks = _read_member(tar, info, source)
            if _is_metadata(member.name):
                metadata_total += member.size
                if metadata_total > limits.max_metadata_total:
                    raise ArchiveError(
                        f"{source}: its metadata files total more than "
                        f"{limits.max_metadata_total} bytes; refusing the whole archive (a "
                        "mirror's streams/v1 holds a few small files)"
                    )
                metadata[member.name] = b"".join(chunks)
            else:
                for _ in chunks:
                    pass
    reader.finish(tar, _MAX_TRAILER)
    return members, metadata


def _find_prefix(members: list[Member], source: str) -> str | None:
    prefixes = set()
    for member in members:
        for index in _INDEX_NAMES:
            tail = _METADATA_DIR + index
            if not member.is_dir and (member.name == tail or member.name.endswith("/" + tail)):
                prefixes.add(member.name[: -len(tail)])
    if len(prefixes) > 1:
        listed = ", ".join(_quote(p + _METADATA_DIR) for p in sorted(prefixes))
        raise ArchiveError(
            f"{source}: holds metadata in more than one place ({listed}); put one mirror in "
            "an archive"
        )
    return prefixes.pop() if prefixes else None


def _agent_streams(body: bytes, where: str) -> list[str]:
    """The streams an index lists (``com.ubuntu.juju:<stream>:agents`` content ids).

    Raises:
        ArchiveError: the index is malformed or lists no agent stream.
    """
    try:
        parse_index(body, where, "released")
    except NotFoundError:
        pass  # a valid index without the released stream
    except StreamError as exc:
        raise ArchiveError(str(exc)) from None
    content_ids = [str(c) for c in json.loads(body)["index"]]
    streams = [m.group(1) for c in content_ids if (m := _AGENTS_CONTENT_ID.match(c))]
    if not streams:
        raise ArchiveError(
            f"{where}: lists no agent stream (a com.ubuntu.juju:<stream>:agents entry); it "
            f"lists: {', '.join(sorted(content_ids)) or 'nothing'}"
        )
    return streams


def read_metadata(
    source: str,
    prefix: str,
    metadata: Mapping[str, bytes],
    keys: str | None,
) -> tuple[dict[str, list[AgentEntry]], bool]:
    """Every agent binary the archive's metadata lists, verifying signed metadata.

    When the archive carries a signed index (``index2.sjson``, else ``index.sjson``), only
    signed documents are read, each verified against ``keys``, and only their signed text is
    used. Otherwise the unsigned ``index2.json`` (else ``index.json``) is read. Every
    ``com.ubuntu.juju:<stream>:agents`` entry of the index is read.

    Args:
        source: the archive's name, for messages.
        prefix: where ``streams/v1`` sits in the archive.
        metadata: metadata file bytes by member name.
        keys: armoured public keys allowed to sign; None for Juju's release key.

    Returns:
        The entries by stream, and whether they came from verified signed metadata.

    Raises:
        ArchiveError: metadata missing, malformed or naming files the archive lacks.
        SignatureError: signed metadata whose signature does not verify.
    """

    def where(name: str) -> str:
        return f"{source}:{name}"

    def load(name: str, signed: bool) -> bytes:
        if name not in metadata:
            raise ArchiveError(
                f"{source}: the metadata names {_quote(name)}, which is not in the archive"
            )
        body = metadata[name]
        if signed:
            body = verify_clearsigned(
                body, keys if keys is not None else juju_release_key(), source=where(name)
            )
        return body

    signed = any(prefix + _METADATA_DIR + i in metadata for i in _INDEX_NAMES[:2])
    candidates = [
        prefix + _METADATA_DIR + i for i in _INDEX_NAMES if i.endswith(".sjson") == signed
    ]
    index_name = next((name for name in candidates if name in metadata), None)
    if index_name is None:
        raise ArchiveError(
            f"{source}: holds no agent metadata ({prefix}{_METADATA_DIR}index2.json or "
            f"index.json); expected {_ACCEPTED_FORM}"
        )
    index_body = load(index_name, signed)
    streams = _agent_streams(index_body, where(index_name))
    entries: dict[str, list[AgentEntry]] = {}
    for stream in streams:
        try:
            products_path = parse_index(index_body, where(index_name), stream)
        except StreamError as exc:
            raise ArchiveError(str(exc)) from None
        products_name = prefix + products_path
        products_body = load(products_name, signed)
        try:
            entries[stream] = parse_products(products_body, where(products_name), stream)
        except StreamError as exc:
            raise ArchiveError(str(exc)) from None
    return entries, signed


def check_contents(
    source: str,
    members: list[Member],
    metadata: Mapping[str, bytes],
    keys: str | None = None,
) -> ArchiveContents:
    """Read the metadata and check it against the members the first pass saw.

    Raises:
        ArchiveError: no metadata, malformed metadata, a listed tarball absent from the
            archive, a declared size that disagrees with the metadata, or two listings of one
            file that disagree.
        SignatureError: signed metadata that does not verify.
    """
    prefix = _find_prefix(members, source)
    if prefix is None:
        raise ArchiveError(
            f"{source}: holds no agent metadata (streams/v1/index2.json or index.json); "
            f"expected {_ACCEPTED_FORM}"
        )
    streams, signed = read_metadata(source, prefix, metadata, keys)
    sizes = {m.name: m.size for m in members if not m.is_dir}
    wanted: dict[str, tuple[str, int, AgentEntry]] = {}
    for entries in streams.values():
        for entry in entries:
            name = prefix + entry.path
            if name not in sizes:
                raise ArchiveError(
                    f"{source}: the metadata lists {entry.binary} at {_quote(entry.path)}, "
                    f"which is not in the archive (looked for member {_quote(name)}); "
                    "refusing the whole archive"
                )
            if sizes[name] != entry.size:
                raise ArchiveError(
                    f"{source}: the metadata lists {entry.binary} as {entry.size} bytes, but "
                    f"member {_quote(name)} has {sizes[name]}; refusing the whole archive"
                )
            seen = wanted.setdefault(name, (entry.sha256, entry.size, entry))
            if seen[:2] != (entry.sha256, entry.size):
                raise ArchiveError(
                    f"{source}: the metadata lists {_quote(entry.path)} twice with different "
                    f"checksums ({seen[2].binary} and {entry.binary}); refusing the whole archive"
                )
    metadata_dir = prefix + _METADATA_DIR
    unlisted = tuple(
        name
        for name in sizes
        if name not in wanted and not (name.startswith(metadata_dir) and _is_metadata(name))
    )
    return ArchiveContents(
        source=source,
        prefix=prefix,
        members=tuple(members),
        streams={stream: tuple(entries) for stream, entries in streams.items()},
        signed=signed,
        unlisted=unlisted,
    )


# --------------------------------------------------------------------------------------------
# Importing into the mirror


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
        """Action results: imported, present, skipped, streams, signed, bytes-written."""
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
    limits: Limits = Limits(),
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
        members, metadata = scan_archive(raw, source, limits)
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
        imported=_newest_first(imported),
        present=_newest_first(present),
        skipped=contents.unlisted,
        streams=tuple(sorted(contents.streams)),
        signed=contents.signed,
        bytes_written=written,
    )


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
    limits: Limits = Limits(),
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
        previous = record.read_text().strip()
    except OSError:
        previous = ""
    if previous == sha256 and not force:
        return ImportResult(source=source, sha256=sha256, already_imported=True)
    result = import_bundle(archive_path, mirror, keys=keys, limits=limits, source=source, log=log)
    if not result.empty:
        write_atomic(record, f"{sha256}\n".encode())
    return dataclasses.replace(result, sha256=sha256)


def _newest_first(binaries: Iterable[BinaryVersion]) -> tuple[BinaryVersion, ...]:
    """Newest version first; for one version, by OS then architecture."""
    ordered = sorted(set(binaries), key=lambda b: (b.release, b.arch))
    return tuple(sorted(ordered, key=lambda b: b.number, reverse=True))


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
    reader, tar = _open_archive(raw, source)
    seen = iter(contents.members)
    written = 0
    for number, info in enumerate(_members(tar, source)):
        name = _normalise_name(info, source)
        if name == "":
            continue
        first = next(seen, None)
        if first is None or (first.name, first.size) != (name, 0 if info.isdir() else info.size):
            raise ArchiveError(f"{source}: the archive changed while it was being read")
        if info.isdir():
            continue
        content = to_write.get(name)
        target = temp / f"{number:05d}.tgz" if content is not None else None
        digest = _copy_member(tar, info, source, target)
        if name in expected and digest != expected[name][0]:
            raise ArchiveError(
                f"{source}: member {_quote(name)} has sha256 {digest}, the metadata lists "
                f"{expected[name][0]}; refusing the whole archive"
            )
        if content is not None:
            content.staged_path = target
            written += content.size
    if next(seen, None) is not None:
        raise ArchiveError(f"{source}: the archive changed while it was being read")
    reader.finish(tar, _MAX_TRAILER)
    return written


def _copy_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, source: str, target: Path | None
) -> str:
    """Read one member to its end, hashing it and, when ``target`` is given, writing it there.

    Returns:
        The member's sha256.

    Raises:
        ArchiveError: a truncated member, or ``target`` cannot be written (disk full).
    """
    digest = hashlib.sha256()
    try:
        with open(target, "xb") if target is not None else contextlib.nullcontext() as output:
            for chunk in _read_member(tar, info, source):
                digest.update(chunk)
                if output is not None:
                    output.write(chunk)
            if output is not None:
                output.flush()
                os.fsync(output.fileno())
    except OSError as exc:
        raise ArchiveError(
            f"{source}: cannot extract {_quote(info.name)} into {target}: "
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


# --------------------------------------------------------------------------------------------
# Making an archive


@dataclasses.dataclass(frozen=True)
class BundleResult:
    """What :func:`make_bundle` wrote.

    Attributes:
        output: the archive written.
        binaries: every binary its metadata lists, newest first.
        files: regular files in it (metadata and tarballs).
        bytes: bytes of those files before compression.
    """

    output: Path
    binaries: tuple[BinaryVersion, ...]
    files: int
    bytes: int
    skipped: tuple[str, ...] = ()


def find_tools_dir(directory: Path | str) -> Path:
    """The ``tools/`` tree of a staged mirror: DIR itself, or DIR/tools.

    Raises:
        InvalidInputError: neither holds ``streams/v1``.
    """
    root = Path(directory)
    for candidate in (root / "tools", root):
        if (candidate / _METADATA_DIR).is_dir():
            return candidate
    raise InvalidInputError(
        f"{root}: no agent metadata found: expected {root}/tools/streams/v1/index2.json (a "
        "directory made by `juju-upgrader sync --local-dir DIR` or `juju sync-agent-binary "
        "--local-dir DIR`) or a tools directory holding streams/v1"
    )


def make_bundle(
    mirror_dir: Path | str,
    output: Path | str,
    *,
    keys: str | None = None,
    log: Callable[[str], None] | None = None,
) -> BundleResult:
    """Write the ``agent-binaries`` archive of a staged mirror.

    The archive holds, under ``tools/``, every metadata file of ``streams/v1`` and every
    tarball the metadata lists (each checked against its listed size and sha256 while it is
    copied), nothing else; members are sorted, with fixed owners, modes and times, so the
    same mirror always gives the same archive. The gzip stream stores rather than compresses
    (level 0): agent tarballs are compressed already, and deflating them again only costs
    time. It is written beside ``output`` and renamed into place when complete.

    Args:
        mirror_dir: a directory holding ``tools/streams/v1`` (storage root, ``--local-dir``)
            or the ``tools`` directory itself.
        output: the archive to write (conventionally ``agents.tar.gz``).
        keys: armoured public keys for ``.sjson`` metadata; None for Juju's release key.
        log: called with one line per tarball added.

    Returns:
        What went into the archive.

    Raises:
        InvalidInputError: no metadata, a listed tarball missing or not matching its listing,
            or the output cannot be written; no archive is left behind.
        SignatureError: signed metadata that does not verify.
    """
    tools = find_tools_dir(mirror_dir)
    source = str(tools)
    metadata = _metadata_files(tools, source)
    streams, _signed = read_metadata(source, _BUNDLE_PREFIX, metadata, keys)
    listed: dict[str, tuple[str, int]] = {}
    for entry in (e for entries in streams.values() for e in entries):
        if listed.setdefault(entry.path, (entry.sha256, entry.size)) != (entry.sha256, entry.size):
            raise InvalidInputError(
                f"{source}: the metadata lists {entry.path} twice with different checksums"
            )
        size = _regular_file(tools / entry.path, source)
        if size != entry.size:
            raise InvalidInputError(
                f"{source}: {entry.path} holds {size} bytes, the metadata lists {entry.size}; "
                "sync it again before bundling"
            )
    out = Path(output)
    temp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        total = _write_bundle(temp, tools, metadata, listed, log)
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InvalidInputError(
            f"cannot write {out}: {describe_os_error(exc)}; no archive was written"
        ) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    skipped = sorted(
        relative
        for relative in (p.relative_to(tools).as_posix() for p in tools.rglob("*") if p.is_file())
        if relative not in listed and not _is_metadata(relative)
    )
    return BundleResult(
        output=out,
        binaries=_newest_first(e.binary for entries in streams.values() for e in entries),
        files=len(metadata) + len(listed),
        bytes=total,
        skipped=tuple(skipped),
    )


def _metadata_files(tools: Path, source: str) -> dict[str, bytes]:
    """The ``.json``/``.sjson`` files of ``tools/streams/v1``, by archive member name."""
    metadata: dict[str, bytes] = {}
    for path in sorted((tools / _METADATA_DIR).iterdir()):
        name = _BUNDLE_PREFIX + _METADATA_DIR + path.name
        if _is_metadata(name) and _regular_file(path, source) >= 0:
            metadata[name] = path.read_bytes()
    return metadata


def _write_bundle(
    temp: Path,
    tools: Path,
    metadata: Mapping[str, bytes],
    listed: Mapping[str, tuple[str, int]],
    log: Callable[[str], None] | None,
) -> int:
    """Write the archive to ``temp``, checking each tarball while it is copied.

    Returns:
        The bytes of the files in it, before compression.

    Raises:
        InvalidInputError: a tarball does not match its listing.
        OSError: the archive cannot be written or a tarball read.
    """
    total = sum(len(b) for b in metadata.values())
    with open(temp, "wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=0, mtime=0)
        with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made: set[str] = set()
            for name, body in metadata.items():
                _add_parents(tar, name, made)
                tar.addfile(_info(name, len(body)), io.BytesIO(body))
            for relative in sorted(listed):
                sha256, size = listed[relative]
                name = _BUNDLE_PREFIX + relative
                _add_parents(tar, name, made)
                with open(tools / relative, "rb") as stream:
                    hashing = _HashingReader(stream)
                    tar.addfile(_info(name, size), hashing)
                if hashing.digest.hexdigest() != sha256:
                    raise InvalidInputError(
                        f"{tools}: {relative} does not match its metadata (sha256 "
                        f"{hashing.digest.hexdigest()}, listed {sha256}); sync it again "
                        "before bundling"
                    )
                total += size
                if log is not None:
                    log(f"added {relative} ({size} bytes)")
        raw.flush()
        os.fsync(raw.fileno())
    return total


def _regular_file(path: Path, source: str) -> int:
    """The size of a regular file; refuses links and other kinds an archive must not hold.

    Raises:
        InvalidInputError: the path is missing, a symbolic link or not a regular file.
    """
    try:
        found = path.lstat()
    except OSError as exc:
        raise InvalidInputError(
            f"{source}: the metadata lists {path}, which cannot be read: {describe_os_error(exc)}"
        ) from None
    if not stat.S_ISREG(found.st_mode):
        raise InvalidInputError(
            f"{source}: {path} is not a regular file (a symbolic link or special file); an "
            "agent-binaries archive holds only regular files"
        )
    return found.st_size


def _info(name: str, size: int, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = _BUNDLE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_parents(tar: tarfile.TarFile, name: str, made: set[str]) -> None:
    parts = name.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        directory = "/".join(parts[:depth])
        if directory not in made:
            made.add(directory)
            tar.addfile(_info(directory, 0, directory=True))


class _HashingReader:
    """A file wrapper that hashes and counts what is read through it."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data
