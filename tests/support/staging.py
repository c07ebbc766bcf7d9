"""Helpers for staging tests: upstream streams with sizeable tarballs, fetchers, mirror checks."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from support.streams import Agent, write_stream
from upgrader.fetch import Fetcher, FetchSettings
from upgrader.mirror import Mirror
from upgrader.streams import StreamContents, TrustPolicy, read_stream


def agents(
    versions: Iterable[str], arches: Iterable[str] = ("amd64",), *, size: int = 256 * 1024
) -> list[Agent]:
    """Agents with reproducible pseudo-random content of ``size`` bytes each."""
    arch_list = list(arches)
    found = []
    for version in versions:
        for arch in arch_list:
            found.append(Agent(version, arch, content=_content(f"{version}-{arch}", size)))
    return found


@functools.lru_cache(maxsize=64)
def _content(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets


def source(root: Path, published: Iterable[Agent], **kwargs: Any) -> Path:
    """Write an official-shaped (condensed) upstream stream under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return write_stream(root, published, condensed=True, **kwargs)


def edit_items(root: Path, change: Callable[[str, dict[str, Any]], None]) -> None:
    """Change items of an upstream products file in place (``change(item name, item)``)."""
    path = root / "streams/v1/com.ubuntu.juju-released-agents.json"
    doc = json.loads(path.read_text())
    for product in doc["products"].values():
        for version in product["versions"].values():
            for name, item in version["items"].items():
                change(name, item)
    path.write_text(json.dumps(doc, indent=4))


def fetcher(**overrides: Any) -> Fetcher:
    """A fetcher with short timeouts and no back-off, for tests."""
    settings: dict[str, Any] = {"retries": 2, "backoff": 0.0, "read_timeout": 2.0}
    settings.update(overrides)
    return Fetcher(FetchSettings(**settings))


def contents(url: str, using: Fetcher | None = None, stream: str = "released") -> StreamContents:
    """Read an unsigned upstream stream."""
    client = using or fetcher()
    return read_stream(url, stream, client, trust=TrustPolicy(verify_signatures=False))


def metadata(root: Path) -> dict[str, bytes]:
    """Every published metadata file of a mirror, byte for byte."""
    v1 = root / "tools/streams/v1"
    return {p.name: p.read_bytes() for p in sorted(v1.glob("*.json"))} if v1.is_dir() else {}


def assert_valid(mirror: Mirror) -> None:
    """Every listed tarball exists with the listed size and sha256."""
    problems = mirror.verify()
    assert problems == [], problems
