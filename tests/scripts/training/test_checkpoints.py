"""The checkpoint policy: which file is written when, under which name, with what in it."""

from __future__ import annotations

import torch

from model import build_networks
from scripts.training.checkpoints import CheckpointSaver


def _saver(tmp_path, **kw) -> tuple[CheckpointSaver, list]:
    resumes: list = []
    nets = build_networks(4)

    def resume_state(epoch: int, step: int) -> dict:
        resumes.append((epoch, step))
        return {"epoch": epoch, "step_in_epoch": step}

    kw = {"save_from": 4, "save_every": 2, "last_every_minutes": 10.0, **kw}
    return CheckpointSaver(tmp_path, nets, lambda: {"image_size": [32, 32]}, resume_state, **kw), resumes


def _names(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_snapshots_on_the_grid_a_stop_snapshot_off_it_and_last_pt_at_the_end(tmp_path):
    saver, resumes = _saver(tmp_path)
    for epoch in range(1, 8):
        saver.epoch_done(epoch, last_epoch=epoch == 7)
    saver.finished(7, validated=True)
    assert _names(tmp_path) == ["epoch_0004.pt", "epoch_0006.pt", "last.pt", "stop_epoch_0007.pt"]
    assert resumes == [(2, 0), (8, 0)]  # last.pt after the first epoch and the last: resume at the next epoch
    snap = torch.load(tmp_path / "epoch_0006.pt", weights_only=True)
    assert snap["epoch"] == 6 and snap["snapshot"] == "protocol" and set(snap["nets"]) == {"G_A", "G_V", "G"}


def test_best_pt_only_on_improvement_and_the_final_weights_without_validation(tmp_path):
    saver, _ = _saver(tmp_path / "a")
    (tmp_path / "a").mkdir()
    assert saver.validated(2, 0.5) and not saver.validated(4, 0.4) and saver.validated(6, 0.6)
    saver.finished(6, validated=True)
    assert torch.load(tmp_path / "a" / "best.pt", weights_only=True)["val_f1"] == 0.6
    (tmp_path / "b").mkdir()
    saver, _ = _saver(tmp_path / "b")
    saver.finished(3, validated=False)
    assert torch.load(tmp_path / "b" / "best.pt", weights_only=True)["epoch"] == 3


def test_last_pt_by_the_clock_and_when_stopped_and_nothing_on_other_ranks(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    saver, resumes = _saver(tmp_path, last_every_minutes=1.0)
    saver.step_done((1, 3))
    clock[0] = 61.0
    saver.step_done((1, 4))
    saver.step_done((1, 5))  # the clock starts again after a write
    saver.stopped((2, 0))
    assert resumes == [(1, 4), (2, 0)] and _names(tmp_path) == ["last.pt"]
    other = tmp_path / "rank1"
    other.mkdir()
    quiet, _ = _saver(other, writes=False)
    quiet.epoch_done(4, last_epoch=True)
    quiet.finished(4, validated=False)
    assert _names(other) == []


def test_a_first_last_pt_after_the_first_epoch_so_an_early_kill_loses_at_most_one_epoch(tmp_path):
    saver, resumes = _saver(tmp_path)  # last.pt every 10 minutes
    saver.epoch_done(1, last_epoch=False)
    saver.writer.wait(strict=True)
    assert _names(tmp_path) == ["last.pt"] and resumes == [(2, 0)]
    saver.epoch_done(2, last_epoch=False)
    assert resumes == [(2, 0)]  # then by the clock
