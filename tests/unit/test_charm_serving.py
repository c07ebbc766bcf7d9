"""Serving the mirror, driven by Scenario: nginx, the port, storage, peers, http, update checks.

nginx (apt, systemd) and the background job's systemd unit are replaced by the recording
stand-ins of tests/support/services.py (conftest does it for every test); everything else is
real: the storage directory, the staged mirror, the stream served from 127.0.0.1, job files.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest
import yaml
from ops import testing

from support import services
from support.servers import serve_directory
from support.services import CALLS, FakeJobService, FakeNginx
from support.streams import Agent, write_stream
from upgrader import syncjob
from upgrader.bundle import make_bundle
from upgrader.mirror import Mirror
from upgrader.syncjob import JobSpec, JobStatus

UPSTREAM = [
    Agent("3.6.13", "amd64"),
    Agent("3.6.13", "arm64"),
    Agent("3.6.12", "amd64"),
    Agent("3.6.12", "arm64"),
]
STAGED = [Agent("3.6.12", "amd64"), Agent("3.6.12", "arm64"), Agent("3.6.9", "amd64")]
JOB = "upgrader-0-sync.service"
DEFAULT_URL = "http://192.0.2.0:8080/tools"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    write_stream(tmp_path / "upstream", UPSTREAM)
    with serve_directory(tmp_path / "upstream") as url:
        yield url


def after_release(ctx, base, tmp_path: Path, **config: object) -> testing.State:
    """config-changed reads the stream while it offers only 3.6.12; then 3.6.13 is published
    and update-status runs (its conditional request sees the index change)."""
    write_stream(tmp_path / "upstream", UPSTREAM[2:])
    state = ctx.run(ctx.on.config_changed(), base(config=config))
    assert "not staged" not in state.unit_status.message
    write_stream(tmp_path / "upstream", UPSTREAM)
    index = tmp_path / "upstream/streams/v1/index2.json"  # publishers restamp the index
    index.write_text(index.read_text().replace("12:00:00", "13:00:00"))
    later = index.stat().st_mtime + 60  # Last-Modified has one-second steps
    os.utime(index, (later, later))
    CALLS.clear()
    return ctx.run(ctx.on.update_status(), base(config=config, stored_states=state.stored_states))


@pytest.fixture
def store() -> testing.Storage:
    return testing.Storage("binaries")


@pytest.fixture
def root(ctx, store: testing.Storage) -> Path:
    return store.get_filesystem(ctx)


@pytest.fixture
def empty_resource(tmp_path: Path) -> testing.Resource:
    """Juju's placeholder for an unattached file resource: an empty file."""
    path = tmp_path / "agents.tar.gz"
    path.write_bytes(b"")
    return testing.Resource(name="agent-binaries", path=path)


@pytest.fixture
def base(upstream: str, store: testing.Storage, empty_resource: testing.Resource):
    """A state builder: the storage attached, the test stream configured, leader by default."""

    def build(**changes: object) -> testing.State:
        config = {
            "stream-url": upstream,
            "verify-signatures": False,
            "architectures": "amd64 arm64",
            **changes.pop("config", {}),  # type: ignore[dict-item]
        }
        fields: dict = {
            "config": config,
            "storages": {store},
            "resources": {empty_resource},
            "leader": True,
        }
        fields.update(changes)
        return testing.State(**fields)

    return build


def stage(root: Path, agents: list[Agent] = STAGED) -> None:
    """A staged mirror in the layout the sync engine writes (expanded, paths under tools/)."""
    write_stream(root / "tools", agents)


def served(calls: list = CALLS) -> list:
    return [arg for service, method, arg in calls if (service, method) == ("nginx", "serve")]


def calls_of(service: str) -> list[tuple[str, object]]:
    return [(method, arg) for s, method, arg in CALLS if s == service]


# --- install, storage, port ------------------------------------------------------------------


