"""``juju-upgrader plan`` and ``sync`` along each upgrade route, with a fake ``juju`` on PATH.

The fake ``juju`` (tests/unit/test_cli.py) prints what Juju 3.6 prints, in the same shapes;
streams are served on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import (
    DEFAULT_MACHINES,
    ROOT,
    SAMPLE,
    U,
    fake_juju,
    recorded_model,
    run,
    staged_binaries,
)

from support.gpg import needs_gpg
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader.cli.plan import Versions, read_juju_facts
from upgrader.juju_client import MAX_MODELS, ControllerDetails
from upgrader.runbook import default_offline_dir
from upgrader.versions import Version

ROUTE_VERSIONS = "2.9.38 2.9.42 2.9.52 2.9.53 3.1.8 3.5.6 3.5.7 3.6.10 3.6.11 3.6.12".split()
URL = "http://10.0.0.9:8080/tools"


@pytest.fixture(scope="module")
def routes_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    agents = [Agent(v, arch=a) for v in ROUTE_VERSIONS for a in ("amd64", "arm64")]
    root = write_stream(tmp_path_factory.mktemp("routes"), agents, condensed=True)
    with serve_directory(root) as url:
        yield url


def plan(url: str, bin_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    done = run(
        "plan", U, "--stream-url", url, "--format", "json", "--agent-metadata-url", URL, *args,
        path=bin_dir, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def controller(version: str, *, cloud: str = "lxd", region: str = "localhost") -> str:
    details = {"uuid": "u", "cloud": cloud, "region": region, "agent-version": version}
    return json.dumps({"prod": {"details": details}})


def models(*entries: dict, kubernetes: bool = False) -> str:
    kind = "caas" if kubernetes else "iaas"
    control = recorded_model(
        "admin/controller", "3.5.6", **{"is-controller": True, "model-type": kind}
    )
    return json.dumps({"models": [control, *entries]})


# The six worked routes ----------------------------------------------------------------------


def test_3_5_6_to_3_6_12(routes_url: str, bin_dir: Path) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "3.5.6")
    assert (out["route"], out["hops"], out["stage"], out["in-place-target"]) == (
        "in-place-then-new-controller",
        "3.5.7, 3.6.12",
        "3.5.7, 3.6.12",
        "3.5.7",
    )
    steps = out["next-steps"].splitlines()
    directory = default_offline_dir(Version(3, 6, 12))
    assert steps[0] == (
        f"juju-upgrader sync --local-dir {directory}/agents --stream-url {routes_url} "
        "--arch amd64 --agent-version 3.5.6 --no-verify-signatures"
    )
    assert steps[1] == f"juju model-config -m controller agent-metadata-url={URL}"
    assert (
        f"juju bootstrap <cloud> controller-3-6 --no-switch --bootstrap-base ubuntu@24.04 "
        f"--agent-version 3.6.12 --controller-charm-path {directory}/juju-controller.charm "
        f"--db-snap {directory}/juju-db_*.snap --db-snap-asserts {directory}/juju-db_*.assert "
        f"--config agent-metadata-url={URL} --model-default agent-metadata-url={URL}"
    ) in steps


def test_3_6_10_to_3_6_12(routes_url: str, bin_dir: Path) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "3.6.10")
    assert (out["route"], out["hops"], out["in-place-target"]) == ("in-place", "3.6.12", "")
    assert out["next-steps"].splitlines()[1:5] == [
        f"juju model-config -m controller agent-metadata-url={URL}",
        f"juju model-defaults agent-metadata-url={URL}",
        "juju upgrade-controller --agent-version 3.6.12 --dry-run",
        "juju upgrade-controller --agent-version 3.6.12",
    ]


def test_2_9_40_to_3_6_12(routes_url: str, bin_dir: Path) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "2.9.40", "--client-version", "3.6.12")
    assert (out["route"], out["hops"], out["stage"]) == (
        "in-place-then-new-controller",
        "2.9.53, 3.6.12",
        "2.9.53, 3.6.12",
    )
    assert 'answers: upgrade to "3.6.12" is not supported from "2.9.40"' in out["reason"]
    steps = out["next-steps"].splitlines()
    assert steps[0].endswith(
        "--agent-version 2.9.40 --client-version 3.6.12 --no-verify-signatures"
    )
    assert steps.index("juju upgrade-controller --agent-version 2.9.53") < steps.index(
        "juju migrate <model> controller-3-6"
    )


def test_2_9_52_to_2_9_53(routes_url: str, bin_dir: Path) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "2.9.52")
    assert (out["target-version"], out["route"], out["hops"]) == ("2.9.53", "in-place", "2.9.53")
    assert not any("bootstrap" in step for step in out["next-steps"].splitlines())


def test_3_1_8_to_3_6_12(routes_url: str, bin_dir: Path) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "3.1.8", "--target-version", "3.6.12")
    assert (out["route"], out["hops"], out["in-place-target"]) == (
        "new-controller",
        "3.6.12",
        "3.1.8",
    )
    assert "needs a newer patch than 3.1.8" in out["reason"]
    assert not any("upgrade-controller" in s for s in out["next-steps"].splitlines())


def test_kubernetes_controller(routes_url: str, bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "juju.log"
    caas = recorded_model("admin/apps", "3.5.6", **{"model-type": "caas", "type": "kubernetes"})
    status = {
        "applications": {
            "db": {"base": {"name": "ubuntu", "channel": "22.04"}},
            "web": {"base": {"name": "ubuntu", "channel": "24.04/stable"}},
        }
    }
    fake_juju(
        bin_dir, log=log, show_controller=controller("3.5.7", cloud="microk8s", region=""),
        models=models(caas, kubernetes=True), status=json.dumps(status),
    )  # fmt: skip
    out = plan(routes_url, bin_dir, "--image-repo", "registry.local:5000/juju")
    assert (out["route"], out["hops"], out["stage"]) == ("new-controller", "3.6.12", "")
    steps = out["next-steps"].splitlines()
    repo = "docker://registry.local:5000/juju"
    assert steps[:4] == [
        f"skopeo copy --all docker://docker.io/jujusolutions/jujud-operator:3.6.12 "
        f"{repo}/jujud-operator:3.6.12",
        f"skopeo copy --all docker://docker.io/jujusolutions/juju-db:4.4 {repo}/juju-db:4.4",
        f"skopeo copy --all docker://docker.io/jujusolutions/charm-base:ubuntu-22.04 "
        f"{repo}/charm-base:ubuntu-22.04",
        f"skopeo copy --all docker://docker.io/jujusolutions/charm-base:ubuntu-24.04 "
        f"{repo}/charm-base:ubuntu-24.04",
    ]
    assert (
        "juju bootstrap microk8s prod-3-6 --no-switch --agent-version 3.6.12 "
        "--config caas-image-repo=registry.local:5000/juju"
    ) in steps
    assert not any("sync" in s or "agent-metadata-url" in s for s in steps)
    # No machines to ask on Kubernetes; the charm bases come from status.
    assert log.read_text().splitlines()[2:] == [
        "models -c prod --format json",
        "status -m prod:admin/apps --format json",
    ]


# No route, other streams ------------------------------------------------------------------


def test_no_2_9_patch_at_or_above_2_9_43(bin_dir: Path, tmp_path: Path) -> None:
    root = write_stream(tmp_path / "old", [Agent("2.9.38"), Agent("2.9.42"), Agent("3.6.12")])
    with serve_directory(root) as url:
        done = run(
            "plan", U, "--stream-url", url, "--agent-version", "2.9.40", "--client-version",
            "3.6.12", path=bin_dir,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "juju-upgrader: error: model must be upgraded to at least version 2.9.43 before being "
        "migrated to a controller with version 3.6.12: the stream has no 2.x agent at or above "
        "2.9.43 to upgrade the controller and its models to first (the newest is 2.9.42); stage "
        "one from a stream that has it\n"
    )


def test_proposed_stream(bin_dir: Path, tmp_path: Path) -> None:
    root = write_stream(tmp_path / "p", [Agent("3.6.12"), Agent("3.6.13")], stream="proposed")
    with serve_directory(root) as url:
        out = plan(url, bin_dir, "--stream", "proposed", "--agent-version", "3.6.12")
    steps = out["next-steps"].splitlines()
    assert " --stream proposed " in steps[0]
    assert steps[1] == (
        f"juju model-config -m controller agent-metadata-url={URL} agent-stream=proposed"
    )
    assert "juju upgrade-controller --agent-version 3.6.13 --agent-stream proposed --dry-run" in (
        steps
    )
    assert "juju upgrade-model -m <model> --agent-version 3.6.13 --agent-stream proposed" in steps


# The controller's models, read from juju ---------------------------------------------------


def test_models_flagged_and_named(routes_url: str, bin_dir: Path) -> None:
    fake_juju(
        bin_dir,
        show_controller=controller("3.6.10"),
        models=models(
            recorded_model("admin/prod", "3.6.10"),
            recorded_model("bob/dev", "3.6.9"),
            recorded_model("admin/old", "3.6.10", life="dying"),
        ),
    )
    done = run("plan", U, "--stream-url", routes_url, "--agent-metadata-url", URL, path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert "  models:         2: admin/prod 3.6.10, bob/dev 3.6.9\n" in done.stdout
    assert "  - model bob/dev runs 3.6.9, not the controller's 3.6.10\n" in done.stdout
    assert "  - model admin/old is dying: left out of the plan\n" in done.stdout
    for model in ("admin/prod", "bob/dev"):
        assert f". juju upgrade-model -m prod:{model} --agent-version 3.6.12 --dry-run\n" in (
            done.stdout
        )
    assert "admin/old --agent" not in done.stdout


def test_sync_stages_every_hop_for_every_architecture_in_use(
    routes_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    machines = {
        "machines": {
            "0": {"hardware": "arch=amd64 cores=2", "containers": {"0/lxd/0": {}}},
            "1": {"hardware": "arch=arm64 cores=4"},
        }
    }
    fake_juju(bin_dir, machines=json.dumps(machines))  # controller 3.5.6, one model
    local = tmp_path / "mirror"
    done = run("sync", U, "--local-dir", str(local), "--stream-url", routes_url, path=bin_dir)
    assert done.returncode == 0, done.stderr
    assert staged_binaries(local) == [
        "3.5.7-ubuntu-amd64", "3.5.7-ubuntu-arm64", "3.6.12-ubuntu-amd64", "3.6.12-ubuntu-arm64",
    ]  # fmt: skip
    assert (
        "juju-upgrader: route in-place-then-new-controller: staging 3.5.7, 3.6.12 for "
        "amd64, arm64\n"
    ) in done.stderr
    # The plan now finds every hop staged, and says so.
    out = plan(routes_url, bin_dir, "--local-dir", str(local))
    assert out["staged"] == "true"
    assert out["next-steps"].splitlines()[0].startswith("juju model-config -m prod:controller")


def test_architecture_counting_stops_at_its_bound(routes_url: str, bin_dir: Path) -> None:
    many = [recorded_model(f"admin/m{i}", "3.6.10") for i in range(30)]
    fake_juju(bin_dir, show_controller=controller("3.6.10"), models=models(*many),
              machines=json.dumps(DEFAULT_MACHINES))  # fmt: skip
    done = run(
        "plan", U, "--stream-url", routes_url, "--format", "json", path=bin_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "juju-upgrader: stopped counting architectures after 25 of 31 models (at most 25 "
        "models); give --arch for any other architecture in use\n"
    ) in done.stderr


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("not json", "`juju models -c prod --format json` did not print JSON"),
        (
            json.dumps({"models": [recorded_model("admin/x; rm -rf ~", "3.6.10")]}),
            "`juju models -c prod --format json` printed an unexpected model name",
        ),
        (
            json.dumps({"models": [recorded_model("admin/x", "3.6.10")] * (MAX_MODELS + 1)}),
            f"`juju models -c prod --format json` listed {MAX_MODELS + 1} models, more than",
        ),
    ],
)
def test_hostile_models_output_is_one_clear_line(
    routes_url: str, bin_dir: Path, output: str, message: str
) -> None:
    fake_juju(bin_dir, models=output)
    done = run("plan", U, "--stream-url", routes_url, path=bin_dir)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"juju-upgrader: error: {message}")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_failing_juju_models_names_the_command(routes_url: str, bin_dir: Path) -> None:
    fake_juju(bin_dir, models_status=1)
    done = run("plan", U, "--stream-url", routes_url, path=bin_dir)
    assert done.returncode == 1
    assert done.stderr == (
        "juju-upgrader: error: `juju models -c prod --format json` failed (exit status 1): "
        "ERROR there is no active controller\n"
    )


# The Juju plugin's options ------------------------------------------------------------------


def test_model_option_as_juju_passes_it(routes_url: str, bin_dir: Path, tmp_path: Path) -> None:
    """`juju upgrader -m controller plan`: juju passes -m on and sets JUJU_MODEL."""
    log = tmp_path / "juju.log"
    fake_juju(bin_dir, log=log)
    for args, env in (
        (["-m", "controller", "plan"], {"JUJU_MODEL": "controller"}),
        (["plan", "--model", "prod:admin/default"], {}),
        (["plan"], {"JUJU_MODEL": "prod:controller"}),
        (["-m", "prod:controller", "-c", "prod", "plan"], {}),
    ):
        done = run(*args, U, "--stream-url", routes_url, "--format", "json", path=bin_dir,
                   env=env)  # fmt: skip
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["route"] == "in-place-then-new-controller"
    shown = [line for line in log.read_text().splitlines() if line.startswith("show-controller")]
    assert shown == [
        "show-controller --format json",
        "show-controller prod --format json",
        "show-controller prod --format json",
        "show-controller prod --format json",
    ]


def test_juju_controller_variable(routes_url: str, bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "juju.log"
    fake_juju(bin_dir, log=log)
    done = run("plan", U, "--stream-url", routes_url, path=bin_dir,
               env={"JUJU_CONTROLLER": "prod"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "show-controller prod --format json" in log.read_text().splitlines()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["-c", "a", "-m", "b:m", "plan"],
            {},
            "-c/--controller a and -m/--model b:m name different controllers",
        ),  # fmt: skip
        (
            ["-m", "bad model", "plan"],
            {},
            "invalid -m/--model 'bad model': use [CONTROLLER:]MODEL",
        ),  # fmt: skip
        (["plan"], {"JUJU_MODEL": "x:y:z"}, "invalid JUJU_MODEL 'x:y:z'"),
        (["-c", "$(rm)", "plan"], {}, "invalid -c/--controller '$(rm)'"),
        (["plan"], {"JUJU_CONTROLLER": "a b"}, "invalid JUJU_CONTROLLER 'a b'"),
    ],
)
def test_bad_model_and_controller_names(
    bin_dir: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = run(*args, "--agent-version", "3.6.10", path=bin_dir, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"juju-upgrader: error: {message}")
    assert len(done.stderr.splitlines()) == 1


def test_model_option_is_harmless_for_other_commands(bin_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "mirror"
    done = run("-m", "controller", "sync", U, "3.6", "--local-dir", str(local), "--stream-url",
               SAMPLE.as_uri(), "--dry-run", path=bin_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run("bundle", "-m", "controller", str(tmp_path / "missing"), path=bin_dir)
    assert done.returncode == 2
    assert "unrecognized arguments" not in done.stderr


def test_version_option(bin_dir: Path) -> None:
    done = run("--version", path=bin_dir)
    assert done.returncode == 0
    assert re.fullmatch(r"juju-upgrader \d+\.\d+\.\d+.*\n", done.stdout)
    assert done.stderr == ""


# Plan options for a runbook ready to copy -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent-metadata-url", "ftp://x"], "invalid --agent-metadata-url 'ftp://x'"),
        (["--agent-metadata-url", "http://a b"], "invalid --agent-metadata-url"),
        (["--image-repo", "reg;rm"], "invalid --image-repo 'reg;rm'"),
        (["--image-repo", "reg/(x)"], "invalid --image-repo 'reg/(x)'"),
        (["--image-repo", "reg/*"], "invalid --image-repo 'reg/*'"),
        (["--image-repo", "~/reg"], "invalid --image-repo '~/reg'"),
        (["--local-dir", ""], "invalid --local-dir ''"),
    ],
)
def test_bad_route_options(bin_dir: Path, args: list[str], message: str) -> None:
    done = run("plan", "--agent-version", "3.6.10", *args, path=bin_dir)
    assert done.returncode == 2
    assert done.stderr.startswith(f"juju-upgrader: error: argument {args[0]}: {message}")


def test_offline_and_local_dirs_are_absolute(
    routes_url: str, bin_dir: Path, tmp_path: Path
) -> None:
    out = plan(routes_url, bin_dir, "--agent-version", "3.5.7", "--offline-dir", "rel/off",
               "--signing-keys", str(ROOT / "tests/data/sample-stream-key.asc"))  # fmt: skip
    steps = out["next-steps"].splitlines()
    off = Path.cwd() / "rel" / "off"
    assert steps[0].startswith(f"juju-upgrader sync --local-dir {off}/agents ")
    assert f"--signing-keys {ROOT}/tests/data/sample-stream-key.asc" in steps[0]
    assert f"mkdir -p {off}" in steps


@needs_gpg
def test_readme_get_going_output_is_what_the_command_prints(tmp_path: Path) -> None:
    """README's "Get going" block, with the clone's path where it shows /home/you/upgrader.

    With only Python: nothing on PATH (no gpg, no juju).
    """
    bin_dir = tmp_path / "empty"
    bin_dir.mkdir()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Get going", 1)[1]
    command = re.search(r"uv run (juju-upgrader plan [^\n]+)\n", section)
    assert command is not None
    shown = section.split("The first prints (paths show your clone's):\n\n```\n", 1)[1]
    shown = shown.split("```\n", 1)[0]
    done = subprocess.run(
        [sys.executable, "-m", "upgrader", *command.group(1).split()[1:]],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={"PATH": str(bin_dir), "PYTHONPATH": str(ROOT / "lib")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.replace(str(ROOT), "/home/you/upgrader") == shown


def test_counting_architectures_keeps_to_its_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `juju machines` that hangs is cut at the budget, not at juju's own 60 s limit."""
    prod = {"name": "admin/prod", "model-type": "iaas", "type": "lxd", "cloud": "lxd"}
    models = {"models": [{**prod, "life": "alive", "agent-version": "3.6.10"}]}
    juju = tmp_path / "juju"
    juju.write_text(
        "#!/bin/sh\n"
        f"if [ \"$1\" = models ]; then echo '{json.dumps(models)}'; exit 0; fi\n"
        "exec sleep 30\n"
    )
    juju.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    versions = Versions(
        Version(3, 6, 10), "juju show-controller prod", None, "not given",
        ControllerDetails("prod", Version(3, 6, 10), "lxd"),
    )  # fmt: skip
    started = time.monotonic()
    facts = read_juju_facts(versions, budget=1.0)
    assert time.monotonic() - started < 10
    assert facts.architectures == ()
    assert facts.notes == (
        "stopped counting architectures after 0 of 2 models (1 s); give --arch for any other "
        "architecture in use",
    )


def test_json_output_says_why_an_unsigned_source_is_unverified(
    routes_url: str, bin_dir: Path
) -> None:
    """The same keys as the action: verified false comes with its reason."""
    out = plan(routes_url, bin_dir, "--agent-version", "3.6.10")
    assert out["verified"] == "false"
    assert out["unverified-reason"].startswith(f"no signed metadata (tried {routes_url}/streams/")
