"""Reading versions from the ``juju`` command (a fake ``juju`` script stands in for Juju)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from upgrader.errors import UpgraderError
from upgrader.juju_client import (
    MAX_MACHINES,
    MAX_MODELS,
    ControllerDetails,
    JujuCommandError,
    Machines,
    ModelListing,
    charm_bases,
    client_version,
    controller_details,
    find_juju,
    list_models,
    machine_architectures,
    parse_charm_bases,
    parse_controller_details,
    parse_machines,
    parse_models,
    parse_show_controller,
    parse_version_output,
    run_juju,
)
from upgrader.routes import HostedModel
from upgrader.versions import Version, parse


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "juju"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("3.6.12-genericlinux-amd64\n", "3.6.12"),
        ("2.9.50-ubuntu-arm64\n", "2.9.50"),
        ("2.9.42.1-focal-amd64\n", "2.9.42.1"),
        ("3.1-beta2-genericlinux-amd64\n", "3.1-beta2"),
        ("\n3.6.12\n", "3.6.12"),
    ],
)
def test_parse_version_output(output: str, expected: str) -> None:
    assert parse_version_output(output) == parse(expected)


@pytest.mark.parametrize("output", ["", "juju: command not found\n", "latest-amd64\n"])
def test_parse_version_output_refuses_garbage(output: str) -> None:
    with pytest.raises(JujuCommandError, match="cannot read a version from `juju version`"):
        parse_version_output(output)


def details(**fields: object) -> dict[str, object]:
    return {"details": {"uuid": "u", "cloud": "lxd", **fields}}


def test_show_controller_agent_version() -> None:
    text = json.dumps({"prod": details(**{"agent-version": "3.6.8"})})
    assert parse_show_controller(text) == ("prod", Version(3, 6, 8))


def test_show_controller_falls_back_to_controller_model_version() -> None:
    """Old controllers without the ControllerVersion API show only the model config's."""
    text = json.dumps({"prod": details(**{"controller-model-version": "2.9.44"})})
    assert parse_show_controller(text) == ("prod", Version(2, 9, 44))
    text = json.dumps(
        {"prod": details(**{"agent-version": "(error)", "controller-model-version": "3.4.5"})}
    )
    assert parse_show_controller(text) == ("prod", Version(3, 4, 5))


def test_show_controller_named_among_several() -> None:
    text = json.dumps(
        {"a": details(**{"agent-version": "3.4.5"}), "b": details(**{"agent-version": "3.5.6"})}
    )
    assert parse_show_controller(text, "b") == ("b", Version(3, 5, 6))
    with pytest.raises(JujuCommandError, match="printed 2 controllers; name one with"):
        parse_show_controller(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "did not print JSON"),
        ("[" * 100_000 + "]" * 100_000, "`juju show-controller` did not print JSON"),
        ("[]", "printed no controller"),
        ("{}", "printed no controller"),
        (json.dumps({"p": {"details": {}}}), "reported no agent version for controller 'p'$"),
        (json.dumps({"p": {"details": "x"}}), "reported no agent version"),
        (json.dumps({"p": "x"}), "reported no agent version"),
        (
            json.dumps({"p": {"errors": ["permission denied", "timeout"]}}),
            "for controller 'p': permission denied; timeout$",
        ),
        (
            json.dumps({"p": details(**{"agent-version": "three"})}),
            "gave controller 'p' an unreadable agent-version 'three'",
        ),
    ],
)
def test_show_controller_refuses(text: str, message: str) -> None:
    with pytest.raises(JujuCommandError, match=message):
        parse_show_controller(text)


def test_client_and_controller_versions_from_a_fake_juju(tmp_path: Path) -> None:
    log = tmp_path / "log"
    shown = json.dumps({"edge": details(**{"agent-version": "3.6.11"})})
    (tmp_path / "shown.json").write_text(shown + "\n")
    juju = script(
        tmp_path,
        f'echo "$*" >> {log}\n'
        'if [ "$1" = version ]; then echo 3.6.12-genericlinux-amd64; exit 0; fi\n'
        f"while IFS= read -r l; do printf '%s\\n' \"$l\"; done < {tmp_path / 'shown.json'}",
    )
    assert find_juju(str(tmp_path)) == str(juju)
    assert find_juju(str(tmp_path / "nothing-here")) is None
    client = client_version(str(juju))
    assert (client.version, client.source) == (Version(3, 6, 12), "juju version")
    agent = controller_details(str(juju), "edge")
    assert (agent.agent, agent.name) == (Version(3, 6, 11), "edge")
    assert log.read_text().splitlines() == ["version", "show-controller edge --format json"]


