"""The packed charm, run as Juju runs it: built by charmcraft, dispatched with Juju's environment.

Every other charm test drives ``src/charm.py`` in-process with ``lib/`` and ``src/`` on the path.
These build the ``.charm`` file and run it the way a Juju machine agent would, so that a file
missing from the charm, an import that works only from the source tree or a dispatch mistake
fails here rather than at the first ``juju deploy``.

What runs for real: charmcraft's own ``pack`` (:mod:`support.packing`), the ``.charm`` archive,
the unit's charm directory as Juju's manifest deployer makes it, the charm's ``dispatch`` script
and venv, ops, the storage directory, signed streams served over HTTP, gpg and gpgv, nginx
serving the staged mirror, and the sync job in the background.

What stands in, and for what:

- :mod:`support.packing`: the LXD build instance (the build runs on this host), its apt
  build-packages (not needed by ``uv``), and the astral-uv snap (the ``uv`` tox-uv installed).
- :mod:`support.juju_agent` and :mod:`support.hooktools`: Juju itself, i.e. the unit agent
  (hook sequences, the hook environment, deploying and refreshing the charm directory) and the
  hook tools (``config-get``, ``status-set``, ``action-set``, ``open-port``, ...), which answer
  from a JSON file and record every call.
- :mod:`support.ostools`: apt (the package database; installing a package copies this host's
  nginx, gpg or gpgv onto the machine) and systemd (``systemctl`` runs nginx and the sync job
  as their units say).
- :mod:`support.machine`: the unit's machine is this host seen through its own mount, network
  and PID namespaces, so nginx listens only on that machine's loopback and nothing leaves it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from charmcraft import dispatch
from ops.storage import SQLiteStorage

from support.juju_agent import UnitAgent
from support.machine import Machine, unavailable_reason
from support.packing import PackError, find_uv, host_platform, pack_charm

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests/data/sample-stream"
SAMPLE_KEY = (ROOT / "tests/data/sample-stream-key.asc").read_text()
LOCAL_DIR = ROOT / "tests/data/juju-local-dir"
MIRROR_URL = "http://127.0.0.1:8080/tools"
CHARM_STATE = "UpgraderCharm/StoredStateData[_stored]"


def _missing() -> str:
    try:
        find_uv()
    except PackError as exc:
        return str(exc)
    return unavailable_reason()


REASON = _missing()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_system,
    pytest.mark.skipif(
        bool(REASON) and os.environ.get("UPGRADER_CI") != "1", reason=REASON or "ready"
    ),
]


@pytest.fixture(scope="module")
def charm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``charmcraft pack`` of this project."""
    return pack_charm(ROOT, tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work"))


@pytest.fixture
def machine() -> Iterator[Machine]:
    with Machine() as running:
        yield running


def juju_upgrader(*args: str) -> None:
    """Run the client tool, as an operator on a connected machine does."""
    result = subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def stored(unit: UnitAgent) -> dict:
    """The charm's StoredState, read from ops' ``.unit-state.db`` in the charm directory."""
    store = SQLiteStorage(unit.charm_dir / ".unit-state.db")
    try:
        return store.load_snapshot(CHARM_STATE)
    finally:
        store.close()


def staged_files(root: Path) -> dict[str, str]:
    """The served tree's files with their sha256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "tools").rglob("*"))
        if p.is_file()
    }


def sample_sha256(version: str, arch: str) -> str:
    path = SAMPLE / f"agent/{version}/juju-{version}-linux-{arch}.tgz"
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the .charm file ---------------------------------------------------------------------------


def test_charm_holds_what_juju_runs(charm: Path) -> None:
    with zipfile.ZipFile(charm) as archive:
        names = set(archive.namelist())
        files = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
    read = files.__getitem__
    assert charm.name == f"upgrader_{host_platform()}.charm"
    # charmcraft's own dispatch, executable, running src/charm.py with lib/ and src/ on the path.
    assert read("dispatch").decode() == dispatch.DISPATCH_SCRIPT_TEMPLATE.format(
        entrypoint="src/charm.py"
    )
    assert modes["dispatch"] == 0o755
    # The metadata charmcraft writes from the project's three files.
    metadata = yaml.safe_load(read("metadata.yaml"))
    assert metadata["name"] == "upgrader"
    assert metadata["extra-bindings"] == {"mirror": None}
    assert set(metadata["storage"]) == {"binaries"}
    assert read("config.yaml") == (ROOT / "config.yaml").read_bytes()
    assert read("actions.yaml") == (ROOT / "actions.yaml").read_bytes()
    assert "bases" in yaml.safe_load(read("manifest.yaml"))
    assert read("icon.svg") == (ROOT / "icon.svg").read_bytes()
    # Every module and data file of the package and the charm, and the locked dependencies.
    for path in [*ROOT.glob("lib/upgrader/**/*"), *ROOT.glob("src/*.py")]:
        if path.is_file() and "__pycache__" not in path.parts:
            member = path.relative_to(ROOT).as_posix()
            assert read(member) == path.read_bytes(), member
    site = {n.split("/site-packages/")[1].split("/")[0] for n in names if "/site-packages/" in n}
    assert {"ops", "yaml", "certifi", "charmlibs"} <= site
    assert not site & {"pytest", "charmcraft", "hypothesis", "coverage"}, "dev dependencies"
    # Nothing of the project's tests or tooling, and no interpreter links.
    assert not [n for n in names if n.startswith(("tests/", "venv/bin/python", "uv.lock"))]


# --- deploy, stage, import, refresh ------------------------------------------------------------


def test_deploy_stage_import_and_refresh(
    charm: Path, machine: Machine, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The operator's path, step by step, on one unit of a machine model."""
    unit = UnitAgent(machine)
    root = unit.storage_dir / "binaries/0"
    with machine.serve(SAMPLE) as stream:
        # juju deploy ./upgrader_....charm --storage binaries=... --config stream-url=...
        runs = unit.deploy(charm, config={"stream-url": stream.url, "signing-keys": SAMPLE_KEY})
        assert [r.check().name for r in runs] == [
            "binaries-storage-attached",
            "install",
            "upgrader-peers-relation-created",
            "leader-elected",
            "config-changed",
            "start",
        ]
        # dispatch linked the venv's python to the machine's python3, as on first run.
        assert os.readlink(unit.charm_dir / "venv/bin/python") == "/usr/local/bin/python3"
        assert (unit.charm_dir / ".unit-state.db").is_file()
        # The storage-attached hook reached the storage through storage-get, and installed
        # nginx and GnuPG from the archive, then started nginx with the charm's site.
        assert ("--format=json", "-s", "binaries/0") in runs[0].args_of("storage-get")
        installs = [c[1:] for c in machine.os_calls() if c[0] == "apt-get" and "install" in c]
        assert sorted(c[-1].split("=")[0] for c in installs) == ["gnupg", "gpgv", "nginx"]
        assert ("apt-get", "update", "--error-on=any") in machine.os_calls()
        assert set(machine.installed_packages()) == {"nginx", "gnupg", "gpgv"}
        assert ("systemctl", "start", "nginx.service") in machine.os_calls()
        site = machine.fs / "etc/nginx/sites-enabled/upgrader-0"
        assert os.readlink(site) == "/etc/nginx/sites-available/upgrader-0"
        assert not (machine.fs / "etc/nginx/sites-enabled/default").exists()
        assert unit.opened_ports == ["8080/tcp"]
        assert ("8080/tcp",) in runs[0].args_of("open-port")
        assert unit.status == (
            "active",
            f"serving no agents yet (run sync-binaries); agent-metadata-url={MIRROR_URL}; "
            "upgrade target 3.6.12 needs 3.5.7, 3.6.12 staged",
        )
        assert runs[-1].args_of("status-set")[-1] == (
            "--application=False",
            "active",
            "--",
            unit.status[1],
        )
        assert machine.fetch(f"{MIRROR_URL}/streams/v1/index2.json")[0] == 404

        # juju config upgrader architectures="amd64 arm64"
        unit.configure(architectures="amd64 arm64").check()

        # juju run upgrader/0 plan-upgrade client-version=3.6.12
        plan = unit.run_action("plan-upgrade", client_version="3.6.12")
        assert (plan.status, plan.message) == ("completed", "")
        assert plan.results["outcome"] == "upgrade"
        assert plan.results["agent-version"] == "3.5.6"
        assert plan.results["target-version"] == "3.6.12"
        assert plan.results["verified"] == "true"
        assert plan.results["staged"] == "false"
        # 3.5 is upgraded in place only to its newest patch; 3.6 needs a new controller.
        assert plan.results["route"] == "in-place-then-new-controller"
        assert plan.results["stage"] == "3.5.7, 3.6.12"
        assert plan.results["next-steps"].splitlines()[:5] == [
            "juju run upgrader/0 sync-binaries",
            f"juju model-config -m controller agent-metadata-url={MIRROR_URL}",
            f"juju model-defaults agent-metadata-url={MIRROR_URL}",
            "juju upgrade-controller --agent-version 3.5.7 --dry-run",
            "juju upgrade-controller --agent-version 3.5.7",
        ]

        # juju run upgrader/0 sync-binaries: every version of the route, no other
        sync = unit.run_action("sync-binaries")
        assert (sync.status, sync.message) == ("completed", "")
        assert sync.results["versions"] == "3.6.12, 3.5.7"
        assert sorted(sync.results["staged"].split(", ")) == [
            "3.5.7-ubuntu-amd64",
            "3.5.7-ubuntu-arm64",
            "3.6.12-ubuntu-amd64",
            "3.6.12-ubuntu-arm64",
        ]
        assert sync.results["agent-metadata-url"] == MIRROR_URL
        assert any(line.startswith("juju-3.6.12-ubuntu-amd64.tgz: ") for line in sync.log)
        for version in ("3.5.7", "3.6.12"):
            for arch in ("amd64", "arm64"):
                name = f"released/juju-{version}-ubuntu-{arch}.tgz"
                assert staged_files(root)[f"tools/{name}"] == sample_sha256(version, arch)
                status, body = machine.fetch(f"{MIRROR_URL}/{name}")
                assert status == 200
                assert hashlib.sha256(body).hexdigest() == sample_sha256(version, arch)

        # juju attach-resource upgrader agent-binaries=./agents.tar.gz (made on a connected
        # machine with juju-upgrader bundle), then juju run upgrader/0 import-binaries
        first = tmp_path / "agents.tar.gz"
        juju_upgrader("bundle", str(LOCAL_DIR), "-o", str(first))
        unattached = {c.context for c in unit.calls()}
        unit.attach_resource("agent-binaries", first).check()
        status, message = unit.status
        assert status == "active"
        assert message.startswith("serving 3.6.14 (2 arches) and 3 older versions; ")
        assert message.endswith("; imported 5 agent binaries")
        assert "tools/released/juju-3.6.14-ubuntu-arm64.tgz" in staged_files(root)
        again = unit.run_action("import-binaries")
        assert again.status == "completed"
        assert again.results["summary"].endswith("was already imported")

        # update-status: one conditional request for the stream's index, nothing else.
        unit.hook("update-status").check()
        assert unit.status[0] == "active"

        # charmcraft pack; juju refresh upgrader --path ./upgrader_....charm
        #     --resource agent-binaries=./agents.tar.gz
        second = pack_charm(ROOT, tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work"))
        agents = tmp_path / "agents-3.5"
        juju_upgrader(
            "sync", "3.5", "--local-dir", str(agents), "--stream-url", str(SAMPLE),
            "--signing-keys", str(ROOT / "tests/data/sample-stream-key.asc"),
            "--arch", "amd64", "--arch", "arm64",
        )  # fmt: skip
        newer = tmp_path / "agents-3.5.tar.gz"
        juju_upgrader("bundle", str(agents), "-o", str(newer))
        before = staged_files(root)
        state_before = stored(unit)
        log = machine.root / "http-sample-stream.log"
        requests_before = len(log.read_text().splitlines())
        assert [
            r.check().name for r in unit.refresh(second, resources={"agent-binaries": newer})
        ] == [
            "upgrade-charm",
            "config-changed",
        ]
        assert (unit.charm_dir / "revision").read_text() == "1"
        with zipfile.ZipFile(second) as archive:
            assert (unit.charm_dir / "manifest.yaml").read_bytes() == archive.read("manifest.yaml")
        # The staged mirror survived and the new resource was imported into it.
        after = staged_files(root)
        assert {k: after.get(k) for k in before if "/streams/" not in k} == {
            k: v for k, v in before.items() if "/streams/" not in k
        }
        for arch in ("amd64", "arm64"):
            assert f"tools/released/juju-3.5.6-ubuntu-{arch}.tgz" in after
        # The served URL and the stored state survived: the update check stays conditional.
        status, message = unit.status
        assert status == "active"
        assert f"agent-metadata-url={MIRROR_URL}" in message
        assert message.endswith("; imported 2 agent binaries")  # 3.5.7 was staged by sync
        state_after = stored(unit)
        assert set(state_after) == {"stream", "last_import", "serving_error", "job_error"}
        assert state_after["stream"]["validators"] == state_before["stream"]["validators"]
        assert state_after["stream"]["validators"]["url"].endswith("/streams/v1/index2.sjson")
        unit.hook("update-status").check()
        since = log.read_text().splitlines()[requests_before:]
        assert since[-1].endswith('"GET /streams/v1/index2.sjson HTTP/1.1" 304 -'), since
        status, body = machine.fetch(f"{MIRROR_URL}/released/juju-3.5.7-ubuntu-amd64.tgz")
        assert (status, hashlib.sha256(body).hexdigest()) == (200, sample_sha256("3.5.7", "amd64"))

    # Every hook tool call succeeded, except resource-get before a resource was attached
    # (the charm asks on each hook that may import; Juju answers that it has none).
    failed = [c for c in unit.calls() if c.status != 0]
    assert {(c.tool, c.args) for c in failed} == {("resource-get", ("agent-binaries",))}
    assert {c.context for c in failed} <= unattached


def test_auto_sync_runs_the_packed_sync_job(charm: Path, machine: Machine) -> None:
    """auto-sync stages the plan's route in the background, with the charm's venv and lib/."""
    unit = UnitAgent(machine)
    with machine.serve(SAMPLE) as stream:
        config = {"stream-url": stream.url, "signing-keys": SAMPLE_KEY, "auto-sync": True}
        for run in unit.deploy(charm, config=config):
            run.check()
        job = machine.fs / "etc/systemd/system/upgrader-0-sync.service"
        exec_start = next(
            line for line in job.read_text().splitlines() if line.startswith("ExecStart=")
        )
        assert exec_start.startswith(f"ExecStart={unit.charm_dir}/venv/bin/python -m ")
        staged = unit.storage_dir / "binaries/0/tools/released/juju-3.6.12-ubuntu-amd64.tgz"
        machine.wait_for(staged.exists, timeout=120)
        machine.wait_for(
            lambda: (
                ("systemctl", "start", "--no-block", "upgrader-0-sync.service")
                in machine.os_calls()
                and "synced 3.5.7, 3.6.12"
                in (machine.os_dir / "upgrader-0-sync.service.journal").read_text()
            ),
            timeout=120,
        )
        unit.hook("update-status").check()
        assert unit.status == (
            "active",
            f"serving 3.6.12 (1 arch) and 1 older version; agent-metadata-url={MIRROR_URL}",
        )


def test_archive_without_gnupg_blocks_and_says_so(charm: Path, machine: Machine) -> None:
    """An air-gapped site whose apt mirror lacks gnupg: the unit says what is missing."""
    machine.remove_from_archive("gnupg")
    unit = UnitAgent(machine)
    with machine.serve(SAMPLE) as stream:
        config = {"stream-url": stream.url, "signing-keys": SAMPLE_KEY}
        for run in unit.deploy(charm, config=config):
            run.check()  # a missing package blocks the unit; it never fails a hook
    assert "gnupg" not in machine.installed_packages()
    messages = [m for _, status, m in unit.state["status-history"] if status == "blocked"]
    assert (
        "cannot serve the mirror: cannot install nginx, gnupg, gpgv from the archive: "
        "Failed to install packages: gnupg"
    ) in messages
    assert unit.status[0] == "blocked"
