"""Tables and files for metric results: printed tables, per-image CSV, summary JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from scripts.data.labels import CLASSES
from scripts.evaluation.metrics import AVERAGE, PAPER_METRICS, PROB_METRICS, VESSEL
from scripts.io.atomic import write_atomic

ROWS = (*CLASSES, AVERAGE)
TABLE_ROWS = (*ROWS, VESSEL)


def format_table(result: dict[str, dict[str, float]], metrics=PAPER_METRICS, percent: bool = True) -> str:
    """A fixed-width table: one row per class (artery, vein, uncertain, average)."""
    scale = 100.0 if percent else 1.0
    head = f"{'class':<10}" + "".join(f"{m:>13}" for m in metrics)
    lines = [head, "-" * len(head)]
    for cls in TABLE_ROWS:
        if cls in result:
            lines.append(f"{cls:<10}" + "".join(f"{scale * result[cls][m]:>13.2f}" for m in metrics))
    return "\n".join(lines)


def metrics_csv(
    path: Path | str,
    rows: list[tuple[str | tuple[str, ...], dict[str, dict[str, float]]]],
    key_names: tuple[str, ...] = ("id",),
) -> None:
    """One row per (key, class): the key columns (e.g. checkpoint, id), class, every metric (fractions)."""
    buf = io.StringIO()
    metrics = [*PAPER_METRICS, *PROB_METRICS]
    writer = csv.writer(buf)
    writer.writerow([*key_names, "class", *metrics])
    for key, result in rows:
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) != len(key_names):
            raise ValueError(f"{path}: row key {keys} does not match the columns {key_names}")
        for cls in TABLE_ROWS:
            writer.writerow([*keys, cls, *(f"{result[cls].get(m, float('nan')):.10g}" for m in metrics)])
    write_atomic(path, buf.getvalue())


def summary_json(path: Path | str, result: dict[str, dict[str, float]] | None, extra: dict | None = None) -> None:
    """{class: {metric: value}} for artery, vein, uncertain, average (fractions; none when ``result``
    is None), plus ``extra`` keys. NaN (a rate with nothing to count) is written as null."""
    data = {c: result[c] for c in ROWS} if result is not None else {}
    data |= extra or {}
    write_atomic(path, json.dumps(nan_to_null(data), indent=1, allow_nan=False) + "\n")


def nan_to_null(x):
    """``x`` with every float NaN inside dicts and lists replaced by None (JSON null)."""
    if isinstance(x, dict):
        return {k: nan_to_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [nan_to_null(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x
