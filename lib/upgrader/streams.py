"""Reading Juju agent simplestreams metadata: the index, then the products file it names.

Accepts both shapes in use (reference ``shared/reference/agent-streams.md`` section 1): the
expanded form that ``juju sync-agent-binary --local-dir`` writes (every field on every item) and
the condensed form of the official stream (fields shared by all children lifted to the version,
product or top level). A field missing on an item comes from its version (date) entry, then its
product, then the top level, as python-simplestreams flattens it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInputError, NotFoundError, StreamError
from .versions import BinaryVersion, Version, parse

DEFAULT_STREAM_URL = "https://streams.canonical.com/juju/tools"
INDEX_PATHS = ("streams/v1/index2.json", "streams/v1/index.json")
INDEX_FORMAT = "index:1.0"
PRODUCTS_FORMAT = "products:1.0"
DATATYPE = "content-download"
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_STREAM_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")


def content_id(stream: str) -> str:
    """The simplestreams content id of a Juju agent stream: ``com.ubuntu.juju:<stream>:agents``."""
    return f"com.ubuntu.juju:{stream}:agents"


def product_id(os_name: str, arch: str) -> str:
    """The product id of one OS and architecture: ``com.ubuntu.juju:ubuntu:amd64``."""
    return f"com.ubuntu.juju:{os_name}:{arch}"


def check_stream_name(stream: str, *, option: str = "stream") -> str:
    """Validate an agent stream name (released, proposed, devel, testing, or any custom name)."""
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise InvalidInputError(
            f"invalid {option} {stream!r}: use released, proposed, devel, testing or another "
            "stream name of lowercase letters, digits, dots and dashes"
        )
    return stream


def check_stream_url(url: str, *, option: str = "stream-url") -> str:
    """Validate a stream base URL (http, https or file) and return it without a trailing slash."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https", "file")
        or (parts.scheme != "file" and not parts.netloc)
        or (parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path))
        or any(c.isspace() for c in url)
    ):
        raise InvalidInputError(
            f"invalid {option} {url!r}: use an http://, https:// or file:/// URL of the "
            "directory holding streams/v1, e.g. https://streams.canonical.com/juju/tools"
        )
    return url.rstrip("/")


@dataclasses.dataclass(frozen=True, order=True)
class AgentEntry:
    """One agent tarball listed in a stream.

    Attributes:
        binary: version, OS (the item's ``release``) and architecture.
        path: the item path, relative to the stream's base URL.
        size: the size in bytes.
        sha256: the hex SHA-256 of the tarball.
        date: the version (date) key the item was listed under.
    """

    binary: BinaryVersion
    path: str
    size: int
    sha256: str
    date: str = ""

    @property
    def version(self) -> Version:
        """The agent version."""
        return self.binary.number

    @property
    def os(self) -> str:
        """The OS type (or, in old streams, the series)."""
        return self.binary.release

    @property
    def arch(self) -> str:
        """The architecture."""
        return self.binary.arch


@dataclasses.dataclass(frozen=True)
class StreamContents:
    """What one agent stream holds.

    Attributes:
        base_url: the stream URL item paths are relative to.
        stream: the stream name (released, proposed, ...).
        index_url: the index document read.
        products_url: the products document read.
        entries: every agent tarball listed, one per (version, os, arch).
        verified: True when the metadata's signature was checked against a pinned key.
    """

    base_url: str
    stream: str
    index_url: str
    products_url: str
    entries: tuple[AgentEntry, ...]
    verified: bool = False

    def url_of(self, entry: AgentEntry) -> str:
        """The full download URL of an entry."""
        return join_url(self.base_url, entry.path)

    def available(self, os_name: str, architectures: Iterable[str]) -> dict[Version, set[str]]:
        """The versions with a binary for this OS and at least one of the architectures."""
        wanted = set(architectures)
        result: dict[Version, set[str]] = {}
        for entry in self.entries:
            if entry.os == os_name and entry.arch in wanted:
                result.setdefault(entry.version, set()).add(entry.arch)
        return result


def join_url(base_url: str, path: str) -> str:
    """Join a path relative to a stream's base URL, as Juju does (one slash between)."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def check_relative_path(path: object, *, where: str) -> str:
    """Accept only a plain relative path that stays below the stream's base URL."""
    if not isinstance(path, str) or not path:
        raise StreamError(f"{where}: path must be a non-empty string, got {path!r}")
    parts = urlsplit(path)
    segments = path.split("/")
    if (
        parts.scheme
        or parts.netloc
        or path.startswith(("/", "\\"))
        or "\\" in path
        or any(s in ("..", ".") for s in segments)
        or any(ord(c) < 32 for c in path)
    ):
        raise StreamError(
            f"{where}: path {path!r} must be relative to the stream URL (no scheme, host, "
            "leading slash or '..')"
        )
    return path


