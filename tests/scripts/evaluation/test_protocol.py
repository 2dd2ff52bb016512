"""What enters the paper row: which checkpoints, and how their scores are combined."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.evaluation.protocol import PAPER_COLUMNS, paper_row
from scripts.io.job import JobFolderError, find_snapshots, snapshot_epoch


def test_the_row_takes_protocol_snapshots_in_epoch_order_and_others_only_when_asked(tmp_path):
    for name in ("epoch_1310.pt", "stop_epoch_0734.pt", "epoch_1300.pt", "best.pt", "last.pt", "config.json"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_snapshots(tmp_path)] == ["epoch_1300.pt", "epoch_1310.pt"]
    assert [p.name for p in find_snapshots(tmp_path, "all")] == ["stop_epoch_0734.pt", "epoch_1300.pt", "epoch_1310.pt"]
    assert find_snapshots(tmp_path, "best") == [tmp_path / "best.pt"]
    for name in ("epoch_1310.pt", "epoch_1300.pt"):
        (tmp_path / name).unlink()
    # a run stopped before its snapshot epochs: no silent fallback; the message names what there is
    with pytest.raises(
        JobFolderError,
        match=r"no snapshots at the protocol's epochs.*stop_epoch_0734.pt.*"
        r"--snapshots all.*best.pt \(--snapshots best\)",
    ):
        find_snapshots(tmp_path)
    for p in tmp_path.iterdir():
        p.unlink()
    with pytest.raises(JobFolderError, match="no checkpoints"):
        find_snapshots(tmp_path)
    assert [snapshot_epoch(Path(n)) for n in ("epoch_0094.pt", "stop_epoch_0005.pt", "best.pt")] == [94, 5, None]


def test_paper_row_is_mean_and_population_std_over_checkpoints_in_percent():
    def score(v: float) -> dict:
        return {"average": {m: v for m in PAPER_COLUMNS.values()}}

    row = paper_row([score(0.70), score(0.72)])
    for col in PAPER_COLUMNS:
        mean, std = row[col]
        assert mean == pytest.approx(71.0) and std == pytest.approx(1.0)  # population std: |0.70 - 0.71| x 100
    assert paper_row([score(0.5)])["F1"] == (50.0, 0.0)
