"""Checks that charmcraft.yaml, config.yaml and actions.yaml are valid for charmcraft 4.x.

``charmcraft expand-extensions`` merges the three files the way ``charmcraft pack`` does and
needs no network, LXD or snap. It is lax about option types and action schemas, so config.yaml
is also checked with charmcraft's own pydantic model, and the actions with the rules below.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pydantic
import pytest
import yaml
from charmcraft.models.config import JujuConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("charmcraft.yaml", "config.yaml", "actions.yaml")

EXPECTED_DEFAULTS = {
    "stream-url": "https://streams.canonical.com/juju/tools",
    "stream": "released",
    "architectures": "amd64",
    "agent-os": "ubuntu",
    "selection-policy": "documented",
    "parallel-downloads": 4,
    "verify-signatures": True,
    "signing-keys": "",
    "ca-certificates": "",
    "port": 8080,
    "auto-sync": False,
}
EXPECTED_PLATFORMS = {
    ("ubuntu@22.04", "amd64"),
    ("ubuntu@22.04", "arm64"),
    ("ubuntu@24.04", "amd64"),
    ("ubuntu@24.04", "arm64"),
}
JSON_SCHEMA_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SIZE_RE = re.compile(r"^(\d+)([MGTPE])$")
SIZE_UNITS = {"M": 1, "G": 1024, "T": 1024**2, "P": 1024**3, "E": 1024**4}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def _copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, dest / name)
    return dest


def _expand_extensions(project: Path) -> subprocess.CompletedProcess[str]:
    """Run ``charmcraft expand-extensions`` in ``project``, keeping its logs in there."""
    env = dict(os.environ)
    env["XDG_STATE_HOME"] = str(project / ".state")
    env["XDG_RUNTIME_DIR"] = str(project / ".run")
    return subprocess.run(
        [sys.executable, "-m", "charmcraft", "expand-extensions"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _size_in_mib(size: str) -> int:
    match = SIZE_RE.match(size)
    assert match, f"bad size {size!r}: expected a number followed by M, G, T, P or E"
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def _text_problem(where: str, spec: dict[str, Any]) -> list[str]:
    description = spec.get("description")
    if isinstance(description, str) and description.strip():
        return []
    return [f"{where}: no description"]


def _param_problems(where: str, spec: Any) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{where}: not a mapping"]
    problems = _text_problem(where, spec)
    if spec.get("type") not in JSON_SCHEMA_TYPES:
        problems.append(f"{where}: type {spec.get('type')!r} is not a JSON schema type")
    enum = spec.get("enum", ["-"])
    if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
        problems.append(f"{where}: enum must be a non-empty list of strings")
    return problems


def _action_problems(actions: dict[str, Any]) -> list[str]:
    """Return what is wrong with an actions.yaml mapping (empty when it is fine)."""
    problems: list[str] = []
    for name, spec in actions.items():
        if not NAME_RE.match(name):
            problems.append(f"{name}: action names are lowercase words joined by dashes")
        if not isinstance(spec, dict):
            problems.append(f"{name}: not a mapping")
            continue
        problems += _text_problem(name, spec)
        if spec.get("additionalProperties") is not False:
            problems.append(f"{name}: additionalProperties must be false")
        params = spec.get("params", {})
        if not isinstance(params, dict):
            problems.append(f"{name}: params is not a mapping")
            continue
        for param, param_spec in params.items():
            if not NAME_RE.match(param):
                problems.append(
                    f"{name}.{param}: param names are lowercase words joined by dashes"
                )
            problems += _param_problems(f"{name}.{param}", param_spec)
    return problems


@pytest.fixture(scope="module")
def expanded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = _copy_project(tmp_path_factory.mktemp("charm"))
    result = _expand_extensions(project)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert isinstance(merged, dict)
    return merged


def test_expand_extensions_merges_config_and_actions(expanded: dict[str, Any]):
    config = _load(REPO / "config.yaml")
    actions = _load(REPO / "actions.yaml")

    assert expanded["name"] == "upgrader"
    assert expanded["type"] == "charm"
    assert expanded["config"]["options"] == config["options"]
    assert expanded["actions"] == actions
    assert set(expanded["config"]["options"]) == set(EXPECTED_DEFAULTS)
    assert {"plan-upgrade", "import-binaries", "sync-binaries", "prune-binaries"} <= set(
        expanded["actions"]
    )


def test_expand_extensions_keeps_uv_plugin(expanded: dict[str, Any]):
    charm_part = expanded["parts"]["charm"]
    assert charm_part["plugin"] == "uv"
    assert charm_part["source"] == "."
    assert "astral-uv" in charm_part["build-snaps"]


def test_icon_part_puts_icon_svg_in_the_charm(expanded: dict[str, Any]):
    # The uv plugin packs only src/, lib/ and the venv; Charmhub reads icon.svg from the charm.
    assert expanded["parts"]["icon"] == {"plugin": "dump", "source": ".", "stage": ["icon.svg"]}


def test_icon_is_a_100_pixel_svg():
    # Our own file, parsed to check its canvas: Charmhub icons are 100x100 SVGs.
    svg = ElementTree.parse(REPO / "icon.svg").getroot()  # noqa: S314
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert (svg.get("width"), svg.get("height"), svg.get("viewBox")) == (
        "100",
        "100",
        "0 0 100 100",
    )


def test_mirror_is_an_extra_binding(expanded: dict[str, Any]):
    # `juju deploy ... --bind "mirror=<space>"` picks the address the controller reaches.
    assert expanded["extra-bindings"] == {"mirror": None}


def test_docs_name_the_charm_files_charmcraft_writes():
    # charmcraft names a package <name>_<platform>.charm (test_packed_charm.py packs one).
    charmcraft = _load(REPO / "charmcraft.yaml")
    packed = {f"{charmcraft['name']}_{platform}.charm" for platform in charmcraft["platforms"]}
    for doc in ("README.md", "CONTRIBUTING.md"):
        named = set(re.findall(r"upgrader_[\w.@-]+\.charm", (REPO / doc).read_text()))
        assert named, doc
        assert named <= packed, f"{doc} names {sorted(named - packed)}"


def test_config_yaml_passes_charmcraft_model():
    config = JujuConfig.model_validate(_load(REPO / "config.yaml"))

    assert config.options is not None
    assert {name: opt.default for name, opt in config.options.items()} == EXPECTED_DEFAULTS
    for name, option in config.options.items():
        assert NAME_RE.match(name), name
        juju_type = {str: "string", int: "int", bool: "boolean"}[type(EXPECTED_DEFAULTS[name])]
        assert option.type == juju_type, name
        assert option.description and option.description.strip(), name


def test_stream_url_description_warns_it_is_not_agent_metadata_url():
    description = _load(REPO / "config.yaml")["options"]["stream-url"]["description"]
    assert "agent-metadata-url" in description


@pytest.mark.parametrize(
    "option",
    [
        {"type": "str", "default": "x"},
        {"type": "int", "default": "ten"},
        {"type": "boolean", "default": "yes please"},
        {"type": "string", "default": "x", "unknown-key": True},
    ],
)
def test_charmcraft_model_rejects_bad_config_option(option: dict[str, Any]):
    with pytest.raises(pydantic.ValidationError):
        JujuConfig.model_validate({"options": {"bad": option}})


def test_charmcraft_yaml_leaves_config_and_actions_to_their_files():
    charmcraft = _load(REPO / "charmcraft.yaml")
    assert "config" not in charmcraft
    assert "actions" not in charmcraft
    assert not (REPO / "metadata.yaml").exists()


@pytest.mark.parametrize(
    ("section", "content"),
    [
        ("config", {"options": {"stream": {"type": "string"}}}),
        ("actions", {"plan-upgrade": {"description": "duplicate"}}),
    ],
)
def test_expand_extensions_rejects_section_duplicated_in_charmcraft_yaml(
    tmp_path: Path, section: str, content: dict[str, Any]
):
    project = _copy_project(tmp_path / "charm")
    charmcraft = _load(project / "charmcraft.yaml")
    charmcraft[section] = content
    (project / "charmcraft.yaml").write_text(yaml.safe_dump(charmcraft))

    result = _expand_extensions(project)

    assert result.returncode != 0
    assert f"'{section}'" in result.stderr


def test_storage_binaries_is_a_sized_filesystem():
    storage = _load(REPO / "charmcraft.yaml")["storage"]["binaries"]
    assert storage["type"] == "filesystem"
    assert storage["description"].strip()
    # Several agent tarballs (40-60 MB each) for a few versions and architectures.
    assert _size_in_mib(storage["minimum-size"]) >= 1024
    assert "location" not in storage, "read the storage path at run time instead"


def test_platforms_cover_supported_bases_and_architectures():
    charmcraft = _load(REPO / "charmcraft.yaml")
    assert "bases" not in charmcraft
    assert "base" not in charmcraft, "multi-base charms list their bases in platforms"

    covered: set[tuple[str, str]] = set()
    for name, platform in charmcraft["platforms"].items():
        assert platform["build-on"] == platform["build-for"], name
        for target in platform["build-for"]:
            base, arch = target.rsplit(":", 1)
            covered.add((base, arch))
    assert covered >= EXPECTED_PLATFORMS


def test_assumes_juju_3_1_or_later():
    assert "juju >= 3.1" in _load(REPO / "charmcraft.yaml")["assumes"]


def test_actions_yaml_is_well_formed():
    actions = _load(REPO / "actions.yaml")
    assert _action_problems(actions) == []


def test_plan_upgrade_params():
    spec = _load(REPO / "actions.yaml")["plan-upgrade"]
    params = spec["params"]
    assert set(params) == {"agent-version", "client-version", "target-version", "policy"}
    assert all(p["type"] == "string" for p in params.values())
    assert params["policy"]["enum"] == ["documented", "juju-2.9", "juju-3"]
    assert "required" not in spec


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        ({"plan-upgrade": {"description": "d"}}, "additionalProperties must be false"),
        (
            {"plan-upgrade": {"description": "d", "additionalProperties": True}},
            "additionalProperties must be false",
        ),
        (
            {
                "plan-upgrade": {
                    "description": "d",
                    "additionalProperties": False,
                    "params": {"policy": {"type": "str", "description": "d"}},
                }
            },
            "is not a JSON schema type",
        ),
        (
            {"Plan_Upgrade": {"description": "d", "additionalProperties": False}},
            "lowercase words joined by dashes",
        ),
    ],
)
def test_action_check_catches_bad_actions(actions: dict[str, Any], problem: str):
    problems = _action_problems(actions)
    assert any(problem in p for p in problems), problems
