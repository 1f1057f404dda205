"""Atomic output: write into a temporary sibling, fsync, then rename, so a failure never leaves a half-written result.

Files and folders get the permissions ``open``/``mkdir`` would give them under the process umask (``mkstemp`` and
``mkdtemp`` alone make them private to the owner, and so do some writers such as safetensors), so a run folder on a
shared disk stays readable to teammates: :func:`atomic_directory` normalises everything inside just before the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush ``path`` to disk (best effort for directories: some file systems refuse to open them)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (so a rename publishes data that is on disk)."""
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                _fsync_path(path)
        _fsync_path(folder, directory=True)


def normalise_modes(root: str | os.PathLike) -> None:
    """Give every file and folder under ``root`` (``root`` included) the umask-derived mode.

    Folders get ``0o777 & ~umask``; files ``0o666 & ~umask``, or ``0o777 & ~umask`` when they were executable.
    Symlinks are left alone (``chmod`` would follow them out of the tree).
    """
    mask = current_umask()
    for folder, dirs, names in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            executable = os.stat(path).st_mode & 0o111
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, ``os.replace``.

    The file gets the permissions a plain ``open(path, "w")`` would (``0o666`` minus the umask), not ``mkstemp``'s
    ``0o600``, so a shared run folder stays readable to the people it is shared with.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_path(path.parent, directory=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def make_temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """A new hidden folder in ``parent`` with the permissions ``mkdir`` would give it (``0o777`` minus the umask),
    not ``mkdtemp``'s ``0o700``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block finishes without error.

    Raises :class:`OutputExistsError` before any work if ``path`` exists and ``overwrite`` is false. The folder
    and everything written inside it get the umask-derived modes (:func:`normalise_modes`, whatever wrote them) and
    are fsynced before the rename. An existing ``path`` is moved aside, the new one
    renamed in, and the old one deleted; if the second rename fails, the old result is put back where it was.
    """
    final = Path(path)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"Output directory {str(final)!r} already exists; pass overwrite=True "
                                "(CLI: --overwrite) or choose another output_dir.")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(final.parent, prefix=f".{final.name}.", suffix=".partial")
    try:
        yield tmp
        normalise_modes(tmp)
        _fsync_tree(tmp)
        if final.exists():
            trash = make_temp_dir(final.parent, prefix=f".{final.name}.", suffix=".old")
            old = trash / "old"
            try:
                os.replace(final, old)
            except BaseException:
                shutil.rmtree(trash, ignore_errors=True)
                raise
            try:
                os.replace(tmp, final)
            except BaseException as exc:
                try:
                    os.replace(old, final)  # put the previous result back
                except OSError:
                    exc.add_note(f"The previous {str(final)!r} could not be put back; it is in {str(old)!r}.")
                else:
                    shutil.rmtree(trash, ignore_errors=True)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_path(final.parent, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def shared_atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[tuple[Path, bool]]:
    """:func:`atomic_directory` for code that every process runs (``accelerate launch``, ``torchrun``).

    Yields ``(tmp, is_main)`` on every process: one temporary folder, made by the main process and shared with the
    others, so collective saves (``Trainer.save_model`` under FSDP or ZeRO-3 gathers the weights from every process)
    work; only the main process may write into it (``Trainer.save_model`` already does; guard the rest with
    ``is_main``). After a barrier the main process renames it onto ``path`` (temp dir + rename, rank 0 only) and
    the others wait at a second barrier, so on return ``path`` is complete on every process. If the block fails on
    any process, nothing is published and every process raises (its own error, or a ``RuntimeError`` saying that
    another process failed). In one process this is exactly :func:`atomic_directory`.
    """
    from . import distributed as dist

    if dist.world_size() == 1 or not dist.initialized():
        with atomic_directory(path, overwrite=overwrite) as tmp:
            yield tmp, True
        return
    main = dist.is_main_process()
    final = Path(path)
    error: BaseException | None = None
    tmp_name: str | None = None
    if main:
        try:
            if final.exists() and not overwrite:
                raise OutputExistsError(f"Output directory {str(final)!r} already exists; pass overwrite=True "
                                        "(CLI: --overwrite) or choose another output_dir.")
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp_name = str(make_temp_dir(final.parent, prefix=f".{final.name}.", suffix=".partial"))
        except BaseException as exc:  # noqa: BLE001 - re-raised after the broadcast every process must reach
            error = exc
    tmp_name = dist.broadcast_object(tmp_name)
    if tmp_name is None:  # the main process could not even start
        if error is not None:
            raise error
        raise RuntimeError(f"The main process could not create a temporary folder for {str(final)!r}.")
    tmp = Path(tmp_name)
    try:
        yield tmp, main
    except BaseException as exc:  # noqa: BLE001 - re-raised after the barriers every process must reach
        error = exc
    ok = dist.all_ok(error is None)
    if main:
        try:
            if ok:
                _publish(tmp, final)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException as exc:  # noqa: BLE001 - re-raised after the second barrier
            shutil.rmtree(tmp, ignore_errors=True)
            error, ok = error or exc, False
    ok = dist.all_ok(ok)  # the second barrier: path is complete (or absent) everywhere from here on
    if error is not None:
        raise error
    if not ok:
        raise RuntimeError(f"Another process failed while writing {str(final)!r}; nothing was written.")


def _publish(tmp: Path, final: Path) -> None:
    """Normalise modes, fsync and rename ``tmp`` onto ``final`` (moving an existing ``final`` aside first)."""
    normalise_modes(tmp)
    _fsync_tree(tmp)
    if final.exists():
        trash = make_temp_dir(final.parent, prefix=f".{final.name}.", suffix=".old")
        os.replace(final, trash / "old")
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(trash / "old", final)  # put the previous result back (if that fails too, it stays in trash)
            shutil.rmtree(trash, ignore_errors=True)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_path(final.parent, directory=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short hex digest of a JSON-serialisable object, independent of key order."""
    payload = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(payload).hexdigest()[:length]