def _load_json(body: bytes, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"{url}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StreamError(f"{url}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _check_format(doc: Mapping[str, Any], expected: str, url: str) -> None:
    if doc.get("format") != expected:
        raise StreamError(f"{url}: format is {doc.get('format')!r}, expected {expected!r}")


def parse_index(body: bytes, url: str, stream: str) -> str:
    """Find the products path of ``com.ubuntu.juju:<stream>:agents`` in an index document.

    Returns:
        The products file path, relative to the stream's base URL.

    Raises:
        NotFoundError: the index has no entry for this stream (the source lacks the stream).
        StreamError: the document is malformed.
    """
    doc = _load_json(body, url)
    _check_format(doc, INDEX_FORMAT, url)
    index = doc.get("index")
    if not isinstance(index, dict):
        raise StreamError(f"{url}: 'index' must be an object")
    cid = content_id(stream)
    entry = index.get(cid)
    if entry is None:
        ids = ", ".join(sorted(k for k in index if isinstance(k, str))) or "none"
        raise NotFoundError(f"{url}: no content id {cid} (stream {stream!r}); it lists: {ids}")
    if not isinstance(entry, dict):
        raise StreamError(f"{url}: entry {cid} must be an object")
    if entry.get("datatype") != DATATYPE:
        raise StreamError(
            f"{url}: entry {cid} has datatype {entry.get('datatype')!r}, expected {DATATYPE!r}"
        )
    if entry.get("format") not in (None, PRODUCTS_FORMAT):
        raise StreamError(f"{url}: entry {cid} has format {entry.get('format')!r}")
    return check_relative_path(entry.get("path"), where=f"{url}: entry {cid}")


def _scalars(node: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of one level that its children inherit: everything but objects and lists.

    (python-simplestreams inherits every string field; we pass down numbers too, so that a
    malformed size is reported as such rather than as missing.)
    """
    return {k: v for k, v in node.items() if not isinstance(v, (dict, list))}


def _children(node: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = node.get(key, {})
    if not isinstance(value, dict):
        raise StreamError(f"{where}: '{key}' must be an object")
    return value


def _item_entry(flat: Mapping[str, Any], where: str, date: str) -> AgentEntry:
    missing = [
        k for k in ("version", "arch", "release", "size", "path", "sha256") if k not in flat
    ]
    if missing:
        raise StreamError(f"{where}: missing {', '.join(missing)}")
    size = flat["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StreamError(f"{where}: size must be a non-negative integer, got {size!r}")
    sha256 = flat["sha256"]
    if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
        raise StreamError(f"{where}: sha256 must be 64 hex digits, got {sha256!r}")
    for key in ("version", "arch", "release"):
        if (
            not isinstance(flat[key], str)
            or not flat[key]
            or "-" in flat[key]
            and key != "version"
        ):
            raise StreamError(f"{where}: {key} {flat[key]!r} is not valid")
    try:
        number = parse(flat["version"])
    except InvalidInputError as exc:
        raise StreamError(f"{where}: {exc}") from None
    return AgentEntry(
        binary=BinaryVersion(number, flat["release"], flat["arch"]),
        path=check_relative_path(flat["path"], where=where),
        size=size,
        sha256=sha256.lower(),
        date=date,
    )


def parse_products(body: bytes, url: str, stream: str) -> list[AgentEntry]:
    """Every agent tarball listed in a products document, newest date entry winning.

    Items of other content ids, or with an ftype other than ``tar.gz``, are not agents and are
    skipped. When one (version, os, arch) is listed under several dates, the newest date wins,
    as in Juju.

    Raises:
        StreamError: naming the URL and the item for any malformed part.
    """
    doc = _load_json(body, url)
    _check_format(doc, PRODUCTS_FORMAT, url)
    cid = doc.get("content_id")
    if cid is not None and cid != content_id(stream):
        raise StreamError(f"{url}: content_id is {cid!r}, expected {content_id(stream)!r}")
    top = _scalars(doc)
    found: dict[tuple[Version, str, str], AgentEntry] = {}
    for pname, product in _children(doc, "products", url).items():
        where_p = f"{url}: product {pname}"
        if not isinstance(product, dict):
            raise StreamError(f"{where_p} must be an object")
        pflat = {**top, **_defaults_from_product_id(pname), **_scalars(product)}
        for date, ventry in _children(product, "versions", where_p).items():
            where_v = f"{where_p} version {date}"
            if not isinstance(ventry, dict):
                raise StreamError(f"{where_v} must be an object")
            vflat = {**pflat, **_scalars(ventry)}
            for iname, item in _children(ventry, "items", where_v).items():
                where_i = f"{where_v} item {iname}"
                if not isinstance(item, dict):
                    raise StreamError(f"{where_i} must be an object")
                flat = {**vflat, **_scalars(item)}
                if flat.get("ftype", "tar.gz") != "tar.gz":
                    continue
                entry = _item_entry(flat, where_i, str(date))
                key = (entry.version, entry.os, entry.arch)
                if key not in found or found[key].date < entry.date:
                    found[key] = entry
    return sorted(found.values(), key=lambda e: (e.version, e.os, e.arch), reverse=True)


def _defaults_from_product_id(pname: str) -> dict[str, str]:
    """``com.ubuntu.juju:ubuntu:amd64`` implies release ubuntu and arch amd64."""
    parts = pname.split(":")
    if len(parts) == 3 and parts[0] == "com.ubuntu.juju":
        return {"release": parts[1], "arch": parts[2]}
    return {}


Getter = Callable[[str], bytes]


def read_stream(base_url: str, stream: str, get: Getter) -> StreamContents:
    """Read the unsigned metadata of one agent stream.

    Tries ``streams/v1/index2.json`` and, when that is not found, ``streams/v1/index.json``.

    Args:
        base_url: the stream URL (the directory holding ``streams/v1``).
        stream: the stream name.
        get: fetches a URL's body, raising NotFoundError when it does not exist.

    Raises:
        StreamError: unreachable source or malformed document, naming the URL.
    """
    base_url = check_stream_url(base_url)
    tried: list[str] = []
    for index_path in INDEX_PATHS:
        index_url = join_url(base_url, index_path)
        try:
            body = get(index_url)
        except NotFoundError:
            tried.append(index_url)
            continue
        products_path = parse_index(body, index_url, stream)
        products_url = join_url(base_url, products_path)
        entries = parse_products(get(products_url), products_url, stream)
        return StreamContents(base_url, stream, index_url, products_url, tuple(entries))
    raise NotFoundError(f"no agent metadata at {base_url}: tried {', '.join(tried)}")
