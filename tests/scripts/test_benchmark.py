"""The benchmark script runs end to end on a tiny configuration and writes its JSON."""
from __future__ import annotations

import json

from scripts.benchmark import main


def test_benchmark_tiny(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["--sizes", "32", "--modes", "literal", "optimised", "--n-filters", "4", "--reps", "1",
                 "--warmup", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "literal/this" in table and "optimised" in table
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["literal", "optimised"]
    assert all(r["ms_per_step"] > 0 and r["gflop_per_step"] > 0 and r["peak_mb"] > 0 for r in rows)
    # forward reuse skips three generator forwards: fewer FLOPs than the literal step
    assert rows[1]["gflop_per_step"] < rows[0]["gflop_per_step"]
