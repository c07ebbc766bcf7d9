"""The serving status line and the leader's peer data."""

from __future__ import annotations

import pytest

from upgrader.serving import LeaderMirror, newest_staged, serving_message
from upgrader.streams import AgentEntry
from upgrader.versions import parse, parse_binary

URL = "http://10.1.2.3:8080/tools"
REVISION = "0123456789abcdef"


def entries(*binaries: str) -> list[AgentEntry]:
    return [AgentEntry(parse_binary(b), f"released/juju-{b}.tgz", 1, "0" * 64) for b in binaries]


@pytest.mark.parametrize(
    ("binaries", "arches", "text"),
    [
        (
            ("3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64"),
            ("amd64", "arm64"),
            "serving 3.6.12 (2 arches)",
        ),
        (("3.6.12-ubuntu-amd64",), ("amd64",), "serving 3.6.12 (1 arch)"),
        (
            ("3.6.12-ubuntu-amd64", "3.6.11-ubuntu-amd64", "3.5.7-ubuntu-amd64"),
            ("amd64",),
            "serving 3.6.12 (1 arch) and 2 older versions",
        ),
        (
            ("3.6.12-ubuntu-amd64", "3.6.11-ubuntu-amd64"),
            ("amd64",),
            "serving 3.6.12 (1 arch) and 1 older version",
        ),
        (
            ("3.7.0-ubuntu-s390x", "3.6.12-centos-amd64"),
            ("amd64",),
            "serving no agents yet (run sync-binaries)",
        ),
        ((), ("amd64",), "serving no agents yet (run sync-binaries)"),
    ],
)
def test_serving_message(binaries: tuple[str, ...], arches: tuple[str, ...], text: str) -> None:
    assert serving_message(entries(*binaries), "ubuntu", arches, URL) == (
        f"{text}; agent-metadata-url={URL}"
    )


def test_newest_staged() -> None:
    found = entries("3.6.9-ubuntu-amd64", "3.6.12-ubuntu-arm64", "3.7.0-centos-amd64")
    assert newest_staged(found, "ubuntu") == parse("3.6.12")
    assert newest_staged(found, "windows") is None


def test_leader_mirror_round_trip() -> None:
    mirror = LeaderMirror(URL, REVISION, "upgrader/1")
    assert mirror.as_dict() == {
        "mirror-url": URL,
        "mirror-revision": REVISION,
        "leader-unit": "upgrader/1",
    }
    assert LeaderMirror.from_dict(mirror.as_dict()) == mirror
    assert LeaderMirror.from_dict({"mirror-url": URL, "mirror-revision": REVISION}) == (
        LeaderMirror(URL, REVISION, "")
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"mirror-url": URL},
        {"mirror-revision": REVISION},
        {"mirror-url": "not a url", "mirror-revision": REVISION},
        {"mirror-url": "ftp://x/tools", "mirror-revision": REVISION},
        # A leader of this charm writes a 16-digit hex revision and a unit name; anything else
        # would reach messages and the commands a plan prints.
        {"mirror-url": URL, "mirror-revision": "abc"},
        {"mirror-url": URL, "mirror-revision": REVISION + "\x1b[31m"},
        {"mirror-url": URL, "mirror-revision": REVISION, "leader-unit": "upgrader/0; rm -rf /"},
        {"mirror-url": URL, "mirror-revision": REVISION, "leader-unit": "x" * 10_000},
    ],
)
def test_unusable_leader_data_is_ignored(data: dict[str, str]) -> None:
    assert LeaderMirror.from_dict(data) is None
