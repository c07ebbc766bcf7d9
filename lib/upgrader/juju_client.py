"""Asking the operator's ``juju`` command which versions are in play.

``juju-upgrader plan`` needs the controller's agent version and, for some policies, the client
version. When the ``juju`` command is on PATH and the operator gave neither, they come from:

* ``juju version``: one line such as ``3.6.12-genericlinux-amd64`` (version, OS, arch);
* ``juju show-controller [NAME] --format json``: an object keyed by controller name whose
  ``details`` hold ``agent-version`` (the version the controller's agents run, from the
  ControllerVersion API) and ``controller-model-version`` (``agent-version`` in the controller
  model's config). The first is used; the second when an old controller lacks the API.

``juju`` runs with stdin closed, so it can never wait for a password, with a time limit and a
limit on what it prints (:data:`MAX_OUTPUT_BYTES`); its JSON is read with the depth limit of
:func:`upgrader.bounds.load_json`.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .bounds import MIB, MalformedJSONError, listed, load_json, preview, preview_text
from .errors import UpgraderError
from .versions import Version, parse_binary, parse_lenient

JUJU_TIMEOUT = 60.0
"""Seconds to wait for one ``juju`` command (``show-controller`` calls the controller)."""

MAX_OUTPUT_BYTES = 16 * MIB
"""The most a ``juju`` command may print on stdout (``show-controller`` prints a few KB)."""

_STDERR_KEPT = 64 * 1024  # only the last line of stderr is quoted


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


def run_juju(juju: str, args: Sequence[str], *, timeout: float = JUJU_TIMEOUT) -> str:
    """Run ``juju ARGS`` and return its standard output.

    Raises:
        JujuCommandError: it could not start, timed out or exited non-zero; the message names
            the command and quotes the last line juju printed on stderr.
    """
    shown = " ".join(["juju", *args])
    try:
        status, stdout, stderr = _run_bounded([juju, *args], timeout, MAX_OUTPUT_BYTES)
    except subprocess.TimeoutExpired:
        raise JujuCommandError(f"`{shown}` did not finish within {timeout:g} s") from None
    except _TooMuchOutputError:
        raise JujuCommandError(
            f"`{shown}` printed more than {MAX_OUTPUT_BYTES} bytes "
            f"({MAX_OUTPUT_BYTES // MIB} MiB); it prints a few KB"
        ) from None
    except OSError as exc:
        raise JujuCommandError(f"cannot run `{shown}`: {exc.strerror or exc}") from None
    if status != 0:
        text = stderr.decode("utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        detail = preview_text(lines[-1], 500) if lines else "no error message"
        raise JujuCommandError(f"`{shown}` failed (exit status {status}): {detail}")
    return stdout.decode("utf-8", errors="replace")


class _TooMuchOutputError(Exception):
    """The command printed more than allowed on stdout."""


def _run_bounded(argv: list[str], timeout: float, limit: int) -> tuple[int, bytes, bytes]:
    """Run a command with stdin closed; its exit status, stdout and the end of its stderr.

    Raises:
        subprocess.TimeoutExpired: it ran (or kept its output open) for ``timeout`` seconds.
        _TooMuchOutputError: it printed more than ``limit`` bytes on stdout.
        OSError: it could not start.
        In each case but the last, the command is killed first.
    """
    deadline = time.monotonic() + timeout
    child = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = bytearray(), bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ, out)  # type: ignore[arg-type]
            selector.register(child.stderr, selectors.EVENT_READ, err)  # type: ignore[arg-type]
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 64 * 1024)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                    if len(out) > limit:
                        raise _TooMuchOutputError
                    del err[:-_STDERR_KEPT]
        status = child.wait(timeout=max(deadline - time.monotonic(), 0))
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return status, bytes(out), bytes(err)


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
    try:
        doc = load_json(text)
    except MalformedJSONError as exc:
        raise JujuCommandError(f"`juju show-controller` did not print JSON ({exc})") from None
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
                return str(name), parse_lenient(value)
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


def controller_agent_version(
    juju: str, controller: str | None = None, *, timeout: float = JUJU_TIMEOUT
) -> Detected:
    """The controller's agent version, from ``juju show-controller [NAME] --format json``.

    Args:
        juju: the path of the ``juju`` command.
        controller: the controller name; juju's current controller when None.
        timeout: seconds to wait.

    Raises:
        JujuCommandError: as for :func:`run_juju` and :func:`parse_show_controller`.
    """
    args = ["show-controller", *([controller] if controller else []), "--format", "json"]
    name, version = parse_show_controller(run_juju(juju, args, timeout=timeout), controller)
    return Detected(version, f"juju show-controller {name}")
