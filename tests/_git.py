"""Git for the provenance tests: a fixed identity, none of the user's configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> bytes:
    """Run git in ``repo`` as a fixed user; return its stdout (bytes: diffs are binary)."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout
