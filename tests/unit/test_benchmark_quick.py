"""The sync benchmark runs to completion in its quick mode and prints its ratio table.

Speed targets are not asserted here (they belong to the benchmark's own report); this checks
that the script works end to end: stream generation, a real server on 127.0.0.1, our sync, the
curl and sstream-mirror baselines, and the per-run correctness checks it makes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.nginx import nginx_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "sync_bench.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_system,
    pytest.mark.skipif(
        (shutil.which("curl") is None or shutil.which("sha256sum") is None)
        and os.environ.get("UPGRADER_CI") != "1",
        reason="curl and sha256sum are needed",
    ),
]


def test_quick_run_prints_the_ratio_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(
        r"^workload\s+contender\s+bytes\s+median s .* vs curl\s+vs sstream", out, re.M
    )
    # one-wan needs nginx's limit_rate; without nginx (allowed outside CI) the script serves
    # with Python's server and says that it leaves one-wan out.
    with_nginx = nginx_binary() is not None or os.environ.get("UPGRADER_CI") == "1"
    if not with_nginx:
        assert "(python server: no one-wan workload, it needs nginx's limit_rate)" in out
    for workload in ("one", "eight", "big", *(("one-wan",) if with_nginx else ())):
        row = re.search(
            rf"^{workload}\s+our sync \(process\)\s+([\d,]+)\s+([\d.]+)\s.*?([\d.]+)x\s", out, re.M
        )
        assert row, f"no row for our sync of {workload}:\n{out}"
        assert int(row.group(1).replace(",", "")) > 0
        assert float(row.group(2)) > 0
    assert re.search(r"^eight\s+sstream-mirror\s+[\d,]+\s+[\d.]+", out, re.M)
    assert re.search(r"^eight\s+curl \| sha256sum\s+[\d,]+\s+[\d.]+", out, re.M)
    assert re.search(r"^eight\s+our re-sync, no change\s+0\s+[\d.]+", out, re.M)
    targets = re.findall(r"^  (PASS|FAIL)  (.*)$", out, re.M)
    names = [name for _, name in targets]
    assert any("peak RSS" in name for name in names)
    assert any("sstream-mirror" in name for name in names)
    assert any("no-change re-sync" in name for name in names)
    assert "tarball size     0.25 MiB" in out


def test_bad_size_is_refused_with_the_accepted_form() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size-mb", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--size-mb 0.0: use a size between 0.01 and 4096 (MiB)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_workdir_holding_other_files_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "stream").mkdir()
    (tmp_path / "stream" / "precious.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"--workdir {tmp_path}: use a new or empty directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "stream" / "precious.txt").read_text() == "keep me"
