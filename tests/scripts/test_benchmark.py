"""The benchmark script runs end to end on a tiny configuration and writes its JSON."""
from __future__ import annotations

import json

import pytest

from scripts.benchmark import main


def test_benchmark_tiny(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["--sizes", "32", "--modes", "literal", "reuse", "batched", "--n-filters", "4", "--reps", "1",
                 "--warmup", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "literal/this" in table and "batched" in table and "flags:" in table
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["literal", "reuse", "batched"]
    assert all(r["ms_per_step"] > 0 and r["gflop_per_step"] > 0 and r["peak_mb"] > 0 for r in rows)
    literal, reuse, batched = rows
    # forward reuse skips three generator forwards: fewer FLOPs than the literal step
    assert reuse["gflop_per_step"] < literal["gflop_per_step"]
    # batching D changes no arithmetic, only the number of calls
    assert batched["gflop_per_step"] == pytest.approx(reuse["gflop_per_step"], rel=1e-9)
    assert batched["aten_ops_per_step"] < reuse["aten_ops_per_step"] < literal["aten_ops_per_step"]


def test_ddp_benchmark_runs_plain_and_distributed():
    from scripts.benchmark import ddp_benchmark

    table = ddp_benchmark(2, 32, 4, 2, "cpu", reps=1, warmup=1)
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["plain,", "DDP,", "DDP,"]
    assert all(float(line.split()[-1]) > 0 for line in lines[2:5]) and "not how it scales" in table
