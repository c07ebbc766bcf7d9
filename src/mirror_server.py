"""The charm's serving part: nginx over the staged mirror, the port, relations, background syncs.

An ops ``Object`` the charm creates once; it observes the events that change what the unit
serves and reconciles (install nginx, render the site, open the port, publish relation data,
start a background sync when one is due). The work is done by the ops-free modules:
:mod:`upgrader.nginx` (site and service), :mod:`upgrader.syncjob` (background job),
:mod:`upgrader.serving` (status line, peer data) and :mod:`upgrader.mirror`.

Several units: the leader publishes its mirror's URL and revision in the peer application data;
every other unit copies that mirror with a background job whenever its own revision differs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
from pathlib import Path

import ops

from upgrader.errors import UpgraderError
from upgrader.mirror import TOOLS_DIR, Mirror, MirrorError, agent_metadata_url
from upgrader.nginx import LOG_DIR, Layout, NginxService, ServingError, Site
from upgrader.plan import MirrorState, PlanRequest, is_staged, make_plan
from upgrader.selection import Outcome, Selection
from upgrader.serving import LeaderMirror, ServingSettings, newest_staged, serving_message
from upgrader.settings import Settings
from upgrader.streams import AgentEntry, StreamContents
from upgrader.sync import SyncSettings
from upgrader.syncjob import (
    FAILED,
    JOB_FILE,
    RUNNING,
    JobService,
    JobSpec,
    current_status,
    mirror_revision,
    render_unit,
    write_spec,
)
from upgrader.urls import redact_text, redact_url
from upgrader.versions import parse, parse_lenient

logger = logging.getLogger(__name__)

STORAGE = "binaries"
PEERS = "upgrader-peers"
WEBSITE = "website"


class MirrorServer(ops.Object):
    """Serves the staged mirror and keeps it current (see the module docstring)."""

    _stored = ops.StoredState()

    def __init__(self, charm: ops.CharmBase) -> None:
        """Observe the events that change what this unit serves.

        Create it at the end of the charm's ``__init__``: its update-status handler then runs
        after the charm's own, which refreshes the stream (see :meth:`note_stream`).
        """
        super().__init__(charm, "mirror-server")
        self._charm = charm
        self._stored.set_default(serving_port=0, serving_error="", job_error="", latest_target="")
        on = charm.on
        for event in (
            on.install,
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.leader_elected,
            on[STORAGE].storage_attached,
            on[PEERS].relation_joined,
            on[PEERS].relation_changed,
            on[PEERS].relation_departed,
            on[WEBSITE].relation_joined,
            on[WEBSITE].relation_changed,
        ):
            self.framework.observe(event, self._on_reconcile)
        self.framework.observe(on[STORAGE].storage_detaching, self._on_storage_detaching)
        self.framework.observe(on.update_status, self._on_update_status)
        self.framework.observe(on.stop, self._on_stop)
        self.framework.observe(on.remove, self._on_stop)

    # --- events ------------------------------------------------------------------------------

    def _on_reconcile(self, _: ops.EventBase) -> None:
        self.reconcile()

    def _on_update_status(self, _: ops.UpdateStatusEvent) -> None:
        """Re-check nginx, publish the revision, start a due sync (a new target, a new leader)."""
        self.reconcile()

    def _on_storage_detaching(self, _: ops.StorageDetachingEvent) -> None:
        """The storage goes away: stop the job, stop serving it, close the port."""
        self._shut_down(stop_nginx=False)

    def _on_stop(self, _: ops.EventBase) -> None:
        """The unit goes away: stop the job and nginx; the storage is left as it is."""
        self._shut_down(stop_nginx=True)

    # --- reconciling -------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the unit serve the storage's mirror as configured, and start a due sync."""
        try:
            settings = self._charm.load_config(Settings)
            serving = self._charm.load_config(ServingSettings)
            parallel = self._charm.load_config(SyncSettings).parallel_downloads
        except ValueError:
            return  # collect-status reports the option and the accepted values
        nginx = self._nginx()
        root = self.storage_root()
        try:
            if not nginx.installed():
                self._charm.unit.status = ops.MaintenanceStatus("installing nginx")
                nginx.install()
            if root is None:
                if self._stored.serving_port:
                    self._shut_down(stop_nginx=False)
                return
            _readable_by_nginx(root)
            nginx.serve(self._site(root, serving.port))
        except (ServingError, OSError) as exc:
            logger.error("cannot serve the mirror: %s", exc)
            self._stored.serving_error = f"cannot serve the mirror: {exc}"
            return
        self._stored.serving_error = ""
        self._stored.serving_port = serving.port
        self._charm.unit.set_ports(serving.port)
        entries = self._staged(root, settings)
        self._publish(serving.port, settings, entries)
        self._reconcile_job(settings, serving, root, entries, parallel)

    def _site(self, root: Path, port: int) -> Site:
        slug = self._slug()
        return Site(
            root,
            port=port,
            access_log=LOG_DIR / f"{slug}-access.log",
            error_log=LOG_DIR / f"{slug}-error.log",
        )

    def _publish(self, port: int, settings: Settings, entries: tuple[AgentEntry, ...]) -> None:
        """Tell reverse proxies where this unit listens, and (leader) peers what it serves."""
        address = self.address()
        for relation in self.model.relations[WEBSITE]:
            relation.data[self._charm.unit].update({"hostname": address, "port": str(port)})
        peers = self.model.get_relation(PEERS)
        if peers is not None and self._charm.unit.is_leader():
            revision = mirror_revision(entries, settings.agent_os, settings.arch_list)
            url = agent_metadata_url(address, port)
            leader = LeaderMirror(url, revision, self._charm.unit.name)
            peers.data[self._charm.app].update(leader.as_dict())

    def mirror_changed(self) -> None:
        """Tell peers at once that the leader's mirror changed (after an action staged or pruned).

        Other units otherwise learn it at the next update-status.
        """
        root = self.storage_root()
        port = int(self._stored.serving_port)
        if root is None or not port:
            return
        try:
            settings = self._charm.load_config(Settings)
        except ValueError:
            return
        self._publish(port, settings, self._staged(root, settings))

    def follower_refusal(self, action: str) -> str:
        """Why this unit must not run ``action`` (stage, import or prune) itself; "" if it may.

        A unit that copies the leader's mirror would undo its own changes at the next copy.
        """
        if self._charm.unit.is_leader():
            return ""
        leader = self.leader_mirror()
        if leader is None:
            return ""
        where = leader.unit or "the leader unit (marked * in juju status)"
        return (
            f"{self._charm.unit.name} copies the leader's mirror ({leader.url}); "
            f"run {action} on {where}, the other units follow"
        )

    def _reconcile_job(
        self,
        settings: Settings,
        serving: ServingSettings,
        root: Path,
        entries: tuple[AgentEntry, ...],
        parallel: int,
    ) -> None:
        """Install, start or remove the background sync as the unit's role and options say.

        ``parallel`` is the ``parallel-downloads`` option, which background syncs honour too.
        """
        leader = self._charm.unit.is_leader()
        job = self._job()
        try:
            if leader and not serving.auto_sync:
                job.remove()
                self._stored.job_error = ""
                return
            spec = self._leader_job(settings, root, entries) if leader else None
            if not leader:
                spec = self._follower_job(settings, root, entries)
            if spec is None:
                self._stored.job_error = ""  # nothing is due: an old failure no longer applies
                return
            spec = dataclasses.replace(spec, parallel=parallel)
            text = render_unit(
                description=f"Stage Juju agent binaries for {self._charm.unit.name}",
                python=sys.executable,
                pythonpath=[
                    str(self._charm.charm_dir / "lib"),
                    str(self._charm.charm_dir / "src"),
                ],
                spec_path=root / JOB_FILE,
            )
            if job.running():
                return  # it finishes first; the next hook starts the next run if still due
            write_spec(root, spec)
            job.install(text)
            job.start()
        except UpgraderError as exc:
            message = redact_text(f"cannot start the background sync: {exc}")
            logger.error("%s", message)
            self._stored.job_error = message
            return
        self._stored.job_error = ""

    def _leader_job(
        self, settings: Settings, root: Path, entries: tuple[AgentEntry, ...]
    ) -> JobSpec | None:
        """auto-sync: stage the newest target found by the update check, when not staged."""
        target = self._stored.latest_target
        if not target or is_staged(entries, parse(target), settings.agent_os, settings.arch_list):
            return None
        fetch = settings.fetch_settings(os.environ)
        return JobSpec(
            root=str(root),
            stream_url=settings.stream_url,
            stream=settings.stream,
            os_name=settings.agent_os,
            architectures=settings.arch_list,
            versions=(target,),
            verify_signatures=settings.verify_signatures,
            signing_keys=settings.signing_keys,
            fetch=dataclasses.asdict(fetch),
        )

    def _follower_job(
        self, settings: Settings, root: Path, entries: tuple[AgentEntry, ...]
    ) -> JobSpec | None:
        """Copy the leader's mirror when it serves something else than this unit."""
        leader = self.leader_mirror()
        if leader is None:
            return None
        arches = settings.arch_list
        if leader.revision in (
            mirror_revision(entries, settings.agent_os, arches),
            mirror_revision((), settings.agent_os, arches),  # nothing: never copied (data loss)
        ):
            return None
        return JobSpec(
            root=str(root),
            stream_url=leader.url,
            stream=settings.stream,
            os_name=settings.agent_os,
            architectures=settings.arch_list,
            follow=True,
            internal=True,
        )

    def _shut_down(self, *, stop_nginx: bool) -> None:
        nginx = self._nginx()
        try:
            self._job().remove()
            if stop_nginx:
                nginx.stop()
            else:
                nginx.stop_serving()
        except UpgraderError as exc:
            logger.error("cannot stop serving cleanly: %s", exc)
        self._charm.unit.set_ports()
        self._stored.serving_port = 0
        for relation in self.model.relations[WEBSITE]:
            for key in ("hostname", "port"):
                relation.data[self._charm.unit].pop(key, None)
        peers = self.model.get_relation(PEERS)
        if peers is not None and self._charm.unit.is_leader():
            for key in LeaderMirror("", "").as_dict():
                peers.data[self._charm.app].pop(key, None)

    # --- update checks -----------------------------------------------------------------------

    def note_stream(self, contents: StreamContents, settings: Settings) -> None:
        """Remember the newest upgrade target each time the charm reads the stream.

        The charm reads the stream on config-changed and actions, and on update-status only
        when one conditional request says the index changed; this keeps the target current
        for the status line and auto-sync at no extra cost.
        """
        request = PlanRequest(
            agent=parse_lenient(str(self.model.juju_version)),
            policy=settings.policy,
            os_name=settings.agent_os,
            architectures=settings.arch_list,
        )
        try:
            selection = make_plan(contents, request)
        except UpgraderError as exc:
            logger.info(
                "no upgrade target in %s: %s", redact_url(contents.base_url), redact_text(str(exc))
            )
            self._stored.latest_target = ""
            return
        upgrade = selection.outcome is Outcome.UPGRADE
        self._stored.latest_target = str(selection.target) if upgrade else ""

    # --- what the charm shows ----------------------------------------------------------------

    def status(self) -> ops.StatusBase | None:
        """The unit status while serving; None when no storage is attached (nothing served)."""
        if self._stored.serving_error:
            return ops.BlockedStatus(str(self._stored.serving_error))
        root = self.storage_root()
        port = int(self._stored.serving_port)
        if root is None or not port:
            return None
        try:
            settings = self._charm.load_config(Settings)
        except ValueError:
            return None  # the charm reports the config error
        address = self.address()
        entries = self._staged(root, settings)
        parts = [
            serving_message(
                entries, settings.agent_os, settings.arch_list, agent_metadata_url(address, port)
            )
        ]
        parts += self._update_notes(settings, entries)
        job = current_status(root)
        if job is not None and (job.state in (RUNNING, FAILED)):
            parts.append(job.describe())
        if self._stored.job_error:
            parts.append(str(self._stored.job_error))
        return ops.ActiveStatus("; ".join(parts))

    def _update_notes(self, settings: Settings, entries: tuple[AgentEntry, ...]) -> list[str]:
        target = self._stored.latest_target
        if not target:
            return []
        version = parse(target)
        if is_staged(entries, version, settings.agent_os, settings.arch_list):
            return []
        newest = newest_staged(entries, settings.agent_os)
        if newest is not None and newest > version:
            return []
        return [f"upgrade target {target} is not staged"]

    def mirror_state(
        self, selection: Selection, settings: Settings, *, exact: bool
    ) -> MirrorState | None:
        """What plan-upgrade says about the mirror, or None when the unit serves nothing.

        Args:
            selection: the plan.
            settings: the charm config.
            exact: the plan used explicit parameters, so the sync command names the series
                (``sync-binaries`` alone stages the default plan's target).
        """
        root = self.storage_root()
        address = self.address()
        port = int(self._stored.serving_port)
        if root is None or not port or selection.outcome is not Outcome.UPGRADE:
            return None
        entries = self._staged(root, settings)
        staged = is_staged(entries, selection.target, settings.agent_os, settings.arch_list)
        leader = None if self._charm.unit.is_leader() else self.leader_mirror()
        unit = leader.unit if leader is not None and leader.unit else self._charm.unit.name
        command = f"juju run {unit} sync-binaries"
        if exact:
            command += f" version={selection.target.major}.{selection.target.minor}"
        return MirrorState(agent_metadata_url(address, port), staged, command)

    # --- helpers -----------------------------------------------------------------------------

    def storage_root(self) -> Path | None:
        """The attached storage's mount point, if any."""
        storages = self.model.storages[STORAGE]
        return Path(storages[0].location) if storages else None

    def address(self) -> str:
        """This unit's address as the controller and other units reach it.

        The ingress address of the default (``juju-info``) binding, or this machine's FQDN
        when Juju gives none.
        """
        try:
            binding = self.model.get_binding("juju-info")
            address = binding.network.ingress_address if binding is not None else None
        except ops.ModelError as exc:
            logger.warning("cannot read this unit's address: %s", exc)
            address = None
        return str(address) if address else socket.getfqdn()

    def leader_mirror(self) -> LeaderMirror | None:
        """What the leader serves, from the peer application data."""
        peers = self.model.get_relation(PEERS)
        if peers is None:
            return None
        return LeaderMirror.from_dict(peers.data[self._charm.app])

    def _staged(self, root: Path, settings: Settings) -> tuple[AgentEntry, ...]:
        try:
            return Mirror(root).staged(settings.stream)
        except MirrorError as exc:
            logger.warning("cannot read the staged mirror: %s", exc)
            return ()

    def _slug(self) -> str:
        return self._charm.unit.name.replace("/", "-")

    def _nginx(self) -> NginxService:
        return NginxService(Layout(site_name=self._slug()))

    def _job(self) -> JobService:
        return JobService(f"{self._slug()}-sync.service")


def _readable_by_nginx(root: Path) -> None:
    """Let nginx's unprivileged workers (www-data) reach ``<root>/tools`` and read it.

    The storage mount point may be created private; the served tree must be world-readable.
    """
    mode = root.stat().st_mode & 0o777
    if mode & 0o005 != 0o005:
        root.chmod(mode | 0o005)
    (root / TOOLS_DIR).mkdir(mode=0o755, exist_ok=True)
