"""Atomic file writes: write a temporary file beside the target, fsync it, then rename it over the target.

A reader (or a crash, or a power loss) never sees half a file: the target is either the old or the
new version. A write that fails raises :class:`WriteError`, which names the file and the cause.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from scripts.core.errors import UserError

log = logging.getLogger("avseg")
_CAUSES = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "that path is a folder; give a file name",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
}


class WriteError(UserError, OSError):
    """A file could not be written; the message says which, why, and that the old version is intact.
    ``disk`` says what was wrong with the disk (full, over quota, read-only), None for other causes."""

    disk: str | None = None


DISK_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the disk, not the file: whatever was being written


def disk_failure(err: BaseException) -> str | None:
    """What a write error says about the disk (full, over quota, read-only), or None for other errors."""
    if isinstance(err, WriteError):
        return err.disk
    if isinstance(err, OSError) and not isinstance(err, UserError) and err.errno in DISK_FAILURES:
        return _CAUSES[err.errno]
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cause(err: BaseException, folder: Path) -> str:
    if not folder.is_dir() and any(p.is_file() for p in (folder, *folder.parents)):
        return _CAUSES[errno.ENOTDIR]
    if isinstance(err, OSError) and err.errno in _CAUSES:
        return _CAUSES[err.errno]
    try:  # torch.save reports a full disk as a RuntimeError without an errno
        if shutil.disk_usage(folder).free < 1 << 20:
            return "no space left on the disk"
    except OSError:
        pass
    return f"{type(err).__name__}: {err}"


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, give the file the usual permissions, fsync it, then rename it to ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:  # on disk before the rename: a power loss cannot leave a torn file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        state = "the previous version is unchanged" if path.is_file() else "nothing was written"
        cause = _cause(err, path.parent)
        failed = WriteError(f"could not write {path}: {cause} ({state})")
        failed.disk = disk_failure(err) or (cause if cause == _CAUSES[errno.ENOSPC] else None)
        raise failed from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files that an interrupted atomic write (a killed process) left in ``folder``."""
    for stale in Path(folder).glob(".*.tmp"):
        if stale.is_file():
            stale.unlink()
            log.info("removed %s, left by an interrupted write", stale)


def write_atomic(path: Path | str, text: str) -> None:
    """Write text to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, newline=""))
