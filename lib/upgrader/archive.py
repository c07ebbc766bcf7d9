"""Agent-binary archives as they arrive: read without trusting them, and check them.

An archive (the charm's ``agent-binaries`` resource, made by ``juju-upgrader bundle``) is a
gzip-compressed tar of a staged mirror. Reading one never trusts it: the first pass
(:func:`scan_archive`, :func:`check_contents`) reads only headers and metadata and refuses the
archive as a whole for anything unsafe or inconsistent; the second (:func:`walk_files`) gives
each member's data to the importer (:mod:`upgrader.archive_import`). ARCHITECTURE.md says what
is accepted and why.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from .bounds import MAX_FILE_BYTES, MIB, listed, load_json, preview
from .errors import InvalidInputError, NotFoundError, StreamError
from .signing import juju_release_key, verify_clearsigned
from .streams import AgentEntry, parse_index, parse_products
from .versions import BinaryVersion

MAX_MEMBERS = 10_000
"""The most members an archive may have (a large mirror has a few hundred)."""

MAX_METADATA_BYTES = 32 * 1024 * 1024
"""The largest metadata file accepted (the official products file is well under 1 MB)."""

MAX_METADATA_TOTAL = 4 * MAX_METADATA_BYTES
"""The most metadata bytes accepted in all (the scan holds them in memory)."""

MAX_EXTENDED_HEADER_BYTES = MIB
"""The largest extended header accepted (pax, GNU long name or link): tarfile reads one whole
into memory, and one names a single member in a few hundred bytes."""


CHUNK = 1024 * 1024
_MAX_TRAILER = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_AGENTS_CONTENT_ID = re.compile(r"com\.ubuntu\.juju:([a-z0-9][a-z0-9.-]*):agents\Z")
_INDEX_NAMES = ("index2.sjson", "index.sjson", "index2.json", "index.json")
METADATA_PREFIX = "streams/v1/"
ACCEPTED_FORM = (
    "a gzip-compressed tar of a staged mirror (tools/streams/v1/index2.json and the tarballs "
    "it lists), as made by `juju-upgrader bundle DIR -o agents.tar.gz` or "
    "`tar -czf agents.tar.gz -C DIR tools` on a `juju sync-agent-binary --local-dir DIR` tree"
)


class ArchiveError(InvalidInputError):
    """An agent-binary archive was refused; the message names the archive and the reason."""


class ArchiveTotalError(ArchiveError):
    """The archive's files total more than :attr:`Limits.max_total_bytes`."""


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
        max_total_bytes: size of all files together at most, checked at each header before
            its data is read, so that a small gzip of zeros cannot keep the scan busy for
            hours; :func:`~upgrader.archive_import.import_bundle` lowers it to what the
            storage can hold.
    """

    max_members: int = MAX_MEMBERS
    max_metadata_bytes: int = MAX_METADATA_BYTES
    max_metadata_total: int = MAX_METADATA_TOTAL
    max_file_bytes: int = MAX_FILE_BYTES
    reserve_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = MAX_MEMBERS * MAX_FILE_BYTES


DEFAULT_LIMITS = Limits()
"""The limits every import applies unless given others (tests use small ones)."""


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
    return preview(name, 200)


# --------------------------------------------------------------------------------------------
# Reading gzip safely


class _GzipStream:
    """The decompressed bytes of a gzip file, with gzip's errors turned into ArchiveError.

    :class:`gzip.GzipFile` insists on complete members (a cut file raises EOFError instead of
    reading as a shorter archive), checks each member's CRC and length, reads concatenated
    members, and decompresses no more than asked for at once.
    """

    def __init__(self, raw: BinaryIO, source: str):
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._source = source

    @property
    def position(self) -> int:
        """Decompressed bytes read so far."""
        return self._gzip.tell()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` only at the true end of the file."""
        try:
            return self._gzip.read(CHUNK if size is None or size < 0 else size)
        except EOFError:
            raise ArchiveError(
                f"{self._source}: the archive is truncated (the gzip data ends early); "
                "copy or download it again"
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise ArchiveError(
                f"{self._source}: the gzip data is corrupt ({exc}); copy or download it again"
            ) from None

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
                    f"expected {ACCEPTED_FORM}"
                )


# --------------------------------------------------------------------------------------------
# Reading tar headers safely

# The headers tarfile reads whole into memory, before the member they describe.
_EXTENDED = {
    tarfile.XHDTYPE: "a pax extended header",
    tarfile.XGLTYPE: "a pax global header",
    tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
    tarfile.GNUTYPE_LONGNAME: "a GNU long name",
    tarfile.GNUTYPE_LONGLINK: "a GNU long link name",
}
MAX_EXTENDED_RUN = 16
"""The most extended headers in a row before a member (tarfile reads each chained one in a
nested call; a member needs at most a global, a pax and two GNU ones)."""
_MAX_DIGIT_RUN = 64
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (_MAX_DIGIT_RUN + 1))
_PAX_LENGTH = re.compile(rb"([0-9]{1,7}) ")


