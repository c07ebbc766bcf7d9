"""Build agent simplestreams trees on disk for tests, in the expanded or the condensed form."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Agent:
    """One agent tarball to publish."""

    version: str
    arch: str = "amd64"
    os: str = "ubuntu"
    date: str = "20250101"
    content: bytes | None = None

    @property
    def data(self) -> bytes:
        """The tarball bytes: a real gzipped tar holding a small jujud script."""
        if self.content is not None:
            return self.content
        return make_tarball(f"#!/bin/sh\necho {self.version}-{self.arch}\n".encode())

    @property
    def official_path(self) -> str:
        """Where the official stream puts it: one linux tarball per version and arch."""
        return f"agent/{self.version}/juju-{self.version}-linux-{self.arch}.tgz"


def make_tarball(jujud: bytes) -> bytes:
    """A gzipped tar with one ``jujud`` member, reproducible byte for byte."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("jujud")
        info.size = len(jujud)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(jujud))
    # zlib's own gzip wrapper (modification time 0), as gzip.compress(mtime=0) writes it since
    # Python 3.11; 3.10's gzip.compress writes another OS byte, which would change the digests
    # of the committed test trees.
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(raw.getvalue()) + packer.flush()


def write_stream(
    root: Path,
    agents: Iterable[Agent],
    *,
    stream: str = "released",
    condensed: bool = False,
    index_name: str = "index2.json",
    write_tarballs: bool = True,
) -> Path:
    """Write ``root/streams/v1/<index>`` and a products file listing the agents.

    Expanded form: every field on every item, as ``juju sync-agent-binary --local-dir`` writes.
    Condensed form: arch/release/ftype on the product and version on the date entry, with
    official-style paths, as the official stream is published.
    """
    products: dict[str, dict] = {}
    for agent in agents:
        data = agent.data
        path = (
            agent.official_path
            if condensed
            else (f"{stream}/juju-{agent.version}-{agent.os}-{agent.arch}.tgz")
        )
        if write_tarballs:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        item = {
            "size": len(data),
            "path": path,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        pid = f"com.ubuntu.juju:{agent.os}:{agent.arch}"
        if condensed:
            product = products.setdefault(
                pid,
                {"arch": agent.arch, "release": agent.os, "ftype": "tar.gz", "versions": {}},
            )
            date_entry = product["versions"].setdefault(
                agent.date, {"version": agent.version, "items": {}}
            )
            if date_entry["version"] != agent.version:
                item["version"] = agent.version
            item["md5"] = hashlib.md5(data).hexdigest()  # noqa: S324 - published field
        else:
            product = products.setdefault(
                pid, {"version": agent.version, "arch": agent.arch, "versions": {}}
            )
            date_entry = product["versions"].setdefault(agent.date, {"items": {}})
            item = {
                "release": agent.os,
                "version": agent.version,
                "arch": agent.arch,
                **item,
                "ftype": "tar.gz",
            }
        date_entry["items"][f"{agent.version}-{agent.os}-{agent.arch}"] = item
    cid = f"com.ubuntu.juju:{stream}:agents"
    products_path = f"streams/v1/com.ubuntu.juju-{stream}-agents.json"
    updated = "Wed, 05 Nov 2025 12:00:00 +0000"
    products_doc = {
        "products": products,
        "updated": updated,
        "format": "products:1.0",
        "content_id": cid,
    }
    index_doc = {
        "index": {
            cid: {
                "updated": updated,
                "format": "products:1.0",
                "datatype": "content-download",
                "path": products_path,
                "products": sorted(products),
            }
        },
        "updated": updated,
        "format": "index:1.0",
    }
    (root / "streams/v1").mkdir(parents=True, exist_ok=True)
    (root / products_path).write_text(json.dumps(products_doc, indent=4))
    (root / "streams/v1" / index_name).write_text(json.dumps(index_doc, indent=4))
    return root
