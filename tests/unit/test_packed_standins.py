"""The stand-ins of the packed-charm test answer and fail as Juju, apt, dpkg and systemd do.

test_packed_charm.py is only as good as these: a hook tool that accepted what Juju refuses
would let a charm bug through. Each case here is Juju's (or apt's, dpkg's, systemd's) own
wording and exit status for a mistake a charm could make.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import hooktools, ostools
from support.juju_agent import UnitAgent

CONTEXT = "upgrader/0-test-1"


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An agent directory holding a unit's state, inside a running action's context."""
    state = {
        "unit": "upgrader/0",
        "app": "upgrader",
        "leader": False,
        "config": {"port": 8080, "signing-keys": None},
        "status": {"unit": {"status": "active", "message": ""}},
        "status-history": [],
        "opened-ports": ["8080/tcp"],
        "storage": {},
        "resources": {},
        "relations": {
            "upgrader-peers:0": {
                "id": "upgrader-peers:0",
                "endpoint": "upgrader-peers",
                "app": "upgrader",
                "units": [],
                "data": {"upgrader/0": {}, "upgrader": {}},
            }
        },
        "bindings": {"juju-info": "127.0.0.1"},
        "actions": {},
        "context": {
            "id": CONTEXT,
            "hook": "",
            "relation": None,
            "remote-unit": "",
            "storage": None,
            "action": {
                "id": "1",
                "name": "sync-binaries",
                "params": {"dry-run": False},
                "results": {},
                "failed": False,
                "message": "",
                "log": [],
            },
            "pending-ports": [],
            "pending-relation": {},
        },
    }
    (tmp_path / hooktools.STATE_FILE).write_text(json.dumps(state))
    monkeypatch.setenv("JUJU_AGENT_SOCKET_ADDRESS", f"@{tmp_path / hooktools.SOCKET_NAME}")
    monkeypatch.setenv("JUJU_CONTEXT_ID", CONTEXT)
    return tmp_path


def tool(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = hooktools.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_action_set_refuses_keys_juju_refuses(agent: Path, capsys) -> None:
    status, _, err = tool(capsys, "action-set", "bytes-downloaded=1", "bytes_staged=2")
    assert (status, err) == (
        2,
        'ERROR key "bytes_staged" must start and end with lowercase alphanumeric, and contain '
        "only lowercase alphanumeric, hyphens and periods\n",
    )
    assert (
        json.loads((agent / hooktools.STATE_FILE).read_text())["context"]["action"]["results"]
        == {}
    ), "nothing of a refused call is kept"
    assert tool(capsys, "action-set", "staged.amd64=3.6.12")[0] == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("config-get", "--all-of-it"), (2, "ERROR flag provided but not defined: --all-of-it\n")),
        (("resource-get", "agent-binaries"), (1, "ERROR could not download resource: "
                                                 "agent-binaries not found\n")),
        (("network-get", "mirror"), (1, 'ERROR no network config found for binding "mirror"\n')),
        (("relation-set", "--app", "-r", "upgrader-peers:0", "mirror-url=x"),
         (1, "ERROR cannot write relation settings\n")),
        (("status-set", "--application=True", "active"),
         (1, "ERROR setting application status: this unit is not the leader\n")),
        (("leader-set", "a=b"), (2, "ERROR unknown command: leader-set\n")),
    ],
)  # fmt: skip
def test_tools_fail_as_juju_does(
    agent: Path, capsys, argv: tuple[str, ...], expected: tuple[int, str]
) -> None:
    status, _, err = tool(capsys, *argv)
    assert (status, err) == expected


def test_a_tool_outside_its_hook_context_is_refused(agent: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("JUJU_CONTEXT_ID", "upgrader/0-install-0")
    assert tool(capsys, "is-leader", "--format=json") == (
        1,
        "",
        'ERROR wrong context ID; got "upgrader/0-install-0"\n',
    )


def test_ports_and_relation_data_wait_for_the_hook_to_succeed(agent: Path, capsys) -> None:
    assert tool(capsys, "close-port", "8080/tcp")[0] == 0
    assert tool(capsys, "open-port", "9090/tcp")[0] == 0
    assert tool(capsys, "opened-ports", "--format=json")[1] == '["9090/tcp"]\n'
    state = json.loads((agent / hooktools.STATE_FILE).read_text())
    assert state["opened-ports"] == ["8080/tcp"], "not committed until the hook succeeds"
    UnitAgent._flush(state, succeeded=False)
    assert state["opened-ports"] == ["8080/tcp"]
    assert state["actions"]["1"]["status"] == "failed"
    assert state["actions"]["1"]["message"] == "exit status 1"


@pytest.fixture
def os_dir(tmp_path: Path) -> Path:
    packages = {
        "arch": "amd64",
        "archive": {"nginx": {"version": "1.24.0-2", "tree": str(tmp_path / "nginx")}},
        "installed": {},
    }
    (tmp_path / ostools.PACKAGES_FILE).write_text(json.dumps(packages))
    (tmp_path / ostools.UNITS_FILE).write_text("{}")
    return tmp_path


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("dpkg", ["-l", "gnupg"], (1, "dpkg-query: no packages found matching gnupg\n")),
        ("apt-cache", ["show", "gnupg"], (100, "E: No packages found\n")),
        ("apt-get", ["-y", "install", "gnupg"], (100, "E: Unable to locate package gnupg\n")),
        ("apt-get", ["-y", "install", "nginx=1.18"],
         (100, "E: Version '1.18' for 'nginx' was not found\n")),
        ("systemctl", ["--quiet", "is-active", "absent.service"], (3, "")),
        ("systemctl", ["enable", "absent.service"],
         (1, "Failed to enable unit: Unit file absent.service does not exist.\n")),
        ("systemctl", ["start", "absent.service"],
         (5, "Failed to start absent.service: Unit absent.service not found.\n")),
    ],
)  # fmt: skip
def test_os_tools_fail_as_apt_dpkg_and_systemd_do(
    os_dir: Path, capsys, command: str, args: list[str], expected: tuple[int, str]
) -> None:
    status = ostools.main(["ostools.py", str(os_dir), f"/usr/local/sbin/{command}", *args])
    assert (status, capsys.readouterr().err) == expected
    assert json.loads((os_dir / ostools.PACKAGES_FILE).read_text())["installed"] == {}


def test_dpkg_lists_an_installed_package_as_dpkg_does(os_dir: Path, capsys) -> None:
    path = os_dir / ostools.PACKAGES_FILE
    packages = json.loads(path.read_text())
    packages["installed"]["nginx"] = "1.24.0-2"
    path.write_text(json.dumps(packages))
    assert ostools.main(["ostools.py", str(os_dir), "dpkg", "-l", "nginx"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.split() == ["ii", "nginx", "1.24.0-2", "amd64", "nginx"]
