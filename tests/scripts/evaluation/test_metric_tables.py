"""scripts/evaluation/metric_tables.py: undefined rates (NaN) become JSON null wherever they sit."""

from __future__ import annotations

import json
import math

from scripts.evaluation.metric_tables import nan_to_null, summary_json


def test_nan_becomes_null_inside_dicts_and_lists_and_nothing_else_changes():
    nan = float("nan")
    data = {"a": nan, "b": {"c": 0.5, "d": [1.0, nan, {"e": nan}]}, "f": "nan", "g": None, "h": [2, "x"]}
    assert nan_to_null(data) == {
        "a": None,
        "b": {"c": 0.5, "d": [1.0, None, {"e": None}]},
        "f": "nan",
        "g": None,
        "h": [2, "x"],
    }
    assert math.isnan(data["a"])  # the input is left as it was


def test_summary_json_writes_strict_json(tmp_path):
    nan = float("nan")
    rows = {c: {"f1": 0.5, "precision": nan} for c in ("artery", "vein", "uncertain", "average")}
    summary_json(tmp_path / "s.json", rows, {"segments": {"av_accuracy": nan, "per_image": [nan, 0.25]}})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text
    back = json.loads(text)
    assert back["artery"] == {"f1": 0.5, "precision": None}
    assert back["segments"] == {"av_accuracy": None, "per_image": [None, 0.25]}
