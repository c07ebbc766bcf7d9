#!/usr/bin/env python3
"""The upgrader charm: event wiring around the ops-free ``upgrader`` package in lib/."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import ops

from mirror_server import MirrorServer
from upgrader.archive_import import import_resource
from upgrader.errors import InvalidInputError, TransientError, UpgraderError
from upgrader.fetch import Fetcher
from upgrader.mirror import Mirror, MirrorBusyError, agent_metadata_url, format_bytes
from upgrader.plan import PlanRequest, make_plan, plan_results
from upgrader.selection import Outcome, Policy
from upgrader.serving import ServingSettings
from upgrader.settings import Settings, parse_architectures
from upgrader.streams import StreamContents, Validators, check_for_changes, read_stream
from upgrader.sync import Progress, SyncError, SyncRequest, SyncSettings, sync, sync_results
from upgrader.upstream import read_upstream
from upgrader.urls import redact_text, redact_url, redact_values
from upgrader.versions import SeriesFilter, Version, parse_lenient, parse_major_minor

logger = logging.getLogger(__name__)

AGENT_BINARIES = "agent-binaries"
BINARIES_STORAGE = "binaries"
DEFAULT_MIRROR_PORT = 8080
"""The mirror's port when the charm has no ``port`` option."""


@dataclasses.dataclass(frozen=True)
class PlanParams:
    """The ``plan-upgrade`` action parameters (versions in any form a person types)."""

    agent_version: str = ""
    client_version: str = ""
    target_version: str = ""
    policy: str = ""


@dataclasses.dataclass(frozen=True)
class SyncParams:
    """The ``sync-binaries`` action parameters."""

    version: str = ""
    dry_run: bool = False
    architectures: str = ""


@dataclasses.dataclass(frozen=True)
class PruneParams:
    """The ``prune-binaries`` action parameters."""

    keep: int | None = None