def test_install_installs_nginx_from_the_archive(ctx, base) -> None:
    FakeNginx.installed_now = False
    ctx.run(ctx.on.install(), base())
    assert ("install", None) in calls_of("nginx")


def test_nginx_install_failure_blocks_with_the_reason(ctx, base) -> None:
    FakeNginx.installed_now = False
    FakeNginx.fail_with = "cannot install nginx from the archive: E: Unable to locate package"
    out = ctx.run(ctx.on.install(), base())
    assert out.unit_status == ops.BlockedStatus(
        "cannot serve the mirror: cannot install nginx from the archive: "
        "E: Unable to locate package"
    )
    assert not served()


def test_storage_attached_serves_tools_and_opens_the_port(ctx, base, store, root) -> None:
    root.chmod(0o700)  # a private mount point: nginx's www-data workers could not reach tools/
    out = ctx.run(ctx.on.storage_attached(store), base())
    assert oct(root.stat().st_mode & 0o777) == "0o705"
    [site] = served()
    assert site.root == root
    assert site.port == 8080
    assert site.access_log == Path("/var/log/nginx/upgrader-0-access.log")
    assert (root / "tools").is_dir()
    assert oct((root / "tools").stat().st_mode & 0o777) == "0o755"
    assert out.opened_ports == {testing.TCPPort(8080)}
    assert out.unit_status == ops.ActiveStatus(
        f"serving no agents yet (run sync-binaries); agent-metadata-url={DEFAULT_URL}"
    )
    assert 'root "' + str(root) + '";' in FakeNginx.rendered


def test_status_shows_what_is_served_and_the_url(ctx, base, root) -> None:
    stage(root)
    out = ctx.run(ctx.on.config_changed(), base(networks={network("mirror", "10.1.2.3")}))
    assert out.unit_status == ops.ActiveStatus(
        "serving 3.6.12 (2 arches) and 1 older version; "
        "agent-metadata-url=http://10.1.2.3:8080/tools; upgrade target 3.6.13 is not staged "
        "(unverified source)"
    )


def network(binding: str, address: str) -> testing.Network:
    return testing.Network(
        binding, [testing.BindAddress([testing.Address(address)])], ingress_addresses=[address]
    )


def test_the_mirror_binding_gives_the_address_everything_names(ctx, base, store, root) -> None:
    """`juju deploy --bind mirror=<space>`: the served URL, status, relations and plan use it."""
    peers = testing.PeerRelation("upgrader-peers", peers_data={1: {}})
    website = testing.Relation("website", remote_app_name="haproxy")
    networks = {network("mirror", "10.9.8.7"), network("juju-info", "10.1.2.3")}
    url = "http://10.9.8.7:8080/tools"
    state = ctx.run(
        ctx.on.storage_attached(store), base(relations={peers, website}, networks=networks)
    )
    assert f"agent-metadata-url={url}" in state.unit_status.message
    assert state.get_relation(peers.id).local_app_data["mirror-url"] == url
    assert state.get_relation(website.id).local_unit_data["hostname"] == "10.9.8.7"
    ctx.run(ctx.on.action("plan-upgrade"), state)
    assert f"agent-metadata-url={url}" in (ctx.action_results or {})["next-steps"]
    ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6", "dry-run": True}), state)
    assert (ctx.action_results or {})["agent-metadata-url"] == url


def test_port_change_rerenders_and_opens_the_new_port(ctx, base, store) -> None:
    state = ctx.run(ctx.on.storage_attached(store), base())
    state = ctx.run(
        ctx.on.config_changed(),
        base(
            config={"port": 9090},
            stored_states=state.stored_states,
            opened_ports=state.opened_ports,
        ),
    )
    first, second = served()
    assert (first.port, second.port) == (8080, 9090)
    assert "listen 9090;" in FakeNginx.rendered
    assert state.opened_ports == {testing.TCPPort(9090)}
    assert "agent-metadata-url=http://192.0.2.0:9090/tools" in state.unit_status.message


