"""Reading a Juju agent stream: the signed (or unsigned) index, then the products file it names.

:func:`read_stream` returns :class:`StreamContents` checked as the :class:`TrustPolicy` asks;
:func:`check_for_changes` tells with one conditional request whether it changed since.
ARCHITECTURE.md ("Agent streams") explains the shapes accepted and the trust rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .bounds import (
    MAX_FILE_BYTES,
    MAX_INDEX_ENTRIES,
    MAX_ITEMS,
    MalformedJSONError,
    listed,
    load_json,
    preview,
    preview_text,
    size_error,
)
from .errors import InvalidInputError, NotFoundError, SignatureError, StreamError
from .signing import juju_release_key, verify_clearsigned
from .urls import redact_url
from .versions import BinaryVersion, Version, parse

DEFAULT_STREAM_URL = "https://streams.canonical.com/juju/tools"
OFFICIAL_HOSTS = frozenset({"streams.canonical.com"})
"""Hosts whose metadata is always verified against Juju's release key."""
INDEX_PATHS = ("streams/v1/index2.json", "streams/v1/index.json")
SIGNED_INDEX_PATHS = ("streams/v1/index2.sjson", "streams/v1/index.sjson")
VERIFY_SIGNATURES_OPTION = "verify-signatures"
INDEX_FORMAT = "index:1.0"
PRODUCTS_FORMAT = "products:1.0"
DATATYPE = "content-download"
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_STREAM_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")
_PLAIN_SEGMENT = r"[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*"
_PLAIN_PATH = re.compile(rf"{_PLAIN_SEGMENT}(?:/{_PLAIN_SEGMENT})*\Z")
"""Paths that plainly stay below the base URL (every official item path is one): segments of
unreserved characters, none empty or starting with a dot, no escapes. Others get the full check."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ITEM_FIELDS = ("version", "arch", "release", "size", "path", "sha256")
MAX_FIELDS = 1_000
"""The most fields one object of a products file may have (an item has about ten): each item
inherits the fields of the levels above it, so the work grows with fields times items."""


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


STREAM_URL_FORM = (
    "an http://, https:// or file:/// URL of the directory holding streams/v1, e.g. "
    f"{DEFAULT_STREAM_URL}"
)
"""The accepted form of a stream URL, as refusals state it."""


def check_stream_url(
    url: str, *, option: str = "stream-url", accepted: str = STREAM_URL_FORM
) -> str:
    """Validate a stream base URL (http, https or file) and return it without a trailing slash.

    Refused, with a message naming ``option`` and the accepted form that never shows a login
    or a query's value: another scheme, no host, white space, a URL that cannot be split (an
    unclosed ``[`` of an IPv6 address, a port that is no number from 0 to 65535), anything but
    an IPv6 address in brackets, an ``@``
    after the host, a ``file://`` path holding a NUL (``%00``), and a query or fragment (Juju
    appends ``/streams/v1/...`` to the URL, so a query would end up in the middle of every
    request path).

    Args:
        url: the URL as given.
        option: the option or setting that gave it, for messages.
        accepted: the accepted form, completing "use ..." in messages.
    """
    refused = InvalidInputError(f"invalid {option} {_shown_url(url)}: use {accepted}")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 address
        raise refused from None
    if (
        parts is None
        or parts.scheme not in ("http", "https", "file")
        or (parts.scheme != "file" and not parts.netloc)
        or (parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path))
        or any(c.isspace() for c in url)
    ):
        raise refused
    if parts.scheme != "file" and "@" in url.partition("//")[2].partition(parts.netloc)[2]:
        # "https://tok/en@host": a login with an unencoded "/" would make "tok" the host
        # name (looked up in DNS) and send nothing to the real one.
        raise InvalidInputError(
            f"invalid {option} {redact_url(url)!r}: an '@' after the host name; a login goes "
            "before the host (https://user:password@host/path) with any '/', '?', '#' or '@' "
            "in it percent-encoded (%2F, %3F, %23, %40), and an '@' in the path as %40"
        )
    try:
        valid_host = bool(parts.hostname) or parts.scheme == "file"
        parts.port  # noqa: B018 - raises ValueError unless a number from 0 to 65535
        if "[" in parts.netloc:  # urlsplit takes "[v1.x]" (IPvFuture), 3.10's any text there
            ipaddress.IPv6Address((parts.hostname or "").partition("%")[0])
    except ValueError:
        valid_host = False
    if not valid_host:
        raise refused
    if parts.scheme == "file" and "\x00" in unquote(parts.path):
        raise InvalidInputError(
            f"invalid {option} {_shown_url(url)}: a file path cannot hold a NUL character "
            f"(%00); use {accepted}"
        )
    if "?" in url or "#" in url:
        raise InvalidInputError(
            f"invalid {option} {_shown_url(url)}: a query ('?...') or fragment ('#...') is "
            "not accepted, since every request appends streams/v1/... to the URL; use "
            f"{accepted}, with a token in the login if the server needs one "
            "(https://user:token@host/path, any '?' or '#' in it as %3F or %23)"
        )
    return url.rstrip("/")


def _shown_url(url: object) -> str:
    """A refused URL as its message quotes it: no login, no query or fragment value, cut short."""
    if not isinstance(url, str):
        return preview(url)
    shown = redact_url(url)
    # redact_url hid everything up to the last "@": a "?" or "#" after it starts a query or
    # fragment, whose value may be a token.
    start = shown.rfind("@") + 1
    cut = min((i for i in (shown.find("?", start), shown.find("#", start)) if i >= 0), default=-1)
    if cut >= 0:
        shown = shown[:cut] + shown[cut] + "***"
    return preview(shown, 200)


@dataclasses.dataclass(frozen=True)
class TrustPolicy:
    """Which agent metadata a reader accepts.

    Attributes:
        keys: ASCII-armoured public keys that may sign the metadata (the ``signing-keys``
            option); None or empty means Juju's release key.
        verify_signatures: True to refuse a source that has no valid signed metadata. False
            to accept unsigned metadata; signed metadata is still preferred when present.
        allow_unsigned: how the person accepts unsigned metadata, completing "to accept
            unsigned metadata from this source, ..." in the refusal (the charm names its
            config option, the CLI its flag).
        official_hosts: hosts that are always verified against Juju's release key.
    """

    keys: str | None = dataclasses.field(default=None, repr=False)
    verify_signatures: bool = True
    allow_unsigned: str = f"set {VERIFY_SIGNATURES_OPTION}=false"
    official_hosts: frozenset[str] = OFFICIAL_HOSTS

    def is_official(self, base_url: str) -> bool:
        """Whether a stream URL is on an official host (whose metadata is always verified)."""
        host = urlsplit(base_url).hostname
        return host is not None and host.lower().rstrip(".") in self.official_hosts

    def requires_signature(self, base_url: str) -> bool:
        """Whether a source must have valid signed metadata to be read at all."""
        return self.verify_signatures or self.is_official(base_url)

    def keys_for(self, base_url: str) -> str:
        """The keys a source's signatures are checked against."""
        if self.is_official(base_url) or not (self.keys or "").strip():
            return juju_release_key()
        return str(self.keys)


