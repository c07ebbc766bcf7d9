"""The unit status, derived from what the charm knows and can see; no ops.

The charm keeps between hooks only what it cannot see again without redoing the work (what
the last stream read and the last import found, the last serving and job failures), and on
each collect-status hands those and what it sees now (storage, nginx, the staged mirror, the
background job) to :func:`unit_status`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import UpgraderError
from .plan import staged_versions
from .serving import newest_staged, serving_message
from .streams import AgentEntry, Validators
from .syncjob import FAILED, RUNNING, JobStatus
from .versions import parse

BINARIES_STORAGE = "binaries"

ACTIVE = "active"
MAINTENANCE = "maintenance"
BLOCKED = "blocked"
_PRIORITY = {ACTIVE: 0, MAINTENANCE: 1, BLOCKED: 2}


@dataclasses.dataclass(frozen=True)
class UnitStatus:
    """A workload status: its name (``active``, ``maintenance``, ``blocked``) and message."""

    name: str
    message: str


@dataclasses.dataclass(frozen=True)
class StreamCheck:
    """What the last read of the upstream stream found, kept between hooks.

    Attributes:
        validators: what identifies the index that was read (for conditional requests).
        error: why the last read failed; empty after a good one.
        transient: the failure may go away by itself (the unit shows Maintenance, not
            Blocked, and update-status retries).
        unverified: why the metadata read was not verified; empty when it was.
        target: the newest upgrade target for this unit's own agent version by the
            configured policy; empty when up to date or unknown.
        stage: every version the route to ``target`` needs staged, oldest first.
    """

    validators: Validators | None = None
    error: str = ""
    transient: bool = False
    unverified: str = ""
    target: str = ""
    stage: tuple[str, ...] = ()

    def failed(self, message: str, *, transient: bool) -> StreamCheck:
        """This record after a failed read: what the last good read found is kept."""
        return dataclasses.replace(self, error=message, transient=transient)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for StoredState."""
        return {
            "validators": self.validators.as_dict() if self.validators else {},
            "error": self.error,
            "transient": self.transient,
            "unverified": self.unverified,
            "target": self.target,
            "stage": list(self.stage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamCheck:
        """Rebuild from :meth:`as_dict` output (a fresh unit has an empty mapping)."""
        return cls(
            validators=Validators.from_dict(data.get("validators")),
            error=str(data.get("error", "")),
            transient=bool(data.get("transient", False)),
            unverified=str(data.get("unverified", "")),
            target=str(data.get("target", "")),
            stage=tuple(str(v) for v in data.get("stage", ())),
        )


@dataclasses.dataclass(frozen=True)
class ImportOutcome:
    """What the last import of the ``agent-binaries`` resource did, kept between hooks.

    Attributes:
        error: why it was refused; empty when it succeeded or nothing was attached.
        retry: the mirror was busy (a sync held it): update-status tries again.
        note: what the last import that staged anything staged, for the status line.
    """

    error: str = ""
    retry: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for StoredState."""
        return {"error": self.error, "retry": self.retry, "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportOutcome:
        """Rebuild from :meth:`as_dict` output (a fresh unit has an empty mapping)."""
        return cls(
            error=str(data.get("error", "")),
            retry=bool(data.get("retry", False)),
            note=str(data.get("note", "")),
        )


@dataclasses.dataclass(frozen=True)
class Serving:
    """What the unit serves while nginx serves its storage's mirror.

    Attributes:
        url: the ``agent-metadata-url`` the controller uses.
        entries: the staged binaries.
        os_name: the configured agent OS.
        architectures: the configured architectures.
        job: what the background sync job last wrote, if there is one.
        job_error: why the last attempt to start the job failed, if it did.
    """

    url: str
    entries: tuple[AgentEntry, ...]
    os_name: str
    architectures: tuple[str, ...]
    job: JobStatus | None = None
    job_error: str = ""


@dataclasses.dataclass(frozen=True)
class UnitFacts:
    """Everything the unit status is derived from.

    Attributes:
        unit: the unit's name, for the add-storage hint.
        agent_version: the unit's Juju agent version (the controller's).
        config_error: why the config is invalid; empty when it is valid.
        stream: what the last stream read found.
        last_import: what the last resource import did.
        storage_attached: whether the binaries storage is attached.
        serving_error: why the last attempt to serve the mirror failed, if it did.
        serving: what the unit serves; None when nginx does not serve the mirror.
    """

    unit: str
    agent_version: str
    config_error: str = ""
    stream: StreamCheck = StreamCheck()
    last_import: ImportOutcome = ImportOutcome()
    storage_attached: bool = False
    serving_error: str = ""
    serving: Serving | None = None


def no_storage_message(unit: str) -> str:
    """Why staging, importing and serving wait, and how to fix it."""
    return (
        f"no {BINARIES_STORAGE} storage attached: the staged agent binaries are kept there; "
        f"add it with `juju add-storage {unit} {BINARIES_STORAGE}`"
    )


def unit_status(facts: UnitFacts) -> UnitStatus:
    """The status to show: the first of the most severe that apply, else what is served.

    Blocked means the operator must fix something (config, source, archive, storage,
    nginx); Maintenance means a failure the next hook retries.
    """
    candidates: list[UnitStatus] = []
    if facts.config_error:
        candidates.append(UnitStatus(BLOCKED, f"invalid config: {facts.config_error}"))
    stream = facts.stream
    if stream.error:
        candidates.append(UnitStatus(MAINTENANCE if stream.transient else BLOCKED, stream.error))
    imported = facts.last_import
    if imported.error:
        candidates.append(UnitStatus(MAINTENANCE if imported.retry else BLOCKED, imported.error))
    if not facts.storage_attached:
        candidates.append(UnitStatus(BLOCKED, no_storage_message(facts.unit)))
    if facts.serving_error:
        candidates.append(UnitStatus(BLOCKED, facts.serving_error))
    candidates.append(UnitStatus(ACTIVE, _active_message(facts)))
    return max(candidates, key=lambda status: _PRIORITY[status.name])


def _active_message(facts: UnitFacts) -> str:
    target = facts.stream.target
    if facts.serving is not None and not facts.serving_error:
        message = _serving_line(facts.serving, facts.stream)
    else:
        message = f"agent {facts.agent_version}"
        if target:
            message += f"; upgrade target {target}"
    if facts.last_import.note:
        message += f"; {facts.last_import.note}"
    if facts.stream.unverified:
        message += " (unverified source)"
    return message


def _serving_line(serving: Serving, stream: StreamCheck) -> str:
    """``serving 3.6.12 (2 arches); agent-metadata-url=...`` and what is pending."""
    parts = [serving_message(serving.entries, serving.os_name, serving.architectures, serving.url)]
    pending = _not_staged(serving, stream)
    if pending:
        parts.append(pending)
    if serving.job is not None and serving.job.state in (RUNNING, FAILED):
        parts.append(serving.job.describe())
    if serving.job_error:
        parts.append(serving.job_error)
    return "; ".join(parts)


def _not_staged(serving: Serving, stream: StreamCheck) -> str:
    """What the route to the newest target still needs staged, as a status note ("" if none)."""
    try:
        target = parse(stream.target) if stream.target else None
        route = [parse(v) for v in stream.stage] or ([target] if target else [])
    except UpgraderError:
        return ""
    if target is None:
        return ""
    newest = newest_staged(serving.entries, serving.os_name)
    if newest is not None and newest > target:
        return ""  # a newer version is staged already: the operator chose it
    staged = staged_versions(serving.entries, serving.os_name, serving.architectures)
    missing = [v for v in route if v not in staged]
    if not missing:
        return ""
    if missing == [target]:
        return f"upgrade target {target} is not staged"
    return f"upgrade target {target} needs {', '.join(str(v) for v in missing)} staged"
