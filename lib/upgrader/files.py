"""Replacing a file so that readers see the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_file(path: Path, data: bytes, *, mode: int = 0o644, parents: bool = True) -> None:
    """Replace ``path`` with ``data``: write a temporary file beside it, fsync, rename, fsync.

    The temporary file is created anew with its final mode (``O_EXCL``), never through a link
    left at its name (``O_NOFOLLOW``): a stale one from a killed writer is removed first.

    Args:
        path: the file to replace.
        data: its new content.
        mode: the new file's permission bits (default: readable by all, for the web server).
        parents: create missing parent directories (off where a missing one is an error,
            such as an unmounted storage root).

    Raises:
        OSError: the file cannot be written (disk full, permissions); ``path`` is unchanged.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # a stale one, or a planted link (not what it points to)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, mode), "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
