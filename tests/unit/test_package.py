"""The domain package stays free of ops, so the client tool and plain tests can use it."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import upgrader

PACKAGE = Path(upgrader.__file__).parent
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


def test_the_sync_path_imports_only_the_standard_library() -> None:
    # Each sync is a short process (juju-upgrader sync, an action, the background job):
    # a third-party HTTP client cost a third of a one-version sync in imports alone.
    code = (
        "import sys\n"
        "import upgrader.fetch, upgrader.mirror, upgrader.streams, upgrader.sync\n"
        "import upgrader.transport, upgrader.upstream, upgrader.signing, upgrader.config\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(roots - set(sys.stdlib_module_names) - {'upgrader', '__main__'}))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
