"""The staged mirror read by real consumers: python-simplestreams' tools and Juju's own layout."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.faulty_server import FaultyServer
from support.servers import serve_directory
from support.staging import assert_valid, contents, fetcher, source
from support.streams import Agent, make_tarball
from upgrader.mirror import Mirror, render_index, render_products
from upgrader.streams import TrustPolicy, read_stream
from upgrader.sync import SyncRequest, sync
from upgrader.versions import parse_major_minor

BIN = Path(sys.executable).parent
JUJU_TREE = Path(__file__).resolve().parents[1] / "data/juju-local-dir"


def sstream(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), "--no-verify", "--path", "streams/v1/index2.json", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def query(tools: str) -> list[dict[str, Any]]:
    return json.loads(sstream("sstream-query", "--json", tools).stdout)


def juju_agent(version: str, arch: str, os_name: str = "ubuntu") -> Agent:
    """The tarball content the hand-written Juju tree holds for this binary."""
    jujud = f"#!/bin/sh\necho {version}-ubuntu-{arch}\n".encode()
    return Agent(version, arch, os=os_name, content=make_tarball(jujud))


@pytest.fixture
def staged(tmp_path: Path) -> Mirror:
    """A mirror staged by our sync, with content shared by two OS names."""
    published = [
        Agent(v, a, os=o, content=f"linux {v} {a}".encode() * 1000)
        for v in ("3.6.11", "3.6.12")
        for a in ("amd64", "arm64")
        for o in ("ubuntu", "centos")
    ]
    root = source(tmp_path / "upstream", published)
    mirror = Mirror(tmp_path / "storage")
    mirror.root.mkdir()
    request = SyncRequest(
        series=parse_major_minor("3.6"),
        os_names=("ubuntu", "centos"),
        architectures=("amd64", "arm64"),
    )
    with FaultyServer(root) as server:
        sync(mirror, contents(server.url), request, fetcher())
    return mirror


def test_sstream_query_lists_exactly_the_staged_items(staged: Mirror) -> None:
    items = query(str(staged.tools))
    listed = {
        (i["item_name"], i["path"], int(i["size"]), i["sha256"], i["content_id"]) for i in items
    }
    expected = {
        (str(e.binary), e.path, e.size, e.sha256, "com.ubuntu.juju:released:agents")
        for e in staged.staged("released")
    }
    assert listed == expected and len(items) == 8
    for item in items:  # every sha256 sstream-query reports is the file's real one
        data = (staged.tools / item["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert Path(item["item_url"]) == staged.tools / item["path"]
    assert len(list(staged.tools.glob("released/*.tgz"))) == 4  # shared content stored once


def test_sstream_mirror_copies_the_mirror_verifying_checksums(
    staged: Mirror, tmp_path: Path
) -> None:
    with serve_directory(staged.root) as url:
        sstream("sstream-mirror", f"{url}/tools", str(tmp_path / "copy"))
        for entry in staged.staged("released"):
            copied = (tmp_path / "copy" / entry.path).read_bytes()
            assert hashlib.sha256(copied).hexdigest() == entry.sha256
        victim = staged.tools / staged.staged("released")[0].path
        victim.write_bytes(b"X" + victim.read_bytes()[1:])
        failed = sstream("sstream-mirror", f"{url}/tools", str(tmp_path / "again"), check=False)
    assert failed.returncode != 0
    assert "Invalid sha256 Checksum" in failed.stderr


def juju_tree(tmp_path: Path) -> Mirror:
    shutil.copytree(JUJU_TREE, tmp_path / "juju")
    return Mirror(tmp_path / "juju")


EXPECTED_JUJU_ITEMS = {
    "3.6.14-ubuntu-amd64": "released/juju-3.6.14-ubuntu-amd64.tgz",
    "3.6.14-centos-amd64": "released/juju-3.6.14-centos-amd64.tgz",
    "3.6.14-ubuntu-arm64": "released/juju-3.6.14-ubuntu-arm64.tgz",
    "3.6.13-ubuntu-amd64": "released/juju-3.6.13-ubuntu-amd64.tgz",
    "3.6.13-ubuntu-arm64": "released/juju-3.6.13-ubuntu-arm64.tgz",
}


def test_a_tree_written_by_juju_reads_back(tmp_path: Path) -> None:
    mirror = juju_tree(tmp_path)
    assert mirror.streams() == ("released",)
    staged = mirror.staged("released")
    assert {str(e.binary): e.path for e in staged} == EXPECTED_JUJU_ITEMS
    assert_valid(mirror)
    # The stream reader (and so the charm's own source option) reads it too, as a file URL.
    read = read_stream(
        mirror.tools.as_uri(), "released", fetcher(), trust=TrustPolicy(verify_signatures=False)
    )
    assert {str(e.binary): e.sha256 for e in read.entries} == {
        str(e.binary): e.sha256 for e in staged
    }
    assert {i["item_name"] for i in query(str(mirror.tools))} == set(EXPECTED_JUJU_ITEMS)


def _normalised(doc: Any) -> Any:
    """Drop what legitimately differs between two writers: stamps, date keys, product version."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key == "updated":
                continue
            if key == "versions" and isinstance(value, dict):
                items = {k: v for dated in value.values() for k, v in dated["items"].items()}
                value = {"<date>": {"items": items}}
            out[key] = _normalised(value)
        if "versions" in out:
            out.pop("version", None)
        return out
    if isinstance(doc, list):
        return [_normalised(v) for v in doc]
    return doc


