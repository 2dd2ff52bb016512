"""The two-command GPU plan (scripts/gpu_check.sh), rehearsed on the CPU at tiny settings.

Command 1 measures the variant matrix, then trains until its time runs out (so many epochs are
asked for that it cannot finish) and says how to continue; command 2 resumes from the last.pt that
command 1 left in the work folder, finishes a (now shorter) schedule and tests the snapshots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(REPO / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.mark.slow
def test_two_commands_train_resume_and_test(synthetic_root, tmp_path):
    work = tmp_path / "gpu_out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DATASET": "SYNTHETIC",
        "DEVICE": "cpu",
        "SIZE": "32",
        "NF": "4",
        "MATRIX_S": "40",
        "TOTAL_S": "70",
        "RESERVE_S": "10",
        "TRAIN_ARGS": "--epochs 100000 --save-from 100000 --val-every 5",
    }
    first = _run([str(work), str(synthetic_root)], env)
    out = first.stdout
    assert first.returncode == 0, out[-3000:] + first.stderr[-2000:]
    assert len(out) < 12_000
    assert "== step variants" in out and "== best: " in out  # the matrix's tables
    assert "schedule incomplete" in out and "--continue" in out
    flags = (work / "train_flags.txt").read_text().split()
    assert "--step" in flags and "--cuda-graph" in flags and "off" == flags[flags.index("--cuda-graph") + 1]
    last = torch.load(work / "SYNTHETIC" / "gpu" / "last.pt", weights_only=True, map_location="cpu")
    reached = last["epoch"]  # the next epoch to train
    assert reached > 1
    assert "time limit" in (work / "train1.log").read_text()

    env["TOTAL_S"] = "240"
    env["TRAIN_ARGS"] = f"--epochs {reached + 3} --save-from {reached + 1} --save-every 1 --val-every 5"
    second = _run(["--continue", str(work), str(synthetic_root)], env)
    out = second.stdout
    assert second.returncode == 0, out[-3000:] + second.stderr[-2000:]
    assert len(out) < 12_000
    assert "schedule complete" in out and "Paper table row" in out
    log = (work / "train2.log").read_text()
    assert f"resumed {work / 'SYNTHETIC' / 'gpu' / 'last.pt'} at epoch {reached}" in log
    row = json.loads((work / "results" / "paper_row.json").read_text())
    # the protocol's snapshots, not the one the first command's time-limit stop wrote
    assert (work / "SYNTHETIC" / "gpu" / f"stop_epoch_{reached - 1:04d}.pt").is_file()
    assert row["checkpoints"] == [f"epoch_{e:04d}" for e in range(reached + 1, reached + 4)]


def test_continue_without_a_first_command_is_refused(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    res = _run(["--continue", str(tmp_path / "w")], env)
    assert res.returncode == 2 and "run without --continue first" in res.stderr


def test_cuda_asked_for_on_a_machine_without_one_is_a_message_and_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    env = {k: v for k, v in os.environ.items() if k != "DEVICE"}
    done = _run([str(tmp_path / "work")], env)
    assert done.returncode == 2 and "PyTorch sees no CUDA GPU here" in done.stderr and "DEVICE=cpu" in done.stderr
    assert not (tmp_path / "work").exists()  # nothing measured, nothing written
