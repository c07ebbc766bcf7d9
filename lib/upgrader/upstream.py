"""The upstream metadata a mirror last read, kept so that an unchanged stream costs one request.

:func:`read_upstream` reuses the verified contents kept in ``<root>/.upstream/`` when one
conditional request finds the index unchanged, and reads the stream in full otherwise;
ARCHITECTURE.md ("Agent streams") says when a record is used and why that is safe.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from .bounds import (
    MAX_DOCUMENT_BYTES,
    MalformedJSONError,
    TooLargeError,
    load_json,
    preview,
    preview_text,
    read_file,
)
from .errors import StreamError
from .mirror import Mirror, MirrorError, write_atomic
from .streams import (
    DocumentSource,
    FetchedDocument,
    StreamContents,
    TrustPolicy,
    check_for_changes,
    check_stream_name,
    check_stream_url,
    read_stream,
)

logger = logging.getLogger(__name__)

RECORD_FORMAT = "upgrader-upstream-metadata:2"
"""The ``format`` of a record; a record of any other format is ignored (read in full)."""

_RECORD_MODE = 0o600
_DIR_MODE = 0o700


@dataclasses.dataclass(frozen=True)
class UpstreamRead:
    """The outcome of :func:`read_upstream`.

    Attributes:
        contents: the stream's metadata, as :func:`~upgrader.streams.read_stream` returns it.
        cached: True when the kept metadata was used because one conditional request found
            the index unchanged; False after a full read.
        note: one line for logs and progress output: what was done, and why.
        trust: the trust settings the contents were accepted under (:func:`_trust_settings`).
    """

    contents: StreamContents
    cached: bool
    note: str
    trust: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


def _trust_settings(base_url: str, trust: TrustPolicy) -> dict[str, Any]:
    """What in ``trust`` decides which metadata of ``base_url`` is accepted, as plain data."""
    keys = trust.keys_for(base_url).encode("utf-8")
    return {
        "signatures-required": trust.requires_signature(base_url),
        "keys-sha256": hashlib.sha256(keys).hexdigest(),
    }


def read_upstream(
    mirror: Mirror,
    base_url: str,
    stream: str,
    source: DocumentSource,
    *,
    trust: TrustPolicy | None = None,
    save: bool = True,
) -> UpstreamRead:
    """Read a stream's metadata, reusing the mirror's kept copy when the index is unchanged.

    Args:
        mirror: the mirror whose private state keeps the record.
        base_url: the stream URL (the directory holding ``streams/v1``).
        stream: the stream name.
        source: an ``upgrader.fetch.Fetcher`` (conditional requests need ``get_document``).
        trust: as for :func:`~upgrader.streams.read_stream`.
        save: keep a full read for the next one (False for a dry run: nothing is written; or
            to decide later with :func:`keep_upstream`).

    Returns:
        The contents, whether the kept copy was used, and a note saying why.

    Raises:
        Whatever :func:`~upgrader.streams.read_stream` raises (also from the conditional
        request: a source that cannot be reached is not papered over with the kept copy).
        InvalidInputError: ``base_url`` or ``stream`` is malformed.
    """
    base_url = check_stream_url(base_url)
    stream = check_stream_name(stream)
    trust = trust or TrustPolicy()
    wanted = _trust_settings(base_url, trust)
    path = mirror.upstream_record(stream)
    record, why = _load(path)
    if record is not None:
        kept, why = _usable(record, path, base_url, stream, wanted)
        if kept is not None and kept.validators is not None:
            source = _ReusingSource(source)  # the changed index is not fetched twice
            if not check_for_changes(kept.validators, source):
                return UpstreamRead(kept, cached=True, note=_reuse_note(kept, record))
            why = f"{kept.index_url} changed"
    contents = read_stream(base_url, stream, source, trust=trust)
    note = f"read the {stream} stream from {base_url} in full ({why})"
    read = UpstreamRead(contents, cached=False, note=note, trust=wanted)
    return keep_upstream(mirror, read) if save else read


class _ReusingSource:
    """A document source that answers a repeated plain request from the document it got.

    The conditional request that finds the index changed receives the new index in full;
    the full read that follows asks for the same URL and gets that body again instead of a
    second download. Each kept document is served once.
    """

    def __init__(self, source: DocumentSource) -> None:
        self._source = source
        self._fetched: dict[str, FetchedDocument] = {}

    def get_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchedDocument:
        """Serve ``url`` from the document fetched before, once, else from the source."""
        fetched = self._fetched.pop(url, None)
        if fetched is not None and etag is None and last_modified is None:
            return fetched
        document = self._source.get_document(url, etag=etag, last_modified=last_modified)
        if not document.not_modified:
            self._fetched[url] = document
        return document


def keep_upstream(mirror: Mirror, read: UpstreamRead) -> UpstreamRead:
    """Keep a full, verified read in the mirror's state for the next one.

    An unverified read is not kept, and removes an older record. A kept read needs nothing.

    Returns:
        ``read``, its note saying when the metadata could not be kept or is not kept.
    """
    if read.cached:
        return read
    path = mirror.upstream_record(read.contents.stream)
    if read.contents.verified:
        tail = _save(path, read.contents, read.trust)
    else:
        tail = "; it is not verified, so it is not kept for the next sync"
        _forget(path)
    return dataclasses.replace(read, note=read.note + tail)


def _reuse_note(kept: StreamContents, record: dict[str, Any]) -> str:
    """Say that the kept metadata is used, and since when."""
    saved = record.get("saved")
    return (
        f"upstream metadata unchanged since it was verified on "
        f"{preview_text(saved, 40) if isinstance(saved, str) else '?'} "
        f"(one conditional request for {kept.index_url}); using the {len(kept.entries)} "
        "entries kept then"
    )


def _load(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The record at ``path`` as JSON data, or None and why not."""
    try:
        body = read_file(path, MAX_DOCUMENT_BYTES)
    except FileNotFoundError:
        return None, "no upstream metadata kept yet"
    except OSError as exc:
        return None, _unusable(path, f"cannot read it: {exc.strerror or exc}")
    except TooLargeError as exc:
        return None, _unusable(path, str(exc))
    try:
        data = load_json(body)
    except MalformedJSONError as exc:
        return None, _unusable(path, str(exc))
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        found = preview(data.get("format")) if isinstance(data, dict) else type(data).__name__
        return None, _unusable(path, f"format {found}, expected {RECORD_FORMAT!r}")
    return data, ""