def test_invalid_port_blocks_and_serves_nothing(ctx, base) -> None:
    out = ctx.run(ctx.on.config_changed(), base(config={"port": 0}))
    assert out.unit_status == ops.BlockedStatus(
        "invalid config: invalid port 0: use a TCP port from 1 to 65535"
    )
    assert not served()
    assert out.opened_ports == frozenset()


def test_nginx_refusing_the_site_blocks_with_nginx_s_reason(ctx, base, store) -> None:
    FakeNginx.fail_with = "nginx refused the configuration: bind() to 0.0.0.0:80 failed"
    out = ctx.run(ctx.on.storage_attached(store), base(config={"port": 80}))
    assert out.unit_status == ops.BlockedStatus(
        "cannot serve the mirror: nginx refused the configuration: bind() to 0.0.0.0:80 failed"
    )
    assert out.opened_ports == frozenset()


def test_without_storage_nothing_is_served(ctx, upstream, empty_resource) -> None:
    state = testing.State(
        config={"stream-url": upstream, "verify-signatures": False}, resources={empty_resource}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert not served()
    assert out.opened_ports == frozenset()


def test_storage_detaching_stops_serving_cleanly(ctx, base, store, root) -> None:
    stage(root)
    website = testing.Relation("website", remote_app_name="haproxy")
    peers = testing.PeerRelation("upgrader-peers")
    state = ctx.run(ctx.on.storage_attached(store), base(relations={website, peers}))
    assert state.get_relation(website.id).local_unit_data["port"] == "8080"
    FakeJobService.units[JOB] = "[Service]\n"

    out = ctx.run(ctx.on.storage_detaching(store), state)
    assert calls_of("nginx")[-1] == ("stop_serving", None)
    assert ("remove", JOB) in calls_of("job")
    assert out.opened_ports == frozenset()
    assert "port" not in out.get_relation(website.id).local_unit_data
    assert "hostname" not in out.get_relation(website.id).local_unit_data
    assert "mirror-url" not in out.get_relation(peers.id).local_app_data
    assert Mirror(root).staged("released")  # the mirror itself is left alone


@pytest.mark.parametrize("event", ["stop", "remove"])
def test_stop_and_remove_stop_nginx_and_the_job(ctx, base, store, event: str) -> None:
    state = ctx.run(ctx.on.storage_attached(store), base())
    FakeJobService.units[JOB] = "[Service]\n"
    out = ctx.run(getattr(ctx.on, event)(), state)
    assert calls_of("nginx")[-1] == ("stop", None)
    assert ("remove", JOB) in calls_of("job")
    assert out.opened_ports == frozenset()


def test_upgrade_charm_keeps_the_mirror_and_serves_it(ctx, base, root) -> None:
    stage(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    out = ctx.run(ctx.on.upgrade_charm(), base())
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before
    assert served()[-1].root == root
    assert out.unit_status.message.startswith("serving 3.6.12 (2 arches)")


# --- relations ---------------------------------------------------------------------------------


def test_website_relation_publishes_hostname_and_port(ctx, base) -> None:
    website = testing.Relation("website", remote_app_name="haproxy")
    out = ctx.run(
        ctx.on.relation_joined(website), base(relations={website}, config={"port": 8081})
    )
    assert out.get_relation(website.id).local_unit_data == {
        **out.get_relation(website.id).local_unit_data,
        "hostname": "192.0.2.0",
        "port": "8081",
    }


def test_leader_publishes_its_mirror_to_peers(ctx, base, root) -> None:
    stage(root)
    peers = testing.PeerRelation("upgrader-peers", peers_data={1: {}})
    out = ctx.run(ctx.on.leader_elected(), base(relations={peers}))
    data = out.get_relation(peers.id).local_app_data
    entries = Mirror(root).staged("released")
    assert data == {
        "mirror-url": DEFAULT_URL,
        "mirror-revision": syncjob.mirror_revision(entries, "ubuntu", ("amd64", "arm64")),
        "leader-unit": "upgrader/0",
    }
    assert not FakeJobService.units  # the leader syncs from upstream, not from itself


def leader_data(revision: str = "0123456789abcdef") -> dict[str, str]:
    return {
        "mirror-url": "http://192.0.2.9:8080/tools",
        "mirror-revision": revision,
        "leader-unit": "upgrader/1",
    }


def test_leader_sync_tells_peers_at_once(ctx, base, store, root) -> None:
    peers = testing.PeerRelation("upgrader-peers", peers_data={1: {}})
    state = ctx.run(ctx.on.storage_attached(store), base(relations={peers}))
    before = state.get_relation(peers.id).local_app_data["mirror-revision"]
    out = ctx.run(ctx.on.action("sync-binaries", params={"version": "3.6"}), state)
    after = out.get_relation(peers.id).local_app_data["mirror-revision"]
    entries = Mirror(root).staged("released")
    assert len(entries) == 4
    assert after != before
    assert after == syncjob.mirror_revision(entries, "ubuntu", ("amd64", "arm64"))


@pytest.mark.parametrize(
    ("action", "params"), [("sync-binaries", {"version": "3.6"}), ("prune-binaries", {"keep": 1})]
)
def test_follower_refuses_to_stage_or_prune(ctx, base, root, action: str, params: dict) -> None:
    stage(root)
    before = Mirror(root).staged("released")
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action(action, params=params), base(relations={peers}, leader=False))
    assert failure.value.message == (
        "upgrader/0 copies the leader's mirror (http://192.0.2.9:8080/tools); "
        f"run {action} on upgrader/1, the other units follow"
    )
    assert Mirror(root).staged("released") == before


def test_follower_refuses_to_import(ctx, base, root, tmp_path: Path) -> None:
    """The leader imports the agent-binaries resource; the other units copy its mirror."""
    stage(root)
    before = Mirror(root).staged("released")
    write_stream(tmp_path / "bundle" / "tools", [Agent("3.6.13", "amd64")])
    archive = make_bundle(tmp_path / "bundle", tmp_path / "agents.tar.gz").output
    resource = testing.Resource(name="agent-binaries", path=archive)
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(
            ctx.on.action("import-binaries"),
            base(relations={peers}, leader=False, resources={resource}),
        )
    assert failure.value.message == (
        "upgrader/0 copies the leader's mirror (http://192.0.2.9:8080/tools); "
        "run import-binaries on upgrader/1, the other units follow"
    )
    assert Mirror(root).staged("released") == before
    ctx.run(ctx.on.action("import-binaries"), base(relations={peers}, resources={resource}))
    assert "3.6.13-ubuntu-amd64" in (ctx.action_results or {})["imported"]


def test_follower_may_dry_run(ctx, base) -> None:
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    ctx.run(
        ctx.on.action("sync-binaries", params={"version": "3.6", "dry-run": True}),
        base(relations={peers}, leader=False),
    )
    assert (ctx.action_results or {})["dry-run"] == "true"


def test_plan_upgrade_on_a_follower_names_the_leader(ctx, base, store) -> None:
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    state = ctx.run(ctx.on.storage_attached(store), base(relations={peers}, leader=False))
    ctx.run(ctx.on.action("plan-upgrade"), state)
    assert (ctx.action_results or {})["next-steps"].splitlines()[0] == (
        "juju run upgrader/1 sync-binaries"
    )


def test_follower_copies_the_leader_in_the_background(ctx, base, root) -> None:
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    out = ctx.run(
        ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False)
    )
    assert calls_of("job") == [("install", JOB), ("start", JOB)]
    unit = FakeJobService.units[JOB]
    assert f"\nExecStart={sys.executable} -m upgrader.syncjob {root}/.upgrader-job.json\n" in unit
    assert "/lib:" in unit.split("Environment=PYTHONPATH=")[1].splitlines()[0]
    spec = JobSpec.from_json((root / syncjob.JOB_FILE).read_text())
    assert spec.stream_url == "http://192.0.2.9:8080/tools"
    assert (spec.follow, spec.internal, spec.versions) == (True, True, ())
    assert spec.architectures == ("amd64", "arm64")
    assert "mirror-url" in out.get_relation(peers.id).local_app_data  # untouched


