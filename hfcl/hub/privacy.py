"""Keep this machine's paths out of what is shared.

Run records, reports, adapter configs and cards name models by where they were loaded from, which on the machine
that made them is an absolute path (``~/.cache/huggingface/hfcl/zoo/target-<hash>``, ``/tmp/run-3/npo``...). Such
a path tells the world a user name and a folder layout, and means nothing to anyone else. Before anything is
pushed, :func:`scrub` rewrites every absolute local path into a name that does mean something elsewhere:

* a zoo cache entry -> ``hfcl:<stage>@<recipe hash>`` (``hfcl.zoo.load_model`` resolves it and rebuilds the model);
* a Hugging Face cache snapshot (``.../models--org--name/snapshots/<sha>``) -> ``org/name@<sha>``;
* a path inside the run directory being pushed -> its path relative to it (``.`` for the folder itself);
* any other absolute path on this machine -> its last component (the folder or file name).

:func:`find_local_paths` lists what is left, for a final check.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_HUB_SNAPSHOT = re.compile(r"(?P<kind>models|datasets|spaces)--(?P<repo>[^/]+)/snapshots/(?P<sha>[0-9a-f]{7,64})"
                           r"(?:/(?P<rest>.*))?")
# an absolute POSIX path token: not preceded by a word character, a dot, a colon or a slash (URLs, relative paths)
_ABS_PATH = re.compile(r"(?<![\w.:/~$-])/(?:[\w.@+=%-]+/)*[\w.@+=%-]+/?")
TEXT_SUFFIXES = (".json", ".md", ".yaml", ".yml", ".txt", ".jinja", ".csv", ".py", ".cfg", ".toml", ".svg")


def _hub_cache() -> str | None:
    try:
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    except ImportError:  # pragma: no cover - huggingface_hub is a hard dependency
        return os.environ.get("HF_HUB_CACHE")


def local_roots(extra: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Folders whose absolute paths must never be shared: the HF and hfcl caches, ``HF_HOME``, the temp folder,
    the home folder, the working directory and ``extra`` (each also as its resolved real path)."""
    from ..zoo.cache import cache_root

    roots = [cache_root(), _hub_cache(), os.environ.get("HF_HOME"), os.environ.get("HFCL_CACHE"),
             tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd(), *extra]
    found: list[str] = []
    for root in roots:
        if not root:
            continue
        for variant in (os.path.abspath(os.fspath(root)), os.path.realpath(os.fspath(root))):
            variant = variant.rstrip("/")
            if variant and variant != "/" and variant not in found:
                found.append(variant)
    return sorted(found, key=len, reverse=True)


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ("" for the root itself), or ``None`` when it is not under it."""
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    return None


def symbolic_path(path: str, run_dir: str | os.PathLike | None = None) -> str:
    """The shareable name of the absolute local ``path`` (see the module docstring)."""
    from ..zoo.cache import zoo_ref

    trailing = "/" if path.endswith("/") and len(path) > 1 else ""
    clean = path.rstrip("/") or "/"
    ref = zoo_ref(clean)
    if ref is not None:
        return ref + trailing
    hub = _hub_cache()
    for root in {os.path.abspath(hub), os.path.realpath(hub)} if hub else ():
        rel = _under(clean, root.rstrip("/"))
        match = _HUB_SNAPSHOT.fullmatch(rel) if rel else None
        if match:
            repo = match["repo"].replace("--", "/")
            prefix = "" if match["kind"] == "models" else match["kind"] + "/"
            return f"{prefix}{repo}@{match['sha']}" + (f"/{match['rest']}" if match["rest"] else "") + trailing
    if run_dir is not None:
        for root in {os.path.abspath(run_dir), os.path.realpath(run_dir)}:
            rel = _under(clean, root.rstrip("/"))
            if rel is not None:
                return (rel or ".") + trailing
    return (os.path.basename(clean) or ".") + trailing


def _is_local(path: str, roots: list[str]) -> bool:
    """Whether ``path`` is an absolute path of this machine: under a private root, or its top folders exist."""
    if any(_under(path.rstrip("/"), root) is not None for root in roots):
        return True
    parts = [p for p in path.split("/") if p]
    return len(parts) >= 2 and os.path.isdir("/" + parts[0]) and os.path.exists("/" + "/".join(parts[:2]))


def scrub_text(text: str, run_dir: str | os.PathLike | None = None, roots: list[str] | None = None) -> str:
    """``text`` with every absolute local path replaced by :func:`symbolic_path`."""
    roots = local_roots([run_dir] if run_dir else []) if roots is None else roots

    def replace(match: re.Match) -> str:
        token = match.group(0)
        return symbolic_path(token, run_dir) if _is_local(token, roots) else token

    return _ABS_PATH.sub(replace, text)


def scrub(obj: Any, run_dir: str | os.PathLike | None = None, roots: list[str] | None = None) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, strings) with local paths replaced in every string."""
    roots = local_roots([run_dir] if run_dir else []) if roots is None else roots
    if isinstance(obj, str):
        return scrub_text(obj, run_dir, roots)
    if isinstance(obj, dict):
        return {k: scrub(v, run_dir, roots) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub(v, run_dir, roots) for v in obj)
    return obj


def is_text_file(name: str) -> bool:
    """Whether a staged file is text that may carry paths (configs, reports, cards, templates)."""
    return name.endswith(TEXT_SUFFIXES) or "." not in Path(name).name


def scrub_bytes(data: bytes, run_dir: str | os.PathLike | None = None, roots: list[str] | None = None) -> bytes:
    """UTF-8 ``data`` with local paths replaced (bytes that are not UTF-8 are returned unchanged)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    cleaned = scrub_text(text, run_dir, roots)
    return data if cleaned == text else cleaned.encode("utf-8")


def find_local_paths(data: bytes | str, roots: Iterable[str] | None = None) -> list[str]:
    """The private roots (:func:`local_roots`) that occur in ``data``."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return [root for root in (local_roots() if roots is None else roots) if root in text]


__all__ = ["find_local_paths", "is_text_file", "local_roots", "scrub", "scrub_bytes", "scrub_text", "symbolic_path"]
