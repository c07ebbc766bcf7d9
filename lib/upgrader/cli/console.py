"""Where the command line writes: results on stdout, notes and progress on stderr.

Everything printed passes through :func:`upgrader.urls.for_display`, so a ``--stream-url``
login never shows, and no text from a server, a document or ``juju`` (a reason phrase, a
content id, a version) can send the terminal an escape sequence or forge a line.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from typing import Any, TextIO

from upgrader.urls import for_display

PROG = "juju-upgrader"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclasses.dataclass
class Console:
    """Where a command writes: results to ``out``, notes and progress to ``err``."""

    out: TextIO
    err: TextIO
    quiet: bool = False

    def note(self, message: str) -> None:
        """Print an informational line on stderr, unless quiet (shown by :func:`for_display`)."""
        if not self.quiet:
            print(for_display(f"{PROG}: {message}"), file=self.err, flush=True)

    def result(self, text: str) -> None:
        """Write results on stdout (shown by :func:`for_display`; their lines are kept)."""
        self.out.write(for_display(text, multiline=True))


def render(results: dict[str, Any], fmt: str) -> str:
    """Results as JSON or YAML text; in YAML, multi-line strings are literal blocks."""
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return yaml.dump(results, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=1000)


def table(rows: Sequence[tuple[str, str]]) -> list[str]:
    """``  label:  value`` lines with the values aligned."""
    width = max(len(label) for label, _ in rows) + 2
    return [f"  {label + ':':<{width}}{value}" for label, value in rows]


def bundle_steps(mirror: str, archive: str) -> tuple[str, str]:
    """The commands that carry a staged directory to the upgrader charm: bundle, then attach."""
    return shlex.join([PROG, "bundle", mirror, "-o", archive]), attach_step(archive)


def attach_step(archive: str) -> str:
    """``juju attach-resource`` of an archive; the operator's path stays one word when pasted."""
    return shlex.join(["juju", "attach-resource", "upgrader", f"agent-binaries={archive}"])


def quote(source: str) -> str:
    """A version's source for a table: a juju command in backquotes."""
    return f"`{source}`" if source.startswith("juju ") else source
