"""Regenerate tests/data/sample-stream: a small agent stream in the official (condensed) shape.

It lets a newcomer run ``juju-upgrader plan`` and ``juju-upgrader sync`` right after cloning,
without reaching streams.canonical.com. The tarballs are tiny but real gzipped tars.

The metadata is also clearsigned into ``.sjson`` files, as Canonical's ``sign_metadata.py``
does, with a throwaway key made for the purpose: its public key is written to
``tests/data/sample-stream-key.asc`` and its secret key is destroyed, so nobody can sign
anything else with it. Read the sample with verification on by giving that key (the
``signing-keys`` option, ``--signing-keys tests/data/sample-stream-key.asc``). Needs gpg.

Run from the repository root: ``python tests/data/make_sample_stream.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.gpg import Signer, sign_stream  # noqa: E402
from support.streams import Agent, write_stream  # noqa: E402

KEY_FILE = HERE / "sample-stream-key.asc"

RELEASES = {
    "2.9.50": "20240806",
    "2.9.51": "20241015",
    "2.9.52": "20250306",
    "3.4.5": "20240801",
    "3.4.6": "20241002",
    "3.5.6": "20250110",
    "3.5.7": "20250401",
    "3.6.10": "20250820",
    "3.6.11": "20250924",
    "3.6.12": "20251105",
}


def main() -> None:
    """Write the sample stream next to this script."""
    root = HERE / "sample-stream"
    shutil.rmtree(root, ignore_errors=True)
    agents = [
        Agent(version, arch, date=date)
        for version, date in RELEASES.items()
        for arch in ("amd64", "arm64")
    ]
    write_stream(root, agents, condensed=True)
    print(f"wrote {len(agents)} agents to {root}")
    with tempfile.TemporaryDirectory(prefix="sample-stream-gnupg-") as home:
        signer = Signer(Path(home))
        try:
            key = signer.new_key("Upgrader Sample Stream")
            signed = sign_stream(root, signer, key)
            signer.gpg("--yes", "--delete-secret-keys", key.fingerprint)
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
    KEY_FILE.write_text(key.armoured)
    print(f"signed {len(signed)} files with key {key.fingerprint}; public key in {KEY_FILE}")


if __name__ == "__main__":
    main()
