"""A prediction run photograph by photograph: one record per photograph, the run's settings, and the
tables rebuilt from the records.

Each photograph that is done (or has failed) leaves ``records/<id>.json``, written atomically after
its pictures: the record is what makes a photograph finished, so a process killed at any moment
leaves each photograph complete or absent. A record names its input (path, size, modification
time and SHA-256 of the content); on a resume, a photograph counts as finished when its record
names the same path and either the same size and modification time (no need to read the file
again, as ``make`` and ``rsync`` decide) or, failing that, the same content. ``run.json`` holds the
settings that shape the outputs (weights' SHA-256, model size, options); a resume with other
settings is refused, naming what differs. The tables (``predictions.csv``, ``failures.csv``, ``vessels.csv``) are
rebuilt from the records of the run's inputs, in input order, under a lock, so they always hold
each photograph exactly once, whichever process (or how many) wrote the records.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from scripts.core.errors import UsageError
from scripts.io.atomic import write_atomic
from scripts.io.checkpoint import file_sha256
from scripts.io.tables import write_rows
from scripts.vessels.zone_b import VESSEL_FIELDS

RECORDS = "records"
RUN_FILE = "run.json"
RUN_FORMAT = "avseg-predict-run/1"
PREDICTION_FIELDS = ("id", "file", "width", "height", "vessel_fraction", "artery_fraction", "vein_fraction")
FAILURE_FIELDS = ("id", "file", "stage", "reason", "traceback")
VESSELS_TABLE = "vessels.csv"  # every zone-B vessel measured, when biomarkers are on


def identity(path: Path, sha256: str | None = None) -> dict:
    """What a record keeps of its input: path, size, modification time and (when known) content SHA-256."""
    st = os.stat(path)
    return {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


@dataclass(frozen=True)
class Record:
    """One photograph's outcome: ``status`` "done" (``row``: its predictions.csv row) or "failed"
    (``stage`` and ``reason``; ``trace``: the traceback when the cause is not a bad input)."""

    id: str
    input: dict
    status: str
    row: dict
    stage: str = ""
    reason: str = ""
    trace: str = ""
    warnings: tuple[str, ...] = ()
    stages: dict = field(default_factory=dict)  # seconds per stage (decode, infer, finish)
    vessels: list = field(default_factory=list)  # its rows of vessels.csv (zone-B vessels measured)

    @property
    def seconds(self) -> float:
        return float(sum(self.stages.values()))

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "warnings": list(self.warnings)}, allow_nan=True) + "\n"


def record_path(folder: Path, name: str) -> Path:
    return Path(folder) / RECORDS / f"{name}.json"


def write_record(folder: Path, record: Record) -> None:
    write_atomic(record_path(folder, record.id), record.to_json())


def read_record(folder: Path, name: str) -> Record | None:
    """The record of ``name``, or None (none yet; an unreadable one counts as none and is redone)."""
    try:
        data = json.loads(record_path(folder, name).read_text())
        data["warnings"] = tuple(data.get("warnings", ()))
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def is_finished(record: Record | None, path: Path, retry_failed: bool = False) -> bool:
    """Whether ``record`` is the outcome of this very input (module docstring)."""
    if record is None or record.input.get("file") != str(path) or (retry_failed and record.status == "failed"):
        return False
    try:
        now = identity(path)
    except OSError:
        return False
    if (now["size"], now["mtime_ns"]) == (record.input.get("size"), record.input.get("mtime_ns")):
        return True
    return record.input.get("sha256") is not None and file_sha256(path) == record.input["sha256"]


def check_settings(folder: Path, settings: dict, overwrite: bool) -> bool:
    """Write ``run.json`` for a new run; for an existing one, True when its settings are ``settings``.
    Other settings are refused, unless ``overwrite`` (then False: the caller starts afresh)."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        write_atomic(path, json.dumps({"format": RUN_FORMAT, **settings}, indent=1) + "\n")
        return True
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("format") != RUN_FORMAT:
        raise UsageError(f"{path} is not the settings file of a prediction run; give another --out")
    differ = [k for k in sorted(set(settings) | set(saved) - {"format"}) if saved.get(k) != settings.get(k)]
    if not differ:
        return True
    if overwrite:
        return False
    shown = "; ".join(f"{k}: {saved.get(k)!r} then, {settings.get(k)!r} now" for k in differ[:4])
    raise UsageError(
        f"--out {folder} holds a run made with other settings ({shown}); its finished photographs would "
        "not match the new ones. Give a new --out, the same settings to resume, or --overwrite to start afresh."
    )


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Tables:
    """What the rebuilt tables hold: finished photographs, the failed ones' records, and warnings."""

    done: int
    failed: list[Record]
    warnings: int


def rebuild_tables(folder: Path, names: list[str]) -> Tables:
    """``predictions.csv`` and ``failures.csv`` from the records of ``names`` (in that order), written
    atomically under a lock, in two passes over the records (the columns, then the rows) so that memory
    does not grow with the cohort. Photographs without a record are left out."""
    folder = Path(folder)
    (folder / RECORDS).mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(folder / RECORDS / ".tables.lock")):  # other processes wait their turn
        fields, failed, done, noted, measured = dict.fromkeys(PREDICTION_FIELDS), [], 0, 0, False
        for name in names:
            record = read_record(folder, name)
            if record is not None and record.status == "done":
                fields.update(dict.fromkeys(record.row))
                measured = measured or "crae_px" in record.row
                done, noted = done + 1, noted + len(record.warnings)
            elif record is not None:
                failed.append(record)
        fields.update(dict.fromkeys(("duplicate_of", "warnings")))

        def rows() -> Iterator[dict]:
            first_by_content: dict[str, str] = {}
            for name in names:
                r = read_record(folder, name)
                if r is None or r.status != "done":
                    continue
                sha = r.input.get("sha256") or ""
                first = first_by_content.setdefault(sha, r.id) if sha else r.id
                yield {**r.row, "duplicate_of": first if first != r.id else "", "warnings": " | ".join(r.warnings)}

        write_rows(folder / "predictions.csv", list(fields), rows(), _cell)
        failures = (
            {"id": r.id, "file": r.input.get("file"), "stage": r.stage, "reason": r.reason, "traceback": r.trace}
            for r in failed
        )
        write_rows(folder / "failures.csv", list(FAILURE_FIELDS), failures, _cell)
        if measured:
            vessels = (
                v for name in names if (r := read_record(folder, name)) and r.status == "done" for v in r.vessels
            )
            write_rows(folder / VESSELS_TABLE, list(VESSEL_FIELDS), vessels, _cell)
    return Tables(done, failed, noted)
