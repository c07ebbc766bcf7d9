"""Reading versions from the ``juju`` command (a fake ``juju`` script stands in for Juju)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upgrader.errors import UpgraderError
from upgrader.juju_client import (
    JujuCommandError,
    client_version,
    controller_agent_version,
    find_juju,
    parse_show_controller,
    parse_version_output,
    run_juju,
)
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
    agent = controller_agent_version(str(juju), "edge")
    assert (agent.version, agent.source) == (Version(3, 6, 11), "juju show-controller edge")
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


# Bounds on what juju prints


def test_show_controller_nested_100000_deep_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    juju = script(tmp_path, f"cat {tmp_path / 'deep.json'}")
    with pytest.raises(JujuCommandError) as raised:
        controller_agent_version(str(juju))
    assert str(raised.value) == (
        "`juju show-controller` did not print JSON (malformed JSON: nested more than 64 "
        "levels deep (the accepted form is a JSON document nested at most 64 levels))"
    )


def test_output_beyond_16_mib_is_refused_as_it_arrives(tmp_path: Path) -> None:
    """Read as it comes and cut at the limit, not held whole until juju exits."""
    juju = script(tmp_path, "exec head -c 67108864 /dev/zero")
    with pytest.raises(JujuCommandError) as raised:
        run_juju(str(juju), ["show-controller", "--format", "json"], timeout=30)
    assert str(raised.value) == (
        "`juju show-controller --format json` printed more than 16777216 bytes (16 MiB); it "
        "prints a few KB"
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
