"""Juju agent version numbers, with Juju's own grammar and ordering.

The grammar and order of ``github.com/juju/version/v2`` (``version.go``); ARCHITECTURE.md
("Versions") says why ``packaging.version`` cannot represent them.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from .bounds import preview
from .errors import InvalidInputError

_NUM = r"([0-9]{1,9})"  # ASCII digits only: \d would accept other scripts' digits
# M.m.p, M.m.p.b, M.m-tagP, M.m-tagP.b
_STRICT = re.compile(rf"^{_NUM}\.{_NUM}(?:\.{_NUM}|-([a-z]+){_NUM})(?:\.{_NUM})?\Z")
# The lenient forms people type and docs print: M, M.m, M.m-tag (patch 0).
_LENIENT_SHORT = re.compile(rf"^{_NUM}(?:\.{_NUM}(?:-([a-z]+))?)?\Z")
_MAJOR_MINOR = re.compile(rf"^{_NUM}(?:\.{_NUM})?\Z")

STRICT_FORMS = "M.m.p, M.m.p.b, M.m-tagP or M.m-tagP.b (e.g. 3.6.12, 2.9.42.1, 3.1-beta2)"
LENIENT_FORMS = f"{STRICT_FORMS}, or M, M.m, M.m-tag (e.g. 3, 3.6)"


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Version:
    """A Juju version number: major.minor, then a patch or a tag with its number, then a build.

    Ordering compares major, minor, then the tag (no tag ranks above any tag; tags compare as
    plain strings), then patch, then build.
    """

    major: int
    minor: int = 0
    patch: int = 0
    tag: str = ""
    build: int = 0

    def __post_init__(self) -> None:
        """Reject values no Juju version can hold."""
        for name in ("major", "minor", "patch", "build"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**9:
                raise InvalidInputError(f"invalid version field {name}={value!r}")
        if self.tag and not re.fullmatch(r"[a-z]+", self.tag):
            raise InvalidInputError(f"invalid version tag {self.tag!r}: use lowercase letters")

    @property
    def _key(self) -> tuple[int, int, bool, str, int, int]:
        return (self.major, self.minor, self.tag == "", self.tag, self.patch, self.build)

    def __lt__(self, other: object) -> bool:
        """Order as Juju's ``Number.Compare`` does."""
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __str__(self) -> str:
        """The canonical text Juju prints: ``3.6.12``, ``3.1-beta2``, ``2.9.42.1``."""
        text = (
            f"{self.major}.{self.minor}-{self.tag}{self.patch}"
            if self.tag
            else f"{self.major}.{self.minor}.{self.patch}"
        )
        return f"{text}.{self.build}" if self.build else text

    @property
    def is_release(self) -> bool:
        """True for a version without a tag or build (Juju's ``IsDev`` is the opposite)."""
        return not self.tag and not self.build

    @property
    def major_minor(self) -> tuple[int, int]:
        """The (major, minor) series this version belongs to."""
        return (self.major, self.minor)

    def to_patch(self) -> Version:
        """This version without its build number (Juju's ``ToPatch``)."""
        return dataclasses.replace(self, build=0)


def _int(text: str | None) -> int:
    return int(text) if text else 0


def parse(text: str) -> Version:
    """Parse a version in one of Juju's strict forms, as found in streams and on the wire.

    Raises:
        InvalidInputError: naming the input and the accepted forms.
    """
    match = _STRICT.match(text) if isinstance(text, str) else None
    if not match:
        raise InvalidInputError(f"invalid version {preview(text)}: use {STRICT_FORMS}")
    major, minor, patch, tag, tag_patch, build = match.groups()
    return Version(
        major=_int(major),
        minor=_int(minor),
        patch=_int(tag_patch if tag else patch),
        tag=tag or "",
        build=_int(build),
    )


def parse_lenient(text: str) -> Version:
    """Parse a version typed by a person: the strict forms plus ``M``, ``M.m`` and ``M.m-tag``.

    ``2.02`` is 2.2.0 and ``1.2-alpha`` is 1.2-alpha0, as Juju's non-strict parser reads them.

    Raises:
        InvalidInputError: naming the input and the accepted forms.
    """
    if isinstance(text, str) and (match := _LENIENT_SHORT.match(text)):
        major, minor, tag = match.groups()
        return Version(major=_int(major), minor=_int(minor), tag=tag or "")
    try:
        return parse(text)
    except InvalidInputError:
        raise InvalidInputError(f"invalid version {preview(text)}: use {LENIENT_FORMS}") from None


@dataclasses.dataclass(frozen=True)
class SeriesFilter:
    """A ``major[.minor]`` filter, as ``sync-binaries version=`` and Juju's sync take it."""

    major: int
    minor: int | None = None

    def matches(self, version: Version) -> bool:
        """True when the version is in this major (and minor, when one was given)."""
        return version.major == self.major and self.minor in (None, version.minor)

    def __str__(self) -> str:
        """``3`` or ``3.6``."""
        return str(self.major) if self.minor is None else f"{self.major}.{self.minor}"


def parse_major_minor(text: str) -> SeriesFilter:
    """Parse ``major[.minor]``: ``2.03`` is (2, 3), ``3`` is major 3 with any minor.

    Raises:
        InvalidInputError: for anything else; a full version gets a hint with its major.minor.
    """
    if isinstance(text, str) and (match := _MAJOR_MINOR.match(text)):
        major, minor = match.groups()
        return SeriesFilter(int(major), int(minor) if minor is not None else None)
    hint = ""
    if isinstance(text, str) and (full := re.match(r"([0-9]{1,9}\.[0-9]{1,9})[.-]", text)):
        hint = f" (use {full.group(1)}, not {text})"
    raise InvalidInputError(
        f"invalid major.minor version {preview(text)}: give a major or major.minor such as 3 "
        f"or 3.6{hint}"
    )


@dataclasses.dataclass(frozen=True, order=True)
class BinaryVersion:
    """A version plus the OS (or, before Juju 2.9, the series) and the architecture."""

    number: Version
    release: str
    arch: str

    def __str__(self) -> str:
        """``3.6.12-ubuntu-amd64``."""
        return f"{self.number}-{self.release}-{self.arch}"


_BINARY = re.compile(r"^(.+)-([^-\s]+)-([^-\s]+)\Z")


def parse_binary(text: str) -> BinaryVersion:
    """Parse ``<version>-<os or series>-<arch>`` such as ``3.6.12-ubuntu-amd64``.

    Raises:
        InvalidInputError: naming the input and the accepted form.
    """
    match = _BINARY.match(text) if isinstance(text, str) else None
    try:
        if not match:
            raise InvalidInputError(text)
        return BinaryVersion(parse(match.group(1)), match.group(2), match.group(3))
    except InvalidInputError:
        raise InvalidInputError(
            f"invalid binary version {preview(text)}: use <version>-<os>-<arch>, e.g. "
            "3.6.12-ubuntu-amd64"
        ) from None
