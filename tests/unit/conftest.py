"""Shared fixtures: the charm's Scenario context built from all three metadata files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ops import testing

from charm import UpgraderCharm

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


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