def test_run_juju_failure_quotes_the_last_stderr_line(tmp_path: Path) -> None:
    juju = script(tmp_path, 'echo "some detail" >&2; echo "ERROR no controllers" >&2; exit 1')
    with pytest.raises(JujuCommandError) as raised:
        run_juju(str(juju), ["show-controller", "--format", "json"])
    assert str(raised.value) == (
        "`juju show-controller --format json` failed (exit status 1): ERROR no controllers"
    )
    assert isinstance(raised.value, UpgraderError)


def test_run_juju_failure_without_message(tmp_path: Path) -> None:
    juju = script(tmp_path, "exit 3")
    with pytest.raises(JujuCommandError, match=r"failed \(exit status 3\): no error message"):
        run_juju(str(juju), ["version"])


def test_run_juju_timeout(tmp_path: Path) -> None:
    juju = script(tmp_path, "exec /bin/sleep 30")
    with pytest.raises(JujuCommandError, match=r"`juju version` did not finish within 0.2 s"):
        run_juju(str(juju), ["version"], timeout=0.2)


def test_run_juju_cannot_start(tmp_path: Path) -> None:
    not_executable = tmp_path / "juju"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(JujuCommandError, match="cannot run `juju version`: Permission denied"):
        run_juju(str(not_executable), ["version"])


def test_juju_never_reads_our_stdin(tmp_path: Path) -> None:
    """A juju that prompts for a password gets end-of-file at once instead of hanging."""
    juju = script(tmp_path, 'read -r password || { echo "ERROR no password" >&2; exit 1; }')
    with pytest.raises(JujuCommandError, match="ERROR no password"):
        run_juju(str(juju), ["show-controller"], timeout=10)


# --- output bounds ---------------------------------------------------------------------------


def test_run_juju_stops_a_command_that_prints_too_much(tmp_path: Path) -> None:
    juju = script(tmp_path, "exec yes 0123456789abcdef")
    started = time.monotonic()
    with pytest.raises(JujuCommandError) as raised:
        run_juju(str(juju), ["models", "--format", "json"], max_output=1024 * 1024)
    assert str(raised.value) == (
        "`juju models --format json` printed more than 1 MiB; that is not the output of a juju "
        "command"
    )
    assert time.monotonic() - started < 10


def test_run_juju_timeout_ends_what_juju_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    juju = script(tmp_path, f"sleep 30 & echo $! > {pid_file}; wait")
    with pytest.raises(JujuCommandError, match=r"did not finish within 0.5 s"):
        run_juju(str(juju), ["models"], timeout=0.5)
    child = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists()


def test_run_juju_escapes_control_characters_in_its_message(tmp_path: Path) -> None:
    juju = script(tmp_path, r"printf 'ERROR \033[31mred\033[0m\n' >&2; exit 1")
    with pytest.raises(JujuCommandError) as raised:
        run_juju(str(juju), ["models"])
    assert "\x1b" not in str(raised.value)
    assert str(raised.value).endswith("ERROR \\x1b[31mred\\x1b[0m")


# --- show-controller details -----------------------------------------------------------------


def test_controller_details_with_cloud_and_region() -> None:
    text = json.dumps({"prod": details(**{"agent-version": "3.6.8", "region": "default"})})
    assert parse_controller_details(text) == ControllerDetails(
        "prod", Version(3, 6, 8), "lxd/default"
    )
    text = json.dumps({"prod": {"details": {"agent-version": "3.6.8"}}})
    assert parse_controller_details(text).cloud == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps({"prod; rm -rf /": details(**{"agent-version": "3.6.8"})}), "controller name"),
        (
            json.dumps({"prod": details(**{"agent-version": "3.6.8", "cloud": "a b"})}),
            "cloud name",
        ),
        (
            json.dumps({"prod": details(**{"agent-version": "3.6.8", "region": "$(x)"})}),
            "region name",
        ),
    ],
)
def test_controller_details_refuse_names_juju_would_not_print(text: str, message: str) -> None:
    with pytest.raises(
        JujuCommandError, match=f"`juju show-controller` printed an unexpected {message}"
    ):
        parse_controller_details(text)


def test_controller_details_refuse_deep_json_naming_the_command() -> None:
    """Nesting deeper than Python's parser goes is broken output, not a crash."""
    with pytest.raises(
        JujuCommandError,
        match="^`juju show-controller` did not print JSON \\(malformed JSON: nested more than 64",
    ):
        parse_controller_details("{" + '"a": {' * 100_000 + "}" * 100_001)


