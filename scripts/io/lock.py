"""One process at a time writes a run's outputs: an operating-system lock held for the whole run.

The lock is ``flock(2)`` on a small file beside the outputs, taken through the ``filelock`` library
(the well-kept implementation of this; it also handles the platform differences). The kernel
releases such a lock when its holder exits, however it ends (``kill -9`` and power loss included),
so a lock left by a killed process never blocks the next start, and no process id has to be
guessed alive or dead. A live holder's pid, host and start time are kept in ``<lock>.owner`` so the
refusal can name it. (Network file systems that do not implement ``flock`` give no protection.)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import filelock

from scripts.core.errors import UserError


class BusyError(UserError):
    """Another live process holds the lock; the message names it."""


class FolderLock:
    """``with FolderLock(path, what):`` holds the lock file ``path`` (created if missing) or raises
    :class:`BusyError` at once, naming ``what`` and the holder."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self.owner = self.path.with_name(self.path.name + ".owner")
        self._lock = filelock.FileLock(str(self.path), timeout=0)

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise BusyError(
                f"{self.what} is in use by another process ({self.holder()}); wait for it to end or stop "
                "it. A killed process leaves no lock behind, so this one is alive."
            ) from None
        self.owner.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(sys.argv),
                }
            )
            + "\n"
        )
        return self

    def holder(self) -> str:
        try:
            info = json.loads(self.owner.read_text())
            return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its details are unknown"

    def __exit__(self, *exc) -> None:
        try:
            self.owner.unlink()
        except OSError:
            pass
        self._lock.release()
