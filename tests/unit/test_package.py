"""The domain package stays free of ops, so the client tool and plain tests can use it."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import upgrader
from support.servers import serve_directory

PACKAGE = Path(upgrader.__file__).parent
LOCAL_STREAM = Path(__file__).parents[1] / "data" / "juju-local-dir" / "tools"
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if m.name != "__main__")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that finds only this package (and the stdlib)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(PACKAGE.parent)},
    )


def test_no_module_imports_ops() -> None:
    offenders = {p.name for p in PACKAGE.glob("*.py") if {"ops", "scenario"} & _imported_roots(p)}
    assert offenders == set()


def test_every_module_imports_with_ops_unavailable() -> None:
    code = (
        "import importlib, sys\n"
        "sys.modules['ops'] = None\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module('upgrader.' + name)\n"
        "print('ok', len(sys.modules))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
    assert len(MODULES) > 10


HTTP_CLIENT = {"requests", "urllib3", "certifi", "idna", "charset_normalizer", "chardet"}
"""requests and what it imports whenever it is imported."""

PROBED = {"socks", "brotli", "brotlicffi", "zstandard", "backports", "h2", "cython_runtime"}
"""What requests and urllib3 import only when installed: SOCKS, compression codecs, HTTP/2
(and the runtime of charset_normalizer's compiled modules)."""

SYNC_PATH = """
import json, sys
from pathlib import Path
from upgrader.fetch import Fetcher
from upgrader.mirror import Mirror
from upgrader.streams import TrustPolicy
from upgrader.sync import SyncRequest, sync
from upgrader.upstream import read_upstream
from upgrader.versions import parse

url, root = sys.argv[1], Path(sys.argv[2])
root.mkdir()
mirror = Mirror(root)
trust = TrustPolicy(verify_signatures=False)
with Fetcher() as fetcher:
    read = read_upstream(mirror, url, "released", fetcher, trust=trust)
    request = SyncRequest(versions=(parse("3.6.14"),), architectures=("amd64",))
    staged = sync(mirror, read.contents, request, fetcher).staged
third_party = {name.split(".")[0] for name in sys.modules} - set(sys.stdlib_module_names)
print(json.dumps({"staged": [str(b) for b in staged], "imported": sorted(third_party)}))
"""
"""A plan's metadata read and a sync of one binary, as the charm and the CLI do them."""


def _sync_path_imports(url: str, root: Path) -> set[str]:
    """The third-party modules a fresh interpreter imports to read ``url`` and sync from it."""
    result = subprocess.run(
        [sys.executable, "-c", SYNC_PATH, url, str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(PACKAGE.parent)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["staged"] == ["3.6.14-ubuntu-amd64"]
    return {name for name in report["imported"] if not name.startswith("_cython_")} - {
        "upgrader",
        "__main__",
    }


def test_a_local_stream_imports_nothing_outside_the_standard_library(tmp_path: Path) -> None:
    # Each sync is a short process (juju-upgrader, an action, the background job): a local
    # directory or file:// stream does not pay for an HTTP client it does not use.
    imported = _sync_path_imports(LOCAL_STREAM.as_uri(), tmp_path / "mirror")

    assert imported == set()


def test_an_http_stream_imports_requests_and_nothing_else(tmp_path: Path) -> None:
    with serve_directory(LOCAL_STREAM) as url:
        imported = _sync_path_imports(url, tmp_path / "mirror")

    assert {"requests", "urllib3"} <= imported
    assert imported <= HTTP_CLIENT | PROBED, imported - HTTP_CLIENT - PROBED
