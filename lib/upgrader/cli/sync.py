"""``juju-upgrader sync``: stage agent binaries into a local directory.

The layout is the one the charm and ``juju sync-agent-binary --local-dir`` use
(``DIR/tools/...``), written by the charm's engine (:mod:`upgrader.sync`), with the result keys
of the ``sync-binaries`` action. The verified upstream metadata is kept in ``DIR/.upstream``
(:mod:`upgrader.upstream`), so a later sync of an unchanged stream reads it with one request.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrader.cli.console import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    Console,
    bundle_steps,
    render,
    table,
)
from upgrader.cli.options import (
    UsageError,
    arg_type,
    format_option,
    selection_options,
    stream_options,
    trust_options,
    wanted_arches,
)
from upgrader.cli.plan import (
    architectures,
    note_detected,
    plan_request,
    read_juju_facts,
    resolve_versions,
)
from upgrader.cli.stream import open_fetcher, signature_text, trust_policy
from upgrader.errors import InvalidInputError, UpgraderError
from upgrader.plan import make_plan, route_of, versions_to_stage
from upgrader.selection import Outcome
from upgrader.streams import StreamContents, TrustPolicy
from upgrader.versions import SeriesFilter, Version, parse_major_minor

if TYPE_CHECKING:
    from upgrader.mirror import Mirror
    from upgrader.sync import SyncRequest, SyncResult

DEFAULT_JOBS = 4


def _series(text: str) -> SeriesFilter:
    return parse_major_minor(text)


def _jobs(text: str) -> int:
    from upgrader.sync import MAX_PARALLEL

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL:
        raise InvalidInputError(
            f"invalid --jobs {text!r}: use a whole number from 1 to {MAX_PARALLEL}"
        )
    return value


def _local_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not text.strip() or (path.exists() and not path.is_dir()):
        raise InvalidInputError(
            f"invalid --local-dir {text!r}: give a directory to stage into (it is created if "
            "missing)"
        )
    return path


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``sync`` to the command parsers."""
    sync = commands.add_parser(
        "sync",
        parents=[common],
        help="stage agent binaries into a local directory (a mirror the controller can use)",
        description="Download agent binaries, verified against the stream's metadata, into "
        "DIR/tools in the layout `juju sync-agent-binary --local-dir DIR` writes. With "
        "VERSION (major or major.minor), every version of that series; without it, every "
        "version the route of `juju-upgrader plan` (same options) needs, for every "
        "architecture in use. Interrupted runs resume.",
    )
    sync.add_argument(
        "version",
        nargs="?",
        type=arg_type(_series),
        metavar="VERSION",
        help="major or major.minor to stage every version of, e.g. 3 or 3.6 (not 3.6.1); "
        "default: every version the plan's route needs (its stage)",
    )
    sync.add_argument(
        "--local-dir",
        type=arg_type(_local_dir),
        required=True,
        metavar="DIR",
        help="where to stage: DIR/tools gets the tarballs and streams/v1 metadata",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="download nothing: say what would be staged and how many bytes",
    )
    sync.add_argument(
        "--jobs",
        type=arg_type(_jobs),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"downloads at once, 1 to 16 (default {DEFAULT_JOBS})",
    )
    selection_options(sync)
    stream_options(sync)
    trust_options(sync)
    format_option(sync, "the sync-binaries action's keys")
    sync.set_defaults(run=run)


_PLAN_ONLY = ("agent_version", "client_version", "target_version", "policy")


def _sync_request(
    args: argparse.Namespace, contents: StreamContents, console: Console
) -> SyncRequest:
    """What to stage: the VERSION series, or every version the plan's route needs.

    Without VERSION, the route's ``stage`` (every hop, and the controller's own version when
    models behind it must catch up), for the --arch architectures and those of the machines in
    use (read from juju when the controller's version is).

    Raises:
        UsageError: VERSION given together with plan options.
        SelectionError: no plan can be made.
    """
    from upgrader.sync import SyncRequest

    arches = wanted_arches(args)
    if args.version is not None:
        given = [f"--{name.replace('_', '-')}" for name in _PLAN_ONLY if getattr(args, name)]
        if given:
            raise UsageError(
                f"{', '.join(given)} chooses the version to stage when VERSION is not given; "
                f"give either VERSION ({args.version}) or the plan options"
            )
        return SyncRequest(series=args.version, os_names=(args.os_name,), architectures=arches)
    versions = resolve_versions(args)
    note_detected(console, versions)
    facts = read_juju_facts(versions)
    for note in facts.notes:
        console.note(note)
    arches = architectures(args, facts)
    request = plan_request(args, versions, arches)
    selection = make_plan(contents, request)
    route = route_of(selection, models=facts.models, kubernetes=facts.kubernetes)
    if selection.outcome is Outcome.UPGRADE:
        console.note(
            f"the plan selects {selection.target} (upgrade from {selection.agent}; "
            f"{selection.reason})"
        )
    else:
        console.note(f"the controller is up to date at {selection.agent}; staging that version")
    stage, unlisted = versions_to_stage(selection, route, contents, request)
    for version in unlisted:
        console.note(f"{version} is not in the stream: the route's other versions are staged")
    if route.stage:
        console.note(
            f"route {route.route.value}: staging {', '.join(str(v) for v in stage)} for "
            f"{', '.join(arches)}"
        )
    return SyncRequest(versions=stage, os_names=(args.os_name,), architectures=arches)