# --- models ----------------------------------------------------------------------------------


def model(name: str, version: str | None = "3.6.10", **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "short-name": name.split("/")[-1],
        "model-type": "iaas",
        "type": "lxd",
        "cloud": "lxd",
        "life": "alive",
        "is-controller": False,
        "agent-version": version,
        **fields,
    }


def test_parse_models() -> None:
    text = json.dumps(
        {
            "models": [
                model("admin/controller", "3.6.10", **{"is-controller": True}),
                model("admin/prod"),
                model("alice@external/dev", "3.6.9", cloud="maas"),
                model("admin/gone", life="dying"),
            ],
            "current-model": "prod",
        }
    )
    listing = parse_models(text, "juju models -c prod --format json")
    assert listing == ModelListing(
        (
            HostedModel("admin/prod", Version(3, 6, 10), "iaas", "lxd"),
            HostedModel("alice@external/dev", Version(3, 6, 9), "iaas", "maas"),
        ),
        kubernetes=False,
        notes=("model admin/gone is dying: left out of the plan",),
    )


def test_parse_models_of_a_kubernetes_controller() -> None:
    text = json.dumps(
        {"models": [model("admin/controller", **{"is-controller": True, "model-type": "caas"})]}
    )
    assert parse_models(text) == ModelListing((), kubernetes=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "`juju models` did not print JSON"),
        ("[" * 100_000 + "]" * 100_000, "`juju models` did not print JSON"),
        ("[]", "`juju models` printed no model list"),
        ('{"models": {}}', "`juju models` printed no model list"),
        ('{"models": ["x"]}', "printed a model that is not an object"),
        (json.dumps({"models": [model("admin/prod; rm -rf ~")]}), "unexpected model name"),
        (json.dumps({"models": [model("prod")]}), "unexpected model name 'prod'"),
        (json.dumps({"models": [model("admin/Prod")]}), "unexpected model name"),
        (json.dumps({"models": [model("admin/p", **{"model-type": "x"})]}), "model-type 'x'"),
        (json.dumps({"models": [model("admin/p", "three")]}), "no readable agent-version"),
        (json.dumps({"models": [model("admin/p", None)]}), "no readable agent-version"),
        (json.dumps({"models": [model("admin/p", cloud="a\nb")]}), "unexpected cloud name"),
    ],
)
def test_parse_models_refuses(text: str, message: str) -> None:
    with pytest.raises(JujuCommandError, match=re.escape(message)):
        parse_models(text)


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("x" * 100_000, "'" + "x" * 80 + "... (99920 more characters)'"),
        ({"deep": list(range(100_000))}, "an object of 1 keys"),
    ],
)
def test_an_odd_model_type_is_quoted_within_the_bound(kind: object, shown: str) -> None:
    """A value from juju's output is quoted in 80 characters, not whole (it was its repr)."""
    entry = model("admin/p")
    entry["model-type"] = kind
    text = json.dumps({"models": [entry]})
    with pytest.raises(JujuCommandError) as caught:
        parse_models(text)
    assert str(caught.value) == f"`juju models` gave model admin/p the model-type {shown}"


def test_parse_models_bound() -> None:
    text = json.dumps({"models": [model(f"admin/m{i}") for i in range(MAX_MODELS + 1)]})
    with pytest.raises(JujuCommandError, match=f"listed {MAX_MODELS + 1} models, more than the"):
        parse_models(text)
    text = json.dumps({"models": [model(f"admin/m{i}") for i in range(MAX_MODELS)]})
    assert len(parse_models(text).models) == MAX_MODELS


# --- machines and charm bases ----------------------------------------------------------------


def test_parse_machines_with_containers() -> None:
    text = json.dumps(
        {
            "model": "prod",
            "machines": {
                "0": {
                    "hardware": "arch=amd64 cores=2 mem=4096M",
                    "containers": {"0/lxd/0": {"hardware": "arch=amd64 cores=0"}},
                },
                "1": {"hardware": "arch=arm64 cores=4"},
                "2": {"juju-status": {"current": "pending"}},
            },
        }
    )
    assert parse_machines(text) == Machines(frozenset({"amd64", "arm64"}), 4)
    assert parse_machines('{"model": "k8s"}') == Machines(frozenset(), 0)


