"""Making an agent-binary archive (``juju-upgrader bundle``) from a staged mirror.

The archive is what the charm's ``agent-binaries`` resource accepts (:mod:`upgrader.archive`):
the ``tools/`` tree of a mirror, its metadata and every tarball it lists, checked as copied.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from .archive import (
    MAX_METADATA_BYTES,
    MAX_METADATA_TOTAL,
    METADATA_PREFIX,
    is_metadata,
    newest_first,
    read_metadata,
)
from .bounds import TooLargeError, read_file
from .errors import InvalidInputError
from .mirror import describe_os_error
from .versions import BinaryVersion

_BUNDLE_PREFIX = "tools/"
_BUNDLE_MTIME = 946684800  # 2000-01-01: fixed, so the same mirror makes the same archive


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
        if (candidate / METADATA_PREFIX).is_dir():
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
    out = Path(output)
    # An archive written over a listed tarball or metadata file (bundle DIR -o
    # DIR/tools/... --force) would damage the very mirror it copies.
    if out.parent.resolve().is_relative_to(tools.resolve()):
        raise InvalidInputError(
            f"cannot write {out} inside the mirror it bundles ({tools}); write it outside, "
            f"e.g. {tools.resolve().parent}.tar.gz"
        )
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
        if relative not in listed and not is_metadata(relative)
    )
    return BundleResult(
        output=out,
        binaries=newest_first(e.binary for entries in streams.values() for e in entries),
        files=len(metadata) + len(listed),
        bytes=total,
        skipped=tuple(skipped),
    )


def _metadata_files(tools: Path, source: str) -> dict[str, bytes]:
    """The ``.json``/``.sjson`` files of ``tools/streams/v1``, by archive member name.

    Raises:
        InvalidInputError: one is larger than an archive may hold (the charm would refuse it).
    """
    metadata: dict[str, bytes] = {}
    total = 0
    for path in sorted((tools / METADATA_PREFIX).iterdir()):
        name = _BUNDLE_PREFIX + METADATA_PREFIX + path.name
        if not is_metadata(name):
            continue
        size = _regular_file(path, source)
        total += size
        if size > MAX_METADATA_BYTES or total > MAX_METADATA_TOTAL:
            raise InvalidInputError(
                f"{source}: {path} holds {size} bytes; an agent-binaries archive holds at most "
                f"{MAX_METADATA_BYTES} bytes in one metadata file and {MAX_METADATA_TOTAL} in all"
            )
        try:
            metadata[name] = read_file(path, MAX_METADATA_BYTES)
        except (OSError, TooLargeError) as exc:
            raise InvalidInputError(f"{source}: cannot read {path}: {exc}") from None
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
