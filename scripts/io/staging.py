"""A run's output folder, complete or absent: written into a hidden sibling, moved into place at the end.

``StagedFolder(final, ...)`` hands out ``stage`` (``.<name>.partial-<token>`` beside ``final``);
the run writes everything there; ``publish()`` renames the old ``final`` aside, renames the stage to
``final`` and deletes the old one. A run that is interrupted, however, leaves ``final`` as the
previous complete run left it (or absent), never a mix of two runs, and files of an earlier run
never survive next to the new ones. A folder that holds anything other than this command's own
outputs is refused instead of replaced. ``with StagedFolder(...) as stage:`` holds a
:class:`scripts.io.lock.FolderLock` (``.<name>.lock`` beside the folder) until the end, so two runs
never write the same folder and any stage or old folder found at the start is a leftover of a
killed run, which is removed; leaving the block without ``publish()`` deletes the stage. A full (or
read-only, or over-quota) disk while writing the stage is reported as a message naming the folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from scripts.core.errors import UserError
from scripts.core.runtime import ensure_folder
from scripts.io.atomic import disk_failure
from scripts.io.lock import FolderLock

log = logging.getLogger("avseg")


class OutputFolderError(UserError):
    """An output folder that cannot be replaced; the message says why and what to give instead."""


class StagedFolder:
    """See the module docstring. ``owned(path)`` says whether an entry of an existing ``final`` is
    one of this command's outputs; ``option`` names the folder in messages."""

    def __init__(self, final: Path, option: str, owned: Callable[[Path], bool], token: str) -> None:
        self.final = Path(os.path.abspath(final))
        self.option, self.owned = option, owned
        self.stage = self.final.parent / f".{self.final.name}.partial-{token}"
        self._old = self.final.parent / f".{self.final.name}.old-{token}"
        self._lock = FolderLock(self.final.parent / f".{self.final.name}.lock", f"{option} {self.final}")
        self.published = False

    def __enter__(self) -> Path:
        ensure_folder(self.final.parent, self.option)
        self._lock.__enter__()
        try:
            return self.prepare()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise

    def __exit__(self, *exc) -> None:
        try:
            if not self.published:
                self.discard()
        finally:
            self._lock.__exit__(*exc)
        cause = disk_failure(exc[1])
        if cause:
            kept = "the previous outputs there are unchanged" if self.final.is_dir() else "nothing was written there"
            raise OutputFolderError(
                f"could not write the outputs of {self.option} {self.final}: {cause} ({kept}). Free some space "
                "(or give a folder on another disk) and run the command again."
            ) from None

    def prepare(self) -> Path:
        """Check that ``final`` may be replaced, remove leftovers of killed runs, create the stage."""
        final = self.final
        cwd = Path.cwd().resolve()
        if final.resolve() == cwd or final.resolve() in cwd.parents:
            raise OutputFolderError(
                f"{self.option} {final}: this is the current folder (or above it); give a folder "
                "of its own, e.g. a new one below it"
            )
        if final.exists() and not final.is_dir():
            raise OutputFolderError(f"{self.option} {final}: a file of that name is in the way; give a folder")
        if final.is_dir():
            foreign = [p.name for p in sorted(final.iterdir()) if not self.owned(p)]
            if foreign:
                raise OutputFolderError(
                    f"{self.option} {final} holds files that are not this command's outputs ({', '.join(foreign[:5])}"
                    f"{' ...' if len(foreign) > 5 else ''}). A finished run replaces the folder's content as a whole, "
                    "so give an empty or new folder, or move those files away."
                )
        for leftover in final.parent.glob(f".{final.name}.partial-*"):
            self._remove(leftover, "an interrupted run's unfinished outputs")
        for leftover in final.parent.glob(f".{final.name}.old-*"):
            self._remove(leftover, "a previous run's outputs left during a replacement")
        try:
            self.stage.mkdir(parents=True)
        except OSError as err:
            raise OutputFolderError(
                f"{self.option} {final}: cannot create {self.stage} ({err.strerror or err})"
            ) from None
        return self.stage

    def publish(self) -> None:
        """Move the complete stage into place (two renames); the old outputs are deleted after."""
        if self.final.exists():
            os.rename(self.final, self._old)
        os.rename(self.stage, self.final)
        self.published = True
        shutil.rmtree(self._old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    @staticmethod
    def _remove(path: Path, what: str) -> None:
        log.info("removing %s: %s", path, what)
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