def _usable(
    record: dict[str, Any],
    path: Path,
    base_url: str,
    stream: str,
    wanted: dict[str, Any],
) -> tuple[StreamContents | None, str]:
    """The kept contents when the record matches this read, else None and why not."""
    if record.get("source") != base_url:
        return None, "the stream URL is not the one the kept metadata was read from"
    if record.get("stream") != stream:
        return None, _unusable(path, f"it is for stream {preview(record.get('stream'))}")
    if record.get("trust") != wanted:
        return None, "the signature settings (keys or verify-signatures) changed"
    try:
        contents = StreamContents.from_dict(record.get("contents"), where=str(path))
    except StreamError as exc:
        return None, _unusable(path, str(exc))
    if contents.base_url != base_url or contents.stream != stream:
        return None, _unusable(path, "its contents are for another stream")
    if contents.validators is None or not contents.verified:
        return None, _unusable(path, "it holds no verified metadata with validators")
    return contents, ""


def _unusable(path: Path, reason: str) -> str:
    """Log why a record cannot be used; return the reason for the note."""
    message = f"kept upstream metadata {path} is unusable: {reason}"
    logger.warning("%s; reading the stream in full", message)
    return message


def _save(path: Path, contents: StreamContents, trust: dict[str, Any]) -> str:
    """Write the record; return a note tail (empty, or why it could not be kept)."""
    record = {
        "format": RECORD_FORMAT,
        "saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "source": contents.base_url,
        "stream": contents.stream,
        "trust": trust,
        "contents": contents.as_dict(),
    }
    try:
        path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        write_atomic(
            path,
            json.dumps(record).encode("utf-8"),
            mode=_RECORD_MODE,
            what="the kept upstream metadata",
            unchanged="the next sync reads the stream in full again",
        )
    except (OSError, MirrorError) as exc:
        logger.warning("cannot keep the upstream metadata: %s", exc)
        return f"; it could not be kept: {exc}"
    return ""


def _forget(path: Path) -> None:
    """Remove a record that no longer describes what the source serves."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot remove the kept upstream metadata %s: %s", path, exc)
