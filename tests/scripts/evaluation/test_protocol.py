"""What enters the paper row: which checkpoints, and how their scores are combined."""
from __future__ import annotations

import pytest

from scripts.evaluation.protocol import PAPER_COLUMNS, find_checkpoints, paper_row
from scripts.io.checkpoint import CheckpointError


def test_snapshots_in_epoch_order_else_best_else_a_message(tmp_path):
    for name in ("epoch_1310.pt", "epoch_1300.pt", "best.pt", "last.pt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_checkpoints(tmp_path, None)] == ["epoch_1300.pt", "epoch_1310.pt"]
    given = [tmp_path / "last.pt"]
    assert find_checkpoints(tmp_path, given) == given  # the files asked for, exactly
    for name in ("epoch_1310.pt", "epoch_1300.pt"):
        (tmp_path / name).unlink()
    assert find_checkpoints(tmp_path, None) == [tmp_path / "best.pt"]
    (tmp_path / "best.pt").unlink()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        find_checkpoints(tmp_path, None)


def test_paper_row_is_mean_and_population_std_over_checkpoints_in_percent():
    def score(v: float) -> dict:
        return {"average": {m: v for m in PAPER_COLUMNS.values()}}

    row = paper_row([score(0.70), score(0.72)])
    for col in PAPER_COLUMNS:
        mean, std = row[col]
        assert mean == pytest.approx(71.0) and std == pytest.approx(1.0)  # population std: |0.70 - 0.71| x 100
    assert paper_row([score(0.5)])["F1"] == (50.0, 0.0)
