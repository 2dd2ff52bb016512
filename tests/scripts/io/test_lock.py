"""One process per output folder: a live holder is refused by name, a killed one leaves nothing that blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.io.lock import BusyError, FolderLock

REPO = Path(__file__).resolve().parents[3]
HOLD = """
import sys, time
from scripts.io.lock import FolderLock
with FolderLock(sys.argv[1], "the folder X"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_live_holder_is_refused_by_name_and_a_killed_one_blocks_nothing(tmp_path):
    lock = tmp_path / ".x.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            BusyError,
            match=rf"the folder X is in use by another process \(pid {holder.pid} on .*"
            r"started .*A killed process leaves no lock behind",
        ):
            with FolderLock(lock, "the folder X"):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs in the holder
        holder.wait()
    assert (tmp_path / ".x.lock.owner").exists()  # its record is left behind, but the kernel released the lock
    with FolderLock(lock, "the folder X"):
        assert "pid" in (tmp_path / ".x.lock.owner").read_text()
    assert not (tmp_path / ".x.lock.owner").exists()


def test_two_holders_in_one_process_exclude_each_other(tmp_path):
    with FolderLock(tmp_path / ".l", "A"):
        with pytest.raises(BusyError, match="A is in use"):
            with FolderLock(tmp_path / ".l", "A"):
                pass
    with FolderLock(tmp_path / ".l", "A"):  # released on exit
        pass
