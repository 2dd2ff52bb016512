"""A grader's corrections of one photograph's zone-B measurement: one small JSON file per photograph
(``<folder>/<id>.json``), written by the grading page (``sh grade.sh``) and read by
``biomarkers.py --corrections`` and the pages. Every number is checked on the way in, so that a file
edited by hand or a request from a page is refused with a message naming what is wrong.

    {"id": "01_test", "version": 3, "disc": {"x": 82.5, "y": 270.0, "radius": 38.0},
     "edits": [{"x": 171.0, "y": 301.5, "action": "flip"}], "exclude_image": false,
     "grader": "AB", "note": "", "updated": "2026-12-08T10:00:00+00:00"}

``disc`` null keeps the disc found without the grader; ``version`` counts the saves (a save naming
an older version than the file's is refused: two pages editing one photograph never lose an edit).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from scripts.data.images import DataError
from scripts.io.atomic import write_atomic
from scripts.vessels.disc import Disc
from scripts.vessels.zone_b import ACTIONS, VesselEdit

MAX_EDITS = 500
MAX_TEXT = 500


class InvalidCorrection(ValueError):
    """A correction that cannot be right (the message says which value and why)."""


@dataclass(frozen=True)
class Corrections:
    id: str
    version: int = 0
    disc: tuple[float, float, float] | None = None  # x, y, radius in pixels
    edits: tuple[VesselEdit, ...] = ()
    exclude_image: bool = False
    grader: str = ""
    note: str = ""
    updated: str = ""

    @property
    def changes(self) -> str:
        """What the grader changed, for the tables' ``corrections`` column ("" for nothing)."""
        parts = []
        if self.exclude_image:
            parts.append("image excluded")
        if self.disc is not None:
            parts.append("disc")
        for action in ACTIONS:
            n = sum(1 for e in self.edits if e.action == action)
            if n:
                parts.append(f"{n} {action}")
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "version": self.version,
            "disc": None if self.disc is None else dict(zip(("x", "y", "radius"), self.disc)),
            "edits": [{"x": e.x, "y": e.y, "action": e.action} for e in self.edits],
            "exclude_image": self.exclude_image,
            "grader": self.grader,
            "note": self.note,
            "updated": self.updated,
        }


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidCorrection(f"{what} must be a finite number, not {json.dumps(value)[:40]}")
    return float(value)


def _text(value, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidCorrection(f"{what} must be text of at most {MAX_TEXT} characters")
    return value


def parse(data: object, image_id: str, shape: tuple[int, int]) -> Corrections:
    """Check ``data`` (a decoded JSON object) for the ``shape`` (H, W) image ``image_id``."""
    if not isinstance(data, dict):
        raise InvalidCorrection("a correction must be a JSON object")
    if data.get("id", image_id) != image_id:
        raise InvalidCorrection(f"id {json.dumps(data.get('id'))[:40]} is not this photograph's ({image_id})")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidCorrection(f"version must be a whole number >= 0, not {json.dumps(version)[:40]}")
    h, w = shape
    disc = None
    if data.get("disc") is not None:
        raw = data["disc"]
        if not isinstance(raw, dict):
            raise InvalidCorrection("disc must be an object with x, y and radius (pixels), or null")
        x, y, r = (_number(raw.get(k), f"disc {k}") for k in ("x", "y", "radius"))
        if not (0 <= x < w and 0 <= y < h):
            raise InvalidCorrection(f"the disc centre ({x:g}, {y:g}) lies outside the {w} x {h} image")
        if not 0 < r <= max(h, w) / 4:
            raise InvalidCorrection(f"the disc radius {r:g} px must be > 0 and at most {max(h, w) / 4:g} px")
        disc = (x, y, r)
    raw_edits = data.get("edits", [])
    if not isinstance(raw_edits, list) or len(raw_edits) > MAX_EDITS:
        raise InvalidCorrection(f"edits must be a list of at most {MAX_EDITS} vessel edits")
    edits = []
    for k, e in enumerate(raw_edits, 1):
        if not isinstance(e, dict) or e.get("action") not in ACTIONS:
            raise InvalidCorrection(f"edit {k}: action must be one of {', '.join(ACTIONS)}")
        x, y = _number(e.get("x"), f"edit {k} x"), _number(e.get("y"), f"edit {k} y")
        if not (0 <= x < w and 0 <= y < h):
            raise InvalidCorrection(f"edit {k}: the point ({x:g}, {y:g}) lies outside the {w} x {h} image")
        edits.append(VesselEdit(x, y, e["action"]))
    exclude = data.get("exclude_image", False)
    if not isinstance(exclude, bool):
        raise InvalidCorrection("exclude_image must be true or false")
    return Corrections(
        image_id,
        version,
        disc,
        tuple(edits),
        exclude,
        _text(data.get("grader"), "grader"),
        _text(data.get("note"), "note"),
        _text(data.get("updated"), "updated"),
    )


def corrections_path(folder: Path, image_id: str) -> Path:
    return Path(folder) / f"{image_id}.json"


def read_corrections(folder: Path, image_id: str, shape: tuple[int, int]) -> Corrections | None:
    """The corrections of ``image_id`` in ``folder`` (None: none saved); a DataError naming the file
    when it is not valid."""
    path = corrections_path(folder, image_id)
    if not path.is_file():
        return None
    try:
        return parse(json.loads(path.read_text()), image_id, shape)
    except (json.JSONDecodeError, UnicodeDecodeError, InvalidCorrection) as err:
        raise DataError(f"{path}: not a valid correction ({err}); fix or delete the file") from None


def write_corrections(folder: Path, corrections: Corrections) -> Corrections:
    """Save ``corrections`` atomically as the next version, stamped with the time; returns what was saved."""
    saved = Corrections(
        corrections.id,
        corrections.version + 1,
        corrections.disc,
        corrections.edits,
        corrections.exclude_image,
        corrections.grader,
        corrections.note,
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_atomic(corrections_path(folder, corrections.id), json.dumps(saved.to_json(), indent=1) + "\n")
    return saved


def graded_disc(corrections: Corrections | None, disc: Disc | None) -> Disc | None:
    """The grader's disc where one was set, else ``disc``."""
    if corrections is None or corrections.disc is None:
        return disc
    return Disc(*corrections.disc, source="graded")
