"""Several processes, one message: a user's mistake under NPROC=2 is printed once, with exit code 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.cli.torchrun import exit_code
from scripts.core.errors import ERRORS_ENV, report_error

REPO = Path(__file__).resolve().parents[3]


def test_exit_codes_read_as_a_shell_reports_them():
    assert [exit_code(c) for c in (2, 3, 1, -9, -15, 0)] == [2, 3, 1, 137, 143, 1]


def test_report_goes_to_the_launchers_folder_or_is_printed_by_rank_0_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    report_error("bad thing")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    report_error("bad thing")
    assert capsys.readouterr().err == "error: bad thing\n"
    monkeypatch.setenv(ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "3")
    report_error("bad thing")
    assert (tmp_path / "rank3.txt").read_text() == "bad thing\n" and capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "unknown dataset name 'NOPE'"),
        (["--epochs", "0"], "argument --epochs/-e: must be at least 1, got 0"),
    ],
)
def test_a_mistake_under_two_processes_is_printed_once_with_exit_code_2(tmp_path, extra, message):
    env = dict(os.environ, AVSEG_DATA=str(tmp_path), NPROC="2")
    res = subprocess.run(
        ["sh", str(REPO / "train.sh"), "NOPE", "--device", "cpu", *extra],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count(message) == 1, res.stderr
    for noise in ("Traceback", "ChildFailedError", "exitcode", "OMP_NUM_THREADS"):
        assert noise not in res.stderr, res.stderr
