"""Rows of dicts written as a CSV file, atomically (every table of every command)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from scripts.io.atomic import write_atomic


def write_csv(path: Path | str, rows: list[dict]) -> None:
    """Rows of dicts with the same keys as a CSV file (written atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: f"{v:.10g}" if isinstance(v, float) else v for k, v in r.items()})
    write_atomic(path, buf.getvalue())