def test_follower_already_in_step_starts_nothing(ctx, base, root) -> None:
    stage(root)
    revision = syncjob.mirror_revision(
        Mirror(root).staged("released"), "ubuntu", ("amd64", "arm64")
    )
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(revision), peers_data={1: {}}
    )
    ctx.run(ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False))
    assert calls_of("job") == []


def test_follower_does_not_copy_a_leader_that_serves_nothing(ctx, base, root) -> None:
    """A unit with new storage elected leader serves nothing yet: followers keep their mirror."""
    stage(root)
    before = Mirror(root).staged("released")
    empty = syncjob.mirror_revision([], "ubuntu", ("amd64", "arm64"))
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(empty), peers_data={1: {}}
    )
    ctx.run(ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False))
    assert calls_of("job") == []
    assert not (root / syncjob.JOB_FILE).exists()
    assert Mirror(root).staged("released") == before


def test_follower_lets_a_running_job_finish(ctx, base, root) -> None:
    FakeJobService.running_now.add(JOB)
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    ctx.run(ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False))
    assert calls_of("job") == []
    assert not (root / syncjob.JOB_FILE).exists()


def test_follower_without_leader_data_waits(ctx, base) -> None:
    peers = testing.PeerRelation("upgrader-peers", peers_data={1: {}})
    ctx.run(ctx.on.relation_joined(peers, remote_unit=1), base(relations={peers}, leader=False))
    assert calls_of("job") == []


