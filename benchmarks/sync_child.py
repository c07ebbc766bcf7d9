#!/usr/bin/env python3
"""One sync with the staging engine, as ``sync_bench.py`` measures it: prints a JSON line.

Kept apart from ``sync_bench.py`` so that the measured process imports what a sync needs (as
``juju-upgrader sync`` does, requests included for an http(s) stream) and not the benchmark's
own machinery. The metadata is read with
``upgrader.upstream.read_upstream``, as the charm's ``sync-binaries`` and ``juju-upgrader sync``
read it: the verified metadata the previous sync kept is reused when one conditional request
finds the index unchanged.

Usage: ``sync_child.py --url URL --root DIR --arches a,b --versions v1,v2 [--parallel N]
[--keys FILE]`` (without ``--keys`` unsigned metadata is accepted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STREAM = "released"


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """A process's peak resident set (``VmHWM``), or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: Sequence[str]) -> int:
    """Sync once; print engine time, metadata time, peak RSS and what was staged."""
    parser = argparse.ArgumentParser(prog="sync_child.py")
    parser.add_argument("--url", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--arches", required=True)
    parser.add_argument("--versions", required=True)
    parser.add_argument("--parallel", type=int, default=None)
    parser.add_argument("--keys", type=Path, default=None, help="verify against these keys")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "lib"))
    from upgrader.fetch import Fetcher, FetchSettings
    from upgrader.mirror import Mirror
    from upgrader.streams import TrustPolicy
    from upgrader.sync import SyncRequest, sync
    from upgrader.upstream import read_upstream
    from upgrader.versions import parse

    if args.url.startswith(("http://", "https://")):
        # The fetcher imports requests on its first http(s) fetch; import it here with the
        # rest, so that the engine time is the sync's work (the process time counts it).
        import upgrader.webclient  # noqa: F401

    start = time.perf_counter()
    mirror = Mirror(args.root)
    with Fetcher(FetchSettings()) as fetcher:
        if args.keys is None:
            trust = TrustPolicy(verify_signatures=False)
        else:
            trust = TrustPolicy(keys=args.keys.read_text(), verify_signatures=True)
        read = read_upstream(mirror, args.url, STREAM, fetcher, trust=trust)
        contents = read.contents
        if contents.verified != (args.keys is not None):
            raise SystemExit(f"error: read {contents.index_url}, verified={contents.verified}")
        metadata_seconds = time.perf_counter() - start
        request = SyncRequest(
            versions=tuple(parse(v) for v in args.versions.split(",")),
            architectures=tuple(args.arches.split(",")),
        )
        options = {} if args.parallel is None else {"parallel": args.parallel}
        result = sync(mirror, contents, request, fetcher, **options)
    engine_seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "engine_seconds": engine_seconds,
                "metadata_seconds": metadata_seconds,
                "metadata_kept": read.cached,
                "peak_rss_mb": vm_hwm_mb(),
                "bytes_downloaded": result.bytes_downloaded,
                "staged": [str(b) for b in result.staged],
                "present": [str(b) for b in result.present],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
