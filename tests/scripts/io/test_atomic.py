"""Atomic writes: a failed write leaves the old file and no temporary behind; usual permissions."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from scripts.io.atomic import WriteError, atomic_write, remove_stale_temporaries


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_text("old")

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(WriteError, match="RuntimeError: disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_new_file_gets_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write(target, lambda tmp: tmp.write_text("x"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize(
    "code, cause",
    [
        (errno.ENOSPC, "no space left on the disk"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_write_failures_name_the_file_and_cause_and_keep_the_old_version(tmp_path, monkeypatch, code, cause):
    target = tmp_path / "table.csv"
    atomic_write(target, lambda tmp: tmp.write_text("old"))

    def failing(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(WriteError, match=f"could not write {target}: {cause} \\(the previous version is unchanged\\)"):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_output_path_that_is_a_folder(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(WriteError, match="that path is a folder"):
        atomic_write(tmp_path / "out.csv", lambda tmp: tmp.write_text("x"))


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "last.pt").write_bytes(b"good")
    remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