def test_job_start_failure_is_shown(ctx, base) -> None:
    FakeJobService.fail_with = "systemctl failed for upgrader-0-sync.service: Unit not found"
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    out = ctx.run(
        ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False)
    )
    assert out.unit_status.message.endswith(
        "cannot start the background sync: systemctl failed for upgrader-0-sync.service: "
        "Unit not found"
    )


def test_job_start_failure_is_cleared_once_nothing_is_due(ctx, base, root) -> None:
    FakeJobService.fail_with = "systemctl failed for upgrader-0-sync.service: Unit not found"
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    state = ctx.run(
        ctx.on.relation_changed(peers, remote_unit=1), base(relations={peers}, leader=False)
    )
    assert "cannot start the background sync" in state.unit_status.message
    FakeJobService.fail_with = ""
    stage(root)  # the unit now serves what the leader serves: no job is due
    revision = syncjob.mirror_revision(
        Mirror(root).staged("released"), "ubuntu", ("amd64", "arm64")
    )
    peers = testing.PeerRelation(
        "upgrader-peers", id=peers.id, local_app_data=leader_data(revision), peers_data={1: {}}
    )
    out = ctx.run(
        ctx.on.update_status(),
        base(relations={peers}, leader=False, stored_states=state.stored_states),
    )
    assert "cannot start the background sync" not in out.unit_status.message
    assert out.unit_status.message.startswith("serving 3.6.12 (2 arches)")


# --- update checks and auto-sync ---------------------------------------------------------------


def test_update_status_says_a_newer_target_is_not_staged(ctx, base, root, tmp_path) -> None:
    stage(root)
    out = after_release(ctx, base, tmp_path)
    assert out.unit_status == ops.ActiveStatus(
        f"serving 3.6.12 (2 arches) and 1 older version; agent-metadata-url={DEFAULT_URL}; "
        "upgrade target 3.6.13 is not staged (unverified source)"
    )
    assert calls_of("job") == []  # auto-sync is off
    again = ctx.run(ctx.on.update_status(), base(stored_states=out.stored_states))
    assert again.unit_status == out.unit_status  # unchanged index (304): target remembered


