"""The documents stay true to the tree: README's layout and ARCHITECTURE.md's map."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lib" / "upgrader"


def _modules(directory: Path) -> set[str]:
    return {p.stem for p in directory.glob("*.py") if p.stem not in ("__init__", "__main__")}


def _layout_row(readme: str, path: str) -> set[str]:
    [row] = [line for line in readme.splitlines() if line.startswith(f"| `{path}` |")]
    return set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))


def test_readme_layout_lists_every_module_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _layout_row(readme, "lib/upgrader/") == _modules(PACKAGE)
    assert _layout_row(readme, "lib/upgrader/cli/") == _modules(PACKAGE / "cli")
    listed = set(re.findall(r"^\| `(src/[a-z_]+\.py)` \|", readme, re.MULTILINE))
    assert listed == {f"src/{p.name}" for p in (ROOT / "src").glob("*.py")}


def test_architecture_map_names_paths_that_exist() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"\| `((?:lib|src)/[^`]+)`", section)
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), path
    mapped = {Path(p).stem for p in paths if p.endswith(".py")}
    assert _modules(PACKAGE) <= mapped | {"cli"}


def test_nothing_cites_material_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".yaml", ".toml", ".ini"))
        and "shared" + "/reference" in (ROOT / name).read_text(errors="replace")
    ]
    assert offenders == []
