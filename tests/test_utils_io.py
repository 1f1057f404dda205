"""Atomic writes: permissions follow the umask, data is fsynced before the rename, a failed swap restores the old
result."""

from __future__ import annotations

import os
import stat

import pytest

from hfcl.errors import OutputExistsError
from hfcl.utils import io


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(value: int) -> None:
        os.umask(value)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_and_folders_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert io.current_umask() == mask
    text = io.atomic_write_text(tmp_path / "a.txt", "hello")
    data = io.atomic_write_json(tmp_path / "sub" / "b.json", {"x": 1})
    assert mode(text) == mode(data) == 0o666 & ~mask
    with io.atomic_directory(tmp_path / "run") as tmp:
        assert mode(tmp) == 0o777 & ~mask
        (tmp / "weights").write_bytes(b"w")
    assert mode(tmp_path / "run") == 0o777 & ~mask
    with io.atomic_directory(tmp_path / "run", overwrite=True) as tmp:  # the replacing path too
        (tmp / "weights").write_bytes(b"v")
    assert mode(tmp_path / "run") == 0o777 & ~mask
    assert (tmp_path / "run" / "weights").read_bytes() == b"v"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "run", "sub"]  # no temp leftovers


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_private_files_written_inside_an_atomic_folder_are_normalised(tmp_path, umask, mask):
    """What safetensors / PEFT write 0600 (and private subfolders) gets the umask-derived mode before the rename."""
    umask(mask)
    with io.atomic_directory(tmp_path / "run") as tmp:
        (tmp / "adapter_model.safetensors").write_bytes(b"w")
        os.chmod(tmp / "adapter_model.safetensors", 0o600)
        (tmp / "sub").mkdir(mode=0o700)
        os.chmod(tmp / "sub", 0o700)
        (tmp / "sub" / "deep.bin").write_bytes(b"d")
        os.chmod(tmp / "sub" / "deep.bin", 0o400)
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(tmp / "run.sh", 0o700)
        os.symlink("/etc/hostname", tmp / "link")  # never followed out of the tree
    out = tmp_path / "run"
    assert mode(out / "adapter_model.safetensors") == mode(out / "sub" / "deep.bin") == 0o666 & ~mask
    assert mode(out / "sub") == 0o777 & ~mask
    assert mode(out / "run.sh") == 0o777 & ~mask  # executable stays executable
    assert os.path.islink(out / "link")


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(fd)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(io.os, "replace", replace)
    io.atomic_write_text(tmp_path / "a.txt", "hello")
    kinds = [k for k, _ in events]
    assert "fsync" in kinds and kinds.index("fsync") < kinds.index("replace")
    tmp_file = next(src for k, src in events if k == "replace")
    assert ("fsync", tmp_file) in events[:kinds.index("replace")]  # the temp file itself was flushed

    events.clear()
    with io.atomic_directory(tmp_path / "run") as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")
    first_replace = [k for k, _ in events].index("replace")
    flushed = [p for k, p in events[:first_replace] if k == "fsync"]
    assert any(p.endswith("model.safetensors") for p in flushed), events


def test_failed_second_rename_restores_the_old_result(tmp_path, monkeypatch):
    final = tmp_path / "run"
    with io.atomic_directory(final) as tmp:
        (tmp / "result").write_text("old")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # the new result moving into place
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), io.atomic_directory(final, overwrite=True) as tmp:
        (tmp / "result").write_text("new")
    monkeypatch.undo()
    assert len(calls) == 3  # old aside, new in (fails), old back
    assert (final / "result").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no .run.*.old/ or .partial left behind


def test_failed_block_leaves_nothing_and_existing_output_is_refused(tmp_path):
    with pytest.raises(RuntimeError), io.atomic_directory(tmp_path / "run") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run").mkdir()
    with pytest.raises(OutputExistsError, match="overwrite"), io.atomic_directory(tmp_path / "run"):
        pass
