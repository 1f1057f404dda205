"""Where built models live and how a cache entry proves it is whole.

Entries live in ``$HFCL_CACHE`` or ``$HF_HOME/hfcl`` (default ``~/.cache/huggingface/hfcl``), one folder per stage
and recipe hash: ``zoo/<stage>-<hash>/``. An entry is built in a temporary sibling folder and renamed into place, and
carries ``hfcl_zoo.json`` with the sha256 of every file, so a partial or corrupt entry is detected and rebuilt.
Building holds a file lock, so two processes (for example under ``accelerate launch``) never build the same entry
twice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..utils.io import sha256_file
from ..utils.logging import get_logger

logger = get_logger(__name__)
MARKER = "hfcl_zoo.json"


def cache_root() -> Path:
    """Root of hfcl's cache, read from the environment at call time (``HFCL_CACHE``, then ``HF_HOME``)."""
    if os.environ.get("HFCL_CACHE"):
        return Path(os.environ["HFCL_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface")
    return Path(hf_home).expanduser() / "hfcl"


def entry_dir(stage: str, key: str) -> Path:
    return cache_root() / "zoo" / f"{stage}-{key}"


def write_marker(folder: Path, info: dict[str, Any]) -> None:
    """Record the sha256 of every file in ``folder`` (written last: its presence means the entry is complete)."""
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    (folder / MARKER).write_text(json.dumps({**info, "files": files}, indent=2, sort_keys=True, default=str))


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, verify_hashes: bool = True) -> bool:
    """True when ``folder`` has its marker and every recorded file with the recorded hash."""
    marker = read_marker(folder)
    if marker is None or not marker.get("files"):
        return False
    for name, digest in marker["files"].items():
        path = folder / name
        if not path.is_file():
            return False
        if verify_hashes and sha256_file(path) != digest:
            return False
    return True


def discard(folder: Path, reason: str) -> None:
    logger.warning("Cache entry %s is unusable (%s); rebuilding it.", folder, reason)
    shutil.rmtree(folder, ignore_errors=True)
