"""What a unit serving the staged mirror tells: its status line and its peers' data.

Plain data, no ops. The unit status shows :func:`serving_message`; the leader shares
:class:`LeaderMirror` over the peer relation so that the other units copy its mirror (see
:mod:`upgrader.syncjob`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from .errors import InvalidInputError
from .streams import AgentEntry, check_stream_url
from .versions import Version

MIRROR_URL_KEY = "mirror-url"
REVISION_KEY = "mirror-revision"
UNIT_KEY = "leader-unit"
_REVISION = re.compile(r"[0-9a-f]{16}\Z")
_UNIT = re.compile(r"[a-z][a-z0-9-]{0,62}/[0-9]{1,9}\Z")  # Juju's unit names


def serving_message(
    entries: Iterable[AgentEntry], os_name: str, architectures: Iterable[str], url: str
) -> str:
    """The unit status while serving.

    ``serving 3.6.12 (2 arches); agent-metadata-url=http://10.1.2.3:8080/tools``, with
    ``and N older versions`` when more are staged, or ``serving no agents yet`` when none of the
    configured OS and architectures are staged.
    """
    wanted = set(architectures)
    by_version: dict[Version, set[str]] = {}
    for entry in entries:
        if entry.os == os_name and entry.arch in wanted:
            by_version.setdefault(entry.version, set()).add(entry.arch)
    if not by_version:
        what = "serving no agents yet (run sync-binaries)"
    else:
        newest = max(by_version)
        count = len(by_version[newest])
        what = f"serving {newest} ({count} arch{'es' if count != 1 else ''})"
        older = len(by_version) - 1
        if older:
            what += f" and {older} older version{'s' if older != 1 else ''}"
    return f"{what}; agent-metadata-url={url}"


def newest_staged(entries: Iterable[AgentEntry], os_name: str) -> Version | None:
    """The newest version staged for the OS, if any."""
    versions = [e.version for e in entries if e.os == os_name]
    return max(versions) if versions else None


@dataclasses.dataclass(frozen=True)
class LeaderMirror:
    """What the leader publishes in the peer application data.

    Attributes:
        url: the leader's ``agent-metadata-url`` (``http://ADDR:PORT/tools``).
        revision: :func:`upgrader.syncjob.mirror_revision` of what it serves.
        unit: the leader's unit name, where operators stage (``upgrader/0``).
    """

    url: str
    revision: str
    unit: str = ""

    def as_dict(self) -> dict[str, str]:
        """The relation data."""
        return {MIRROR_URL_KEY: self.url, REVISION_KEY: self.revision, UNIT_KEY: self.unit}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> LeaderMirror | None:
        """Read the relation data; None when the leader has not published a usable mirror."""
        url = data.get(MIRROR_URL_KEY, "")
        revision = data.get(REVISION_KEY, "")
        if not url or not revision:
            return None
        unit = data.get(UNIT_KEY, "")
        if not _REVISION.match(revision) or (unit and not _UNIT.match(unit)):
            return None  # not what a leader of this charm writes: the unit name reaches commands
        try:
            check_stream_url(url, option=MIRROR_URL_KEY)
        except InvalidInputError:
            return None
        return cls(url, revision, unit)
