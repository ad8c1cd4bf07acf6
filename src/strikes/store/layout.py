"""Where the local store keeps things, and the checks that keep it inside its directory.

```
<root>/
  runs/<run_id>/manifest.json          status and summary, rewritten atomically by the owner
  runs/<run_id>/segments/<writer>.seg  append-only event frames, one writer per file
  objects/<h[:2]>/<h>                  content-addressed values and artifact files (sha256)
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "StoreLayout",
    "default_store_dir",
    "validate_object_hash",
    "validate_run_id",
]

DIR_MODE = 0o700
"""Store directories are private to the user."""
FILE_MODE = 0o600
"""Store files are private to the user."""

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_OBJECT_HASH = re.compile(r"[0-9a-f]{64}")
_WRITER_ID = re.compile(r"[0-9a-z-]{1,64}")


def default_store_dir() -> Path:
    """``$STRIKES_DIR`` if set, else ``./.strikes``."""
    return Path(os.environ.get("STRIKES_DIR") or ".strikes")


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is 32 lowercase hex digits; raises ``ValueError`` otherwise."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id must be 32 lowercase hex digits, got {run_id!r:.80}")
    return run_id


def validate_object_hash(digest: str) -> str:
    """Return ``digest`` if it is a sha256 hex digest; raises ``ValueError`` otherwise."""
    if not isinstance(digest, str) or not _OBJECT_HASH.fullmatch(digest):
        raise ValueError(f"object hash must be 64 lowercase hex digits, got {digest!r:.80}")
    return digest


class StoreLayout:
    """Paths inside one store root; every name that reaches a path is validated first."""

    __slots__ = ("objects", "root", "runs")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.runs = self.root / "runs"
        self.objects = self.root / "objects"

    def run_dir(self, run_id: str) -> Path:
        """The directory of one run."""
        return self.runs / validate_run_id(run_id)

    def manifest(self, run_id: str) -> Path:
        """The manifest file of one run."""
        return self.run_dir(run_id) / "manifest.json"

    def segments(self, run_id: str) -> Path:
        """The directory of a run's event segments."""
        return self.run_dir(run_id) / "segments"

    def segment(self, run_id: str, writer_id: str, part: int) -> Path:
        """The ``part``-th segment file of one writer."""
        if not _WRITER_ID.fullmatch(writer_id):
            raise ValueError(f"writer_id is not a valid segment name: {writer_id!r:.80}")
        return self.segments(run_id) / f"{writer_id}.{part:04d}.seg"

    def object(self, digest: str) -> Path:
        """The file holding the object with sha256 ``digest``."""
        validate_object_hash(digest)
        return self.objects / digest[:2] / digest