class _RefusedHeaderError(Exception):
    """A tar header refused before tarfile reads what it announces.

    Not a TarError: tarfile takes some of those for the end of the archive. The message
    completes "<archive>: ...".
    """


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses, before tarfile reads them, the headers it would read whole.

    tarfile reads an extended header (pax, GNU long name or link) into memory in one piece,
    whatever size it declares, and the next header in a nested call; it reads a GNU sparse map
    of any length, and parses pax records with regular expressions that take quadratic time on
    crafted records in the Python versions the charm runs on. So: an extended header larger
    than :data:`MAX_EXTENDED_HEADER_BYTES`, more than :data:`MAX_EXTENDED_RUN` in a row, global
    headers over that size in all, pax records that are not a plain sequence of ``LENGTH
    KEY=VALUE`` lines, and sparse files, are refused first.
    """

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        state = _HeaderState.of(tar)
        kind = _EXTENDED.get(self.type)
        if kind is None:
            state.run = 0
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise _RefusedHeaderError(_sparse_refusal(self.name))
            return super()._proc_member(tar)  # type: ignore[misc]
        state.run += 1
        if state.run > MAX_EXTENDED_RUN:
            raise _RefusedHeaderError(
                f"more than {MAX_EXTENDED_RUN} extended headers in a row at byte "
                f"{self.offset}; refusing the whole archive (a member has at most a few)"
            )
        size = self.size
        if self.type == tarfile.XGLTYPE:
            state.global_bytes += self.size
            size = state.global_bytes
        if size > MAX_EXTENDED_HEADER_BYTES:
            declared = "brings global headers to" if self.type == tarfile.XGLTYPE else "declares"
            raise _RefusedHeaderError(
                f"{kind} at byte {self.offset} {declared} {size} bytes, more than the "
                f"{MAX_EXTENDED_HEADER_BYTES} accepted (one names a member in a few hundred); "
                "refusing the whole archive"
            )
        return super()._proc_member(tar)  # type: ignore[misc]

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        stream: Any = tar.fileobj
        data = stream.read(self._block(self.size))  # type: ignore[attr-defined]
        problem = _pax_problem(data[: self.size])
        if problem:
            raise _RefusedHeaderError(
                f"{_EXTENDED[self.type]} at byte {self.offset} is malformed ({problem}); "
                "refusing the whole archive"
            )
        # tarfile's own parser reads the header again: give it the bytes read here.
        tar.fileobj = _Replay(data, stream)  # type: ignore[assignment]
        try:
            return super()._proc_pax(tar)  # type: ignore[misc]
        finally:
            tar.fileobj = stream

    def _proc_gnusparse_10(self, member: Any, pax_headers: Any, tar: Any) -> None:
        raise _RefusedHeaderError(_sparse_refusal(getattr(member, "name", "?")))


def _sparse_refusal(name: str) -> str:
    return (
        f"member {_quote(name)} is a sparse file; refusing the whole archive (only regular files "
        "and directories are accepted)"
    )


@dataclasses.dataclass
class _HeaderState:
    """What the header checks remember over one archive."""

    run: int = 0
    global_bytes: int = 0

    @classmethod
    def of(cls, tar: tarfile.TarFile) -> _HeaderState:
        state = getattr(tar, "_upgrader_headers", None)
        if state is None:
            state = cls()
            tar._upgrader_headers = state  # type: ignore[attr-defined]
        return state


def _pax_problem(data: bytes) -> str | None:
    """Why pax header data is refused, or None: it must be ``LENGTH KEY=VALUE`` lines.

    Each record's length (in ASCII digits) counts the whole record; together they fill the
    header. No run of more than 64 digits: tarfile's record and ``hdrcharset`` patterns would
    backtrack over a long one for each of its characters.
    """
    if _DIGIT_RUN.search(data):
        return f"a run of more than {_MAX_DIGIT_RUN} digits"
    pos = 0
    while pos < len(data):
        match = _PAX_LENGTH.match(data, pos)
        length = int(match[1]) if match else 0
        record = data[pos : pos + length]
        key_end = record.find(b"=")
        if (
            match is None
            or length < len(match[0]) + 3
            or len(record) < length
            or not record.endswith(b"\n")
            or key_end <= len(match[0])
        ):
            return f"record at offset {pos} is not LENGTH KEY=VALUE"
        pos += length
    return None


class _Replay:
    """A tar stream that first serves bytes already read from it, then reads on."""

    def __init__(self, data: bytes, stream: Any) -> None:
        self._data = data
        self._stream = stream

    def read(self, size: int) -> bytes:
        head, self._data = self._data[:size], self._data[size:]
        return head + self._stream.read(size - len(head)) if len(head) < size else head

    def tell(self) -> int:
        return self._stream.tell() - len(self._data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# tarfile raises ValueError (not TarError) for some crafted headers, e.g. a non-numeric
# GNU.sparse.map or a cut GNU sparse 1.0 map. ArchiveError is a ValueError too: re-raise it first.
_TAR_ERRORS = (tarfile.TarError, ValueError)


def _open_archive(raw: BinaryIO, source: str) -> tuple[_GzipStream, tarfile.TarFile]:
    raw.seek(0)
    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        raise ArchiveError(f"{source}: not a gzip-compressed file; expected {ACCEPTED_FORM}")
    reader = _GzipStream(raw, source)
    try:
        tar = tarfile.open(
            fileobj=reader,  # type: ignore[arg-type] - reads only, which is all "r|" needs
            mode="r|",
            tarinfo=_BoundedTarInfo,
        )
    except ArchiveError:
        raise
    except _RefusedHeaderError as exc:
        raise ArchiveError(f"{source}: {exc}") from None
    except _TAR_ERRORS as exc:
        raise ArchiveError(
            f"{source}: not a tar archive inside the gzip data ({exc}); expected {ACCEPTED_FORM}"
        ) from None
    return reader, tar


def _members(tar: tarfile.TarFile, source: str) -> Iterator[tarfile.TarInfo]:
    """Iterate members, turning tarfile's errors into ArchiveError."""
    while True:
        try:
            info = tar.next()
        except ArchiveError:
            raise
        except _RefusedHeaderError as exc:
            raise ArchiveError(f"{source}: {exc}") from None
        except _TAR_ERRORS as exc:
            raise ArchiveError(
                f"{source}: the tar data is damaged or truncated ({exc}); expected {ACCEPTED_FORM}"
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


def is_metadata(name: str) -> bool:
    """Whether a member or mirror path is a simplestreams metadata file (streams/v1/*.json)."""
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
    metadata = is_metadata(name)
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
    total = 0
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
        total += member.size
        if total > limits.max_total_bytes:
            raise ArchiveTotalError(
                f"{source}: its files total more than {limits.max_total_bytes} bytes; refusing "
                "the whole archive (an archive holds the binaries to import and their metadata)"
            )
        if not member.is_dir:
            chunks = _read_member(tar, info, source)
            if is_metadata(member.name):
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
            tail = METADATA_PREFIX + index
            if not member.is_dir and (member.name == tail or member.name.endswith("/" + tail)):
                prefixes.add(member.name[: -len(tail)])
    if len(prefixes) > 1:
        listed = ", ".join(_quote(p + METADATA_PREFIX) for p in sorted(prefixes))
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
    content_ids = [str(c) for c in load_json(body)["index"]]  # parse_index checked it
    streams = [m.group(1) for c in content_ids if (m := _AGENTS_CONTENT_ID.match(c))]
    if not streams:
        raise ArchiveError(
            f"{where}: lists no agent stream (a com.ubuntu.juju:<stream>:agents entry); it "
            f"lists: {listed(sorted(content_ids)) if content_ids else 'nothing'}"
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

    signed = any(prefix + METADATA_PREFIX + i in metadata for i in _INDEX_NAMES[:2])
    candidates = [
        prefix + METADATA_PREFIX + i for i in _INDEX_NAMES if i.endswith(".sjson") == signed
    ]
    index_name = next((name for name in candidates if name in metadata), None)
    if index_name is None:
        raise ArchiveError(
            f"{source}: holds no agent metadata ({prefix}{METADATA_PREFIX}index2.json or "
            f"index.json); expected {ACCEPTED_FORM}"
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
            f"expected {ACCEPTED_FORM}"
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
    metadata_dir = prefix + METADATA_PREFIX
    unlisted = tuple(
        name
        for name in sizes
        if name not in wanted and not (name.startswith(metadata_dir) and is_metadata(name))
    )
    return ArchiveContents(
        source=source,
        prefix=prefix,
        members=tuple(members),
        streams={stream: tuple(entries) for stream, entries in streams.items()},
        signed=signed,
        unlisted=unlisted,
    )


def newest_first(binaries: Iterable[BinaryVersion]) -> tuple[BinaryVersion, ...]:
    """Newest version first; for one version, by OS then architecture."""
    ordered = sorted(set(binaries), key=lambda b: (b.release, b.arch))
    return tuple(sorted(ordered, key=lambda b: b.number, reverse=True))


# --------------------------------------------------------------------------------------------
# Second pass: the members' data


def walk_files(
    raw: BinaryIO, contents: ArchiveContents
) -> Iterator[tuple[int, str, Iterator[bytes]]]:
    """Second pass: every regular member again, as its number, name and data in chunks.

    Each member is checked against what the first pass saw; read a member's chunks to the end
    before taking the next one. The archive's end is checked after the last member.

    Raises:
        ArchiveError: the archive differs from the first pass, or is damaged or truncated.
    """
    source = contents.source
    reader, tar = _open_archive(raw, source)
    seen = iter(contents.members)
    for number, info in enumerate(_members(tar, source)):
        name = _normalise_name(info, source)
        if name == "":
            continue
        first = next(seen, None)
        if first is None or (first.name, first.size) != (name, 0 if info.isdir() else info.size):
            raise ArchiveError(f"{source}: the archive changed while it was being read")
        if not info.isdir():
            yield number, name, _read_member(tar, info, source)
    if next(seen, None) is not None:
        raise ArchiveError(f"{source}: the archive changed while it was being read")
    reader.finish(tar, _MAX_TRAILER)
