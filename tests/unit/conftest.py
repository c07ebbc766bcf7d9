"""Shared fixtures: the charm's Scenario context built from all three metadata files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest
import yaml
from ops import testing
from scenario import mocking

import charm
from charm import UpgraderCharm
from support import services
from support.gpg import Keys, throwaway_keys

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(autouse=True)
def fake_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """nginx (apt, systemd) and the background sync unit are OS services a unit test cannot
    own: every charm test gets the recording stand-ins of tests/support/services.py."""
    services.reset()
    monkeypatch.setattr(charm, "NginxService", services.FakeNginx)
    monkeypatch.setattr(charm, "JobService", services.FakeJobService)
    yield
    services.reset()


@pytest.fixture
def ctx() -> testing.Context[UpgraderCharm]:
    """Scenario reads only charmcraft.yaml when it has the metadata: pass all three files."""
    return testing.Context(
        UpgraderCharm,
        meta=_load("charmcraft.yaml"),
        actions=_load("actions.yaml"),
        config=_load("config.yaml"),
        juju_version="3.6.8",
    )


@pytest.fixture
def no_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Juju's answer when no agent-binaries resource is attached: resource-get fails.

    (Scenario instead treats a resource missing from the State as an inconsistency.)
    """

    def resource_get(self: object, name: str) -> str:
        raise ops.ModelError(f"ERROR could not download resource: {name} not found")

    monkeypatch.setattr(mocking._MockModelBackend, "resource_get", resource_get)


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Throwaway OpenPGP keys made with the real gpg once per run (tests/support/gpg.py)."""
    with throwaway_keys(tmp_path_factory.mktemp("gnupg")) as keys:
        yield keys


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """The only directory on a command's PATH: gpg's tools, and a fake juju if a test adds one.

    PATH holds nothing else, so a real juju on this machine is never run.
    """
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("gpgv", "gpg"):
        found = shutil.which(tool)
        if found:
            (path / tool).symlink_to(found)
    return path
