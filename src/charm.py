#!/usr/bin/env python3
"""The upgrader charm: one state, one reconcile and the actions, around lib/upgrader.

ARCHITECTURE.md maps the whole; the work itself is done by the ops-free ``upgrader`` package.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import ops

from state import PEERS, CharmState
from upgrader.archive_import import ImportResult, import_resource
from upgrader.config import CharmConfig, parse_architectures
from upgrader.errors import TransientError, UpgraderError
from upgrader.fetch import Fetcher
from upgrader.mirror import TOOLS_DIR, Mirror, MirrorBusyError, MirrorError, format_bytes
from upgrader.nginx import LOG_DIR, Layout, NginxService, ServingError
from upgrader.nginx import Site as NginxSite
from upgrader.plan import (
    PlanRequest,
    make_plan,
    plan_results,
    route_of,
    staged_versions,
    versions_to_stage,
)
from upgrader.runbook import ControllerInfo, Site
from upgrader.selection import Outcome, Policy, Selection
from upgrader.serving import LeaderMirror
from upgrader.status import (
    BINARIES_STORAGE,
    ImportOutcome,
    Serving,
    StreamCheck,
    UnitFacts,
    no_storage_message,
    unit_status,
)
from upgrader.streams import AgentEntry, StreamContents, check_for_changes, read_stream
from upgrader.sync import Progress, SyncError, SyncRequest, sync, sync_results
from upgrader.syncjob import (
    JOB_FILE,
    JobService,
    auto_sync_job,
    current_status,
    follow_job,
    mirror_revision,
    render_unit,
    write_spec,
)
from upgrader.upstream import read_upstream
from upgrader.urls import display_values, for_display, redact_text
from upgrader.versions import Version, parse_lenient, parse_major_minor

logger = logging.getLogger(__name__)

AGENT_BINARIES = "agent-binaries"
WEBSITE = "website"


class StreamRefresh(enum.Enum):
    """What an event asks of the upstream stream."""

    NONE = "none"
    CHECK = "check"
    """Retry a failed read; after a good one, read again only if the index changed."""
    READ = "read"
    """Read it in full, so that a bad source shows at once."""


class ResourceImport(enum.Enum):
    """What an event asks of the ``agent-binaries`` resource."""

    NONE = "none"
    RETRY = "retry"
    """Import again only if the last import found the mirror busy."""
    NEW = "new"
    """Import it if it is not the archive imported last (an unchanged one costs a hash)."""


@dataclasses.dataclass(frozen=True)
class _Work:
    """The reconcile steps that reach outside the unit, and which events ask for them."""

    stream: StreamRefresh = StreamRefresh.NONE
    resource: ResourceImport = ResourceImport.NONE


# The stream is read when its options may have changed and checked on the periodic hook; the
# resource is imported when Juju may have brought a new one. Every other step runs on every
# reconcile.
_WORK: dict[type[ops.EventBase], _Work] = {
    ops.ConfigChangedEvent: _Work(StreamRefresh.READ, ResourceImport.NEW),
    ops.UpdateStatusEvent: _Work(StreamRefresh.CHECK, ResourceImport.RETRY),
    ops.UpgradeCharmEvent: _Work(resource=ResourceImport.NEW),
    ops.StorageAttachedEvent: _Work(resource=ResourceImport.NEW),
}


class ActionRefusedError(Exception):
    """An action cannot run now; the message says why and what to do."""


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
    """The ``prune-binaries`` action parameters (Juju enforces ``keep``'s presence and range)."""

    keep: int | None = None


@dataclasses.dataclass(frozen=True)
class ImportParams:
    """The ``import-binaries`` action parameters."""

    force: bool = False


def _fails_cleanly(
    handler: Callable[[UpgraderCharm, ops.ActionEvent], None],
) -> Callable[[UpgraderCharm, ops.ActionEvent], None]:
    """Turn a refusal or an operator-facing error into the action's failure message."""

    @functools.wraps(handler)
    def run(charm: UpgraderCharm, event: ops.ActionEvent) -> None:
        try:
            handler(charm, event)
        except (ActionRefusedError, UpgraderError) as exc:
            event.fail(for_display(str(exc)))

    return run


class UpgraderCharm(ops.CharmBase):
    """Plans controller agent upgrades, stages agent binaries and serves them."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        """Observe every event that changes what the unit should be, and the actions."""
        super().__init__(framework)
        # Only what the unit cannot see again without redoing the work (StreamCheck,
        # ImportOutcome, and the last serving and job failures); the rest is derived.
        self._stored.set_default(stream={}, last_import={}, serving_error="", job_error="")
        on = self.on
        for event in (
            on.install,
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.update_status,
            on.leader_elected,
            on[BINARIES_STORAGE].storage_attached,
            on[PEERS].relation_joined,
            on[PEERS].relation_changed,
            on[PEERS].relation_departed,
            on[WEBSITE].relation_joined,
            on[WEBSITE].relation_changed,
        ):
            framework.observe(event, self._on_reconcile)
        framework.observe(on[BINARIES_STORAGE].storage_detaching, self._on_storage_detaching)
        framework.observe(on.stop, self._on_stop)
        framework.observe(on.remove, self._on_stop)
        framework.observe(on.collect_unit_status, self._on_collect_status)
        framework.observe(on["plan-upgrade"].action, self._on_plan_upgrade)
        framework.observe(on["sync-binaries"].action, self._on_sync_binaries)
        framework.observe(on["prune-binaries"].action, self._on_prune_binaries)
        framework.observe(on["import-binaries"].action, self._on_import_binaries)

    @functools.cached_property
    def _state(self) -> CharmState:
        return CharmState.from_charm(self)

    # --- reconcile -------------------------------------------------------------------------

    def _on_reconcile(self, event: ops.EventBase) -> None:
        self._reconcile(self._state, _WORK.get(type(event), _Work()))

    def _reconcile(self, state: CharmState, work: _Work) -> None:
        """Bring the unit to what its config, storage, resource and peers ask for, in order."""
        config = state.config
        if config is None:
            return  # collect-status names the option; nothing changes until it is fixed
        self._refresh_stream(state, config, work.stream)
        if state.storage_root is not None and (
            work.resource is ResourceImport.NEW
            or (work.resource is ResourceImport.RETRY and self._last_import.retry)
        ):
            path = self._resource_path()
            if path is not None:
                self._import_resource(state.storage_root, config, path)
        root = self._serve(state, config)
        if root is None:
            return
        entries = _staged(root, config)
        self._publish(state, config, entries)
        self._run_background_job(state, config, root, entries)

    def _refresh_stream(self, state: CharmState, config: CharmConfig, how: StreamRefresh) -> None:
        """Read the stream, or check with one conditional request whether it changed.

        A check before any read does nothing (config-changed does the first read).
        """
        check = self._stream_check
        if how is StreamRefresh.NONE:
            return
        if how is StreamRefresh.CHECK and not check.error:
            if check.validators is None:
                return
            try:
                with Fetcher(config.fetch_settings(os.environ)) as fetcher:
                    if not check_for_changes(check.validators, fetcher):
                        return
            except UpgraderError as exc:
                self._stream_failed(exc)
                return
        self._read_stream(state, config)

    def _import_resource(
        self,
        root: Path,
        config: CharmConfig,
        path: Path,
        *,
        force: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> ImportResult | None:
        """Import the resource at ``path`` into the mirror, recording the outcome for the status.

        Returns:
            What was imported; None on failure (then :attr:`_last_import` says why).
        """
        try:
            result = import_resource(
                path,
                Mirror(root),
                force=force,
                keys=config.keys,
                source=f"the {AGENT_BINARIES} resource",
                log=log,
            )
        except UpgraderError as exc:
            message = redact_text(f"cannot import: {exc}")
            logger.error("%s", for_display(message))
            self._last_import = dataclasses.replace(
                self._last_import, error=message, retry=isinstance(exc, MirrorBusyError)
            )
            return None
        note = self._last_import.note
        if not result.already_imported:
            logger.info("%s", for_display(result.summary()))
            if result.imported:
                note = f"imported {len(result.imported)} agent binaries"
        self._last_import = ImportOutcome(note=note)
        return result

    def _serve(self, state: CharmState, config: CharmConfig) -> Path | None:
        """Have nginx serve the storage's mirror on the configured port; returns the root."""
        nginx = _nginx(state)
        root = state.storage_root
        try:
            if not nginx.installed():
                self.unit.status = ops.MaintenanceStatus("installing nginx")
                nginx.install()
            if root is None:
                if nginx.serving():
                    self._shut_down(state, stop_nginx=False)
                return None
            _readable_by_nginx(root)
            nginx.serve(_nginx_site(state, root, config.port))
        except (ServingError, OSError) as exc:
            logger.error("cannot serve the mirror: %s", for_display(str(exc)))
            self._stored.serving_error = f"cannot serve the mirror: {exc}"
            return None
        self._stored.serving_error = ""
        self.unit.set_ports(config.port)
        return root

    def _publish(
        self, state: CharmState, config: CharmConfig, entries: tuple[AgentEntry, ...]
    ) -> None:
        """Tell reverse proxies where this unit listens, and (leader) peers what it serves."""
        for relation in self.model.relations[WEBSITE]:
            relation.data[self.unit].update({"hostname": state.address, "port": str(state.port)})
        peers = self.model.get_relation(PEERS)
        if peers is not None and state.leader:
            revision = mirror_revision(entries, config.agent_os, config.arch_list)
            published = LeaderMirror(state.mirror_url, revision, state.unit)
            peers.data[self.app].update(published.as_dict())

    def _run_background_job(
        self, state: CharmState, config: CharmConfig, root: Path, entries: tuple[AgentEntry, ...]
    ) -> None:
        """Start the background sync that is due: auto-sync on the leader, a copy elsewhere."""
        job = JobService(f"{state.slug}-sync.service")
        try:
            if state.leader and not config.auto_sync:
                job.remove()
                self._stored.job_error = ""
                return
            if state.leader:
                spec = auto_sync_job(config, root, entries, self._stream_check.stage, os.environ)
            else:
                spec = follow_job(config, root, entries, state.leader_mirror)
            if spec is None:
                self._stored.job_error = ""  # nothing is due: an old failure no longer applies
                return
            text = render_unit(
                description=f"Stage Juju agent binaries for {state.unit}",
                python=sys.executable,
                pythonpath=[str(state.charm_dir / "lib"), str(state.charm_dir / "src")],
                spec_path=root / JOB_FILE,
            )
            if job.running():
                return  # it finishes first; the next hook starts the next run if still due
            write_spec(root, spec)
            job.install(text)
            job.start()
        except UpgraderError as exc:
            message = redact_text(f"cannot start the background sync: {exc}")
            logger.error("%s", for_display(message))
            self._stored.job_error = message
            return
        self._stored.job_error = ""

    # --- leaving ---------------------------------------------------------------------------

    def _on_storage_detaching(self, _: ops.StorageDetachingEvent) -> None:
        """The storage goes away: stop the job, stop serving it, close the port."""
        self._shut_down(self._state, stop_nginx=False)

    def _on_stop(self, _: ops.EventBase) -> None:
        """The unit goes away: stop the job and nginx; the storage is left as it is."""
        self._shut_down(self._state, stop_nginx=True)

    def _shut_down(self, state: CharmState, *, stop_nginx: bool) -> None:
        nginx = _nginx(state)
        try:
            JobService(f"{state.slug}-sync.service").remove()
            if stop_nginx:
                nginx.stop()
            else:
                nginx.stop_serving()
        except UpgraderError as exc:
            logger.error("cannot stop serving cleanly: %s", for_display(str(exc)))
        self.unit.set_ports()
        for relation in self.model.relations[WEBSITE]:
            for key in ("hostname", "port"):
                relation.data[self.unit].pop(key, None)
        peers = self.model.get_relation(PEERS)
        if peers is not None and state.leader:
            for key in LeaderMirror("", "").as_dict():
                peers.data[self.app].pop(key, None)

    # --- status ----------------------------------------------------------------------------

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        state = self._state
        facts = UnitFacts(
            unit=state.unit,
            agent_version=str(state.agent_version),
            config_error=state.config_error,
            stream=self._stream_check,
            last_import=self._last_import,
            storage_attached=state.storage_root is not None,
            serving_error=str(self._stored.serving_error),
            serving=self._serving(state),
        )
        status = unit_status(facts)
        event.add_status(ops.StatusBase.from_name(status.name, for_display(status.message)))

    def _serving(self, state: CharmState) -> Serving | None:
        """What the unit serves, when nginx serves its storage's mirror."""
        root, config = state.storage_root, state.config
        if root is None or config is None or not _nginx(state).serving():
            return None
        return Serving(
            url=state.mirror_url,
            entries=_staged(root, config),
            os_name=config.agent_os,
            architectures=config.arch_list,
            job=current_status(root),
            job_error=str(self._stored.job_error),
        )

    # --- actions ---------------------------------------------------------------------------

    @_fails_cleanly
    def _on_plan_upgrade(self, event: ops.ActionEvent) -> None:
        config = _config_for(self._state)
        params = event.load_params(PlanParams, errors="fail")
        request = _plan_request(self._state, config, params)
        contents = self._read_stream(self._state, config)
        if contents is None:
            raise ActionRefusedError(self._stream_check.error)
        selection = make_plan(contents, request)
        route = route_of(selection)
        # A bare sync-binaries stages the default plan's route (kept by the read above).
        exact = tuple(str(v) for v in route.stage) != self._stream_check.stage
        results = plan_results(
            selection,
            contents,
            self._site(self._state, config, selection, exact=exact),
            route=route,
            info=ControllerInfo(architectures=config.arch_list),
        )
        event.set_results(display_values(results))

    @_fails_cleanly
    def _on_sync_binaries(self, event: ops.ActionEvent) -> None:
        params = event.load_params(SyncParams, errors="fail")
        state = self._state
        root = _storage_for(state)
        config = _config_for(state, stages="" if params.dry_run else "sync")
        series = parse_major_minor(params.version) if params.version.strip() else None
        arches = (
            parse_architectures(params.architectures)
            if params.architectures.strip()
            else config.arch_list
        )
        log = _for_display(event.log)
        contents = self._read_stream(
            state, config, kept_in=Mirror(root), save=not params.dry_run, log=log
        )
        if contents is None:
            raise ActionRefusedError(self._stream_check.error)
        if series is not None:
            request = SyncRequest(series=series, os_names=(config.agent_os,), architectures=arches)
        else:
            plan = dataclasses.replace(_plan_request(state, config), architectures=arches)
            selection = make_plan(contents, plan)
            route = route_of(selection)
            versions, unlisted = versions_to_stage(selection, route, contents, plan)
            for version in unlisted:
                log(f"{version} is not in the stream: the route's other versions are staged")
            log(
                f"staging {', '.join(str(v) for v in versions)}: what the plan-upgrade route "
                f"needs ({route.route.value}; {selection.reason})"
            )
            request = SyncRequest(
                versions=versions, os_names=(config.agent_os,), architectures=arches
            )
        try:
            with Fetcher(config.fetch_settings(os.environ)) as fetcher:
                result = sync(
                    Mirror(root),
                    contents,
                    request,
                    fetcher,
                    parallel=config.parallel_downloads,
                    dry_run=params.dry_run,
                    progress=_file_logger(log),
                )
        except SyncError as exc:
            event.set_results(display_values(sync_results(exc.result, state.mirror_url)))
            raise
        for binary in result.missing:
            log(f"not in the {result.stream} stream: {binary}")
        event.set_results(display_values(sync_results(result, state.mirror_url)))
        self._mirror_changed(state, config)

    @_fails_cleanly
    def _on_prune_binaries(self, event: ops.ActionEvent) -> None:
        params = event.load_params(PruneParams, errors="fail")
        state = self._state
        mirror = Mirror(_storage_for(state))
        if params.keep is None:  # Juju requires it; a client that skips the schema may not
            raise ActionRefusedError(
                "keep is required: the number of versions to keep per major.minor, e.g. 2"
            )
        config = _config_for(state, stages="prune")
        with mirror.lock("prune"):
            result = mirror.prune(params.keep, protected=[state.agent_version])
        for path in result.files_removed:
            event.log(for_display(f"removed {path}"))
        event.set_results(
            display_values(
                {
                    "removed": ", ".join(str(v) for v in result.removed),
                    "kept": ", ".join(str(v) for v in result.kept),
                }
            )
        )
        self._mirror_changed(state, config)

    @_fails_cleanly
    def _on_import_binaries(self, event: ops.ActionEvent) -> None:
        params = event.load_params(ImportParams, errors="fail")
        state = self._state
        root = _storage_for(state)
        config = _config_for(state, stages="import")
        path = self._resource_path()
        if path is None:
            raise ActionRefusedError(
                f"no {AGENT_BINARIES} resource attached: make one on a connected machine with "
                "`juju-upgrader bundle DIR -o agents.tar.gz`, then run `juju attach-resource "
                f"{state.app} {AGENT_BINARIES}=./agents.tar.gz`"
            )
        result = self._import_resource(
            root, config, path, force=params.force, log=_for_display(event.log)
        )
        if result is None:
            raise ActionRefusedError(self._last_import.error)
        event.set_results(display_values(result.results()))
        self._mirror_changed(state, config)

    def _mirror_changed(self, state: CharmState, config: CharmConfig) -> None:
        """Tell peers at once that the leader's mirror changed (else the next hook does)."""
        root = state.storage_root
        if root is not None and _nginx(state).serving():
            self._publish(state, config, _staged(root, config))

    def _site(
        self, state: CharmState, config: CharmConfig, selection: Selection, *, exact: bool
    ) -> Site | None:
        """What plan-upgrade says about this unit's mirror; None when it serves nothing.

        Args:
            state: the charm state.
            config: the charm's options.
            selection: the plan.
            exact: the route needs other versions than the default plan's, which is what
                ``sync-binaries`` alone stages, so the sync command names each series.
        """
        root = state.storage_root
        if root is None or selection.outcome is not Outcome.UPGRADE:
            return None
        if not _nginx(state).serving():
            return None
        leader = None if state.leader else state.leader_mirror
        unit = leader.unit if leader is not None and leader.unit else state.unit
        command = f"juju run {unit} sync-binaries"
        if exact:
            # juju run reads key=value as YAML unless --string-args: 3.6 would be the number
            # 3.6 (and 3.10 the number 3.1), which the action's string schema refuses
            # (cmd/juju/action/run.go).
            command += " --string-args version={series}"
        staged = staged_versions(_staged(root, config), config.agent_os, config.arch_list)
        return Site(state.mirror_url, config.stream, staged, command)

    # --- the stream ------------------------------------------------------------------------

    def _read_stream(
        self,
        state: CharmState,
        config: CharmConfig,
        *,
        kept_in: Mirror | None = None,
        save: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> StreamContents | None:
        """Read the stream, recording what was found for the status (None on failure).

        With ``kept_in``, the metadata that mirror kept from its last verified read is used
        when one conditional request finds the index unchanged (``upgrader.upstream``); what
        was done is logged, and passed to ``log``. ``save`` keeps a full read for next time.
        """
        trust = config.trust(f"run: juju config {state.app} verify-signatures=false")
        try:
            with Fetcher(config.fetch_settings(os.environ)) as fetcher:
                if kept_in is None:
                    contents = read_stream(config.stream_url, config.stream, fetcher, trust=trust)
                else:
                    read = read_upstream(
                        kept_in, config.stream_url, config.stream, fetcher, trust=trust, save=save
                    )
                    contents = read.contents
                    note = for_display(read.note)
                    logger.info("%s", note)
                    if log is not None:
                        log(note)
        except UpgraderError as exc:
            self._stream_failed(exc)
            return None
        if not contents.verified:
            logger.warning(
                "agent metadata from %s is not verified: %s",
                for_display(contents.base_url),
                for_display(contents.unverified_reason),
            )
        target, stage = _default_route(state, config, contents)
        self._stream_check = StreamCheck(
            validators=contents.validators,
            unverified="" if contents.verified else contents.unverified_reason or "not verified",
            target=target,
            stage=stage,
        )
        return contents

    def _stream_failed(self, exc: UpgraderError) -> None:
        """Keep a stream failure for the status: Maintenance if transient, else Blocked."""
        message = redact_text(f"cannot read agent stream: {exc}")
        logger.warning("%s", for_display(message))
        self._stream_check = self._stream_check.failed(
            message, transient=isinstance(exc, TransientError)
        )

    # --- what is kept between hooks ---------------------------------------------------------

    @property
    def _stream_check(self) -> StreamCheck:
        return StreamCheck.from_dict(self._stored.stream)

    @_stream_check.setter
    def _stream_check(self, check: StreamCheck) -> None:
        self._stored.stream = check.as_dict()

    @property
    def _last_import(self) -> ImportOutcome:
        return ImportOutcome.from_dict(self._stored.last_import)

    @_last_import.setter
    def _last_import(self, outcome: ImportOutcome) -> None:
        self._stored.last_import = outcome.as_dict()

    def _resource_path(self) -> Path | None:
        """The fetched agent-binaries resource, or None when none is attached."""
        try:
            return self.model.resources.fetch(AGENT_BINARIES)
        except (ops.ModelError, NameError) as exc:
            logger.debug("no %s resource: %s", AGENT_BINARIES, exc)
            return None


# --- helpers that take data ------------------------------------------------------------------


def _storage_for(state: CharmState) -> Path:
    """The storage root an action stages into; :class:`ActionRefusedError` without one."""
    if state.storage_root is None:
        raise ActionRefusedError(no_storage_message(state.unit))
    return state.storage_root


def _config_for(state: CharmState, *, stages: str = "") -> CharmConfig:
    """The config, once the action may run here; otherwise :class:`ActionRefusedError`.

    Args:
        state: the charm state.
        stages: the action changes the mirror (``sync``, ``prune`` or ``import``), which a
            unit that copies the leader's mirror must not do.
    """
    if stages and not state.leader and state.leader_mirror is not None:
        where = state.leader_mirror.unit or "the leader unit (marked * in juju status)"
        raise ActionRefusedError(
            f"{state.unit} copies the leader's mirror ({state.leader_mirror.url}); "
            f"run {stages}-binaries on {where}, the other units follow"
        )
    if state.config is None:
        raise ActionRefusedError(f"invalid config: {state.config_error}")
    return state.config


def _plan_request(
    state: CharmState, config: CharmConfig, params: PlanParams = PlanParams()
) -> PlanRequest:
    """The plan the parameters ask for, defaulting to this unit's agent and the config."""
    return PlanRequest(
        agent=_version(params.agent_version, "agent-version") or state.agent_version,
        client=_version(params.client_version, "client-version"),
        target=_version(params.target_version, "target-version"),
        policy=Policy.parse(params.policy) if params.policy else config.policy,
        os_name=config.agent_os,
        architectures=config.arch_list,
    )


def _default_route(
    state: CharmState, config: CharmConfig, contents: StreamContents
) -> tuple[str, tuple[str, ...]]:
    """This unit's upgrade target by the configured policy, and what its route needs staged.

    Both are empty when the controller is up to date or no plan can be made.
    """
    try:
        selection = make_plan(contents, _plan_request(state, config))
        route = route_of(selection)
    except UpgraderError as exc:
        logger.info(
            "no upgrade target in %s: %s", for_display(contents.base_url), for_display(str(exc))
        )
        return "", ()
    if selection.outcome is not Outcome.UPGRADE:
        return "", ()
    return str(selection.target), tuple(str(v) for v in route.stage)


def _version(text: str, option: str) -> Version | None:
    """A version parameter, or None when it was not given."""
    if not text:
        return None
    try:
        return parse_lenient(text)
    except UpgraderError as exc:
        raise ActionRefusedError(f"{option}: {exc}") from None


def _staged(root: Path, config: CharmConfig) -> tuple[AgentEntry, ...]:
    """What the mirror lists for the configured stream (nothing when it cannot be read)."""
    try:
        return Mirror(root).staged(config.stream)
    except MirrorError as exc:
        logger.warning("cannot read the staged mirror: %s", for_display(str(exc)))
        return ()


def _nginx(state: CharmState) -> NginxService:
    return NginxService(Layout(site_name=state.slug))


def _nginx_site(state: CharmState, root: Path, port: int) -> NginxSite:
    return NginxSite(
        root,
        port=port,
        access_log=LOG_DIR / f"{state.slug}-access.log",
        error_log=LOG_DIR / f"{state.slug}-error.log",
    )


def _readable_by_nginx(root: Path) -> None:
    """Let nginx's unprivileged workers (www-data) reach ``<root>/tools`` and read it.

    The storage mount point may be created private; the served tree must be world-readable.
    """
    mode = root.stat().st_mode & 0o777
    if mode & 0o005 != 0o005:
        root.chmod(mode | 0o005)
    (root / TOOLS_DIR).mkdir(mode=0o755, exist_ok=True)


def _for_display(log: Callable[[str], None]) -> Callable[[str], None]:
    """A line logger that shows each line as :func:`upgrader.urls.for_display` makes it."""

    def write(line: str) -> None:
        log(for_display(line))

    return write


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


if __name__ == "__main__":  # pragma: nocover
    ops.main(UpgraderCharm)
