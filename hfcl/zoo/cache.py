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
import re
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


#: ``hfcl:<stage>@<recipe hash>``: how pushed files name an embedded model instead of its local cache folder.
#: ``<stage>`` is a stage name as the cache folders use it (``target``, ``retain-forget10``...).
ZOO_REF = re.compile(r"hfcl:(?P<stage>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?:@(?P<key>[0-9a-f]{16}))?")
_ENTRY_NAME = re.compile(r"(?P<stage>[A-Za-z0-9][A-Za-z0-9_.-]*)-(?P<key>[0-9a-f]{16})")


def zoo_ref(path: str | os.PathLike) -> str | None:
    """``hfcl:<stage>@<hash>`` for a folder in (or a file under) this machine's zoo cache; ``None`` otherwise.

    >>> zoo_ref(entry_dir("target", "0123456789abcdef"))
    'hfcl:target@0123456789abcdef'
    """
    zoo = cache_root() / "zoo"
    candidate = Path(path)
    for root in {zoo, Path(os.path.realpath(zoo))}:
        for where in {candidate, Path(os.path.realpath(candidate))}:
            try:
                rel = where.relative_to(root)
            except ValueError:
                continue
            if not rel.parts:
                continue
            match = _ENTRY_NAME.fullmatch(rel.parts[0])
            if match:
                rest = "/".join(rel.parts[1:])
                return f"hfcl:{match['stage']}@{match['key']}" + (f"/{rest}" if rest else "")
    return None


def parse_zoo_ref(ref: str) -> tuple[str, str | None] | None:
    """``(stage name, hash or None)`` of an ``hfcl:<stage>[@<hash>]`` reference; ``None`` if ``ref`` is not one."""
    match = ZOO_REF.fullmatch(ref)
    return (match["stage"], match["key"]) if match else None


def write_marker(folder: Path, info: dict[str, Any]) -> None:
    """Record the sha256 of every file in ``folder`` (written last: its presence means the entry is complete)."""
    files = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    (folder / MARKER).write_text(json.dumps({**info, "files": files}, indent=2, sort_keys=True, default=str))


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


#: Files whose hash this process already computed, keyed by (device, inode, mtime_ns, size): a file is hashed once
#: per process, and again only if it changed on disk since. The key survives the rename of a fresh build into place.
_VERIFIED: dict[tuple[int, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def file_digest(path: Path) -> str | None:
    """sha256 of ``path``, memoised per process on (device, inode, mtime, size); ``None`` when it is not a file."""
    if not path.is_file():
        return None
    key = _stat_key(path)
    if key is None:
        return None
    digest = _VERIFIED.get(key)
    if digest is None:
        digest = sha256_file(path)
        _VERIFIED[key] = digest
    return digest


def is_complete(folder: Path, verify_hashes: bool = True) -> bool:
    """True when ``folder`` has its marker and every recorded file with the recorded hash.

    Hashes are checked once per process per file (see :func:`file_digest`), so the lock-free fast path of
    ``model_path`` costs a few ``stat`` calls after the first load.
    """
    marker = read_marker(folder)
    if marker is None or not marker.get("files"):
        return False
    for name, digest in marker["files"].items():
        path = folder / name
        if not path.is_file():
            return False
        if verify_hashes and file_digest(path) != digest:
            return False
    return True


def discard(folder: Path, reason: str) -> None:
    logger.warning("Cache entry %s is unusable (%s); rebuilding it.", folder, reason)
    shutil.rmtree(folder, ignore_errors=True)
