"""Rows of dicts written as a CSV file, atomically (every table of every command)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path

from scripts.io.atomic import atomic_write


def _ten_digits(value: object) -> object:
    return f"{value:.10g}" if isinstance(value, float) else value


def write_rows(
    path: Path | str, fields: list[str], rows: Iterable[dict], cell: Callable[[object], object] = _ten_digits
) -> None:
    """``rows`` streamed into a CSV file with columns ``fields`` (written atomically; a key a row lacks is
    an empty cell, one not in ``fields`` is left out; ``cell`` formats each value), so that a large
    table is never whole in memory."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: cell(v) for k, v in row.items()})

    atomic_write(path, write)


def write_csv(path: Path | str, rows: list[dict]) -> None:
    """Rows of dicts with the same keys as a CSV file (written atomically)."""
    write_rows(path, list(rows[0]) if rows else ["id"], rows)
