"""Asking the operator's ``juju`` command what a plan needs: versions, models, architectures.

``juju version``, and ``juju show-controller``, ``models``, ``machines`` and ``status`` with
``--format json``, run with stdin closed, so that juju never waits for a password, with a time
limit and a limit on what they may print; every name they print is checked against what Juju
allows before it reaches a command the plan prints. ARCHITECTURE.md ("The runbook", "Bounds")
lists the fields read and the limits.
"""

from __future__ import annotations

import dataclasses
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .bounds import MalformedJSONError, listed, load_json, preview, preview_text
from .errors import UpgraderError
from .routes import HostedModel
from .urls import escape_controls
from .versions import Version, parse, parse_binary, parse_lenient

JUJU_TIMEOUT = 60.0
"""Seconds to wait for one ``juju`` command (``show-controller`` calls the controller)."""

MAX_OUTPUT = 8 * 1024 * 1024
"""Bytes one ``juju`` command may print on stdout (a large model's status is well below)."""

MAX_MODELS = 1000
"""Models ``juju models`` may list for a plan to name them all."""

MAX_MACHINES = 10_000
"""Machines (and containers) counted in one model's ``juju machines`` output."""

_MAX_STDERR = 64 * 1024
# Juju's names package: no length limit of its own; 255 keeps a hostile line cheap to match.
_MODEL = r"[a-z0-9][a-z0-9-]{0,254}"
_USER = r"[A-Za-z0-9](?:[A-Za-z0-9.+-]{0,253}[A-Za-z0-9])?(?:@[A-Za-z0-9.+-]{1,255})?"
_QUALIFIED_MODEL = re.compile(rf"(?:{_USER})/{_MODEL}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_ARCH = re.compile(r"[a-z0-9_]{1,20}\Z")
_BASE_NAME = re.compile(r"[a-z]{1,20}\Z")
_BASE_CHANNEL = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}(?:/[a-z]{1,20})?\Z")


