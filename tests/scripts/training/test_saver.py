"""Background checkpoint writes: a snapshot of the state at hand-over, atomic, failures reported."""

from __future__ import annotations

import logging

import pytest
import torch

from scripts.io.checkpoint import CheckpointError
from scripts.training.saver import BackgroundSaver, to_host


def test_written_file_holds_the_state_at_hand_over(tmp_path):
    w = torch.zeros(1000)
    saver = BackgroundSaver()
    saver.submit({"w": w, "meta": {"epoch": 3, "list": [w[:2]]}}, tmp_path / "last.pt")
    w.add_(1.0)  # training goes on while the file is written
    assert saver.wait() is None
    loaded = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(loaded["w"], torch.zeros(1000)) and loaded["meta"]["epoch"] == 3
    assert torch.equal(loaded["meta"]["list"][0], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_to_host_copies_instead_of_aliasing():
    t = torch.ones(3)
    out = to_host({"a": (t, 1)}, pin=False)
    t.zero_()
    assert torch.equal(out["a"][0], torch.ones(3)) and out["a"][1] == 1 and isinstance(out["a"], tuple)


def test_failed_write_is_reported_and_previous_file_kept(tmp_path, caplog):
    target = tmp_path / "last.pt"
    saver = BackgroundSaver()
    saver.submit({"v": torch.tensor(1)}, target, wait=True)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    saver.submit({"v": torch.tensor(2)}, blocker / "last.pt")  # its parent is a file: the write fails
    with caplog.at_level(logging.ERROR, logger="avseg"):
        failure = saver.wait()
    assert failure and "not_a_folder" in failure and "is a file, not a folder" in failure
    assert "could not write" in caplog.text
    assert int(torch.load(target, weights_only=True)["v"]) == 1


def test_strict_wait_raises_a_checkpoint_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match="could not write"):
        BackgroundSaver().submit({"v": torch.tensor(1)}, tmp_path / "f" / "x.pt", wait=True)