def run(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader sync``."""
    from upgrader.mirror import Mirror
    from upgrader.progress import TransferDisplay
    from upgrader.sync import plan_sync, select_entries, sync, sync_results
    from upgrader.upstream import keep_upstream, read_upstream

    mirror = Mirror(args.local_dir)
    with open_fetcher(args) as fetcher:
        trust = trust_policy(args)
        read = read_upstream(
            mirror, args.stream_url, args.stream, fetcher, trust=trust, save=False
        )
        contents = read.contents
        request = _sync_request(args, contents, console)
        select_entries(contents, request)  # a request the stream cannot meet: one error line
        if args.dry_run:
            console.note(read.note)
            result = sync(mirror, contents, request, fetcher, dry_run=True, parallel=args.jobs)
        else:
            _make_dir(args.local_dir)
            console.note(keep_upstream(mirror, read).note)
            display = None if console.quiet else TransferDisplay(console.err, prefix=f"{PROG}: ")
            if display is not None:
                pending = plan_sync(contents, mirror.staged_all(), request)
                display.start(len(pending.downloads), pending.download_bytes)
            with _exit_at_once_on_interrupt(console), display or _nothing():
                result = sync(
                    mirror, contents, request, fetcher, parallel=args.jobs, progress=display
                )
    url = mirror.tools.resolve().as_uri()
    if args.format == "text":
        console.result(_sync_text(result, contents, mirror, url, trust_policy(args)))
    else:
        console.result(render(sync_results(result, url), args.format))
    return EXIT_OK


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpgraderError(f"cannot create --local-dir {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _exit_at_once_on_interrupt(console: Console) -> Iterator[None]:
    """Make Ctrl-C end a sync at once, instead of after the downloads in flight.

    The staging engine keeps the mirror valid whatever the moment the process dies (it is
    tested with SIGKILL) and resumes partial downloads, so exiting without unwinding is safe;
    unwinding would wait for every download thread to finish its file.
    """

    def stop(signum: int, _frame: object) -> None:
        console.err.write(
            f"\n{PROG}: error: interrupted; the staged mirror is unchanged and consistent, "
            "and running the same command again resumes the downloads\n"
        )
        console.err.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sync_text(
    result: SyncResult, contents: StreamContents, mirror: Mirror, url: str, trust: TrustPolicy
) -> str:
    """A sync summary for a person: what was staged, and how the controller gets it."""
    from upgrader.progress import format_size

    staged = len(result.staged)
    noun = "agent binary" if staged == 1 else "agent binaries"
    versions = ", ".join(str(v) for v in result.versions)
    if result.dry_run:
        headline = (
            f"Dry run: would stage {staged} {noun} of {versions} into {mirror.tools} "
            f"({format_size(result.bytes_downloaded)} to download)."
        )
    elif staged:
        headline = (
            f"Staged {staged} {noun} of {versions} into {mirror.tools} "
            f"({format_size(result.bytes_downloaded)} downloaded in {result.seconds:.1f} s)."
        )
    else:
        headline = f"Nothing to download: {versions} already staged in {mirror.tools}."
    resumed = sum(f.resumed_from for f in result.files)
    rows = [
        ("versions", versions),
        ("staged", ", ".join(str(b) for b in result.staged) or "none"),
        ("present", ", ".join(str(b) for b in result.present) or "none"),
    ]
    if result.missing:
        rows.append(("not in stream", ", ".join(str(b) for b in result.missing)))
    if resumed:
        rows.append(("resumed", f"{format_size(resumed)} reused from an interrupted run"))
    rows += [
        ("source", f"{contents.base_url} ({contents.stream} stream)"),
        ("signature", signature_text(contents, trust)),
        ("local URL", url),
    ]
    lines = [headline, "", *table(rows)]
    if not result.dry_run:
        lines += ["", *_serve_steps(mirror.root.absolute(), sorted(result.versions))]
    return "\n".join(lines) + "\n"


def _serve_steps(root: Path, versions: Sequence[Version]) -> list[str]:
    """The ways to get a staged directory to the controller, then the plan's runbook.

    The directory is the operator's and may hold spaces or shell characters: each command
    quotes it, so that it is one word when pasted.
    """
    here = shlex.quote(str(root))
    tools = shlex.quote(str(root / "tools"))
    return [
        "Next steps: get the binaries to the controller, one of",
        "  a. serve them and point the controller at them:",
        f"       python3 -m http.server --directory {tools} 8080",
        "       juju model-config -m controller agent-metadata-url=http://<this-host>:8080",
        "  b. carry them to the site and give them to the upgrader charm:",
        *(f"       {step}" for step in bundle_steps(str(root), "agents.tar.gz")),
        "  c. upload them into the controller:",
        *(f"       juju sync-agent-binary --source {here} --agent-version {v}" for v in versions),
        "then follow the runbook of the plan, with the URL the controller reads them from:",
        f"  {PROG} plan --agent-metadata-url <URL> --local-dir {here}",
    ]
