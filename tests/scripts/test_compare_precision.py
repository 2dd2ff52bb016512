"""scripts/compare_precision.sh: the table of the demo over seeds (runs already done are not redone)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_table_gives_each_seed_its_f1_and_minutes_and_the_lowest_and_the_spread(tmp_path):
    for seed, f1, seconds in (("1", 61.5, 270), ("2", 55.25, 282), ("3", 58.0, 300)):
        (tmp_path / f"off_{seed}" / "results").mkdir(parents=True)
        (tmp_path / f"off_{seed}" / "results" / "paper_row.json").write_text(
            json.dumps({"percent": {"F1": {"mean": f1}}})
        )
        (tmp_path / f"off_{seed}.seconds").write_text(str(seconds))
    done = subprocess.run(
        ["sh", str(REPO / "scripts" / "compare_precision.sh"), str(tmp_path), "off", "1 2 3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "table.txt").read_text().splitlines()
    assert "CPU flags:" in lines[0]
    row = lines[-1].split()
    assert row[0] == "off" and row[1:4] == ["61.50", "(4.5", "min)"] and row[4:6] == ["55.25", "(4.7"]
    assert row[-4:] == ["58.25", "3.13", "55.25", "6.25"]  # mean, std, min, spread
    assert "done before" in done.stdout
