"""``juju-upgrader bundle``: pack a staged directory into the charm's resource archive."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from upgrader.cli.console import EXIT_OK, Console, attach_step, render, table
from upgrader.cli.options import UsageError, arg_type, format_option, keys_file
from upgrader.errors import InvalidInputError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``bundle`` to the command parsers."""
    bundle = commands.add_parser(
        "bundle",
        parents=[common],
        help="pack a staged directory into the charm's agent-binaries archive",
        description="Write the archive the upgrader charm's agent-binaries resource accepts: "
        "the metadata of DIR/tools/streams/v1 and every tarball it lists, each checked "
        "against its listed size and sha256. Carry it to the air-gapped site and attach it "
        "with `juju attach-resource upgrader agent-binaries=agents.tar.gz`.",
    )
    bundle.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="a directory made by `juju-upgrader sync --local-dir DIR` or `juju "
        "sync-agent-binary --local-dir DIR` (or its tools directory)",
    )
    bundle.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("agents.tar.gz"),
        metavar="FILE",
        help="the archive to write (default agents.tar.gz)",
    )
    bundle.add_argument("--force", action="store_true", help="replace FILE if it exists")
    bundle.add_argument(
        "--signing-keys",
        type=arg_type(keys_file),
        metavar="FILE",
        help="public keys for signed (.sjson) metadata in DIR (default: Juju's release key)",
    )
    format_option(bundle, "the keys output, binaries, files, bytes and skipped")
    bundle.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    """``juju-upgrader bundle``."""
    from upgrader.bundle import find_tools_dir, make_bundle
    from upgrader.progress import format_size

    try:
        find_tools_dir(args.directory)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    output: Path = args.output
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; give --force to replace it, or another -o FILE")
    if output.exists() and not output.is_file():
        raise UsageError(f"-o {output} is not a regular file")
    result = make_bundle(
        args.directory,
        output,
        keys=args.signing_keys,
        log=None if console.quiet else console.note,
    )
    results = {
        "output": str(result.output),
        "binaries": ", ".join(str(b) for b in result.binaries),
        "files": str(result.files),
        "bytes": str(result.bytes),
        "skipped": ", ".join(result.skipped),
    }
    if args.format != "text":
        console.result(render(results, args.format))
        return EXIT_OK
    count = len(result.binaries)
    noun = "agent binary" if count == 1 else "agent binaries"
    rows = [
        ("binaries", results["binaries"] or "none"),
        ("files", f"{result.files} ({format_size(result.bytes)} before compression)"),
    ]
    if result.skipped:
        rows.append(("skipped", f"{results['skipped']} (not listed in the metadata)"))
    lines = [
        f"Wrote {output} with {count} {noun} ({format_size(output.stat().st_size)}).",
        "",
        *table(rows),
        "",
        "Next steps (carry the archive to the controller's site, then):",
        f"  {attach_step(str(output))}",
    ]
    console.result("\n".join(lines) + "\n")
    return EXIT_OK