def test_update_status_with_the_target_staged_says_nothing_more(ctx, base, root) -> None:
    stage(root, UPSTREAM)
    out = ctx.run(ctx.on.update_status(), base())
    assert "not staged" not in out.unit_status.message


def test_auto_sync_stages_the_new_target_in_the_background(ctx, base, root, tmp_path) -> None:
    stage(root)
    after_release(ctx, base, tmp_path, **{"auto-sync": True})
    assert calls_of("job") == [("install", JOB), ("start", JOB)]
    spec = JobSpec.from_json((root / syncjob.JOB_FILE).read_text())
    assert spec.versions == ("3.6.13",)
    assert (spec.follow, spec.internal, spec.verify_signatures) == (False, False, False)
    assert oct((root / syncjob.JOB_FILE).stat().st_mode & 0o777) == "0o600"
    assert "Type=exec" in FakeJobService.units[JOB]


def test_auto_sync_passes_the_proxy_to_the_job(ctx, base, root, monkeypatch) -> None:
    monkeypatch.setenv("JUJU_CHARM_HTTPS_PROXY", "http://squid.internal:3128")
    stage(root)
    ctx.run(ctx.on.config_changed(), base(config={"auto-sync": True}))
    spec = JobSpec.from_json((root / syncjob.JOB_FILE).read_text())
    assert spec.fetch_settings().https_proxy == "http://squid.internal:3128"


def test_background_jobs_honour_parallel_downloads(ctx, base, root) -> None:
    """parallel-downloads=1 (a metered link) applies to auto-sync and follower copies too."""
    stage(root)
    ctx.run(ctx.on.config_changed(), base(config={"auto-sync": True, "parallel-downloads": 1}))
    assert JobSpec.from_json((root / syncjob.JOB_FILE).read_text()).parallel == 1
    FakeJobService.running_now.clear()  # that job finished
    peers = testing.PeerRelation(
        "upgrader-peers", local_app_data=leader_data(), peers_data={1: {}}
    )
    ctx.run(
        ctx.on.relation_changed(peers, remote_unit=1),
        base(relations={peers}, leader=False, config={"parallel-downloads": 2}),
    )
    spec = JobSpec.from_json((root / syncjob.JOB_FILE).read_text())
    assert (spec.follow, spec.parallel) == (True, 2)


def test_auto_sync_with_the_target_staged_starts_nothing(ctx, base, root) -> None:
    stage(root, UPSTREAM)
    ctx.run(ctx.on.update_status(), base(config={"auto-sync": True}))
    assert calls_of("job") == []


def test_auto_sync_off_removes_the_job(ctx, base, root) -> None:
    FakeJobService.units[JOB] = "[Service]\n"
    ctx.run(ctx.on.config_changed(), base(config={"auto-sync": False}))
    assert calls_of("job") == [("remove", JOB)]
    assert JOB not in FakeJobService.units


def write_status(root: Path, status: JobStatus) -> None:
    (root / syncjob.STATUS_FILE).write_text(json.dumps(status.__dict__))


def test_status_shows_the_job_progress(ctx, base, root) -> None:
    stage(root)
    write_status(
        root,
        JobStatus(
            "running",
            "3.6.13",
            "u",
            "t",
            done_bytes=45 * 2**20,
            total_bytes=100 * 2**20,
            pid=os.getpid(),
        ),
    )
    FakeJobService.running_now.add(JOB)
    out = ctx.run(ctx.on.config_changed(), base(config={"auto-sync": True}))
    assert out.unit_status.message.endswith(
        "upgrade target 3.6.13 is not staged; syncing 3.6.13: 45% (45.0 MiB of 100.0 MiB) "
        "(unverified source)"
    )
    assert calls_of("job") == []  # already running


def test_status_shows_a_failed_job(ctx, base, root) -> None:
    write_status(root, JobStatus("failed", "3.6.13", "u", "t", message="disk full"))
    out = ctx.run(ctx.on.config_changed(), base())
    assert "sync of 3.6.13 failed: disk full" in out.unit_status.message


