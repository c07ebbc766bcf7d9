"""Build the charm as ``charmcraft pack`` does, on a machine without LXD, Multipass or snapd.

:func:`pack_charm` runs charmcraft itself (the version in the tox env) in destructive mode on a
copy of the project: its own lifecycle pulls the parts, runs the uv plugin's build script (``uv
venv``, ``uv sync --no-dev --no-editable --reinstall --no-install-project``, the copy of
``src/`` and ``lib/``, the venv clean-up), stages, primes, writes ``dispatch``,
``metadata.yaml``, ``config.yaml``, ``actions.yaml`` and ``manifest.yaml``, lints, and zips the
result as ``upgrader_<platform>.charm``. Three steps cannot run here; each is replaced by what
the build instance would have given, and nothing else is touched:

- **The build instance** (an LXD container of the platform's Ubuntu base): charmcraft refuses to
  build an Ubuntu 24.04 charm on another system. Its base check is skipped; the build runs on
  this machine, with the Python chosen here as ``python3`` (the charm's venv is made for it).
- **build-packages** (``python3-dev``, ``python3-venv``, ``findutils``): installed with apt in
  the instance. Here the package step is craft-parts' own no-op repository: ``uv venv`` needs
  no ``python3-venv``, and every dependency is a wheel.
- **build-snaps** (``astral-uv``): the snap's ``uv`` is replaced by the ``uv`` on PATH (tox-uv
  installs one). ``UV_OFFLINE=1`` makes it install from uv's cache, which tox filled from the
  same ``uv.lock``, so a build sends nothing off the machine.

Destructive mode builds in the project directory, so the project is copied first, less what
cannot change the charm (VCS data, virtual environments, caches, earlier build output).

Run it by hand with ``uv run --group unit python tests/support/packing.py -o DIR``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COPY_IGNORE = (
    ".git",
    ".tox",
    ".venv",
    "venv",
    "*.charm",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    ".coverage",
    ".coverage.*",
    "htmlcov",
    "parts",
    "stage",
    "prime",
    "overlay",
)
"""Names left out of the project copy: none of them can reach the packed charm."""

BUILD_TIMEOUT = 600
"""Seconds a whole charmcraft run may take (a cold uv cache is the slow case)."""

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "amd64": "amd64"}


class PackError(Exception):
    """charmcraft failed, or a tool it needs is missing; the message says which and why."""


def base_python() -> Path:
    """The interpreter behind this one (outside any virtual environment), symlinks resolved."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return Path(base).resolve()


def host_platform(python: Path | None = None) -> str:
    """The charmcraft.yaml platform a build on this machine stands for.

    The Ubuntu base whose ``python3`` matches ``python`` (22.04 has 3.10), else 24.04.
    """
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        raise PackError(f"no charm platform for this machine's architecture {platform.machine()}")
    version = _python_version(python or base_python())
    base = "22.04" if version == "3.10" else "24.04"
    return f"ubuntu-{base}-{arch}"


def find_uv() -> Path:
    """The ``uv`` that stands in for the astral-uv snap.

    Raises:
        PackError: uv is not on PATH.
    """
    uv = shutil.which("uv")
    if uv is None:
        raise PackError("uv is not on PATH (it comes with tox-uv: pip install tox tox-uv)")
    return Path(uv)


def copy_project(project: Path, dest: Path) -> Path:
    """Copy ``project`` to ``dest`` as the build instance sees it (less :data:`COPY_IGNORE`)."""
    shutil.copytree(project, dest, symlinks=True, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    return dest


def pack_charm(
    project: Path,
    output: Path,
    work: Path,
    *,
    python: Path | None = None,
    platform_name: str | None = None,
) -> Path:
    """Pack ``project`` with charmcraft into ``output``; returns the ``.charm`` file.

    Args:
        project: the charm project (the directory holding charmcraft.yaml).
        output: where the ``.charm`` file is written.
        work: an empty scratch directory (the project copy and charmcraft's logs).
        python: the interpreter the charm's venv is made for (default: :func:`base_python`).
        platform_name: the charmcraft.yaml platform (default: :func:`host_platform`).

    Raises:
        PackError: charmcraft failed (the message ends with its output), or uv is missing.
    """
    python = python or base_python()
    platform_name = platform_name or host_platform(python)
    copy = copy_project(project, work / "project")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--charmcraft",
        "pack",
        "--destructive-mode",
        "--platform",
        platform_name,
        "--verbosity",
        "brief",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=copy,
            env=build_environment(work, python, find_uv()),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PackError(f"charmcraft pack took more than {BUILD_TIMEOUT} s") from None
    # charmcraft writes packages inside the project tree only; the copy is that tree.
    made = sorted(copy.glob("*.charm"))
    if result.returncode != 0 or len(made) != 1:
        raise PackError(
            f"charmcraft pack failed (exit {result.returncode}, made {len(made)} charms):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    output.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(made[0], output / made[0].name))


def build_environment(work: Path, python: Path, uv: Path) -> dict[str, str]:
    """The environment charmcraft runs in: ``python3`` and ``uv`` first on PATH, uv offline.

    charmcraft's logs and runtime files stay under ``work``; uv's cache is the usual one.
    """
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python3").symlink_to(python)
    (bin_dir / "uv").symlink_to(uv)
    env = {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", str(work)),
        "LANG": "C.UTF-8",
        "XDG_STATE_HOME": str(work / "state"),
        "XDG_RUNTIME_DIR": str(work / "run"),
        # The packages come from uv's cache (tox installed the same locked versions).
        "UV_OFFLINE": "1",
    }
    for name in ("UV_CACHE_DIR", "XDG_CACHE_HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _python_version(python: Path) -> str:
    result = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def _run_charmcraft(argv: list[str]) -> int:
    """Run charmcraft with the three stand-ins of the module docstring, then its ``main``."""
    from craft_application.services import lifecycle
    from craft_parts import packages
    from craft_parts.packages import base, snaps

    def no_build_instance(self: object) -> None:
        """Stands in for the LXD instance of the platform's base (no base check)."""

    def installed_snaps(names: object) -> list[str]:
        """Stands in for the astral-uv snap: the uv on PATH."""
        if shutil.which("uv") is None:
            raise RuntimeError(f"build-snaps {names}: uv is not on PATH")
        return []

    setattr(lifecycle.LifecycleService, "_validate_build_plan", no_build_instance)  # noqa: B010
    setattr(packages, "_get_repository_for_platform", lambda: base.DummyRepository)  # noqa: B010
    setattr(snaps, "install_snaps", installed_snaps)  # noqa: B010

    from charmcraft.application.main import main

    sys.argv = ["charmcraft", *argv]
    return main()


def _main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--charmcraft":
        return _run_charmcraft(sys.argv[2:])
    parser = argparse.ArgumentParser(description="Pack the charm as charmcraft pack does.")
    parser.add_argument("project", nargs="?", type=Path, default=REPO)
    parser.add_argument("-o", "--output", type=Path, default=Path.cwd())
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="upgrader-pack-") as work:
        try:
            charm = pack_charm(args.project.resolve(), args.output.resolve(), Path(work))
        except PackError as exc:
            print(f"packing: {exc}", file=sys.stderr)
            return 1
    print(charm)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
