"""Regenerate tests/data/sample-stream: a small agent stream in the official (condensed) shape.

It lets a newcomer run ``juju-upgrader plan`` and ``juju-upgrader sync`` right after cloning,
without reaching streams.canonical.com. The tarballs are tiny but real gzipped tars.

Run from the repository root: ``python tests/data/make_sample_stream.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.streams import Agent, write_stream  # noqa: E402

RELEASES = {
    "2.9.50": "20240806",
    "2.9.51": "20241015",
    "2.9.52": "20250306",
    "3.4.5": "20240801",
    "3.4.6": "20241002",
    "3.5.6": "20250110",
    "3.5.7": "20250401",
    "3.6.10": "20250820",
    "3.6.11": "20250924",
    "3.6.12": "20251105",
}


def main() -> None:
    """Write the sample stream next to this script."""
    root = HERE / "sample-stream"
    shutil.rmtree(root, ignore_errors=True)
    agents = [
        Agent(version, arch, date=date)
        for version, date in RELEASES.items()
        for arch in ("amd64", "arm64")
    ]
    write_stream(root, agents, condensed=True)
    print(f"wrote {len(agents)} agents to {root}")


if __name__ == "__main__":
    main()
