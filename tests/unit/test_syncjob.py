"""The background sync job: job files, status files, real syncs, following a leader over nginx."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from charmlibs import systemd

from support.faulty_server import Fault, FaultyServer
from support.nginx import REASON, free_port, make_layout, run_nginx, skip_without_nginx
from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader import nginx, syncjob
from upgrader.config import CharmConfig
from upgrader.errors import InvalidInputError
from upgrader.mirror import Mirror, MirrorError
from upgrader.streams import AgentEntry
from upgrader.syncjob import JobService, JobSpec, JobStatus
from upgrader.versions import parse_binary

LIB = Path(syncjob.__file__).parents[1]
AGENTS = [
    Agent("3.6.13", "amd64"),
    Agent("3.6.13", "arm64"),
    Agent("3.6.12", "amd64"),
    Agent("3.6.12", "arm64"),
    Agent("3.5.7", "amd64"),
]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    write_stream(tmp_path / "upstream", AGENTS)
    with serve_directory(tmp_path / "upstream") as url:
        yield url


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory nginx's unprivileged workers can read (pytest's tmp dir is private)."""
    root = Path(tempfile.mkdtemp(prefix="upgrader-job-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def spec_for(path: Path, url: str, **changes: object) -> JobSpec:
    fields: dict = {
        "root": str(path),
        "stream_url": url,
        "stream": "released",
        "os_name": "ubuntu",
        "architectures": ("amd64", "arm64"),
        "versions": ("3.6.13",),
        "verify_signatures": False,  # the test upstream is unsigned
    }
    fields.update(changes)
    return JobSpec(**fields)


# --- job files ---------------------------------------------------------------------------------


def test_job_file_round_trip_and_mode(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "https://streams.example/tools", fetch={"http_proxy": "squid:3128"})
    path = syncjob.write_spec(tmp_path, spec)
    assert path == tmp_path / syncjob.JOB_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert JobSpec.from_json(path.read_text()) == spec
    assert spec.fetch_settings().http_proxy == "http://squid:3128"


def test_job_file_write_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    """The job runs as root: a link at its temporary name must not redirect the write."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    root = tmp_path / "storage"
    root.mkdir()
    (root / f".{syncjob.JOB_FILE}.{os.getpid()}.tmp").symlink_to(victim)
    spec = spec_for(root, "https://streams.example/tools")
    path = syncjob.write_spec(root, spec)
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert JobSpec.from_json(path.read_text()) == spec


def test_status_file_is_private(tmp_path: Path) -> None:
    """The status names the source URL, which may carry credentials (https://user:token@...);
    they are hidden in it too (see test_status_file_and_journal_hide_the_source_credentials)."""
    url = f"http://user:token@127.0.0.1:{free_port()}/tools"
    status = syncjob.run(spec_for(tmp_path, url, fetch={"retries": 1}))
    assert status.state == "failed"
    path = tmp_path / syncjob.STATUS_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    written = syncjob.read_status(tmp_path)
    assert written is not None
    assert (written.state, written.pid) == (status.state, status.pid)
    assert written.source == url.replace("user:token@", "user:***@")
    assert "token" not in path.read_text()


def test_unwritable_job_file_is_a_mirror_error(tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "missing", "https://streams.example/tools")
    with pytest.raises(MirrorError, match="cannot write the sync job .*missing/.upgrader-job"):
        syncjob.write_spec(tmp_path / "missing", spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "job.json is not valid JSON"),
        ("[]", "job.json is not a sync job: use an object with keys architectures, "),
        ('{"root": "/srv", "colour": "red"}', "is not a sync job"),
        ('{"stream_url": "http://x"}', "is not a sync job"),
        ('{"root": "/srv"}', "job.json: JobSpec.__init__"),
    ],
)
def test_malformed_job_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        JobSpec.from_json(text, where="job.json")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"root": "relative"}, "invalid root 'relative'"),
        ({"stream_url": "ftp://x"}, "invalid stream-url"),
        ({"stream": "Bad Stream"}, "invalid stream"),
        ({"architectures": ()}, "invalid architectures"),
        ({"versions": ("3.6",)}, "3.6"),
        ({"versions": ()}, "give the versions to stage, or follow=true"),
        ({"follow": True}, "give the versions to stage, or follow=true"),
        ({"parallel": 99}, "invalid parallel 99"),
        ({"fetch": {"colour": 1}}, "invalid fetch setting 'colour'"),
        ({"fetch": {"retries": 0}}, "retries counts attempts"),
        # a job file of the wrong types fails with a message, not a traceback or a truthy string
        ({"root": "/srv/\x00x"}, r"invalid root '/srv/\\x00x': use an absolute path"),
        ({"internal": "false"}, "invalid internal 'false': use true or false"),
        ({"verify_signatures": "no"}, "invalid verify_signatures 'no': use true or false"),
        ({"follow": "yes", "versions": ()}, "invalid follow 'yes': use true or false"),
        ({"signing_keys": 1}, "invalid signing_keys 1: use the armoured keys as text"),
    ],
)
def test_bad_job_fields_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        spec_for(Path("/srv"), "http://127.0.0.1:1/tools", **changes)


def test_job_file_lists_must_be_lists() -> None:
    doc = json.loads(spec_for(Path("/srv"), "http://127.0.0.1:1/tools").to_json())
    doc["versions"] = "3.6.13"
    with pytest.raises(InvalidInputError, match="job file: versions must be a list of strings"):
        JobSpec.from_json(json.dumps(doc))


# --- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (JobStatus("running", "3.6.13", "u", "t"), "syncing 3.6.13"),
        (
            JobStatus(
                "running", "3.6.13", "u", "t", done_bytes=45 * 2**20, total_bytes=100 * 2**20
            ),
            "syncing 3.6.13: 45% (45.0 MiB of 100.0 MiB)",
        ),
        (JobStatus("done", "3.6.13", "u", "t", message="staged x"), "synced 3.6.13"),
        (JobStatus("failed", "3.6.13", "u", "t", message="boom"), "sync of 3.6.13 failed: boom"),
    ],
)
def test_status_lines(status: JobStatus, text: str) -> None:
    assert status.describe() == text


@pytest.mark.parametrize("content", ["", "{", "[1]", '{"state": "running"}', '{"x": 1}'])
def test_unreadable_status_file_reads_as_none(tmp_path: Path, content: str) -> None:
    (tmp_path / syncjob.STATUS_FILE).write_text(content)
    assert syncjob.read_status(tmp_path) is None


DEEP = 100_000


def test_status_file_nested_100000_deep_reads_as_none(tmp_path: Path) -> None:
    """The charm reads the status in every hook, where a RecursionError must never escape."""
    (tmp_path / syncjob.STATUS_FILE).write_text('{"a":' * DEEP + "1" + "}" * DEEP)
    assert syncjob.read_status(tmp_path) is None


def test_status_file_over_1_mib_reads_as_none_unread(tmp_path: Path) -> None:
    status = JobStatus("failed", "3.6.13", "u", "t", message="x" * (1024 * 1024))
    (tmp_path / syncjob.STATUS_FILE).write_text(json.dumps(status.__dict__))
    assert syncjob.read_status(tmp_path) is None
    shorter = JobStatus("failed", "3.6.13", "u", "t", message="x" * (1024 * 1024 - 200))
    (tmp_path / syncjob.STATUS_FILE).write_text(json.dumps(shorter.__dict__))
    assert syncjob.read_status(tmp_path) == shorter


def test_job_file_nested_100000_deep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    with pytest.raises(InvalidInputError) as caught:
        JobSpec.from_json(path.read_text(), where="job.json")
    assert str(caught.value) == (
        "job.json is malformed JSON: nested more than 64 levels deep (the accepted form is a "
        "JSON document nested at most 64 levels)"
    )
    assert syncjob.main([str(path)]) == 2
    assert "is malformed JSON: nested more than 64 levels deep" in capsys.readouterr().err
    assert not (tmp_path / syncjob.STATUS_FILE).exists()


def test_job_file_over_16_mib_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.json"
    with open(path, "wb") as job:
        job.truncate(16 * 1024 * 1024 + 1)
    assert syncjob.main([str(path)]) == 2
    assert "it holds more than 16777216 bytes" in capsys.readouterr().err
    assert not (tmp_path / syncjob.STATUS_FILE).exists()


STATUS_FIELDS = {"state": "running", "what": "3.6.13", "source": "u", "started": "t", "pid": 1}


@pytest.mark.parametrize(
    "changes",
    [
        {"pid": "12"},
        {"pid": 10**30},
        {"pid": 2**40},
        {"pid": True},
        {"done_bytes": "5", "total_bytes": 10},
        {"total_bytes": 1.5},
        {"done_bytes": -1},
        {"what": 3},
        {"message": None},
        {"state": "paused"},
    ],
)
def test_status_file_with_wrong_types_reads_as_none(tmp_path: Path, changes: dict) -> None:
    """The charm shows this file in every collect-status: a bad one must not raise there."""
    (tmp_path / syncjob.STATUS_FILE).write_text(json.dumps({**STATUS_FIELDS, **changes}))
    assert syncjob.read_status(tmp_path) is None
    assert syncjob.current_status(tmp_path) is None


def test_a_running_job_whose_process_is_gone_shows_as_failed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = int(proc.stdout)
    running = JobStatus("running", "3.6.13", "u", "t", pid=gone)
    (tmp_path / syncjob.STATUS_FILE).write_text(json.dumps(running.__dict__))
    status = syncjob.current_status(tmp_path)
    assert status is not None and status.state == "failed"
    assert status.describe() == (
        "sync of 3.6.13 failed: it stopped before finishing (killed or the machine restarted); "
        "the next run resumes it"
    )
    alive = JobStatus("running", "3.6.13", "u", "t", pid=os.getpid())
    (tmp_path / syncjob.STATUS_FILE).write_text(json.dumps(alive.__dict__))
    assert syncjob.current_status(tmp_path) == alive


def test_no_status_file_reads_as_none(tmp_path: Path) -> None:
    assert syncjob.read_status(tmp_path) is None


# --- running the job ---------------------------------------------------------------------------


def test_job_stages_the_versions_and_reports_done(tmp_path: Path, upstream: str) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    status = syncjob.run(spec_for(root, upstream))
    assert status.state == "done", status.message
    assert status.message == "staged 3.6.13-ubuntu-arm64, 3.6.13-ubuntu-amd64"
    assert status.total_bytes == status.done_bytes > 0
    assert syncjob.read_status(root) == status
    staged = Mirror(root).staged("released")
    assert sorted(str(e.binary) for e in staged) == ["3.6.13-ubuntu-amd64", "3.6.13-ubuntu-arm64"]
    assert Mirror(root).verify() == []

    again = syncjob.run(spec_for(root, upstream))
    assert (again.state, again.message, again.done_bytes) == ("done", "staged nothing new", 0)


def test_job_failure_is_reported_and_leaves_the_mirror(tmp_path: Path, upstream: str) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    syncjob.run(spec_for(root, upstream, versions=("3.6.12",)))
    before = Mirror(root).staged("released")
    status = syncjob.run(spec_for(root, upstream, versions=("3.9.1",)))
    assert status.state == "failed"
    assert "no agent binaries for 3.9.1 in the released stream" in status.message
    assert status.describe().startswith("sync of 3.9.1 failed: no agent binaries")
    assert syncjob.read_status(root) == status
    assert Mirror(root).staged("released") == before


def test_unsigned_upstream_is_refused_unless_allowed(tmp_path: Path, upstream: str) -> None:
    status = syncjob.run(spec_for(tmp_path, upstream, verify_signatures=True))
    assert status.state == "failed"
    assert "no signed agent metadata" in status.message
    assert "verify-signatures=false" in status.message
    assert Mirror(tmp_path).staged("released") == ()


def test_the_leader_mirror_is_read_unsigned(tmp_path: Path, upstream: str) -> None:
    """internal=True: the leader's own (unsigned) mirror, whatever verify-signatures says."""
    spec = spec_for(
        tmp_path, upstream, versions=(), follow=True, internal=True, verify_signatures=True
    )
    status = syncjob.run(spec)
    assert status.state == "done", status.message
    assert len(Mirror(tmp_path).staged("released")) == 5


def test_unreachable_source_is_a_failed_status(tmp_path: Path) -> None:
    spec = spec_for(
        tmp_path,
        f"http://127.0.0.1:{free_port()}/tools",
        fetch={"retries": 1, "connect_timeout": 2.0},
    )
    status = syncjob.run(spec)
    assert status.state == "failed"
    assert f"127.0.0.1:{spec.stream_url.split(':')[2].split('/')[0]}" in status.message


def test_a_hostile_reason_phrase_reaches_the_status_file_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The charm shows the status file's message as the unit status."""
    write_stream(tmp_path / "upstream", AGENTS)
    with FaultyServer(tmp_path / "upstream") as server:
        server.add_fault("index2.json", Fault("status", status=403, reason="x\x1b[2J" * 500))
        path = syncjob.write_spec(tmp_path, spec_for(tmp_path, server.url))
        assert syncjob.main([str(path)]) == 1
    status = syncjob.read_status(tmp_path)
    assert status is not None and status.state == "failed"
    assert "x\\x1b[2J" in status.message and "\x1b" not in status.message
    assert len(status.message) <= 2100
    journal = capsys.readouterr().err
    assert "x\\x1b[2J" in journal and "\x1b" not in journal


def test_job_runs_as_a_process_like_systemd_runs_it(tmp_path: Path, upstream: str) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    path = syncjob.write_spec(root, spec_for(root, upstream))
    env = {**os.environ, "PYTHONPATH": str(LIB)}
    proc = subprocess.run(
        [sys.executable, "-m", "upgrader.syncjob", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "synced 3.6.13" in proc.stderr
    assert syncjob.read_status(root).state == "done"  # type: ignore[union-attr]

    (root / "bad.json").write_text("{")
    bad = subprocess.run(
        [sys.executable, "-m", "upgrader.syncjob", str(root / "bad.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "is not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_main_usage_and_failure_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert syncjob.main([]) == 2
    assert "usage: python -m upgrader.syncjob JOB_FILE" in capsys.readouterr().err
    assert syncjob.main([str(tmp_path / "missing.json")]) == 2
    path = syncjob.write_spec(
        tmp_path, spec_for(tmp_path, f"http://127.0.0.1:{free_port()}/tools", fetch={"retries": 1})
    )
    assert syncjob.main([str(path)]) == 1
    assert "failed" in capsys.readouterr().err


def test_status_file_and_journal_hide_the_source_credentials(
    tmp_path: Path, upstream: str, capsys: pytest.CaptureFixture
) -> None:
    """The unit status shows the status file and the journal keeps the job's stderr; the job
    file keeps the URL whole, since the job sends its credentials."""
    secret = "s3cr3t-T0KEN"  # noqa: S105 - the test value looked for in the output
    url = upstream.replace("http://", f"http://mirror-user:{secret}@")
    path = syncjob.write_spec(tmp_path, spec_for(tmp_path, url, verify_signatures=True))
    assert syncjob.main([str(path)]) == 1
    journal = capsys.readouterr().err
    written = (tmp_path / syncjob.STATUS_FILE).read_text()
    status = syncjob.read_status(tmp_path)
    assert status is not None and status.state == "failed"
    assert status.source == upstream.replace("http://", "http://mirror-user:***@")
    assert f"no signed agent metadata at {status.source}" in status.message
    assert status.source in journal
    assert secret not in written and secret not in journal
    assert JobSpec.from_json(path.read_text()).stream_url == url


# --- several units: a follower copies the leader's mirror served by nginx -------------------


@pytest.mark.needs_system
@pytest.mark.skipif(skip_without_nginx(), reason=REASON)
def test_follower_copies_the_leader_mirror_over_nginx(
    tmp_path: Path, upstream: str, world_readable_dir: Path
) -> None:
    leader_root = world_readable_dir
    leader = spec_for(leader_root, upstream, versions=("3.6.13", "3.6.12"))
    assert syncjob.run(leader).state == "done"
    layout = make_layout(tmp_path / "nginx")
    site = nginx.Site(
        leader_root,
        port=free_port(),
        address="127.0.0.1",
        access_log=tmp_path / "access.log",
        error_log=tmp_path / "error.log",
    )
    nginx.install_site(nginx.render_site(site), layout)
    follower_root = tmp_path / "follower"
    follower_root.mkdir()
    with run_nginx(layout, site.port) as url:
        follow = spec_for(follower_root, f"{url}/tools", versions=(), follow=True, internal=True)
        status = syncjob.run(follow)
        assert status.state == "done", status.message
        assert "3.6.12-ubuntu-arm64" in status.message

        leader_entries = Mirror(leader_root).staged("released")
        follower_entries = Mirror(follower_root).staged("released")
        assert len(follower_entries) == 4
        assert syncjob.mirror_revision(follower_entries, "ubuntu", ("amd64", "arm64")) == (
            syncjob.mirror_revision(leader_entries, "ubuntu", ("amd64", "arm64"))
        )
        assert Mirror(follower_root).verify() == []

        # The leader drops 3.6.12: the follower drops it too, files included.
        Mirror(leader_root).replace(
            "released", [e for e in leader_entries if str(e.version) != "3.6.12"]
        )
        status = syncjob.run(follow)
        assert status.state == "done", status.message
        assert status.message == (
            "staged nothing new; removed 3.6.12-ubuntu-arm64, 3.6.12-ubuntu-amd64"
        )
        assert {str(e.version) for e in Mirror(follower_root).staged("released")} == {"3.6.13"}
        assert not list((follower_root / "tools/released").glob("juju-3.6.12-*"))
        assert Mirror(follower_root).verify() == []


@pytest.mark.parametrize(
    "leader_agents",
    [[], [Agent("3.6.13", "s390x")], [Agent("3.6.13", "amd64", os="centos")]],
    ids=["lists-nothing", "other-arch-only", "other-os-only"],
)
def test_follower_keeps_its_mirror_when_the_leader_lists_no_agents(
    tmp_path: Path, upstream: str, leader_agents: list[Agent]
) -> None:
    """A leader with an empty (new, or briefly unlisted) mirror must not wipe the followers."""
    root = tmp_path / "storage"
    root.mkdir()
    assert syncjob.run(spec_for(root, upstream, versions=("3.6.13", "3.6.12"))).state == "done"
    before = {p: p.read_bytes() for p in sorted((root / "tools").rglob("*")) if p.is_file()}
    write_stream(tmp_path / "leader", leader_agents)
    with serve_directory(tmp_path / "leader") as url:
        status = syncjob.run(spec_for(root, url, versions=(), follow=True, internal=True))
    assert status.state == "failed"
    assert status.message == (
        f"{url} lists no ubuntu agents for amd64, arm64; this unit keeps the 4 agent "
        "binaries it serves"
    )
    after = {p: p.read_bytes() for p in sorted((root / "tools").rglob("*")) if p.is_file()}
    assert after == before
    assert Mirror(root).verify() == []


def test_follower_keeps_files_another_stream_still_lists(tmp_path: Path, upstream: str) -> None:
    """Content is stored once for all streams: dropping it from one must not break another."""
    root = tmp_path / "storage"
    root.mkdir()
    assert syncjob.run(spec_for(root, upstream, versions=("3.6.13", "3.6.12"))).state == "done"
    mirror = Mirror(root)
    old = [e for e in mirror.staged("released") if str(e.version) == "3.6.12"]
    mirror.add("proposed", old)  # e.g. imported from an archive holding both streams
    write_stream(tmp_path / "leader", [a for a in AGENTS if a.version == "3.6.13"])
    with serve_directory(tmp_path / "leader") as url:
        status = syncjob.run(spec_for(root, url, versions=(), follow=True, internal=True))
    assert status.state == "done", status.message
    assert {str(e.version) for e in mirror.staged("released")} == {"3.6.13"}
    assert mirror.staged("proposed") == tuple(old)
    assert mirror.verify() == []


def test_follower_of_an_empty_leader_with_nothing_staged_is_done(
    tmp_path: Path,
) -> None:
    write_stream(tmp_path / "leader", [])
    root = tmp_path / "storage"
    root.mkdir()
    with serve_directory(tmp_path / "leader") as url:
        status = syncjob.run(spec_for(root, url, versions=(), follow=True, internal=True))
    assert (status.state, status.message) == ("done", "the source lists no agents")


def test_revision_ignores_paths_other_os_and_arches(tmp_path: Path, upstream: str) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    syncjob.run(spec_for(root, upstream, versions=("3.6.13", "3.6.12")))
    entries = Mirror(root).staged("released")
    moved = [e.__class__(e.binary, "elsewhere/" + e.path, e.size, e.sha256) for e in entries]
    both = syncjob.mirror_revision(entries, "ubuntu", ["amd64", "arm64"])
    assert syncjob.mirror_revision(moved, "ubuntu", ["amd64", "arm64"]) == both
    assert len(entries) == 4
    assert syncjob.mirror_revision(entries, "ubuntu", ["amd64"]) != both
    assert syncjob.mirror_revision(entries, "centos", ["amd64", "arm64"]) == (
        syncjob.mirror_revision([], "ubuntu", ["amd64"])
    )


# --- the systemd unit --------------------------------------------------------------------------


def test_render_unit_runs_the_job_with_the_charm_python() -> None:
    text = syncjob.render_unit(
        description="Stage agent binaries for upgrader/0",
        python="/var/lib/juju/agents/unit-upgrader-0/charm/venv/bin/python",
        pythonpath=[
            "/var/lib/juju/agents/unit-upgrader-0/charm/lib",
            "/var/lib/juju/agents/unit-upgrader-0/charm/src",
        ],
        spec_path=Path("/srv/binaries/.upgrader-job.json"),
    )
    assert "Type=exec\n" in text
    assert (
        "ExecStart=/var/lib/juju/agents/unit-upgrader-0/charm/venv/bin/python -m "
        "upgrader.syncjob /srv/binaries/.upgrader-job.json\n"
    ) in text
    assert (
        "Environment=PYTHONPATH=/var/lib/juju/agents/unit-upgrader-0/charm/lib:"
        "/var/lib/juju/agents/unit-upgrader-0/charm/src\n"
    ) in text
    assert "[Install]" not in text  # started on demand only, never at boot


@pytest.mark.parametrize("python", ["python3", "/opt/my python", "/x/%n", "/x/a;b", "/x/$HOME"])
def test_render_unit_refuses_paths_needing_quotes(python: str) -> None:
    with pytest.raises(InvalidInputError, match="for the sync job: use an absolute path"):
        syncjob.render_unit(
            description="d", python=python, pythonpath=["/lib"], spec_path=Path("/srv/job.json")
        )


def test_render_unit_refuses_bad_description() -> None:
    with pytest.raises(InvalidInputError, match="invalid description"):
        syncjob.render_unit(
            description="a\nb", python="/p", pythonpath=[], spec_path=Path("/srv/job.json")
        )


@pytest.fixture
def systemctl(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """systemd is an OS service a unit test cannot own: record the systemctl calls instead."""
    calls: list[tuple[str, ...]] = []
    running = {"value": False}

    def record(name: str):
        def call(*args: str, **_: object) -> bool:
            calls.append((name, *args))
            if name == "service_start" and "fail.service" in args:
                raise systemd.SystemdError("Job for fail.service failed")
            return running["value"] if name == "service_running" else True

        return call

    for name in ("daemon_reload", "service_start", "service_stop", "service_running"):
        monkeypatch.setattr(systemd, name, record(name))
    return calls


def test_job_service_installs_starts_and_removes(
    tmp_path: Path, systemctl: list[tuple[str, ...]]
) -> None:
    service = JobService("upgrader-0-sync.service", unit_dir=tmp_path)
    assert service.install("[Service]\n") is True
    assert (tmp_path / "upgrader-0-sync.service").read_text() == "[Service]\n"
    assert service.install("[Service]\n") is False
    service.start()
    assert service.running() is False
    service.remove()
    assert not (tmp_path / "upgrader-0-sync.service").exists()
    service.remove()
    assert systemctl == [
        ("daemon_reload",),
        ("service_start", "--no-block", "upgrader-0-sync.service"),
        ("service_running", "upgrader-0-sync.service"),
        ("service_stop", "upgrader-0-sync.service"),
        ("daemon_reload",),
    ]


def test_job_service_errors_name_the_unit(tmp_path: Path, systemctl: list) -> None:
    with pytest.raises(syncjob.JobError, match="systemctl failed for fail.service: Job for"):
        JobService("fail.service", unit_dir=tmp_path).start()
    (tmp_path / "file").write_text("")
    with pytest.raises(syncjob.JobError, match="cannot write"):
        JobService("x.service", unit_dir=tmp_path / "file").install("[Service]\n")
    with pytest.raises(InvalidInputError, match="invalid unit name"):
        JobService("../x.service", unit_dir=tmp_path)


def test_job_service_removal_failure_is_a_job_error(tmp_path: Path, systemctl: list) -> None:
    """stop/remove/storage-detaching catch JobError: an OSError there would fail the hook."""
    (tmp_path / "x.service").mkdir()  # unlink() refuses a directory
    with pytest.raises(syncjob.JobError, match=r"cannot remove .*x\.service"):
        JobService("x.service", unit_dir=tmp_path).remove()


def test_auto_sync_stages_what_the_route_needs_and_is_not_staged(tmp_path: Path) -> None:
    config = CharmConfig(architectures="amd64 arm64", parallel_downloads=2)
    staged = [
        AgentEntry(parse_binary(f"3.5.7-ubuntu-{arch}"), f"released/{arch}.tgz", 1, "0" * 64)
        for arch in ("amd64", "arm64")
    ]
    spec = syncjob.auto_sync_job(config, tmp_path, staged, ("3.5.7", "3.6.12"), {})
    assert spec is not None
    assert (spec.versions, spec.architectures, spec.parallel) == (
        ("3.6.12",),
        ("amd64", "arm64"),
        2,
    )
    assert spec.stream_url == config.stream_url and spec.verify_signatures
    half = staged[:1]  # 3.5.7 for amd64 only: not staged for every architecture
    spec = syncjob.auto_sync_job(config, tmp_path, half, ("3.5.7",), {})
    assert spec is not None and spec.versions == ("3.5.7",)
    assert syncjob.auto_sync_job(config, tmp_path, staged, ("3.5.7",), {}) is None
    assert syncjob.auto_sync_job(config, tmp_path, staged, (), {}) is None