class JujuCommandError(UpgraderError):
    """The ``juju`` command failed or printed something that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Detected:
    """A version read from the ``juju`` command.

    Attributes:
        version: the version.
        source: the command it came from, as the operator would type it.
    """

    version: Version
    source: str


def find_juju(path: str | None = None) -> str | None:
    """The full path of the ``juju`` command on PATH (or the given search path), if any."""
    return shutil.which("juju", path=path)


def run_juju(
    juju: str,
    args: Sequence[str],
    *,
    timeout: float = JUJU_TIMEOUT,
    max_output: int = MAX_OUTPUT,
) -> str:
    """Run ``juju ARGS`` and return its standard output.

    Raises:
        JujuCommandError: it could not start, timed out, printed more than ``max_output`` bytes
            or exited non-zero; the message names the command and quotes the last line juju
            printed on stderr.
    """
    shown = " ".join(["juju", *args])
    try:
        process = subprocess.Popen(
            [juju, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a timeout ends juju and anything it started
        )
    except OSError as exc:
        raise JujuCommandError(f"cannot run `{shown}`: {exc.strerror or exc}") from None
    with process:  # closes the pipes and reaps juju, whatever happens
        deadline = time.monotonic() + timeout
        try:
            out, err = _read_bounded(process, shown, deadline, timeout, max_output)
            try:
                returncode = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise JujuCommandError(f"`{shown}` did not finish within {timeout:g} s") from None
        except BaseException:
            _kill(process)
            raise
    if returncode != 0:
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        detail = _printable(lines[-1]) if lines else "no error message"
        raise JujuCommandError(f"`{shown}` failed (exit status {returncode}): {detail}")
    return out


def _read_bounded(
    process: subprocess.Popen[bytes], shown: str, deadline: float, timeout: float, limit: int
) -> tuple[str, str]:
    """Read stdout and stderr until both close, within the deadline and the size limit."""
    out = bytearray()
    err = bytearray()
    with selectors.DefaultSelector() as selector:
        if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE given
            raise JujuCommandError(f"`{shown}` gave no output pipes")
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JujuCommandError(f"`{shown}` did not finish within {timeout:g} s")
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is out and len(out) > limit:
                    raise JujuCommandError(
                        f"`{shown}` printed more than {limit // (1024 * 1024)} MiB; that is "
                        "not the output of a juju command"
                    )
                if buffer is err and len(err) > _MAX_STDERR:
                    del err[: len(err) - _MAX_STDERR]
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the juju we started, and what it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass


def _printable(text: str, limit: int = 200) -> str:
    """Text juju printed, safe to show: control characters escaped, length bounded."""
    return preview_text(escape_controls(text), limit)


def parse_version_output(text: str) -> Version:
    """Read the client version from ``juju version`` output (``3.6.12-genericlinux-amd64``).

    Raises:
        JujuCommandError: the output holds no version.
    """
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    try:
        return parse_binary(first).number
    except ValueError:
        pass
    try:
        return parse_lenient(first)
    except ValueError:
        raise JujuCommandError(
            f"cannot read a version from `juju version` output {first[:80]!r}"
        ) from None


def parse_show_controller(text: str, controller: str | None = None) -> tuple[str, Version]:
    """Read the controller name and agent version from ``juju show-controller --format json``.

    Args:
        text: the command's output.
        controller: the controller asked for, if one was named.

    Returns:
        The controller name and its agent version.

    Raises:
        JujuCommandError: the output is not the expected JSON or holds no agent version; the
            message quotes any errors juju reported for the controller.
    """
    name, version, _ = _controller_entry(_load(text, "juju show-controller"), controller)
    return name, version


def _controller_entry(doc: Any, controller: str | None) -> tuple[str, Version, Mapping[str, Any]]:
    """The name, agent version and details of the controller ``juju show-controller`` shows.

    Args:
        doc: the command's output, parsed.
        controller: the controller asked for, if one was named.

    Raises:
        JujuCommandError: as :func:`parse_show_controller`.
    """
    if not isinstance(doc, dict) or not doc:
        raise JujuCommandError("`juju show-controller` printed no controller")
    if controller is not None and controller in doc:
        name = controller
    elif len(doc) == 1:
        name = next(iter(doc))
    else:
        raise JujuCommandError(
            f"`juju show-controller` printed {len(doc)} controllers; name one with --controller"
        )
    entry = doc[name]
    details: Mapping[str, Any] = entry.get("details", {}) if isinstance(entry, dict) else {}
    if not isinstance(details, dict):
        details = {}
    for key in ("agent-version", "controller-model-version"):
        value = details.get(key)
        if isinstance(value, str) and value and not value.startswith("("):
            try:
                return str(name), parse_lenient(value), details
            except ValueError:
                raise JujuCommandError(
                    f"`juju show-controller` gave controller {preview(name)} an unreadable {key} "
                    f"{preview(value)}"
                ) from None
    errors = entry.get("errors") if isinstance(entry, dict) else None
    if isinstance(errors, list) and errors:
        texts = [e if isinstance(e, str) else preview(e) for e in errors]
        why = ": " + listed(texts, separator="; ", chars=500)
    else:
        why = ""
    raise JujuCommandError(
        f"`juju show-controller` reported no agent version for controller {preview(name)}{why}"
    )


def client_version(juju: str, *, timeout: float = JUJU_TIMEOUT) -> Detected:
    """The client version, from ``juju version``.

    Raises:
        JujuCommandError: as for :func:`run_juju` and :func:`parse_version_output`.
    """
    return Detected(
        parse_version_output(run_juju(juju, ["version"], timeout=timeout)), "juju version"
    )


# --- the controller, its models and what they run on ----------------------------------------


@dataclasses.dataclass(frozen=True)
class ControllerDetails:
    """What ``juju show-controller`` says of a controller.

    Attributes:
        name: the controller's name in the client's store.
        agent: its agent version.
        cloud: the cloud it runs on (``cloud`` or ``cloud/region``), empty if not shown.
    """

    name: str
    agent: Version
    cloud: str = ""


@dataclasses.dataclass(frozen=True)
class ModelListing:
    """What ``juju models`` says of a controller's models.

    Attributes:
        models: the hosted models (not the controller model) that are alive.
        kubernetes: the controller model is a Kubernetes (``caas``) model.
        notes: models left out, and why.
    """

    models: tuple[HostedModel, ...]
    kubernetes: bool
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Machines:
    """The architectures of one model's machines (containers included).

    Attributes:
        architectures: every architecture seen.
        counted: machines counted.
        complete: False when counting stopped at :data:`MAX_MACHINES`.
    """

    architectures: frozenset[str]
    counted: int
    complete: bool = True


def _load(text: str, command: str) -> Any:
    """Parse a juju command's JSON output, refusing anything that is not JSON."""
    try:
        return load_json(text)
    except MalformedJSONError as exc:
        raise JujuCommandError(f"`{command}` did not print JSON ({exc})") from None