def test_our_writer_produces_the_juju_field_set(tmp_path: Path) -> None:
    mirror = juju_tree(tmp_path)
    v1 = mirror.tools / "streams/v1"
    entries = mirror.staged("released")
    when = datetime.datetime(2025, 11, 5, 12, tzinfo=datetime.timezone.utc)
    ours = json.loads(render_products("released", entries, when))
    theirs = json.loads((v1 / "com.ubuntu.juju-released-agents.json").read_text())
    assert _normalised(ours) == _normalised(theirs)
    assert (
        json.dumps(ours, indent=4).splitlines()[:3]
        == ((v1 / "com.ubuntu.juju-released-agents.json").read_text().splitlines()[:3])
    )
    index = render_index({"released": entries}, when).decode()
    assert index == (v1 / "index2.json").read_text() == (v1 / "index.json").read_text()


def test_a_sync_onto_a_juju_written_tree_merges_with_it(tmp_path: Path) -> None:
    mirror = juju_tree(tmp_path)
    published = [juju_agent(v, a) for v in ("3.6.13", "3.6.14", "3.6.15") for a in ("amd64",)]
    published.append(juju_agent("3.6.14", "amd64", "centos"))
    root = source(tmp_path / "upstream", published)
    request = SyncRequest(series=parse_major_minor("3.6"), os_names=("ubuntu", "centos"))
    with FaultyServer(root) as server:
        result = sync(mirror, contents(server.url), request, fetcher())
        assert [r.path for r in server.requests_for(".tgz")] == [
            "/agent/3.6.15/juju-3.6.15-linux-amd64.tgz"
        ]
    assert sorted(str(b) for b in result.present) == [
        "3.6.13-ubuntu-amd64",
        "3.6.14-centos-amd64",
        "3.6.14-ubuntu-amd64",
    ]
    assert [str(b) for b in result.staged] == ["3.6.15-ubuntu-amd64"]
    after = {str(e.binary): e.path for e in mirror.staged("released")}
    assert after == {
        **EXPECTED_JUJU_ITEMS,
        "3.6.15-ubuntu-amd64": "released/juju-3.6.15-ubuntu-amd64.tgz",
    }
    assert_valid(mirror)
    assert len(query(str(mirror.tools))) == 6
