"""The ``juju-upgrader`` command, driven as a subprocess against real streams on 127.0.0.1.

Juju itself is replaced by a fake ``juju`` script on PATH; PATH holds nothing else, so a real
juju on the machine is never run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ops import testing

from support.faulty_server import Fault, FaultyServer
from support.gpg import Keys, needs_gpg, sign_stream
from support.servers import serve_directory
from support.streams import Agent, write_stream
from support.tls import make_pki
from upgrader.archive_import import import_bundle
from upgrader.mirror import Mirror

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample-stream"

U = "--no-verify-signatures"
"""Most tests read unsigned streams; the trust tests below sign theirs."""

RESULT_KEYS = {
    "outcome",
    "agent-version",
    "target-version",
    "policy",
    "reason",
    "available",
    "next-steps",
    "source",
    "verified",
    "route",
    "hops",
    "stage",
    "in-place-target",
    "staged",
}
UNVERIFIED_KEYS = RESULT_KEYS | {"unverified-reason"}
"""The keys of a plan of an unsigned stream, as the action gives them."""

AGENTS = [
    *(Agent(v) for v in ("2.9.50", "2.9.52", "3.4.5", "3.5.6", "3.5.7", "3.6.10", "3.6.11")),
    Agent("3.6.12"),
    Agent("3.6.12", arch="arm64"),
    Agent("3.5.7", arch="arm64"),
]


@pytest.fixture(scope="module")
def stream_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = write_stream(tmp_path_factory.mktemp("stream"), AGENTS, condensed=True)
    with serve_directory(root) as url:
        yield url


def run(
    *args: str, path: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m upgrader ARGS`` the way a shell would, with PATH set to ``path``."""
    full_env = {
        "PATH": str(path),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "HOME": str(path.parent),
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def recorded_model(name: str, version: str, **fields: object) -> dict[str, object]:
    """One entry of `juju models --format json`, in the shape Juju 3.6 prints."""
    owner, _, short = name.partition("/")
    return {
        "name": name,
        "short-name": short,
        "model-uuid": "5e1e0000-0000-4000-8000-000000000000",
        "model-type": "iaas",
        "controller-uuid": "0e4c5a5e-0000-4000-8000-000000000000",
        "controller-name": "prod",
        "is-controller": False,
        "owner": owner,
        "cloud": "lxd",
        "region": "localhost",
        "type": "lxd",
        "life": "alive",
        "status": {"current": "available", "since": "2025-11-05T10:00:00Z"},
        "access": "admin",
        "last-connection": "just now",
        "agent-version": version,
        **fields,
    }


DEFAULT_MODELS = {
    "models": [
        recorded_model("admin/controller", "3.5.6", **{"is-controller": True}),
        recorded_model("admin/default", "3.5.6"),
    ],
    "current-model": "default",
}
DEFAULT_MACHINES = {
    "model": "default",
    "machines": {"0": {"hardware": "arch=amd64 cores=2 mem=4096M", "containers": {}}},
}


def fake_juju(
    bin_dir: Path,
    *,
    version: str = "3.6.12-genericlinux-amd64",
    show_controller: str | None = None,
    show_controller_status: int = 0,
    models: str | None = None,
    models_status: int = 0,
    machines: str | None = None,
    status: str | None = None,
    log: Path | None = None,
) -> Path:
    """Write a fake ``juju`` answering what the plan asks, with recorded-shape JSON."""
    if show_controller is None:
        show_controller = json.dumps(
            {
                "prod": {
                    "details": {
                        "uuid": "0e4c5a5e-0000-4000-8000-000000000000",
                        "api-endpoints": ["10.0.0.2:17070"],
                        "cloud": "lxd",
                        "region": "localhost",
                        "agent-version": "3.5.6",
                        "agent-git-commit": "0123456789abcdef0123456789abcdef01234567",
                        "controller-model-version": "3.5.6",
                        "ca-cert": "-----BEGIN CERTIFICATE-----\n...\n",
                    },
                    "current-model": "admin/default",
                    "account": {"user": "admin", "access": "superuser"},
                }
            }
        )
    outputs = {
        "show-controller": show_controller,
        "models": models if models is not None else json.dumps(DEFAULT_MODELS),
        "machines": machines if machines is not None else json.dumps(DEFAULT_MACHINES),
        "status": status if status is not None else json.dumps({"applications": {}}),
    }
    for name, text in outputs.items():
        (bin_dir / f"{name}.out").write_text(text + "\n")
    log_line = f'echo "$*" >> {log}\n' if log else ""
    failing = {"show-controller": show_controller_status, "models": models_status}
    cases = "".join(
        f"  {name})\n"
        f"    if [ {failing.get(name, 0)} -ne 0 ]; then\n"
        '      echo "ERROR there is no active controller" >&2\n'
        f"      exit {failing.get(name, 0)}\n"
        "    fi\n"
        # PATH holds only bin_dir: read with the shell's own builtins, not cat.
        f"    while IFS= read -r l; do printf '%s\\n' \"$l\"; done < {bin_dir / (name + '.out')}"
        " ;;\n"
        for name in outputs
    )
    script = bin_dir / "juju"
    script.write_text(
        "#!/bin/sh\n"
        f"{log_line}"
        'case "$1" in\n'
        f"  version) echo {version} ;;\n"
        f"{cases}"
        '  *) echo "ERROR unexpected juju $*" >&2; exit 2 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return script


def plan_json(stream_url: str, bin_dir: Path, *args: str) -> dict[str, str]:
    done = run("plan", U, "--stream-url", stream_url, "--format", "json", *args, path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


# -- plan: every policy, over HTTP ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "outcome", "target", "reason_part"),
    [
        (["--agent-version", "3.5.6"], "upgrade", "3.6.12", "next minor 3.6"),
        (["--agent-version", "3.6.10"], "upgrade", "3.6.12", "newest patch of the current"),
        (["--agent-version", "3.6.12"], "up-to-date", "3.6.12", "no upgrades available"),
        (
            ["--agent-version", "2.9.50", "--client-version", "3.6.12"],
            "upgrade",
            "3.6.12",
            "differs from client major 3",
        ),
        (
            ["--agent-version", "3.5.6", "--policy", "juju-2.9"],
            "upgrade",
            "3.6.12",
            "next minor 3.6",
        ),
        (
            ["--agent-version", "2.9.50", "--client-version", "3.6.12", "--policy", "juju-2.9"],
            "upgrade",
            "2.9.52",
            "incompatible with this client (3.6.12)",
        ),
        (
            ["--agent-version", "3.5.6", "--policy", "juju-3"],
            "upgrade",
            "3.5.7",
            "only by migrating models",
        ),
        (["--agent-version", "3.5.7", "--policy", "juju-3"], "up-to-date", "3.5.7", "no upgr"),
        (
            ["--agent-version", "3.4.5", "--target-version", "3.6.11"],
            "upgrade",
            "3.6.11",
            "explicit target-version 3.6.11",
        ),
    ],
)
def test_plan_in_every_policy(
    stream_url: str,
    bin_dir: Path,
    args: list[str],
    outcome: str,
    target: str,
    reason_part: str,
) -> None:
    results = plan_json(stream_url, bin_dir, *args)
    assert set(results) - {"client-version"} == UNVERIFIED_KEYS
    assert results["outcome"] == outcome
    assert results["target-version"] == target
    assert reason_part in results["reason"]
    assert results["source"] == stream_url
    assert results["verified"] == "false"
    steps = results["next-steps"].splitlines()
    if results["route"] in ("in-place", "in-place-then-new-controller"):
        hop = results["hops"].split(", ")[0]
        assert f"juju upgrade-controller --agent-version {hop}" in steps
    if results["route"].endswith("new-controller"):
        bootstrap = next(s for s in steps if s.startswith("juju bootstrap "))
        assert f" --agent-version {target} " in bootstrap


def test_plan_json_matches_the_action_results(stream_url: str, bin_dir: Path) -> None:
    """Same keys and values as the charm's plan-upgrade action computes."""
    from upgrader.fetch import Fetcher
    from upgrader.plan import PlanRequest, make_plan, plan_results
    from upgrader.selection import Policy
    from upgrader.streams import TrustPolicy, read_stream
    from upgrader.versions import parse

    results = plan_json(
        stream_url, bin_dir, "--agent-version", "3.5.6", "--client-version", "3.6.12",
        "--policy", "juju-3",
    )  # fmt: skip
    with Fetcher() as fetcher:
        trust = TrustPolicy(verify_signatures=False)
        contents = read_stream(stream_url, "released", fetcher, trust=trust)
    request = PlanRequest(parse("3.5.6"), parse("3.6.12"), policy=Policy.JUJU_3)
    action = plan_results(make_plan(contents, request), contents)
    where = ("next-steps", "staged")  # where the binaries are staged differs: a unit's mirror
    assert {k: v for k, v in results.items() if k not in where} == {
        k: v for k, v in action.items() if k not in where
    }
    steps = results["next-steps"].splitlines()
    assert [step for step in steps if step in action["next-steps"].splitlines()] == (
        action["next-steps"].splitlines()
    )
    assert results["client-version"] == "3.6.12"


def test_plan_yaml_output(stream_url: str, bin_dir: Path) -> None:
    done = run(
        "plan", U, "--stream-url", stream_url, "--agent-version", "3.5.6", "--policy", "juju-3",
        "--format", "yaml", path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = yaml.safe_load(done.stdout)
    assert set(results) == UNVERIFIED_KEYS
    assert results["target-version"] == "3.5.7"
    assert results["verified"] == "false"  # a string, as in the action, not a YAML boolean
    steps = results["next-steps"].splitlines()
    assert steps[0].startswith("juju-upgrader sync --local-dir /var/tmp/juju-3.5.7/agents ")
    assert steps[-8:] == [
        "juju model-config -m controller agent-metadata-url=<agent-metadata-url>",
        "juju model-defaults agent-metadata-url=<agent-metadata-url>",
        "juju upgrade-controller --agent-version 3.5.7 --dry-run",
        "juju upgrade-controller --agent-version 3.5.7",
        "# wait until `juju status -m controller` shows every controller agent at 3.5.7",
        "# then for each model `juju models` lists, other than controller, as <model>:",
        "juju upgrade-model -m <model> --agent-version 3.5.7 --dry-run",
        "juju upgrade-model -m <model> --agent-version 3.5.7",
    ]
    assert (results["route"], results["hops"], results["stage"]) == ("in-place", "3.5.7", "3.5.7")
    assert "next-steps: |" in done.stdout  # literal block: one command per line


def test_plan_text_output_is_for_a_person(stream_url: str, bin_dir: Path) -> None:
    done = run("plan", U, "--stream-url", stream_url, "--agent-version", "3.5.6", path=bin_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == [
        "Upgrade from 3.5.6 to 3.6.12: in place to 3.5.7, then through a new controller.",
        "",
        "  route:          in-place-then-new-controller",
        "  hops:           3.5.7, 3.6.12",
        "  in place up to: 3.5.7",
    ]
    assert "  agent version:  3.5.6 (from --agent-version)" in lines
    assert "  client version: not given (rules for the agent's own major)" in lines
    assert "  reason:         newest version of the next minor 3.6" in lines
    assert "  available:      3.6.12, 3.6.11, 3.6.10, 3.5.7" in lines
    assert f"  source:         {stream_url} (released stream)" in lines
    assert (
        "  signature:      not verified: the source has no signed metadata "
        "(--no-verify-signatures)"
    ) in lines
    assert (
        "  models:         not listed (--agent-version given): the runbook says how to repeat "
        "per model"
    ) in lines
    at = lines.index("`juju upgrade-controller --agent-version 3.6.12` answers:")
    assert lines[at + 1 : at + 4] == [
        '  cannot upgrade to "3.6.12" due to issues with these models:',
        '  "admin/controller":',
        "  - upgrading a controller to a newer major.minor version 3.6 not supported",
    ]
    runbook = lines[lines.index("Runbook:") + 1 :]
    assert runbook[0] == (
        "   1. juju-upgrader sync --local-dir /var/tmp/juju-3.6.12/agents --stream-url "
        f"{stream_url} --arch amd64 --agent-version 3.5.6 --no-verify-signatures"
    )
    numbers = [int(line.split(".")[0]) for line in runbook if not line.lstrip().startswith("#")]
    assert numbers == list(range(1, len(numbers) + 1))
    assert "   6. juju upgrade-controller --agent-version 3.5.7 --dry-run" in runbook
    assert done.stderr == ""


def test_plan_text_shows_warnings_and_missing_architectures(
    stream_url: str, bin_dir: Path
) -> None:
    done = run(
        "plan", U, "--stream-url", stream_url, "--agent-version", "3.6.10", "--target-version",
        "3.6.11", "--arch", "amd64", "--arch", "arm64,s390x", path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "  architectures:  amd64, arm64, s390x (ubuntu)" in done.stdout
    assert "Warnings:\n  - 3.6.11 has no agent binary for arm64, s390x in the stream\n" in (
        done.stdout
    )


def test_plan_up_to_date_text(stream_url: str, bin_dir: Path) -> None:
    done = run(
        "plan", U, "--stream-url", stream_url, "--agent-version", "3.5.7", "--policy", "juju-3",
        path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The controller is up to date: 3.5.7 (no upgrades available).\n")
    assert "  available:      nothing newer\n" in done.stdout
    assert "only by migrating models" in done.stdout  # the Juju 3 note is a warning
    assert "nothing to do" in done.stdout


def test_newcomer_command_on_the_sample_stream(bin_dir: Path) -> None:
    """The README's first command: a relative directory path, signed with a shipped key."""
    done = subprocess.run(
        [sys.executable, "-m", "upgrader", "plan", "--stream-url", "tests/data/sample-stream",
         "--signing-keys", "tests/data/sample-stream-key.asc", "--agent-version", "3.5.6"],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={"PATH": str(bin_dir), "PYTHONPATH": str(ROOT / "lib")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "Upgrade from 3.5.6 to 3.6.12: in place to 3.5.7, then through a new controller.\n"
    )
    assert f"source:         {SAMPLE.as_uri()} (released stream)\n" in done.stdout
    assert "  signature:      verified (--signing-keys)\n" in done.stdout
    assert done.stderr == ""


def test_stream_url_directory_made_by_sync_local_dir(tmp_path: Path, bin_dir: Path) -> None:
    """``--local-dir D`` puts the stream under D/tools; D itself is accepted."""
    write_stream(tmp_path / "mirror" / "tools", [Agent("3.6.11"), Agent("3.6.12")])
    results = plan_json(str(tmp_path / "mirror"), bin_dir, "--agent-version", "3.6.11")
    assert results["target-version"] == "3.6.12"
    assert results["source"] == (tmp_path / "mirror" / "tools").as_uri()
    results = plan_json((tmp_path / "mirror").as_uri() + "/tools", bin_dir, "--agent-version",
                        "3.6.11")  # fmt: skip
    assert results["target-version"] == "3.6.12"


def test_proposed_stream(tmp_path: Path, bin_dir: Path) -> None:
    write_stream(tmp_path, [Agent("3.6.13")], stream="proposed")
    with serve_directory(tmp_path) as url:
        results = plan_json(url, bin_dir, "--stream", "proposed", "--agent-version", "3.6.12")
        assert results["target-version"] == "3.6.13"
        done = run("plan", U, "--stream-url", url, "--agent-version", "3.6.12", path=bin_dir)
    assert done.returncode == 1
    assert done.stderr.startswith("juju-upgrader: error: ")
    assert "no content id com.ubuntu.juju:released:agents (stream 'released')" in done.stderr


# -- versions from juju -----------------------------------------------------------------------


def test_versions_come_from_juju_when_not_given(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "juju.log"
    fake_juju(bin_dir, log=log)
    done = run("plan", U, "--stream-url", stream_url, path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert "  agent version:  3.5.6 (from `juju show-controller prod`)" in done.stdout
    assert "  client version: 3.6.12 (from `juju version`)" in done.stdout
    assert "  models:         1: admin/default 3.5.6\n" in done.stdout
    assert log.read_text().splitlines() == [
        "version",
        "show-controller --format json",
        "models -c prod --format json",
        "machines -m prod:admin/controller --format json",
        "machines -m prod:admin/default --format json",
    ]
    # Real names in the runbook, and the controller's cloud for the new one.
    assert "juju upgrade-controller -c prod --agent-version 3.5.7 --dry-run" in done.stdout
    assert "juju upgrade-model -m prod:admin/default --agent-version 3.5.7" in done.stdout
    assert "juju bootstrap lxd/localhost prod-3-6 --no-switch " in done.stdout
    assert "juju migrate admin/default prod-3-6" in done.stdout
    assert "<model>" not in done.stdout


def test_juju_versions_noted_on_stderr_for_json(stream_url: str, bin_dir: Path) -> None:
    fake_juju(bin_dir, version="3.6.11-ubuntu-amd64")
    done = run("plan", U, "--stream-url", stream_url, "--format", "json", path=bin_dir)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert (results["agent-version"], results["client-version"]) == ("3.5.6", "3.6.11")
    assert done.stderr.splitlines() == [
        "juju-upgrader: agent version 3.5.6 from `juju show-controller prod`",
        "juju-upgrader: client version 3.6.11 from `juju version`",
    ]
    quiet = run("plan", U, "--stream-url", stream_url, "--format", "json", "-q", path=bin_dir)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout) == results


def test_given_versions_win_over_juju(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "juju.log"
    fake_juju(bin_dir, log=log)
    results = plan_json(
        stream_url, bin_dir, "--agent-version", "3.6.10", "--client-version", "3.6.11"
    )
    assert (results["agent-version"], results["client-version"]) == ("3.6.10", "3.6.11")
    assert not log.exists()  # juju was not run at all


def test_controller_option_is_passed_to_show_controller(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    """``juju upgrader -c staging plan`` passes ``-c staging`` on, before the command too."""
    log = tmp_path / "juju.log"
    fake_juju(
        bin_dir,
        log=log,
        show_controller=json.dumps({"staging": {"details": {"agent-version": "3.4.5"}}}),
    )
    for args in (["-c", "staging", "plan"], ["plan", "--controller", "staging"]):
        done = run(*args, U, "--stream-url", stream_url, "--format", "json", path=bin_dir)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["agent-version"] == "3.4.5"
        assert "agent version 3.4.5 from `juju show-controller staging`" in done.stderr
    assert log.read_text().splitlines().count("show-controller staging --format json") == 2


def test_no_juju_option_never_runs_juju(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "juju.log"
    fake_juju(bin_dir, log=log)
    results = plan_json(stream_url, bin_dir, "--no-juju", "--agent-version", "3.6.10")
    assert "client-version" not in results
    assert not log.exists()


def test_agent_version_required_without_juju(stream_url: str, bin_dir: Path) -> None:
    done = run("plan", U, "--stream-url", stream_url, path=bin_dir)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "juju-upgrader: error: give --agent-version (the controller's current agent version, "
        "e.g. 3.5.6): the juju command is not on PATH, so it cannot be read from "
        "`juju show-controller`\n"
    )
    fake_juju(bin_dir)
    done = run("plan", U, "--stream-url", stream_url, "--no-juju", path=bin_dir)
    assert done.returncode == 2
    assert "--no-juju was given" in done.stderr


def test_failing_show_controller_is_one_line(stream_url: str, bin_dir: Path) -> None:
    fake_juju(bin_dir, show_controller_status=1)
    done = run("plan", U, "--stream-url", stream_url, path=bin_dir)
    assert done.returncode == 1
    assert done.stderr == (
        "juju-upgrader: error: cannot read the controller's agent version: "
        "`juju show-controller --format json` failed (exit status 1): ERROR there is no "
        "active controller; give --agent-version\n"
    )


def test_show_controller_without_agent_version(stream_url: str, bin_dir: Path) -> None:
    fake_juju(
        bin_dir,
        show_controller=json.dumps(
            {"prod": {"details": {"uuid": "x"}, "errors": ["connection refused"]}}
        ),
    )
    done = run("plan", U, "--stream-url", stream_url, path=bin_dir)
    assert done.returncode == 1
    assert "reported no agent version for controller 'prod': connection refused" in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- bad arguments and failures ---------------------------------------------------------------

BAD_PLAN_ARGUMENTS = [
    (
        ["--agent-version", "3.x"],
        "argument --agent-version: invalid version '3.x': use M.m.p, M.m.p.b, M.m-tagP or "
        "M.m-tagP.b (e.g. 3.6.12, 2.9.42.1, 3.1-beta2), or M, M.m, M.m-tag (e.g. 3, 3.6)",
    ),
    (["--agent-version", "3.6", "--client-version", ""], "argument --client-version: invalid"),
    (["--agent-version", "3.6", "--target-version", "v3.6.1"], "argument --target-version: inv"),
    (
        ["--agent-version", "3.6", "--policy", "latest"],
        "argument --policy: invalid --policy 'latest': use one of documented, juju-2.9, juju-3",
    ),
    (
        ["--agent-version", "3.6", "--stream", "Released"],
        "argument --stream: invalid --stream 'Released': use released, proposed, devel, "
        "testing or another stream name",
    ),
    (
        ["--agent-version", "3.6", "--arch", "AMD64"],
        "argument --arch: invalid --arch 'AMD64': use architecture names separated by spaces",
    ),
    (["--agent-version", "3.6", "--os", "Ubuntu!"], "argument --os: invalid --os 'Ubuntu!'"),
    (
        ["--agent-version", "3.6", "--format", "xml"],
        "argument --format: invalid choice: 'xml' (choose from",
    ),
    (
        ["--agent-version", "3.6", U, "--stream-url", "ftp://mirror/juju/tools"],
        "argument --stream-url: invalid --stream-url 'ftp://mirror/juju/tools': use an "
        "http://, https:// or file:/// URL, or a local directory, holding streams/v1",
    ),
    (
        ["--agent-version", "3.6", U, "--stream-url", "no/such/dir"],
        "argument --stream-url: invalid --stream-url 'no/such/dir': no such directory; use an",
    ),
    (
        ["--agent-version", "3.6", U, "--stream-url", "file:///srv/tools%00x"],
        "argument --stream-url: invalid --stream-url 'file:///srv/tools%00x': a file path cannot "
        "hold a NUL character (%00); use an http://, https:// or file:/// URL, or a local",
    ),
    (["--agent-version", "3.6", U, "--stream-url", ""], "argument --stream-url: invalid"),
    (["--agent-version"], "argument --agent-version: expected one argument"),
    (["--agent-version", "3.6", "extra"], "unrecognized arguments: extra"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    # An abbreviation would be read, but left out of the runbook's juju-upgrader sync line.
    (["--agent-version", "3.6", "--sign", "k.asc"], "unrecognized arguments: --sign k.asc"),
    (["--agent-version", "3.6", "--ca-cert=c.pem"], "unrecognized arguments: --ca-cert=c.pem"),
]


@pytest.mark.parametrize(("args", "message"), BAD_PLAN_ARGUMENTS)
def test_bad_plan_arguments(bin_dir: Path, args: list[str], message: str) -> None:
    done = run("plan", *args, path=bin_dir)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"juju-upgrader: error: {message}")
    assert done.stderr.endswith("(see 'juju-upgrader plan --help')\n")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "choose a command: plan"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate' (choose from"),
        (["--quiet"], "choose a command: plan"),
    ],
)
def test_bad_command(bin_dir: Path, args: list[str], message: str) -> None:
    done = run(*args, path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(f"juju-upgrader: error: {message}")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        # the default policy, documented, speaks as Juju 1.25's upgrade-juju did
        ("3.4.5", "cannot change version from 3.5.6 to 3.4.5"),
        ("3.6.9", "no matching tools available"),
    ],
)
def test_selection_failure_is_one_line(
    stream_url: str, bin_dir: Path, target: str, message: str
) -> None:
    done = run(
        "plan", U, "--stream-url", stream_url, "--agent-version", "3.5.6", "--target-version",
        target, path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"juju-upgrader: error: {message}\n"


def test_juju_3_refuses_a_newer_minor_with_juju_message(stream_url: str, bin_dir: Path) -> None:
    done = run(
        "plan", U, "--stream-url", stream_url, "--agent-version", "3.5.6", "--target-version",
        "3.6.12", "--policy", "juju-3", path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith('juju-upgrader: error: cannot upgrade to "3.6.12" due to')
    assert "upgrading a controller to a newer major.minor version 3.6 not supported" in (
        done.stderr
    )


def test_unreachable_stream_is_one_line(bin_dir: Path, tmp_path: Path) -> None:
    with serve_directory(tmp_path) as url:  # serves an empty directory: 404 for everything
        done = run("plan", U, "--stream-url", url, "--agent-version", "3.6.10", path=bin_dir)
    assert done.returncode == 1
    assert done.stderr.startswith(f"juju-upgrader: error: no agent metadata at {url}: tried ")
    for path in ("index2.sjson", "index.sjson", "index2.json", "index.json"):
        assert f"{url}/streams/v1/{path}" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_malformed_stream_is_one_line_and_debug_shows_traceback(
    bin_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "streams" / "v1").mkdir(parents=True)
    (tmp_path / "streams" / "v1" / "index2.json").write_text("{not json")
    with serve_directory(tmp_path) as url:
        done = run("plan", U, "--stream-url", url, "--agent-version", "3.6.10", path=bin_dir)
        debug = run("--debug", "plan", U, "--stream-url", url, "--agent-version", "3.6.10",
                    path=bin_dir)  # fmt: skip
        debug_after = run("plan", U, "--stream-url", url, "--agent-version", "3.6.10", "--debug",
                          path=bin_dir)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"juju-upgrader: error: {url}/streams/v1/index2.json: not ")
    assert len(done.stderr.splitlines()) == 1
    for output in (debug, debug_after):
        assert output.returncode == 1
        assert output.stderr.startswith("Traceback (most recent call last):\n")
        assert output.stderr.splitlines()[-1] == done.stderr.strip()


def test_connection_refused_is_one_line(bin_dir: Path) -> None:
    with serve_directory(Path("/nonexistent")) as url:
        pass  # the port is closed again: nothing listens there now
    done = run(
        "plan", U, "--stream-url", url, "--agent-version", "3.6.10", path=bin_dir,
        env={"http_proxy": "", "HTTP_PROXY": ""},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("juju-upgrader: error: ")
    assert url in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- a --stream-url with credentials: sent to the source, never printed ----------------------

SECRET = "s3cr3t-T0KEN"  # noqa: S105 - the test value looked for in the output


def with_credentials(url: str, userinfo: str = f"mirror-user:{SECRET}") -> str:
    return url.replace("http://", f"http://{userinfo}@")


@pytest.mark.parametrize(
    ("userinfo", "shown"), [(f"mirror-user:{SECRET}", "mirror-user:***"), (SECRET, "***")]
)
def test_failures_hide_the_stream_url_credentials(
    bin_dir: Path, tmp_path: Path, userinfo: str, shown: str
) -> None:
    with serve_directory(tmp_path) as url:  # serves an empty directory: 404 for everything
        secret_url = with_credentials(url, userinfo)
        plan = ["plan", U, "--stream-url", secret_url, "--agent-version", "3.6.10"]
        done = run(*plan, path=bin_dir)
        debug = run("--debug", *plan, path=bin_dir)
        local = str(tmp_path / "mirror")
        sync = run("sync", U, "3.6", "--local-dir", local, "--stream-url", secret_url,
                   path=bin_dir)  # fmt: skip
    shown_url = with_credentials(url, shown)
    assert done.returncode == 1
    assert done.stderr.startswith(f"juju-upgrader: error: no agent metadata at {shown_url}: ")
    assert f"{shown_url}/streams/v1/index2.json" in done.stderr
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert sync.returncode == 1
    for output in (done, debug, sync):
        assert SECRET not in output.stdout + output.stderr


def test_a_bad_stream_url_with_credentials_is_refused_without_them(bin_dir: Path) -> None:
    done = run("plan", "--stream-url", f"ftp://mirror-user:{SECRET}@host/tools", path=bin_dir)
    assert done.returncode == 2
    assert "invalid --stream-url 'ftp://mirror-user:***@host/tools'" in done.stderr
    assert SECRET not in done.stderr


def test_credentials_are_sent_and_never_printed(bin_dir: Path, tmp_path: Path) -> None:
    root = write_stream(tmp_path / "up", [Agent("3.6.11"), Agent("3.6.12")], condensed=True)
    local = str(tmp_path / "mirror")
    with FaultyServer(root) as server:
        secret_url = with_credentials(server.url)
        outputs = [
            run("plan", U, "--stream-url", secret_url, "--agent-version", "3.6.10",
                path=bin_dir),
            run("plan", U, "--stream-url", secret_url, "--agent-version", "3.6.10",
                "--format", "yaml", path=bin_dir),
            run("sync", U, "3.6", "--local-dir", local, "--stream-url", secret_url,
                path=bin_dir),
            run("sync", U, "3.6", "--local-dir", local, "--stream-url", secret_url,
                "--format", "json", path=bin_dir),
        ]  # fmt: skip
    shown_url = with_credentials(server.url, "mirror-user:***")
    for output in outputs:
        assert output.returncode == 0, output.stderr
        assert SECRET not in output.stdout + output.stderr
    assert f"source:         {shown_url} (released stream)" in outputs[0].stdout
    assert yaml.safe_load(outputs[1].stdout)["source"] == shown_url
    assert f"read the released stream from {shown_url} in full" in outputs[2].stderr
    assert f"{shown_url} (released stream)" in outputs[2].stdout
    assert staged_binaries(Path(local)) == ["3.6.11-ubuntu-amd64", "3.6.12-ubuntu-amd64"]
    basic = "Basic " + base64.b64encode(f"mirror-user:{SECRET}".encode()).decode()
    assert server.requests
    assert {r.authorization for r in server.requests} == {basic}


# -- the program itself -----------------------------------------------------------------------


def test_help_lists_the_commands(bin_dir: Path) -> None:
    done = run("--help", path=bin_dir)
    assert done.returncode == 0
    assert "plan" in done.stdout
    assert done.stderr == ""
    plan = run("plan", "--help", path=bin_dir)
    assert plan.returncode == 0
    for option in ("--agent-version", "--client-version", "--target-version", "--policy",
                   "--stream-url", "--stream", "--arch", "--os", "--format", "--quiet",
                   "--debug"):  # fmt: skip
        assert option in plan.stdout


def test_juju_plugin_description(bin_dir: Path) -> None:
    """``juju help plugins`` runs ``juju-upgrader --description`` and shows its first line."""
    done = run("--description", path=bin_dir)
    assert done.returncode == 0
    assert done.stdout == (
        "Plan Juju controller upgrades and stage agent binaries for air-gapped controllers\n"
    )


def test_installed_entry_point(bin_dir: Path, stream_url: str) -> None:
    """The ``juju-upgrader`` script that installing the project puts next to Python."""
    script = Path(sys.executable).parent / "juju-upgrader"
    assert script.exists(), f"{script} missing: install the project (uv sync)"
    done = subprocess.run(
        [str(script), "plan", U, "--stream-url", stream_url, "--agent-version", "3.6.10",
         "--format", "json"],
        capture_output=True, text=True, env={"PATH": str(bin_dir)}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["target-version"] == "3.6.12"


def test_broken_pipe_is_silent(stream_url: str, bin_dir: Path) -> None:
    """``juju-upgrader plan | head -1``: no traceback when the reader goes away."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "upgrader", "plan", U, "--stream-url", stream_url,
         "--agent-version", "3.6.10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": str(bin_dir), "PYTHONPATH": str(ROOT / "lib")},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads the output
    with proc.stderr:
        err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err
    assert err == ""


# -- signatures -------------------------------------------------------------------------------


@pytest.fixture
def signed_stream(tmp_path: Path, gpg_keys: Keys) -> Iterator[str]:
    root = write_stream(tmp_path / "signed", [Agent("3.6.11"), Agent("3.6.12")], condensed=True)
    sign_stream(root, gpg_keys.signer, gpg_keys.alice, remove_unsigned=True)
    with serve_directory(root) as url:
        yield url


@needs_gpg
def test_signed_stream_verified_with_signing_keys(
    signed_stream: str, bin_dir: Path, tmp_path: Path, gpg_keys: Keys
) -> None:
    keys = tmp_path / "alice.asc"
    keys.write_text(gpg_keys.alice.armoured)
    args = (
        "--stream-url",
        signed_stream,
        "--agent-version",
        "3.6.11",
        "--signing-keys",
        str(keys),
    )
    done = run("plan", *args, "--format", "json", path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verified"] == "true"
    text = run("plan", *args, path=bin_dir)
    assert "  signature:      verified (--signing-keys)\n" in text.stdout


@needs_gpg
def test_sync_of_an_unchanged_stream_uses_the_kept_metadata(
    signed_stream: str, bin_dir: Path, tmp_path: Path, gpg_keys: Keys
) -> None:
    keys = tmp_path / "alice.asc"
    keys.write_text(gpg_keys.alice.armoured)
    local = tmp_path / "mirror"
    args = ("3.6", "--local-dir", str(local), "--stream-url", signed_stream)
    args += ("--signing-keys", str(keys), "--format", "json")
    first = run("sync", *args, path=bin_dir)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[0] == (
        f"juju-upgrader: read the released stream from {signed_stream} in full (no upstream "
        "metadata kept yet)"
    )
    again = run("sync", *args, path=bin_dir)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0].startswith(
        "juju-upgrader: upstream metadata unchanged since it was verified on "
    )
    assert json.loads(again.stdout)["bytes-downloaded"] == "0"
    assert (local / ".upstream" / "released.json").exists()


@needs_gpg
def test_signed_stream_with_another_key_is_refused(
    signed_stream: str, bin_dir: Path, tmp_path: Path, gpg_keys: Keys
) -> None:
    keys = tmp_path / "bob.asc"
    keys.write_text(gpg_keys.bob.armoured)
    for extra in ([], [U]):  # a bad signature is never a reason to fall back to unsigned
        done = run(
            "plan", "--stream-url", signed_stream, "--agent-version", "3.6.11",
            "--signing-keys", str(keys), *extra, path=bin_dir,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.startswith("juju-upgrader: error: ")
        assert "index2.sjson" in done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_unsigned_stream_is_refused_by_default(stream_url: str, bin_dir: Path) -> None:
    done = run("plan", "--stream-url", stream_url, "--agent-version", "3.6.11", path=bin_dir)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"juju-upgrader: error: no signed agent metadata at {stream_url}"
    )
    assert done.stderr.endswith(
        "To accept unsigned metadata from this source, give --no-verify-signatures (or sign "
        "it and give --signing-keys)\n"
    )


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--signing-keys", None, "cannot read --signing-keys '{path}': No such file"),
        ("--signing-keys", "not a key\n", "invalid --signing-keys '{path}': it holds no"),
        (
            "--ca-certificates",
            None,
            "cannot read --ca-certificates '{path}': No such file or directory; give a file",
        ),
        (
            "--ca-certificates",
            "not a certificate",
            "invalid --ca-certificates '{path}': no PEM certificate found",
        ),
        (
            "--ca-certificates",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "invalid --ca-certificates '{path}': holds a private key",
        ),
    ],
)
def test_bad_option_file(
    bin_dir: Path, tmp_path: Path, option: str, content: str | None, message: str
) -> None:
    path = tmp_path / "option-file"
    if content is not None:
        path.write_text(content)
    done = run("plan", "--no-juju", "--agent-version", "3.6", option, str(path), path=bin_dir)
    assert done.returncode == 2
    expected = f"juju-upgrader: error: argument {option}: {message.format(path=path)}"
    assert done.stderr.startswith(expected)
    assert "Traceback" not in done.stderr


# -- sync -------------------------------------------------------------------------------------

SYNC_KEYS = {"versions", "staged", "present", "bytes-downloaded", "agent-metadata-url", "dry-run"}


def sync_json(*args: str, path: Path) -> dict[str, str]:
    done = run("sync", U, "--format", "json", *args, path=path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def staged_binaries(local_dir: Path) -> list[str]:
    return sorted(str(e.binary) for e in Mirror(local_dir).staged("released"))


def test_sync_series_into_local_dir_then_nothing_to_do(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    local = tmp_path / "mirror"
    results = sync_json(
        "3.6", "--local-dir", str(local), "--stream-url", stream_url, "--arch", "amd64,arm64",
        path=bin_dir,
    )  # fmt: skip
    assert set(results) == SYNC_KEYS
    assert results["versions"] == "3.6.12, 3.6.11, 3.6.10"
    assert results["present"] == ""
    assert results["dry-run"] == "false"
    assert results["agent-metadata-url"] == (local / "tools").as_uri()
    want = [
        "3.6.10-ubuntu-amd64", "3.6.11-ubuntu-amd64", "3.6.12-ubuntu-amd64",
        "3.6.12-ubuntu-arm64",
    ]  # fmt: skip
    assert sorted(results["staged"].split(", ")) == want
    assert staged_binaries(local) == want
    sizes = sum(len(a.data) for a in AGENTS if a.version.startswith("3.6."))
    assert results["bytes-downloaded"] == str(sizes)
    # Juju's --local-dir layout: tools/<stream>/juju-<version>-<os>-<arch>.tgz
    tarball = local / "tools" / "released" / "juju-3.6.12-ubuntu-arm64.tgz"
    assert tarball.read_bytes() == Agent("3.6.12", arch="arm64").data
    assert not Mirror(local).verify()
    # The staged directory is itself a stream plan and sync can read (unsigned, ours).
    assert plan_json(str(local), bin_dir, "--agent-version", "3.6.10")["target-version"] == (
        "3.6.12"
    )
    again = sync_json(
        "3.6", "--local-dir", str(local), "--stream-url", stream_url, "--arch", "amd64,arm64",
        path=bin_dir,
    )  # fmt: skip
    assert again["staged"] == ""
    assert again["bytes-downloaded"] == "0"
    assert sorted(again["present"].split(", ")) == want


def test_sync_without_version_stages_the_plan_target(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    local = tmp_path / "mirror"
    done = run(
        "sync", U, "--local-dir", str(local), "--stream-url", stream_url, "--agent-version",
        "3.4.5", "--policy", "juju-2.9", path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert staged_binaries(local) == ["3.5.7-ubuntu-amd64"]
    assert (
        "juju-upgrader: the plan selects 3.5.7 (upgrade from 3.4.5; newest version of the next "
        "minor 3.5)\n"
    ) in done.stderr
    assert "juju-upgrader: route new-controller: staging 3.5.7 for amd64\n" in done.stderr
    assert done.stdout.startswith("Staged 1 agent binary of 3.5.7 into ")
    assert f"juju sync-agent-binary --source {local} --agent-version 3.5.7\n" in done.stdout
    assert f"  juju-upgrader plan --agent-metadata-url <URL> --local-dir {local}\n" in (
        done.stdout
    )
    assert f"juju-upgrader bundle {local} -o agents.tar.gz" in done.stdout


def test_sync_without_version_asks_juju(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    fake_juju(bin_dir)  # controller 3.5.6, client 3.6.12
    local = tmp_path / "mirror"
    results = sync_json(
        "--local-dir", str(local), "--stream-url", stream_url, "--policy", "juju-3", path=bin_dir
    )
    assert results["versions"] == "3.5.7"
    assert staged_binaries(local) == ["3.5.7-ubuntu-amd64"]


def test_sync_dry_run_changes_nothing(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "not-yet"
    results = sync_json(
        "3", "--local-dir", str(local), "--stream-url", stream_url, "--dry-run", path=bin_dir
    )
    assert results["dry-run"] == "true"
    assert results["versions"] == "3.6.12, 3.6.11, 3.6.10, 3.5.7, 3.5.6, 3.4.5"
    assert int(results["bytes-downloaded"]) == sum(
        len(a.data) for a in AGENTS if a.version.startswith("3.") and a.arch == "amd64"
    )
    assert not local.exists()


def test_sync_progress_lines_and_quiet(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    done = run(
        "sync", U, "3.5", "--local-dir", str(tmp_path / "a"), "--stream-url", stream_url,
        path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"juju-upgrader: read the released stream from {stream_url} in full (no upstream "
        "metadata kept yet); it is not verified, so it is not kept for the next sync"
    )
    assert lines[1].startswith("juju-upgrader: downloading 2 files, ")
    assert "juju-upgrader: downloading juju-3.5.7-ubuntu-amd64.tgz (" in done.stderr
    assert any(
        line.startswith("juju-upgrader: staged juju-3.5.6-ubuntu-amd64.tgz (") for line in lines
    )
    assert "\x1b" not in done.stderr  # not a terminal: no escape sequences
    quiet = run(
        "sync", U, "3.5", "--local-dir", str(tmp_path / "b"), "--stream-url", stream_url, "-q",
        path=bin_dir,
    )  # fmt: skip
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert quiet.stdout.startswith("Staged 2 agent binaries of 3.5.7, 3.5.6 into ")


BAD_SYNC_ARGUMENTS = [
    (
        ["3.6.1", "--local-dir", "d"],
        "argument VERSION: invalid major.minor version '3.6.1': give a major or major.minor "
        "such as 3 or 3.6 (use 3.6, not 3.6.1)",
    ),
    (["latest", "--local-dir", "d"], "argument VERSION: invalid major.minor version 'latest'"),
    (["3.6"], "the following arguments are required: --local-dir"),
    (["3.6", "--local-dir", ""], "argument --local-dir: invalid --local-dir ''"),
    (
        ["3.6", "--local-dir", "d", "--jobs", "0"],
        "argument --jobs: invalid --jobs '0': use a whole number from 1 to 16",
    ),
    (["3.6", "--local-dir", "d", "--jobs", "17"], "argument --jobs: invalid --jobs '17'"),
    (["3.6", "--local-dir", "d", "--jobs", "many"], "argument --jobs: invalid --jobs 'many'"),
    (
        ["3.6", "--local-dir", "d", "--agent-version", "3.5.6"],
        "--agent-version chooses the version to stage when VERSION is not given; give either "
        "VERSION (3.6) or the plan options",
    ),
    (["3.6", "--local-dir", "d", "3.5"], "unrecognized arguments: 3.5"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SYNC_ARGUMENTS)
def test_bad_sync_arguments(
    stream_url: str, bin_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / "d") if a == "d" else a for a in args]
    done = run("sync", U, "--stream-url", stream_url, *args, path=bin_dir)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"juju-upgrader: error: {message}")
    assert len(done.stderr.splitlines()) == 1
    assert done.stdout == ""
    assert not (tmp_path / "d").exists()


def test_sync_local_dir_that_is_a_file(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = run("sync", U, "3.6", "--local-dir", str(tmp_path / "file"), path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"juju-upgrader: error: argument --local-dir: invalid --local-dir '{tmp_path / 'file'}'"
    )


def test_sync_series_missing_from_stream(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    done = run(
        "sync", U, "4.0", "--local-dir", str(tmp_path / "d"), "--stream-url", stream_url,
        path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        "juju-upgrader: error: no agent binaries for 4.0 (ubuntu; amd64)"
    )
    assert "major.minor series available: 3.6, 3.5, 3.4, 2.9" in done.stderr


def test_sync_failed_download_leaves_the_mirror_valid(bin_dir: Path, tmp_path: Path) -> None:
    root = write_stream(tmp_path / "up", [Agent("3.6.11"), Agent("3.6.12")], condensed=True)
    (root / Agent("3.6.12").official_path).unlink()  # listed, but 404
    local = tmp_path / "mirror"
    with serve_directory(root) as url:
        done = run("sync", U, "3.6", "--local-dir", str(local), "--stream-url", url, path=bin_dir)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        f"juju-upgrader: error: could not stage 1 of 2 files from {url}: "
        "juju-3.6.12-ubuntu-amd64.tgz"
    )
    assert "Traceback" not in done.stderr
    assert staged_binaries(local) == ["3.6.11-ubuntu-amd64"]  # the good one is published
    assert not Mirror(local).verify()


def big_stream(root: Path) -> tuple[Agent, Path]:
    """A stream whose one tarball is large enough to interrupt mid-download."""
    agent = Agent("3.6.12", content=os.urandom(4 * 1024 * 1024))
    write_stream(root, [agent], condensed=True)
    return agent, root


def wait_for_partial(local: Path, at_least: int, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list((local / ".partial").glob("*.part"))
        if parts and parts[0].stat().st_size >= at_least:
            return parts[0].stat().st_size
        assert proc.poll() is None, "the sync ended before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("no partial download appeared")


def start_sync(url: str, local: Path, bin_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "upgrader", "sync", U, "3.6", "--local-dir", str(local),
         "--stream-url", url, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": str(bin_dir), "PYTHONPATH": str(ROOT / "lib")},
    )  # fmt: skip


def test_sync_resumes_after_sigkill(bin_dir: Path, tmp_path: Path) -> None:
    agent, root = big_stream(tmp_path / "up")
    local = tmp_path / "mirror"
    name = "juju-3.6.12-linux-amd64.tgz"
    with FaultyServer(root) as server:
        server.add_fault(name, Fault("slow", rate=512 * 1024))
        proc = start_sync(server.url, local, bin_dir)
        wait_for_partial(local, 256 * 1024, proc)
        proc.kill()
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # Killed mid-download: nothing is listed, no tarball is in place, the partial is kept.
        assert Mirror(local).staged_all() == {}
        assert not (local / "tools" / "released").exists() or not any(
            (local / "tools" / "released").iterdir()
        )
        held = next((local / ".partial").glob("*.part")).stat().st_size
        assert 0 < held < len(agent.data)
        server.clear_faults()
        results = sync_json("3.6", "--local-dir", str(local), "--stream-url", server.url,
                            path=bin_dir)  # fmt: skip
        ranges = [r.range for r in server.requests_for(name)]
    assert ranges[-1] == f"bytes={held}-"
    assert results["bytes-downloaded"] == str(len(agent.data) - held)
    assert results["staged"] == "3.6.12-ubuntu-amd64"
    staged = local / "tools" / "released" / "juju-3.6.12-ubuntu-amd64.tgz"
    assert hashlib.sha256(staged.read_bytes()).digest() == hashlib.sha256(agent.data).digest()
    assert not list((local / ".partial").glob("*.part"))
    assert not Mirror(local).verify()


def test_sync_ctrl_c_exits_at_once(bin_dir: Path, tmp_path: Path) -> None:
    _, root = big_stream(tmp_path / "up")
    local = tmp_path / "mirror"
    with FaultyServer(root) as server:
        server.add_fault("linux-amd64.tgz", Fault("slow", rate=256 * 1024))
        proc = start_sync(server.url, local, bin_dir)
        wait_for_partial(local, 64 * 1024, proc)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - interrupted
    assert proc.returncode == 130
    assert took < 5  # not after the 16 s the slow download would still take
    assert err.splitlines()[-1] == (
        "juju-upgrader: error: interrupted; the staged mirror is unchanged and consistent, and "
        "running the same command again resumes the downloads"
    )
    assert Mirror(local).staged_all() == {}


def test_sync_draws_bars_on_a_terminal(bin_dir: Path, tmp_path: Path) -> None:
    _, root = big_stream(tmp_path / "up")
    primary, secondary = pty.openpty()
    with FaultyServer(root) as server:
        server.add_fault("linux-amd64.tgz", Fault("slow", rate=4 * 1024 * 1024))
        proc = subprocess.Popen(
            [sys.executable, "-m", "upgrader", "sync", U, "3.6", "--local-dir",
             str(tmp_path / "mirror"), "--stream-url", server.url],
            stdout=subprocess.PIPE, stderr=secondary, text=True,
            env={"PATH": str(bin_dir), "PYTHONPATH": str(ROOT / "lib"), "TERM": "xterm"},
        )  # fmt: skip
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        os.close(primary)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    text = shown.decode()
    assert "\x1b[A" in text or "\x1b[J" in text  # redrawn in place
    assert "3.6.12-ubuntu-amd64 [" in text and "total 0/1" in text and "MiB/s" in text
    assert "staged juju-3.6.12-ubuntu-amd64.tgz (4.0 MiB in " in text
    assert out.startswith("Staged 1 agent binary of 3.6.12 into ")


# -- bundle -----------------------------------------------------------------------------------


def test_bundle_round_trip_into_the_charm_mirror(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    """sync, bundle, then the charm's import (archive_import.import_bundle) into its storage."""
    local = tmp_path / "mirror"
    sync_json("3.6", "--local-dir", str(local), "--stream-url", stream_url, "--arch",
              "amd64,arm64", path=bin_dir)  # fmt: skip
    archive = tmp_path / "agents.tar.gz"
    done = run("bundle", str(local), "-o", str(archive), "--format", "json", path=bin_dir)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert set(results) == {"output", "binaries", "files", "bytes", "skipped"}
    assert results["output"] == str(archive)
    assert sorted(results["binaries"].split(", ")) == staged_binaries(local)
    assert done.stderr.count("juju-upgrader: added released/juju-") == 4
    storage = tmp_path / "charm-storage"
    storage.mkdir()
    imported = import_bundle(archive, Mirror(storage))
    assert sorted(str(b) for b in imported.imported) == staged_binaries(local)
    theirs = {e.binary: e.sha256 for e in Mirror(storage).staged("released")}
    ours = {e.binary: e.sha256 for e in Mirror(local).staged("released")}
    assert theirs == ours
    assert not Mirror(storage).verify()


def test_bundle_imported_by_the_charm(
    ctx: testing.Context, stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    """sync and bundle with the command, then the charm's import-binaries action (Scenario)."""
    local = tmp_path / "mirror"
    sync_json("3.6", "--local-dir", str(local), "--stream-url", stream_url, "--arch",
              "amd64,arm64", path=bin_dir)  # fmt: skip
    archive = tmp_path / "agents.tar.gz"
    assert run("bundle", str(local), "-o", str(archive), path=bin_dir).returncode == 0
    storage = testing.Storage("binaries")
    state = testing.State(
        resources={testing.Resource(name="agent-binaries", path=archive)},
        storages={storage},
        config={"stream-url": SAMPLE.as_uri()},
    )
    ctx.run(ctx.on.action("import-binaries"), state)
    results = ctx.action_results
    assert results is not None
    assert sorted(results["imported"].split(", ")) == staged_binaries(local)
    charm_mirror = Mirror(storage.get_filesystem(ctx))
    assert {e.binary: e.sha256 for e in charm_mirror.staged("released")} == {
        e.binary: e.sha256 for e in Mirror(local).staged("released")
    }
    assert not charm_mirror.verify()


def test_bundle_text_and_overwrite(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "mirror"
    sync_json("3.5", "--local-dir", str(local), "--stream-url", stream_url, path=bin_dir)
    archive = tmp_path / "agents.tar.gz"
    done = run("bundle", str(local / "tools"), "-o", str(archive), "-q", path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"Wrote {archive} with 2 agent binaries (")
    assert done.stdout.endswith(f"  juju attach-resource upgrader agent-binaries={archive}\n")
    before = archive.read_bytes()
    again = run("bundle", str(local), "-o", str(archive), path=bin_dir)
    assert again.returncode == 2
    assert again.stderr == (
        f"juju-upgrader: error: {archive} exists; give --force to replace it, or another -o FILE\n"
    )
    forced = run("bundle", str(local), "-o", str(archive), "--force", path=bin_dir)
    assert forced.returncode == 0, forced.stderr
    assert archive.read_bytes() == before  # the same mirror makes the same archive


def _pasted(stdout: str, command: str) -> list[str]:
    """The words a shell splits the printed ``command ...`` line into (``;`` and ``&`` apart)."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith(command))
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def test_printed_next_steps_keep_an_odd_directory_one_shell_word(
    stream_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    local = tmp_path / "mir ror;x"
    done = run(
        "sync", U, "3.5", "--local-dir", str(local), "--stream-url", stream_url, path=bin_dir
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert _pasted(out, "python3 -m http.server")[4] == str(local / "tools")
    assert _pasted(out, "juju-upgrader bundle")[2] == str(local)
    assert _pasted(out, "juju sync-agent-binary")[3] == str(local)
    assert _pasted(out, "juju-upgrader plan")[-1] == str(local)
    archive = tmp_path / "a b&c.tar.gz"
    bundled = run("bundle", str(local), "-o", str(archive), "-q", path=bin_dir)
    assert bundled.returncode == 0, bundled.stderr
    assert _pasted(bundled.stdout, "juju attach-resource") == [
        "juju", "attach-resource", "upgrader", f"agent-binaries={archive}",
    ]  # fmt: skip


def test_bundle_of_a_directory_without_metadata(bin_dir: Path, tmp_path: Path) -> None:
    done = run("bundle", str(tmp_path), "-o", str(tmp_path / "a.tgz"), path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(f"juju-upgrader: error: {tmp_path}: no agent metadata found")
    assert not (tmp_path / "a.tgz").exists()


def test_bundle_of_a_damaged_mirror(stream_url: str, bin_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "mirror"
    sync_json("3.5", "--local-dir", str(local), "--stream-url", stream_url, path=bin_dir)
    (local / "tools" / "released" / "juju-3.5.7-ubuntu-amd64.tgz").write_bytes(b"short")
    done = run("bundle", str(local), "-o", str(tmp_path / "a.tgz"), path=bin_dir)
    assert done.returncode == 1
    assert "sync it again before bundling" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "a.tgz").exists()


def test_private_ca_for_an_https_source(tmp_path: Path, bin_dir: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    ca = tmp_path / "ca.pem"
    ca.write_text(pki.ca_pem)
    root = write_stream(tmp_path / "stream", AGENTS, condensed=True)
    with serve_directory(root, tls=pki.server_context()) as url:
        plan = ("plan", "--stream-url", url, "--no-verify-signatures", "--no-juju")
        plan += ("--agent-version", "3.5.6", "--format", "json")
        refused = run(*plan, path=bin_dir)
        trusted = run(*plan, "--ca-certificates", str(ca), path=bin_dir)

    assert refused.returncode == 1
    assert "TLS certificate verify failed" in refused.stderr
    assert "add that CA to --ca-certificates FILE" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["target-version"] == "3.6.12"


@pytest.mark.parametrize(
    "userinfo",
    [
        pytest.param(f'mirror-user:{SECRET}"x', id="double-quote"),
        pytest.param(f"mirror-user:{SECRET}<x>", id="angle-brackets"),
        pytest.param(f"mirror-user:{SECRET}\\x", id="backslash"),
        pytest.param(f"mirror-user:{SECRET}/x=", id="unencoded-slash"),
        pytest.param(f"mirror-user:ab {SECRET}", id="space"),
    ],
)
def test_unusual_passwords_are_never_printed(bin_dir: Path, tmp_path: Path, userinfo: str) -> None:
    """Generated passwords pasted unencoded: failures and --debug still hide them."""
    with serve_directory(tmp_path) as url:  # serves an empty directory: 404 for everything
        secret_url = with_credentials(url, userinfo)
        plan = ["plan", U, "--stream-url", secret_url, "--agent-version", "3.6.10"]
        outputs = [
            run(*plan, path=bin_dir),
            run(*plan, "--format", "json", path=bin_dir),
            run("--debug", *plan, path=bin_dir),
        ]
    for output in outputs:
        assert output.returncode in (1, 2), output.stderr
        assert "juju-upgrader: error: " in output.stderr
        assert SECRET not in output.stdout + output.stderr


# -- bounds on outside input: what reaches the terminal, URLs, sizes -------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\rjuju-upgrader: all good\x9b31m"
"""Set the terminal title, clear the screen, move up, overwrite the line, C1 CSI."""
ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[1A juju-upgrader: all good\\x9b31m"
"""As an error line shows it: escaped, and the white space (the CR) made one space."""


def assert_no_controls(text: str) -> None:
    controls = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    assert controls == [], text


def test_a_reason_phrase_with_escape_sequences_is_printed_escaped(
    bin_dir: Path, tmp_path: Path
) -> None:
    write_stream(tmp_path, AGENTS, condensed=True)
    with FaultyServer(tmp_path) as server:
        server.add_fault("index2.json", Fault("status", status=403, reason=f"No {ESCAPES}"))
        done = run(
            "plan", U, "--stream-url", server.url, "--agent-version", "3.6.10", path=bin_dir
        )
    assert done.returncode == 1
    assert_no_controls(done.stdout + done.stderr)
    assert ESCAPED in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_document_text_with_escape_sequences_is_printed_escaped(
    bin_dir: Path, tmp_path: Path
) -> None:
    """A content id from the index reaches the error line; a version note reaches stderr."""
    write_stream(tmp_path, AGENTS, condensed=True, stream="devel")
    index = tmp_path / "streams/v1/index2.json"
    doc = json.loads(index.read_text())
    doc["index"][f"com.ubuntu.juju:{ESCAPES}:agents"] = {}
    index.write_text(json.dumps(doc))
    with serve_directory(tmp_path) as url:
        done = run("plan", U, "--stream-url", url, "--agent-version", "3.6.10", path=bin_dir)
    assert done.returncode == 1
    assert_no_controls(done.stdout + done.stderr)
    assert f"it lists: com.ubuntu.juju:{ESCAPED}:agents, com.ubuntu.juju:devel:agents" in (
        done.stderr
    )


def test_juju_output_with_escape_sequences_is_printed_escaped(
    stream_url: str, bin_dir: Path
) -> None:
    fake_juju(bin_dir, show_controller=json.dumps({"prod": {"errors": [ESCAPES]}}))
    done = run("plan", U, "--stream-url", stream_url, path=bin_dir)
    assert done.returncode == 1
    assert_no_controls(done.stdout + done.stderr)
    assert f"reported no agent version for controller 'prod': {ESCAPED}; give --agent-version" in (
        done.stderr
    )


def test_multi_line_results_keep_their_lines(stream_url: str, bin_dir: Path) -> None:
    done = run("plan", U, "--stream-url", stream_url, "--agent-version", "3.5.6", path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) > 10
    assert "\\n" not in done.stdout


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1/tools?token=s3cr3t-T0KEN", "https://h/tools#s3cr3t-T0KEN",
     "file:///srv/tools?s3cr3t-T0KEN"],
)  # fmt: skip
def test_stream_url_with_a_query_is_refused_without_showing_it(bin_dir: Path, url: str) -> None:
    done = run("plan", "--stream-url", url, "--agent-version", "3.6", "--no-juju", path=bin_dir)
    assert done.returncode == 2
    assert SECRET not in done.stdout + done.stderr
    assert done.stderr.startswith("juju-upgrader: error: argument --stream-url: invalid ")
    assert "a query ('?...') or fragment ('#...') is not accepted" in done.stderr
    assert "use an http://, https:// or file:/// URL, or a local directory, holding" in (
        done.stderr
    )
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/tools", "https://h:x/y"])
def test_stream_url_that_cannot_be_split_is_a_usage_error(bin_dir: Path, url: str) -> None:
    done = run("plan", "--stream-url", url, "--agent-version", "3.6", "--no-juju", path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"juju-upgrader: error: argument --stream-url: invalid --stream-url {url!r}: use an "
        "http://, https:// or file:/// URL, or a local directory, holding streams/v1"
    )
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr


def test_sync_of_an_item_claiming_10_to_the_400_bytes_is_refused(
    bin_dir: Path, tmp_path: Path
) -> None:
    """It passed the metadata checks and crashed sync with OverflowError."""
    root = write_stream(tmp_path / "up", [Agent("3.6.12")], condensed=True)
    products = root / "streams/v1/com.ubuntu.juju-released-agents.json"
    products.write_text(re.sub(r'"size": \d+', '"size": 1' + "0" * 400, products.read_text()))
    local = tmp_path / "local"
    local.mkdir()
    with serve_directory(root) as url:
        done = run("sync", U, "3.6", "--local-dir", str(local), "--stream-url", url,
                   path=bin_dir)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"juju-upgrader: error: {url}/streams/v1/com.ubuntu.juju-released-agents.json: product "
        "com.ubuntu.juju:ubuntu:amd64 version 20250101 item 3.6.12-ubuntu-amd64: size a number "
        "of more than 20 digits is more than the 8589934592 bytes (8 GiB) accepted for one "
        "agent tarball"
    )
    assert list(local.iterdir()) == []


@pytest.mark.parametrize("option", ["--signing-keys", "--ca-certificates"])
def test_an_endless_option_file_is_read_up_to_4_mib(bin_dir: Path, option: str) -> None:
    done = run("plan", "--no-juju", "--agent-version", "3.6", option, "/dev/zero", path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"juju-upgrader: error: argument {option}: invalid {option} '/dev/zero': it holds more "
        "than 4194304 bytes (4 MiB); give a file of "
    )