def test_parse_machines_stops_counting_at_the_bound() -> None:
    machines = {str(i): {"hardware": "arch=amd64"} for i in range(MAX_MACHINES + 5)}
    result = parse_machines(json.dumps({"machines": machines}))
    assert (result.counted, result.complete) == (MAX_MACHINES, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "did not print JSON"),
        ('{"machines": []}', "printed no machine list"),
        ('{"machines": {"0": 1}}', "a machine that is not an object"),
        ('{"machines": {"0": {"hardware": "arch=AMD;64"}}}', "unexpected architecture"),
    ],
)
def test_parse_machines_refuses(text: str, message: str) -> None:
    with pytest.raises(JujuCommandError, match=message):
        parse_machines(text)


def test_parse_charm_bases() -> None:
    text = json.dumps(
        {
            "applications": {
                "a": {"base": {"name": "ubuntu", "channel": "22.04"}},
                "b": {"base": {"name": "ubuntu", "channel": "24.04/stable"}},
                "c": {"charm": "x"},
            }
        }
    )
    assert parse_charm_bases(text) == {"ubuntu@22.04", "ubuntu@24.04/stable"}
    with pytest.raises(JujuCommandError, match="unexpected base channel"):
        parse_charm_bases(
            json.dumps({"applications": {"a": {"base": {"name": "ubuntu", "channel": "x y"}}}})
        )
    with pytest.raises(JujuCommandError, match="printed no application list"):
        parse_charm_bases("[]")


def test_model_commands_against_a_fake_juju(tmp_path: Path) -> None:
    log = tmp_path / "log"
    (tmp_path / "models.json").write_text(json.dumps({"models": [model("admin/prod")]}))
    (tmp_path / "machines.json").write_text(
        json.dumps({"machines": {"0": {"hardware": "arch=s390x"}}})
    )
    (tmp_path / "status.json").write_text(
        json.dumps({"applications": {"a": {"base": {"name": "ubuntu", "channel": "22.04"}}}})
    )
    juju = script(
        tmp_path,
        f'echo "$*" >> {log}\n'
        f'case "$1" in models) cat {tmp_path}/models.json ;;'
        f" machines) cat {tmp_path}/machines.json ;;"
        f" status) cat {tmp_path}/status.json ;; esac",
    )
    assert list_models(str(juju), "prod").models[0].name == "admin/prod"
    assert machine_architectures(str(juju), "prod", "admin/prod").architectures == {"s390x"}
    assert charm_bases(str(juju), "prod", "admin/prod") == {"ubuntu@22.04"}
    assert log.read_text().splitlines() == [
        "models -c prod --format json",
        "machines -m prod:admin/prod --format json",
        "status -m prod:admin/prod --format json",
    ]


# Bounds on what juju prints


def test_show_controller_nested_100000_deep_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    juju = script(tmp_path, f"cat {tmp_path / 'deep.json'}")
    with pytest.raises(JujuCommandError) as raised:
        controller_details(str(juju))
    assert str(raised.value) == (
        "`juju show-controller` did not print JSON (malformed JSON: nested more than 64 "
        "levels deep (the accepted form is a JSON document nested at most 64 levels))"
    )


def test_a_long_stderr_line_is_quoted_briefly(tmp_path: Path) -> None:
    juju = script(tmp_path, "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 1")
    with pytest.raises(JujuCommandError) as raised:
        run_juju(str(juju), ["version"])
    assert str(raised.value).startswith("`juju version` failed (exit status 1): xxxx")
    assert str(raised.value).endswith(" more characters)")  # of the last 64 KiB kept
    assert len(str(raised.value)) < 600


def test_many_controller_errors_are_quoted_briefly() -> None:
    errors = [f"error {n}: " + "e" * 1000 for n in range(100)]
    with pytest.raises(JujuCommandError) as raised:
        parse_show_controller(json.dumps({"p": {"errors": errors}}))
    message = str(raised.value)
    assert message.endswith(" and 80 more")
    assert message.count("error ") == 20 and len(message) < 12_000


def test_output_kept_open_by_a_child_ends_at_the_time_limit(tmp_path: Path) -> None:
    juju = script(tmp_path, "/bin/sleep 30 & echo 3.6.12-genericlinux-amd64")
    with pytest.raises(JujuCommandError, match=r"`juju version` did not finish within 0.5 s"):
        run_juju(str(juju), ["version"], timeout=0.5)


def test_an_unexpected_name_is_quoted_escaped_once() -> None:
    text = json.dumps({"c\x1b[31m": details(**{"agent-version": "3.6.8"})})
    with pytest.raises(JujuCommandError) as raised:
        parse_controller_details(text)
    assert str(raised.value) == (
        "`juju show-controller` printed an unexpected controller name 'c\\x1b[31m'"
    )
