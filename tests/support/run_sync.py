"""Run one sync in a child process, for tests that kill it or limit its file size.

``python -m support.run_sync <stream url> <storage root> <version>... [--arch A]...
[--file-size-limit BYTES]`` prints one JSON line: ``{"ok": true, "staged": [...]}`` or
``{"ok": false, "error": "<message>", "type": "<exception class>"}`` (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
from pathlib import Path

from support.staging import contents, fetcher
from upgrader.errors import UpgraderError
from upgrader.mirror import Mirror
from upgrader.sync import SyncRequest, sync
from upgrader.versions import parse


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("root", type=Path)
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--arch", action="append", default=[])
    parser.add_argument("--file-size-limit", type=int)
    args = parser.parse_args()
    if args.file_size_limit is not None:
        # Writing past the limit then fails with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size_limit, args.file_size_limit))
    request = SyncRequest(
        versions=tuple(parse(v) for v in args.versions),
        architectures=tuple(args.arch or ["amd64"]),
    )
    try:
        result = sync(Mirror(args.root), contents(args.url), request, fetcher(), parallel=2)
    except UpgraderError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        return 1
    print(json.dumps({"ok": True, "staged": [str(b) for b in result.staged]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