class UpgraderCharm(ops.CharmBase):
    """Plans controller agent upgrades from a simplestreams source."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        """Observe the events this charm handles."""
        super().__init__(framework)
        self._stored.set_default(stream_error="", stream_transient=False, planned="")
        self._stored.set_default(stream_unverified="", stream_validators={})
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on["plan-upgrade"].action, self._on_plan_upgrade)
        framework.observe(self.on["sync-binaries"].action, self._on_sync_binaries)
        framework.observe(self.on["prune-binaries"].action, self._on_prune_binaries)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.update_status, self._on_update_status)
        # Air-gapped import of the agent-binaries resource.
        self._stored.set_default(import_error="", import_retry=False, import_note="")
        framework.observe(self.on.upgrade_charm, self._on_import_trigger)
        framework.observe(self.on.config_changed, self._on_import_trigger)
        framework.observe(self.on[BINARIES_STORAGE].storage_attached, self._on_import_trigger)
        framework.observe(self.on.update_status, self._on_import_retry)
        framework.observe(self.on["import-binaries"].action, self._on_import_binaries)
        # Serving the mirror (nginx, port, relations, background syncs); created last so
        # that its update-status handler runs after the stream refresh above.
        self._mirror_server = MirrorServer(self)

    def _on_config_changed(self, _: ops.ConfigChangedEvent) -> None:
        """Check that the configured stream can be read, so a bad source shows at once."""
        try:
            settings = self.load_config(Settings)
        except ValueError:
            return  # collect-status reports the option and the accepted values
        self._read_stream(settings)

    def _on_plan_upgrade(self, event: ops.ActionEvent) -> None:
        try:
            settings = self.load_config(Settings)
        except ValueError as exc:
            _fail(event, f"invalid config: {exc}")
            return
        params = event.load_params(PlanParams, errors="fail")
        try:
            request = self._plan_request(params, settings)
        except InvalidInputError as exc:
            _fail(event, str(exc))
            return
        contents = self._read_stream(settings)
        if contents is None:
            _fail(event, str(self._stored.stream_error))
            return
        try:
            selection = make_plan(contents, request)
        except UpgraderError as exc:
            _fail(event, str(exc))
            return
        self._stored.planned = (
            str(selection.target) if selection.outcome is Outcome.UPGRADE else ""
        )
        exact = params != PlanParams()
        mirror = self._mirror_server.mirror_state(selection, settings, exact=exact)
        results = plan_results(selection, contents, mirror)
        if not contents.verified:
            results["unverified-reason"] = contents.unverified_reason
        event.set_results(redact_values(results))

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        for status in self._statuses():
            event.add_status(_redacted(status))

    def _statuses(self) -> list[ops.StatusBase]:
        """Every status that applies now; collect-status shows the one of highest priority."""
        statuses: list[ops.StatusBase] = []
        for options in (Settings, SyncSettings, ServingSettings):
            try:
                self.load_config(options)
            except ValueError as exc:
                statuses.append(ops.BlockedStatus(f"invalid config: {exc}"))
        if self._stored.stream_error:
            status = ops.MaintenanceStatus if self._stored.stream_transient else ops.BlockedStatus
            statuses.append(status(str(self._stored.stream_error)))
        if self._stored.import_error:
            status = ops.MaintenanceStatus if self._stored.import_retry else ops.BlockedStatus
            statuses.append(status(str(self._stored.import_error)))
        if self._binaries_root() is None:
            statuses.append(ops.BlockedStatus(_no_storage_message(self.unit.name)))
        message = self._serving_message(statuses)
        if self._stored.import_note:
            message += f"; {self._stored.import_note}"
        if self._stored.stream_unverified:
            message += " (unverified source)"
        statuses.append(ops.ActiveStatus(message))
        return statuses

    def _serving_message(self, statuses: list[ops.StatusBase]) -> str:
        """What the unit serves and where; a serving failure is added to ``statuses``."""
        serving = self._mirror_server.status()
        if isinstance(serving, ops.ActiveStatus):
            return serving.message
        if serving is not None:
            statuses.append(serving)
        message = f"agent {self.model.juju_version}"
        if self._stored.planned:
            message += f"; upgrade target {self._stored.planned}"
        return message

    def _on_sync_binaries(self, event: ops.ActionEvent) -> None:
        root = self._binaries_root()
        if root is None:
            _fail(event, _no_storage_message(self.unit.name))
            return
        params = event.load_params(SyncParams, errors="fail")
        if not params.dry_run and self._refused_on_follower(event, "sync-binaries"):
            return
        try:
            settings = self.load_config(Settings)
            parallel = self.load_config(SyncSettings).parallel_downloads
        except ValueError as exc:
            _fail(event, f"invalid config: {exc}")
            return
        try:
            series = parse_major_minor(params.version) if params.version.strip() else None
            arches = (
                parse_architectures(params.architectures)
                if params.architectures.strip()
                else settings.arch_list
            )
        except InvalidInputError as exc:
            _fail(event, str(exc))
            return
        log = _redacting(event.log)
        contents = self._read_stream(
            settings, kept_in=Mirror(root), save=not params.dry_run, log=log
        )
        if contents is None:
            _fail(event, str(self._stored.stream_error))
            return
        try:
            request = self._sync_request(series, arches, settings, contents, log)
            with Fetcher(settings.fetch_settings(os.environ)) as fetcher:
                result = sync(
                    Mirror(root),
                    contents,
                    request,
                    fetcher,
                    parallel=parallel,
                    dry_run=params.dry_run,
                    progress=_file_logger(log),
                )
        except SyncError as exc:
            event.set_results(redact_values(sync_results(exc.result, self._agent_metadata_url())))
            _fail(event, str(exc))
            return
        except UpgraderError as exc:
            _fail(event, str(exc))
            return
        for binary in result.missing:
            log(f"not in the {result.stream} stream: {binary}")
        event.set_results(redact_values(sync_results(result, self._agent_metadata_url())))
        self._mirror_server.mirror_changed()

    def _on_prune_binaries(self, event: ops.ActionEvent) -> None:
        root = self._binaries_root()
        if root is None:
            _fail(event, _no_storage_message(self.unit.name))
            return
        params = event.load_params(PruneParams, errors="fail")
        if params.keep is None:
            _fail(
                event, "keep is required: the number of versions to keep per major.minor, e.g. 2"
            )
            return
        if self._refused_on_follower(event, "prune-binaries"):
            return
        mirror = Mirror(root)
        try:
            current = parse_lenient(str(self.model.juju_version))
            with mirror.lock("prune"):
                result = mirror.prune(params.keep, protected=[current])
        except UpgraderError as exc:
            _fail(event, str(exc))
            return
        for path in result.files_removed:
            event.log(f"removed {path}")
        event.set_results(
            {
                "removed": ", ".join(str(v) for v in result.removed),
                "kept": ", ".join(str(v) for v in result.kept),
            }
        )
        self._mirror_server.mirror_changed()

    def _refused_on_follower(self, event: ops.ActionEvent, action: str) -> bool:
        """Fail an action that would change a mirror this unit copies from the leader."""
        refusal = self._mirror_server.follower_refusal(action)
        if refusal:
            _fail(event, refusal)
        return bool(refusal)

    def _sync_request(
        self,
        series: SeriesFilter | None,
        arches: tuple[str, ...],
        settings: Settings,
        contents: StreamContents,
        log: Callable[[str], None],
    ) -> SyncRequest:
        """The binaries to stage: a major[.minor] series, or else the plan-upgrade target."""
        if series is not None:
            return SyncRequest(series=series, os_names=(settings.agent_os,), architectures=arches)
        plan = self._plan_request(PlanParams(), settings)
        selection = make_plan(contents, dataclasses.replace(plan, architectures=arches))
        log(f"staging {selection.target}, the plan-upgrade target ({selection.reason})")
        return SyncRequest(
            versions=(selection.target,), os_names=(settings.agent_os,), architectures=arches
        )

    def _agent_metadata_url(self) -> str:
        """What the controller's ``agent-metadata-url`` should be once the mirror is served."""
        return agent_metadata_url(self._mirror_address(), self._mirror_port())

    def _mirror_address(self) -> str:
        """The unit address controllers reach (the one the unit status shows)."""
        return self._mirror_server.address()

    def _mirror_port(self) -> int:
        """The port the mirror is served on (the ``port`` option when the charm has one)."""
        port = self.config.get("port")
        return port if isinstance(port, int) else DEFAULT_MIRROR_PORT

    def _plan_request(self, params: PlanParams, settings: Settings) -> PlanRequest:
        return PlanRequest(
            agent=_version(params.agent_version or str(self.model.juju_version), "agent-version"),
            client=_optional_version(params.client_version, "client-version"),
            target=_optional_version(params.target_version, "target-version"),
            policy=Policy.parse(params.policy, option="policy")
            if params.policy
            else settings.policy,
            os_name=settings.agent_os,
            architectures=settings.arch_list,
        )

    def _on_update_status(self, _: ops.UpdateStatusEvent) -> None:
        """Retry a failed stream read; after a good one, re-read only if the index changed.

        When the last read succeeded this costs one conditional request (HTTP 304). Before
        any read (config-changed does the first), it does nothing.
        """
        validators = Validators.from_dict(dict(self._stored.stream_validators))
        if not self._stored.stream_error and validators is None:
            return
        try:
            settings = self.load_config(Settings)
        except ValueError:
            return
        if not self._stored.stream_error and validators is not None:
            try:
                with Fetcher(settings.fetch_settings(os.environ)) as fetcher:
                    if not check_for_changes(validators, fetcher):
                        return
            except UpgraderError as exc:
                self._record_stream_error(exc)
                return
        self._read_stream(settings)

    def _read_stream(
        self,
        settings: Settings,
        *,
        kept_in: Mirror | None = None,
        save: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> StreamContents | None:
        """Read the stream, recording any failure (and whether it was verified) for the status.

        With ``kept_in``, the metadata that mirror kept from its last verified read is used
        when one conditional request finds the index unchanged (``upgrader.upstream``); what
        was done is logged, and passed to ``log``. ``save`` keeps a full read for next time.
        """
        trust = settings.trust(f"run: juju config {self.app.name} verify-signatures=false")
        try:
            with Fetcher(settings.fetch_settings(os.environ)) as fetcher:
                if kept_in is None:
                    contents = read_stream(
                        settings.stream_url, settings.stream, fetcher, trust=trust
                    )
                else:
                    read = read_upstream(
                        kept_in,
                        settings.stream_url,
                        settings.stream,
                        fetcher,
                        trust=trust,
                        save=save,
                    )
                    contents = read.contents
                    note = redact_text(read.note)
                    logger.info("%s", note)
                    if log is not None:
                        log(note)
        except UpgraderError as exc:
            self._record_stream_error(exc)
            return None
        self._stored.stream_error = ""
        self._stored.stream_transient = False
        self._stored.stream_unverified = (
            "" if contents.verified else contents.unverified_reason or "not verified"
        )
        if not contents.verified:
            logger.warning(
                "agent metadata from %s is not verified: %s",
                redact_url(contents.base_url),
                redact_text(contents.unverified_reason),
            )
        self._stored.stream_validators = (
            contents.validators.as_dict() if contents.validators else {}
        )
        self._mirror_server.note_stream(contents, settings)
        return contents

    def _record_stream_error(self, exc: UpgraderError) -> None:
        """Keep a stream failure for the status: Maintenance if transient, else Blocked.

        The message may quote the stream URL (or one made from it): its credentials are hidden.
        """
        message = redact_text(f"cannot read agent stream: {exc}")
        logger.warning("%s", message)
        self._stored.stream_error = message
        self._stored.stream_transient = isinstance(exc, TransientError)

    # --- air-gapped import (agent-binaries resource) -------------------------------------

    def _on_import_trigger(self, _: ops.EventBase) -> None:
        """Import a newly attached agent-binaries resource; an unchanged one costs a hash."""
        self._import_binaries(force=False)

    def _on_import_retry(self, _: ops.UpdateStatusEvent) -> None:
        """Retry an import that found the mirror busy (a sync was running)."""
        if self._stored.import_retry:
            self._import_binaries(force=False)

    def _on_import_binaries(self, event: ops.ActionEvent) -> None:
        if self._binaries_root() is None:
            _fail(event, _no_storage_message(self.unit.name))
            return
        if self._refused_on_follower(event, "import-binaries"):
            return
        if self._resource_path() is None:
            _fail(
                event,
                f"no {AGENT_BINARIES} resource attached: make one on a connected machine with "
                "`juju-upgrader bundle DIR -o agents.tar.gz`, then run `juju attach-resource "
                f"{self.app.name} {AGENT_BINARIES}=./agents.tar.gz`",
            )
            return
        force = bool(event.params.get("force", False))
        error, results = self._import_binaries(force=force, log=event.log)
        if error:
            _fail(event, error)
        else:
            event.set_results(results)
            self._mirror_server.mirror_changed()

    def _binaries_root(self) -> Path | None:
        """The mount point of the binaries storage, or None when none is attached."""
        return self._mirror_server.storage_root()

    def _resource_path(self) -> Path | None:
        """The fetched agent-binaries resource, or None when none is attached."""
        try:
            return self.model.resources.fetch(AGENT_BINARIES)
        except (ops.ModelError, NameError) as exc:
            logger.debug("no %s resource: %s", AGENT_BINARIES, exc)
            return None

    def _import_binaries(
        self, *, force: bool, log: Callable[[str], None] | None = None
    ) -> tuple[str, dict[str, str]]:
        """Import the resource into the mirror, recording the outcome for the unit status.

        Returns:
            An error message ("" on success) and the action results.
        """
        root = self._binaries_root()
        if root is None:
            return "", {}  # storage-attached imports it once the storage is there
        path = self._resource_path()
        if path is None:
            return "", {}
        keys = str(self.config.get("signing-keys") or "").strip() or None
        try:
            result = import_resource(
                path,
                Mirror(root),
                force=force,
                keys=keys,
                source=f"the {AGENT_BINARIES} resource",
                log=log,
            )
        except UpgraderError as exc:
            message = redact_text(f"cannot import: {exc}")
            logger.error(message)
            self._stored.import_error = message
            self._stored.import_retry = isinstance(exc, MirrorBusyError)
            return message, {}
        self._stored.import_error = ""
        self._stored.import_retry = False
        if not result.already_imported:
            logger.info("%s", result.summary())
            if result.imported:
                self._stored.import_note = f"imported {len(result.imported)} agent binaries"
        return "", result.results()


def _redacted(status: ops.StatusBase) -> ops.StatusBase:
    """The status with the credentials of the URLs its message quotes hidden."""
    return ops.StatusBase.from_name(status.name, redact_text(status.message))


def _fail(event: ops.ActionEvent, message: str) -> None:
    """Fail an action; the URLs the message quotes show no credentials."""
    event.fail(redact_text(message))


def _redacting(log: Callable[[str], None]) -> Callable[[str], None]:
    """A line logger that hides the credentials of the URLs each line quotes."""

    def write(line: str) -> None:
        log(redact_text(line))

    return write


def _no_storage_message(unit: str) -> str:
    return (
        f"no {BINARIES_STORAGE} storage attached: the staged agent binaries are kept there; "
        f"add it with `juju add-storage {unit} {BINARIES_STORAGE}`"
    )


def _file_logger(log: Callable[[str], None]) -> Callable[[Progress], None]:
    """A progress callback that logs one line per staged file (called from worker threads)."""
    lock = threading.Lock()

    def report(progress: Progress) -> None:
        if progress.finished:
            with lock:
                log(
                    f"{progress.name}: {format_bytes(progress.size)} at "
                    f"{format_bytes(progress.rate)}/s "
                    f"({format_bytes(progress.total_done)} of {format_bytes(progress.total_size)})"
                )

    return report


def _optional_version(text: str, option: str) -> Version | None:
    return _version(text, option) if text else None


def _version(text: str, option: str) -> Version:
    try:
        return parse_lenient(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{option}: {exc}") from None


if __name__ == "__main__":  # pragma: nocover
    ops.main(UpgraderCharm)