def _name(value: object, pattern: re.Pattern[str], command: str, what: str) -> str:
    """A name from juju's output, checked before it can reach a printed command."""
    if not isinstance(value, str) or not pattern.match(value):
        shown = _printable(value if isinstance(value, str) else repr(value), 80)
        raise JujuCommandError(f"`{command}` printed an unexpected {what} '{shown}'")
    return value


def parse_controller_details(text: str, controller: str | None = None) -> ControllerDetails:
    """Read the name, agent version and cloud from ``juju show-controller --format json``.

    Raises:
        JujuCommandError: as :func:`parse_show_controller`, or a name Juju would not print.
    """
    command = "juju show-controller"
    name, version, details = _controller_entry(_load(text, command), controller)
    _name(name, _NAME, command, "controller name")
    cloud = ""
    if details.get("cloud"):
        cloud = _name(details["cloud"], _NAME, command, "cloud name")
        if details.get("region"):
            cloud += "/" + _name(details["region"], _NAME, command, "region name")
    return ControllerDetails(name, version, cloud)


def controller_details(
    juju: str, controller: str | None = None, *, timeout: float = JUJU_TIMEOUT
) -> ControllerDetails:
    """The controller's name, agent version and cloud, from ``juju show-controller``.

    Raises:
        JujuCommandError: as :func:`run_juju` and :func:`parse_controller_details`.
    """
    args = ["show-controller", *([controller] if controller else []), "--format", "json"]
    return parse_controller_details(run_juju(juju, args, timeout=timeout), controller)


def parse_models(text: str, command: str = "juju models") -> ModelListing:
    """Read the hosted models from ``juju models --format json``.

    Raises:
        JujuCommandError: the output is not the expected JSON, lists more than
            :data:`MAX_MODELS` models, or holds a name or version Juju would not print.
    """
    doc = _load(text, command)
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise JujuCommandError(f"`{command}` printed no model list")
    if len(entries) > MAX_MODELS:
        raise JujuCommandError(
            f"`{command}` listed {len(entries)} models, more than the {MAX_MODELS} a plan names "
            "one by one; give --agent-version to plan without the model list"
        )
    models: list[HostedModel] = []
    notes: list[str] = []
    kubernetes = False
    for entry in entries:
        if not isinstance(entry, dict):
            raise JujuCommandError(f"`{command}` printed a model that is not an object")
        name = _name(entry.get("name"), _QUALIFIED_MODEL, command, "model name")
        kind = entry.get("model-type", "iaas")
        if kind not in ("iaas", "caas"):
            raise JujuCommandError(f"`{command}` gave model {name} the model-type {preview(kind)}")
        if entry.get("is-controller") is True:
            kubernetes = kind == "caas"
            continue
        life = entry.get("life", "alive")
        if life != "alive":
            notes.append(f"model {name} is {_printable(str(life), 20)}: left out of the plan")
            continue
        version = entry.get("agent-version")
        try:
            number = parse(version) if isinstance(version, str) else None
        except ValueError:
            number = None
        if number is None:
            raise JujuCommandError(
                f"`{command}` gave model {name} no readable agent-version "
                f"({_printable(repr(version), 40)})"
            )
        cloud = entry.get("cloud")
        cloud = _name(cloud, _NAME, command, "cloud name") if cloud else ""
        models.append(HostedModel(name, number, kind, cloud))
    return ModelListing(tuple(models), kubernetes, tuple(notes))