def test_a_finished_job_is_not_shown(ctx, base, root) -> None:
    write_status(root, JobStatus("done", "3.6.13", "u", "t", message="staged 3.6.13"))
    out = ctx.run(ctx.on.config_changed(), base())
    assert "3.6.13" not in out.unit_status.message.split("agent-metadata-url")[0]
    assert "synced" not in out.unit_status.message


# --- plan-upgrade ------------------------------------------------------------------------------


def test_plan_upgrade_gives_the_complete_sequence(ctx, base, store, root) -> None:
    stage(root)
    state = ctx.run(ctx.on.storage_attached(store), base())
    ctx.run(ctx.on.action("plan-upgrade"), state)
    results = ctx.action_results or {}
    assert results["staged"] == "false"
    assert results["next-steps"].splitlines()[:5] == [
        "juju run upgrader/0 sync-binaries",
        f"juju model-config -m controller agent-metadata-url={DEFAULT_URL}",
        f"juju model-defaults agent-metadata-url={DEFAULT_URL}",
        "juju upgrade-controller --agent-version 3.6.13 --dry-run",
        "juju upgrade-controller --agent-version 3.6.13",
    ]


def test_plan_upgrade_with_parameters_names_the_series(ctx, base, store, root) -> None:
    """Parameters that change what the route stages (3.6.12, not the default 3.6.13)."""
    state = ctx.run(ctx.on.storage_attached(store), base())
    ctx.run(ctx.on.action("plan-upgrade", params={"target-version": "3.6.12"}), state)
    line = (ctx.action_results or {})["next-steps"].splitlines()[0]
    assert line == "juju run upgrader/0 sync-binaries --string-args version=3.6"
    assert _juju_run_params(line) == {"version": "3.6"}


_SCHEMA_TYPES = {"string": str, "boolean": bool, "integer": int}


def _juju_run_params(line: str) -> dict[str, object]:
    """The params ``juju run`` sends for a printed command line, checked against actions.yaml.

    As cmd/juju/action/run.go: each ``key=value`` is read as YAML unless ``--string-args``
    is given; the controller then validates the params against the action's schema.
    """
    words = shlex.split(line)
    action = words[3]
    raw = "--string-args" in words
    params = {}
    for word in words[4:]:
        if "=" in word:
            key, _, value = word.partition("=")
            params[key] = value if raw else yaml.safe_load(value)
    actions = Path(__file__).resolve().parents[2] / "actions.yaml"
    schema = yaml.safe_load(actions.read_text())[action]["params"]
    for key, value in params.items():
        wanted = _SCHEMA_TYPES[schema[key]["type"]]
        assert type(value) is wanted, f"{key}={value!r} is not of type {schema[key]['type']}"
    return params


def test_plan_upgrade_with_the_target_staged(ctx, base, store, root) -> None:
    stage(root, UPSTREAM)
    state = ctx.run(ctx.on.storage_attached(store), base())
    ctx.run(ctx.on.action("plan-upgrade"), state)
    results = ctx.action_results or {}
    assert results["staged"] == "true"
    assert results["next-steps"].splitlines()[0].startswith("juju model-config -m controller")


def test_plan_upgrade_without_storage_keeps_the_short_form(ctx, upstream, empty_resource) -> None:
    state = testing.State(
        config={"stream-url": upstream, "verify-signatures": False}, resources={empty_resource}
    )
    ctx.run(ctx.on.action("plan-upgrade"), state)
    results = ctx.action_results or {}
    assert "staged" not in results
    assert results["next-steps"].splitlines()[:2] == [
        "juju upgrade-controller --agent-version 3.6.13 --dry-run",
        "juju upgrade-controller --agent-version 3.6.13",
    ]


def test_services_are_fakes_here() -> None:
    """Guard: the conftest replaces the OS services, so no test touches /etc or systemd."""
    import charm

    assert charm.NginxService is services.FakeNginx
    assert charm.JobService is services.FakeJobService
