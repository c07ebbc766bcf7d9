"""Fixtures for integration tests against a real Juju controller.

These tests run only on a developer's machine with Juju: every test here is skipped, with the
reason, when ``juju`` is not on PATH or no controller answers.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import jubilant
import pytest

HERE = pathlib.Path(__file__).resolve().parent


@functools.cache
def _no_juju_reason() -> str | None:
    """Why these tests cannot run here, or None when a controller is reachable."""
    juju = shutil.which("juju")
    if juju is None:
        return "juju is not on PATH"
    try:
        result = subprocess.run(
            [juju, "controllers", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return "`juju controllers` did not answer within 60 seconds"
    if result.returncode != 0:
        return f"`juju controllers` failed: {result.stderr.strip() or result.returncode}"
    try:
        controllers = json.loads(result.stdout or "{}").get("controllers") or {}
    except ValueError:
        return "`juju controllers --format json` printed something that is not JSON"
    if not controllers:
        return "no Juju controller is registered (bootstrap one first)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every integration test when there is no Juju controller to run it on."""
    ours = [item for item in items if HERE in item.path.resolve().parents]
    if not ours:
        return
    reason = _no_juju_reason()
    if reason is None:
        return
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def charm_path() -> pathlib.Path:
    """The packed charm: $CHARM_PATH, or the only ``*.charm`` file in the current directory."""
    if "CHARM_PATH" in os.environ:
        path = pathlib.Path(os.environ["CHARM_PATH"])
        if not path.is_file():
            pytest.fail(f"CHARM_PATH={path} is not a file")
        return path.resolve()
    charms = sorted(pathlib.Path.cwd().glob("*.charm"))
    if len(charms) != 1:
        found = ", ".join(c.name for c in charms) or "none"
        pytest.fail(
            f"set CHARM_PATH, or run `charmcraft pack` so that exactly one *.charm is in "
            f"{pathlib.Path.cwd()} (found: {found})"
        )
    return charms[0].resolve()


@pytest.fixture(scope="module")
def juju(request: pytest.FixtureRequest) -> Iterator[jubilant.Juju]:
    """A temporary model, destroyed afterwards unless KEEP_MODELS is set to a non-empty value."""
    with jubilant.temp_model(keep=bool(os.environ.get("KEEP_MODELS"))) as juju:
        juju.wait_timeout = 15 * 60
        yield juju
        if request.session.testsfailed:
            print(juju.debug_log(limit=200), end="")