def list_models(juju: str, controller: str, *, timeout: float = JUJU_TIMEOUT) -> ModelListing:
    """The controller's models, from ``juju models -c NAME --format json``.

    Raises:
        JujuCommandError: as :func:`run_juju` and :func:`parse_models`.
    """
    args = ["models", "-c", controller, "--format", "json"]
    return parse_models(run_juju(juju, args, timeout=timeout), " ".join(["juju", *args]))


def parse_machines(text: str, command: str = "juju machines") -> Machines:
    """Read the architectures of a model's machines from ``juju machines --format json``.

    Raises:
        JujuCommandError: the output is not the expected JSON or names an odd architecture.
    """
    doc = _load(text, command)
    machines = doc.get("machines", {}) if isinstance(doc, dict) else None
    if not isinstance(machines, dict):
        raise JujuCommandError(f"`{command}` printed no machine list")
    arches: set[str] = set()
    counted = 0
    pending = list(machines.values())
    while pending:
        if counted >= MAX_MACHINES:
            return Machines(frozenset(arches), counted, complete=False)
        machine = pending.pop()
        counted += 1
        if not isinstance(machine, dict):
            raise JujuCommandError(f"`{command}` printed a machine that is not an object")
        hardware = machine.get("hardware", "")
        for word in hardware.split() if isinstance(hardware, str) else ():
            key, _, value = word.partition("=")
            if key == "arch":
                arches.add(_name(value, _ARCH, command, "architecture"))
        containers = machine.get("containers", {})
        if isinstance(containers, dict):
            pending.extend(containers.values())
    return Machines(frozenset(arches), counted)


def machine_architectures(
    juju: str, controller: str, model: str, *, timeout: float = JUJU_TIMEOUT
) -> Machines:
    """The architectures of a model's machines, from ``juju machines``.

    Raises:
        JujuCommandError: as :func:`run_juju` and :func:`parse_machines`.
    """
    args = ["machines", "-m", f"{controller}:{model}", "--format", "json"]
    return parse_machines(run_juju(juju, args, timeout=timeout), " ".join(["juju", *args]))


def parse_charm_bases(text: str, command: str = "juju status") -> frozenset[str]:
    """Read the bases of a model's applications (``ubuntu@22.04``) from ``juju status``.

    Raises:
        JujuCommandError: the output is not the expected JSON or names an odd base.
    """
    doc = _load(text, command)
    applications = doc.get("applications", {}) if isinstance(doc, dict) else None
    if not isinstance(applications, dict):
        raise JujuCommandError(f"`{command}` printed no application list")
    bases: set[str] = set()
    for application in list(applications.values())[:MAX_MACHINES]:
        base = application.get("base") if isinstance(application, dict) else None
        if isinstance(base, dict) and base.get("name"):
            name = _name(base["name"], _BASE_NAME, command, "base name")
            channel = _name(base.get("channel"), _BASE_CHANNEL, command, "base channel")
            bases.add(f"{name}@{channel}")
    return frozenset(bases)


def charm_bases(
    juju: str, controller: str, model: str, *, timeout: float = JUJU_TIMEOUT
) -> frozenset[str]:
    """The bases of a Kubernetes model's charms, from ``juju status``.

    Raises:
        JujuCommandError: as :func:`run_juju` and :func:`parse_charm_bases`.
    """
    args = ["status", "-m", f"{controller}:{model}", "--format", "json"]
    return parse_charm_bases(run_juju(juju, args, timeout=timeout), " ".join(["juju", *args]))