@dataclasses.dataclass(frozen=True)
class Validators:
    """What identifies the version of an index document that was read.

    Attributes:
        url: the index URL that was read.
        etag: its ``ETag``, if the server sent one.
        last_modified: its ``Last-Modified``, if the server sent one.
        sha256: the hex SHA-256 of its body as fetched.
    """

    url: str
    etag: str | None = None
    last_modified: str | None = None
    sha256: str = ""

    def as_dict(self) -> dict[str, str]:
        """Plain strings, e.g. for StoredState (missing values are empty strings)."""
        return {
            "url": self.url,
            "etag": self.etag or "",
            "last-modified": self.last_modified or "",
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Validators | None:
        """Rebuild from :meth:`as_dict` output; None when there is nothing usable."""
        if not data or not isinstance(data.get("url"), str) or not data["url"]:
            return None

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            url=data["url"],
            etag=text("etag") or None,
            last_modified=text("last-modified") or None,
            sha256=text("sha256"),
        )


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
        verified: True when the index and products documents were signed and their
            signatures verified against a pinned key.
        validators: what :func:`check_for_changes` needs to tell whether the index changed.
        unverified_reason: when not verified, why (no signed metadata, or the signature of
            the signed metadata did not verify and verification was off); empty otherwise.
    """

    base_url: str
    stream: str
    index_url: str
    products_url: str
    entries: tuple[AgentEntry, ...]
    verified: bool = False
    validators: Validators | None = None
    unverified_reason: str = ""

    def url_of(self, entry: AgentEntry) -> str:
        """The full download URL of an entry."""
        return _join_url(self.base_url, entry.path)

    def available(self, os_name: str, architectures: Iterable[str]) -> dict[Version, set[str]]:
        """The versions with a binary for this OS and at least one of the architectures."""
        wanted = set(architectures)
        result: dict[Version, set[str]] = {}
        for entry in self.entries:
            if entry.os == os_name and entry.arch in wanted:
                result.setdefault(entry.version, set()).add(entry.arch)
        return result

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (:meth:`from_dict` reads it back), e.g. to keep a verified read.

        Each distinct tarball is one ``tarballs`` row ``[version, arch, path, size, sha256,
        date]``; ``entries`` keep the stream's order as ``[tarball row number, os]``, since
        streams list one tarball under several OS names (a third of the size, and of the
        checks when read back).
        """
        tarballs: dict[tuple[str, str, str, int, str, str], int] = {}
        rows: list[list[Any]] = []
        for e in self.entries:
            key = (str(e.version), e.arch, e.path, e.size, e.sha256, e.date)
            rows.append([tarballs.setdefault(key, len(tarballs)), e.os])
        return {
            "base-url": self.base_url,
            "stream": self.stream,
            "index-url": self.index_url,
            "products-url": self.products_url,
            "verified": self.verified,
            "unverified-reason": self.unverified_reason,
            "validators": self.validators.as_dict() if self.validators else {},
            "tarballs": [list(key) for key in tarballs],
            "entries": rows,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> StreamContents:
        """Rebuild from :meth:`as_dict` data, checking it as a products file is checked.

        Args:
            data: What :meth:`as_dict` returned, after a JSON round trip.
            where: Where the data came from, for error messages.

        Raises:
            StreamError: naming ``where`` and what is malformed.
        """
        if not isinstance(data, dict):
            raise StreamError(f"{where}: expected an object, got {type(data).__name__}")
        text: dict[str, str] = {}
        for key in ("base-url", "stream", "index-url", "products-url", "unverified-reason"):
            value = data.get(key)
            if not isinstance(value, str) or (not value and key != "unverified-reason"):
                raise StreamError(
                    f"{where}: {key} must be a non-empty string, got {preview(value)}"
                )
            text[key] = value
        verified = data.get("verified")
        if not isinstance(verified, bool):
            raise StreamError(f"{where}: verified must be true or false, got {preview(verified)}")
        validators = data.get("validators")
        if not isinstance(validators, dict):
            raise StreamError(f"{where}: validators must be an object, got {preview(validators)}")
        tarballs, rows = data.get("tarballs"), data.get("entries")
        if not isinstance(tarballs, list) or not isinstance(rows, list):
            raise StreamError(f"{where}: tarballs and entries must be lists")
        if max(len(tarballs), len(rows)) > MAX_ITEMS:
            raise StreamError(
                f"{where}: holds more than {MAX_ITEMS} tarballs or entries, the most a "
                "products file may list"
            )
        entries = _entries_from_rows(_tarballs_from_rows(tarballs, where), rows, where)
        try:
            base_url = check_stream_url(text["base-url"])
            stream = check_stream_name(text["stream"])
        except InvalidInputError as exc:
            raise StreamError(f"{where}: {exc}") from None
        return cls(
            base_url,
            stream,
            text["index-url"],
            text["products-url"],
            tuple(entries),
            verified=verified,
            validators=Validators.from_dict(validators),
            unverified_reason=text["unverified-reason"],
        )


_Tarball = tuple[Version, str, str, int, str, str]
"""A kept tarball row, checked: version, arch, path, size, sha256, date."""


def _tarballs_from_rows(rows: list[Any], where: str) -> list[_Tarball]:
    """Tarballs from :meth:`StreamContents.as_dict` rows, each field checked as when parsed."""
    versions: dict[str, Version] = {}
    tarballs: list[_Tarball] = []
    for number, row in enumerate(rows):
        if type(row) is list and len(row) == 6:
            text, arch, path, size, sha256, date = row
        else:
            text = arch = path = sha256 = date = size = None
        if not (
            type(text) is str
            and type(arch) is str
            and type(path) is str
            and type(size) is int
            and 0 <= size <= MAX_FILE_BYTES
            and type(sha256) is str
            and _SHA256.match(sha256)
            and type(date) is str
        ):
            raise StreamError(
                f"{where}: tarball {number} must be [version, arch, path, size, sha256, date] "
                f"(size a whole number of bytes up to {MAX_FILE_BYTES}, sha256 64 lowercase hex "
                f"digits), got {_preview_row(row)}"
            )
        version = versions.get(text)
        if version is None:
            try:
                version = versions[text] = parse(text)
            except InvalidInputError as exc:
                raise StreamError(f"{where}: tarball {number}: {exc}") from None
        if not arch or "-" in arch:
            raise StreamError(f"{where}: tarball {number}: arch {preview(arch)} is not valid")
        check_relative_path(path, where=f"{where}: tarball {number}")
        tarballs.append((version, arch, path, size, sha256, date))
    return tarballs


def _entries_from_rows(tarballs: list[_Tarball], rows: list[Any], where: str) -> list[AgentEntry]:
    """Entries from ``[tarball row number, os]`` rows, in order, each checked."""
    names: set[str] = set()
    entries: list[AgentEntry] = []
    count = len(tarballs)
    for number, row in enumerate(rows):
        if type(row) is list and len(row) == 2:
            index, os_name = row
        else:
            index = os_name = None
        if not (type(index) is int and 0 <= index < count and type(os_name) is str):
            raise StreamError(
                f"{where}: entry {number} must be [tarball row number below {count}, os], "
                f"got {_preview_row(row)}"
            )
        if os_name not in names:
            if not os_name or "-" in os_name:
                raise StreamError(
                    f"{where}: entry {number}: release {preview(os_name)} is not valid"
                )
            names.add(os_name)
        version, arch, path, size, sha256, date = tarballs[index]
        entries.append(AgentEntry(BinaryVersion(version, os_name, arch), path, size, sha256, date))
    return entries


def _preview_row(row: object) -> str:
    """A kept row as a message quotes it: its fields, each cut short."""
    if type(row) is list and len(row) <= 6:
        return f"[{', '.join(preview(field) for field in row)}]"
    return preview(row)


def _join_url(base_url: str, path: str) -> str:
    """Join a path relative to a stream's base URL, as Juju does (one slash between)."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def check_relative_path(path: object, *, where: str) -> str:
    """Accept only a plain relative path that stays below the stream's base URL.

    Refused: a scheme or host (``http://h/x``, ``//h/x``, ``c:/x``), a leading slash or
    backslash, ``.`` or ``..`` segments, control characters, a query or fragment, and all of
    these when percent-escaped (``%2e%2e/x``, ``%2fetc``), since a web server decodes them.
    """
    if not isinstance(path, str) or not path:
        raise StreamError(f"{where}: path must be a non-empty string, got {preview(path)}")
    if _PLAIN_PATH.match(path) or not _leaves_base(path):
        return path
    raise StreamError(
        f"{where}: path {preview(path)} must be relative to the stream URL and stay below it "
        "(no scheme, host, leading slash, '..', query or percent-escaped separators)"
    )


def _leaves_base(path: str) -> bool:
    """The full check of :func:`check_relative_path`: True when ``path`` is refused."""
    decoded = unquote(path)
    try:
        parts = urlsplit(path)
    except ValueError:  # e.g. "//[x": an unparsable host
        return True
    segments = decoded.replace("\\", "/").split("/")
    normalised = posixpath.normpath(decoded)
    return bool(
        parts.scheme
        or parts.netloc
        or any(p.startswith(("/", "\\")) for p in (path, decoded))
        or "\\" in decoded
        or any(s in ("..", ".") for s in segments)
        or normalised == ".."
        or normalised.startswith(("../", "/"))
        or _CONTROL.search(decoded)
        or "?" in path
        or "#" in path
        or ":" in segments[0]
    )


def _load_json(body: bytes, url: str) -> dict[str, Any]:
    try:
        doc = load_json(body)
    except MalformedJSONError as exc:
        raise StreamError(f"{url}: {exc}") from None
    if not isinstance(doc, dict):
        raise StreamError(f"{url}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _check_format(doc: Mapping[str, Any], expected: str, url: str) -> None:
    if doc.get("format") != expected:
        raise StreamError(f"{url}: format is {preview(doc.get('format'))}, expected {expected!r}")


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
    if len(index) > MAX_INDEX_ENTRIES:
        raise StreamError(
            f"{url}: 'index' lists {len(index)} content ids, more than the {MAX_INDEX_ENTRIES} "
            "accepted (an agent stream's index lists a few)"
        )
    cid = content_id(stream)
    entry = index.get(cid)
    if entry is None:
        ids = listed(sorted(index))
        raise NotFoundError(f"{url}: no content id {cid} (stream {stream!r}); it lists: {ids}")
    if not isinstance(entry, dict):
        raise StreamError(f"{url}: entry {cid} must be an object")
    if entry.get("datatype") != DATATYPE:
        raise StreamError(
            f"{url}: entry {cid} has datatype {preview(entry.get('datatype'))}, "
            f"expected {DATATYPE!r}"
        )
    if entry.get("format") not in (None, PRODUCTS_FORMAT):
        raise StreamError(f"{url}: entry {cid} has format {preview(entry.get('format'))}")
    return check_relative_path(entry.get("path"), where=f"{url}: entry {cid}")


def _scalars(node: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The fields of one level that its children inherit: everything but objects and lists.

    (python-simplestreams inherits every string field; we pass down numbers too, so that a
    malformed size is reported as such rather than as missing.)
    """
    _check_fields(node, where)
    return {k: v for k, v in node.items() if not isinstance(v, (dict, list))}


def _check_fields(node: Mapping[str, Any], where: str) -> None:
    if len(node) > MAX_FIELDS:
        raise StreamError(
            f"{where} has {len(node)} fields, more than the {MAX_FIELDS} accepted for one "
            "object (an item has about ten)"
        )


def _children(node: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = node.get(key, {})
    if not isinstance(value, dict):
        raise StreamError(f"{where}: '{key}' must be an object")
    return value


class _ItemReader:
    """Turns flattened items into entries, parsing each version and checking each path once."""

    def __init__(self) -> None:
        self._versions: dict[str, Version] = {}
        self._paths: set[str] = set()

    def entry(self, flat: Mapping[str, Any], where: str, date: str) -> AgentEntry:
        missing = [k for k in _ITEM_FIELDS if k not in flat]
        if missing:
            raise StreamError(f"{where}: missing {', '.join(missing)}")
        size = flat["size"]
        refused = size_error(size)
        if refused:
            raise StreamError(f"{where}: {refused}")
        sha256 = flat["sha256"]
        if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
            raise StreamError(f"{where}: sha256 must be 64 hex digits, got {preview(sha256)}")
        for key in ("version", "arch", "release"):
            value = flat[key]
            if not isinstance(value, str) or not value or "-" in value and key != "version":
                raise StreamError(f"{where}: {key} {preview(value)} is not valid")
        text = flat["version"]
        number = self._versions.get(text)
        if number is None:
            try:
                number = parse(text)
            except InvalidInputError as exc:
                raise StreamError(f"{where}: {exc}") from None
            self._versions[text] = number
        path = flat["path"]
        if not isinstance(path, str) or path not in self._paths:
            self._paths.add(check_relative_path(path, where=where))
        return AgentEntry(
            binary=BinaryVersion(number, flat["release"], flat["arch"]),
            path=path,
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
        raise StreamError(f"{url}: content_id is {preview(cid)}, expected {content_id(stream)!r}")
    reader = _ItemReader()
    found: dict[tuple[Version, str, str], AgentEntry] = {}
    for flat, where, date in _flattened_items(doc, url):
        if flat.get("ftype", "tar.gz") != "tar.gz":
            continue
        entry = reader.entry(flat, where, date)
        key = (entry.version, entry.os, entry.arch)
        if key not in found or found[key].date < entry.date:
            found[key] = entry
    rank = {version: n for n, version in enumerate(sorted({e.version for e in found.values()}))}
    return sorted(found.values(), key=lambda e: (rank[e.version], e.os, e.arch), reverse=True)


def _flattened_items(
    doc: Mapping[str, Any], url: str
) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Every item of a products document with the fields it inherits, where it is, its date.

    Raises:
        StreamError: a malformed level, more than :data:`MAX_ITEMS` items, or more than
            :data:`MAX_FIELDS` fields on one object.
    """
    top = _scalars(doc, url)
    items = 0
    for pname, product in _children(doc, "products", url).items():
        where_p = f"{url}: product {preview_text(pname)}"
        if not isinstance(product, dict):
            raise StreamError(f"{where_p} must be an object")
        pflat = {**top, **_defaults_from_product_id(pname), **_scalars(product, where_p)}
        for date, ventry in _children(product, "versions", where_p).items():
            where_v = f"{where_p} version {preview_text(date)}"
            if not isinstance(ventry, dict):
                raise StreamError(f"{where_v} must be an object")
            vflat = {**pflat, **_scalars(ventry, where_v)}
            for iname, item in _children(ventry, "items", where_v).items():
                where_i = f"{where_v} item {preview_text(iname)}"
                items += 1
                if items > MAX_ITEMS:
                    raise StreamError(
                        f"{url}: lists more than {MAX_ITEMS} items (the official agent stream "
                        "lists under 1,500)"
                    )
                if not isinstance(item, dict):
                    raise StreamError(f"{where_i} must be an object")
                _check_fields(item, where_i)
                yield {**vflat, **item}, where_i, str(date)  # an item has no children


def _defaults_from_product_id(pname: str) -> dict[str, str]:
    """``com.ubuntu.juju:ubuntu:amd64`` implies release ubuntu and arch amd64."""
    parts = pname.split(":")
    if len(parts) == 3 and parts[0] == "com.ubuntu.juju":
        return {"release": parts[1], "arch": parts[2]}
    return {}


Getter = Callable[[str], bytes]
"""A plain fetch function: a URL's body, raising NotFoundError when it does not exist."""


class FetchedDocument(Protocol):
    """What :meth:`DocumentSource.get_document` returns (an ``upgrader.fetch.Document``)."""

    @property
    def body(self) -> bytes:
        """The body; empty when not modified."""
        ...

    @property
    def etag(self) -> str | None:
        """The ``ETag`` header."""
        ...

    @property
    def last_modified(self) -> str | None:
        """The ``Last-Modified`` header."""
        ...

    @property
    def not_modified(self) -> bool:
        """True on HTTP 304."""
        ...


class DocumentSource(Protocol):
    """Where metadata comes from: an ``upgrader.fetch.Fetcher`` or anything like it."""

    def get_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchedDocument:
        """Read a document, conditionally when validators are given.

        Raises:
            NotFoundError: the document does not exist (HTTP 404/401, missing file).
            StreamError: any other failure (TransientError for network trouble).
        """
        ...


@dataclasses.dataclass(frozen=True)
class _Fetched:
    body: bytes
    validators: Validators


def _fetcher_of(source: DocumentSource | Getter) -> Callable[[str], _Fetched]:
    """One way of fetching, whichever kind of source was given."""
    get_document = getattr(source, "get_document", None)
    if get_document is not None:

        def fetch(url: str) -> _Fetched:
            doc = get_document(url)
            return _Fetched(
                doc.body,
                Validators(url, doc.etag, doc.last_modified, hashlib.sha256(doc.body).hexdigest()),
            )

        return fetch
    if not callable(source):
        raise TypeError(f"source must have get_document() or be callable, not {source!r}")
    get: Getter = source

    def fetch_plain(url: str) -> _Fetched:
        body = get(url)
        return _Fetched(body, Validators(url, sha256=hashlib.sha256(body).hexdigest()))

    return fetch_plain


class _NoMetadataError(NotFoundError):
    """The source has no (complete) metadata of one kind; ``str()`` says what was tried."""


def read_stream(
    base_url: str,
    stream: str,
    source: DocumentSource | Getter,
    *,
    trust: TrustPolicy | None = None,
) -> StreamContents:
    """Read the metadata of one agent stream, signed first (see the module docstring).

    Args:
        base_url: the stream URL (the directory holding ``streams/v1``).
        stream: the stream name.
        source: an ``upgrader.fetch.Fetcher`` (or anything with its ``get_document``), or a
            function returning a URL's body and raising NotFoundError when it does not exist.
        trust: which metadata to accept; the default verifies against Juju's release key and
            refuses unsigned sources.

    Returns:
        The stream's entries, with ``verified`` telling whether they came from verified
        signed metadata.

    Raises:
        SignatureError: signed metadata is required and missing, or a signature does not
            verify while verification is required.
        NotFoundError: no metadata at all, or the index lacks the stream.
        TransientError: the source could not be reached.
        StreamError: a malformed document, naming its URL.
        InvalidInputError: ``trust.keys`` holds no usable public key.
    """
    base_url = check_stream_url(base_url)
    trust = trust or TrustPolicy()
    fetch = _fetcher_of(source)
    required = trust.requires_signature(base_url)
    try:
        return _read_metadata(base_url, stream, fetch, trust.keys_for(base_url))
    except _NoMetadataError as absent:
        if required:
            raise SignatureError(_refusal(base_url, str(absent), trust)) from None
        reason = f"no signed metadata ({absent})"
        signed_failure: StreamError = absent
    except (NotFoundError, SignatureError) as exc:
        if required:
            raise
        reason = str(exc)
        signed_failure = exc
    try:
        contents = _read_metadata(base_url, stream, fetch, keys=None)
    except _NoMetadataError as absent:
        if not isinstance(signed_failure, _NoMetadataError):
            raise signed_failure from None
        raise NotFoundError(
            f"no agent metadata at {base_url}: {signed_failure}; {absent}"
        ) from None
    return dataclasses.replace(contents, unverified_reason=reason)


def _refusal(base_url: str, what: str, trust: TrustPolicy) -> str:
    """The message refusing a source that has no signed metadata."""
    if trust.is_official(base_url):
        return (
            f"no signed agent metadata at {base_url}: {what}; the official stream is always "
            "verified against Juju's release key, so its unsigned metadata is not read (a "
            "proxy or mirror in between may be serving an incomplete copy)"
        )
    return (
        f"no signed agent metadata at {base_url}: {what}; signature verification is on, so "
        f"unsigned metadata is not read. To accept unsigned metadata from this source, "
        f"{trust.allow_unsigned}"
    )


def _tried(urls: list[str]) -> str:
    return f"tried {', '.join(urls)} (not found)"


def _read_metadata(
    base_url: str, stream: str, fetch: Callable[[str], _Fetched], keys: str | None
) -> StreamContents:
    """Find the index, then read the products file it names.

    With ``keys``, the signed documents are read and each must verify against them (a signed
    index naming a missing products file is no metadata at all); without, the unsigned ones.
    """
    tried: list[str] = []
    for index_path in SIGNED_INDEX_PATHS if keys is not None else INDEX_PATHS:
        index_url = _join_url(base_url, index_path)
        try:
            index = fetch(index_url)
        except NotFoundError:
            tried.append(index_url)
            continue
        index_text = (
            index.body if keys is None else verify_clearsigned(index.body, keys, source=index_url)
        )
        products_path = parse_index(index_text, index_url, stream)
        products_url = _join_url(base_url, products_path)
        try:
            products = fetch(products_url)
        except NotFoundError:
            if keys is None:
                raise
            raise _NoMetadataError(
                f"the signed index {index_url} names {products_url}, which was not found"
            ) from None
        products_text = (
            products.body
            if keys is None
            else verify_clearsigned(products.body, keys, source=products_url)
        )
        entries = parse_products(products_text, products_url, stream)
        return StreamContents(
            base_url,
            stream,
            index_url,
            products_url,
            tuple(entries),
            verified=keys is not None,
            validators=index.validators,
        )
    raise _NoMetadataError(_tried(tried))


def check_for_changes(validators: Validators, source: DocumentSource | Getter) -> bool:
    """Tell, with one request, whether the index read earlier has changed.

    Args:
        validators: ``StreamContents.validators`` of the earlier read.
        source: as for :func:`read_stream`; only a ``get_document`` source can make a
            conditional request (a plain function fetches the index and compares hashes).

    Returns:
        False when the server answers 304 Not Modified or sends the same bytes as before;
        True when the index changed or no longer exists (read the stream again to find out
        what happened).

    Raises:
        TransientError: the source could not be reached.
        StreamError: another failure fetching the index.
    """
    get_document = getattr(source, "get_document", None)
    try:
        if get_document is not None:
            doc = get_document(
                validators.url, etag=validators.etag, last_modified=validators.last_modified
            )
            if doc.not_modified:
                return False
            body = doc.body
        else:
            body = _fetcher_of(source)(validators.url).body
    except NotFoundError:
        return True
    return hashlib.sha256(body).hexdigest() != validators.sha256
