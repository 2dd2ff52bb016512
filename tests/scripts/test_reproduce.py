"""scripts/reproduce.sh end to end on the CPU with tiny settings: train, test, the four outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_reproduce_runs_end_to_end(synthetic_root, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "AVSEG_DATA": str(synthetic_root)}
    res = subprocess.run(
        [
            "sh",
            str(REPO / "scripts" / "reproduce.sh"),
            "SYNTHETIC",
            str(out),
            "--n-filters",
            "8",
            "--image-size",
            "64",
            "64",
            "--epochs",
            "3",
            "--save-from",
            "2",
            "--save-every",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert {"train.log", "test.log", "paper_row.json", "timing.json", "figures"} <= {p.name for p in out.iterdir()}
    row = json.loads((out / "paper_row.json").read_text())
    assert row["checkpoints"] == ["epoch_0002", "epoch_0003"]  # the protocol's snapshots
    timing = json.loads((out / "timing.json").read_text())
    assert (
        timing["steps"] == 9 and timing["step_mode"] == "batched" and timing["total_wall_s"] >= timing["train_wall_s"]
    )
    assert 0 <= timing["data_wait_share"] < 1 and timing["ms_per_step"] > 0
    assert len(list((out / "figures").glob("*_test.png"))) == 3  # and each prediction's zone-B figure
    assert len(list((out / "figures").glob("*_test_zone_b.png"))) == 3
    assert "Paper table row" in (out / "test.log").read_text()


def test_reproduce_reports_a_failed_training(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "AVSEG_DATA": str(tmp_path / "none")}
    res = subprocess.run(
        ["sh", str(REPO / "scripts" / "reproduce.sh"), "DRIVE_AV", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2 and "training failed (exit 2)" in res.stderr
    assert "dataset folder not found" in (tmp_path / "o" / "train.log").read_text()
