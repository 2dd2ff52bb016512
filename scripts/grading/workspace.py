"""The photographs of a folder to grade, and their measurement with a grader's corrections.

FOLDER is a ``predict.sh`` output folder (its ``<id>_av.png`` maps; each photograph and disc from
``predictions.csv``) or a folder of maps with their photographs in ``--photos``. A grader's
corrections live in ``FOLDER/corrections/<id>.json`` (:mod:`scripts.grading.corrections`). The
measurement is :func:`scripts.grading.maps.measure_case`, the one ``biomarkers.py`` uses.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import filelock
import numpy as np
from PIL import Image

from scripts.core.errors import UsageError
from scripts.data.images import DataError, collect_inputs
from scripts.data.map_files import NOT_MAPS, Skipped, image_id
from scripts.grading.corrections import (
    Corrections,
    InvalidCorrection,
    parse,
    read_corrections,
    write_corrections,
)
from scripts.grading.maps import MapCase, MapOptions, Measured, load_case, measure_case
from scripts.vessels.disc import Disc
from scripts.vessels.graph import VesselGraph, build_graph
from scripts.vessels.measures import channels_of

CORRECTIONS = "corrections"
DISPLAY_PX = 1600  # the longest side of the pictures the page shows
CACHED = 4  # photographs kept decoded (a 3504 x 2336 photograph and its graph take about 150 MB)
SUMMARY = ("crae_px", "crve_px", "avr", "crae_um", "crve_um", "artery_zone_b_vessels", "vein_zone_b_vessels")


class VersionConflict(Exception):
    """A save based on an older version than the one on disk (another page saved in between)."""


@dataclass
class Entry:
    """One photograph of the folder: its map, its photograph when known, and why it cannot be graded."""

    id: str
    map: Path
    photo: Path | None = None
    problem: str = ""


class Workspace:
    """The folder being graded (module docstring). Thread-safe: the server answers from several threads."""

    def __init__(self, folder: Path, options: MapOptions, corrections: Path | None = None) -> None:
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise UsageError(f"{folder}: folder not found; give a predict.sh output folder or a folder of maps")
        self.options = options
        self.corrections = Path(corrections).resolve() if corrections else self.folder / CORRECTIONS
        self.discs: dict[str, Disc] = {}
        self.entries: dict[str, Entry] = self._discover()
        if not self.entries:
            raise UsageError(f"{folder}: no A/V maps found (<id>_av.png from predict.sh, or label maps with --photos)")
        self._cache: OrderedDict[str, tuple[MapCase, VesselGraph]] = OrderedDict()
        self._lock = threading.Lock()

    def _discover(self) -> dict[str, Entry]:
        table = self.folder / "predictions.csv"
        entries: dict[str, Entry] = {}
        if table.is_file() and self.options.photos is None:
            with open(table, newline="") as f:
                for row in csv.DictReader(f):
                    key = row.get("id", "")
                    entry = Entry(key, self.folder / f"{key}_av.png", self._photo_path(row.get("file", "")))
                    if row.get("disc_x") and row.get("disc_y") and row.get("disc_radius"):
                        self.discs[key] = Disc(
                            float(row["disc_x"]),
                            float(row["disc_y"]),
                            float(row["disc_radius"]),
                            row.get("disc_source") or "located",
                            float(row.get("disc_confidence") or 1.0),
                        )
                    if not entry.map.is_file():
                        entry.problem = (
                            f"{entry.map.name}: no A/V map (the photograph failed, or predict ran without it)"
                        )
                    elif entry.photo is None:
                        entry.problem = f"{row.get('file', '')}: photograph not found"
                    entries[key] = entry
            return entries
        for path in collect_inputs([str(self.folder)]):
            if path.stem.endswith(tuple(NOT_MAPS)) or path.parent == self.corrections:
                continue
            key = image_id(path)
            if key in entries:
                continue
            entry = Entry(key, path)
            if path.is_symlink() and not path.resolve().is_relative_to(self.folder):
                entry.problem = f"{path.name}: a link to a file outside {self.folder}; copy the file instead"
            entries[key] = entry
        for entry in entries.values():
            if not entry.problem:
                entry.problem = _unreadable(entry.map)
        return entries

    def _photo_path(self, name: str) -> Path | None:
        """A photograph named in predictions.csv: as written (absolute, or relative to where predict ran,
        tried from here and from the folder's parent)."""
        if not name:
            return None
        for candidate in (Path(name), self.folder.parent / name, self.folder / name):
            if candidate.is_file():
                return candidate
        return None

    def listing(self) -> list[dict]:
        """Every photograph: id, whether it can be graded (and why not), whether it has corrections."""
        out = []
        for key, e in self.entries.items():
            path = self.corrections / f"{key}.json"
            out.append({"id": key, "problem": e.problem, "graded": path.is_file()})
        return out

    def case(self, key: str) -> tuple[MapCase, VesselGraph]:
        """The loaded photograph ``key`` and its vessel graph (KeyError: not in the folder; DataError:
        its files cannot be read, and it is marked so)."""
        entry = self.entries[key]
        if entry.problem:
            raise DataError(entry.problem)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # located discs and derived FOVs: the page shows them
                case = load_case(entry.map, self.options, self.discs, photo_file=entry.photo)
        except (DataError, Skipped) as err:
            entry.problem = str(err)
            raise DataError(str(err)) from None
        graph = build_graph(channels_of(case.classes), fov=case.fov)
        with self._lock:
            self._cache[key] = (case, graph)
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return case, graph

    def corrections_of(self, key: str, shape: tuple[int, int]) -> Corrections | None:
        return read_corrections(self.corrections, key, shape)

    def measure(self, key: str, corrections: Corrections | None) -> Measured:
        case, graph = self.case(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what the warnings say is in the flags and the vessel table
            return measure_case(case, self.options.pixel_um, corrections, graph=graph)

    def state(self, key: str, corrections: Corrections | None = None, measured: Measured | None = None) -> dict:
        """What the page shows of photograph ``key``: size, discs, corrections, CRAE/CRVE/AVR, flags,
        vessels (``measured``: the measurement with ``corrections``, when already made)."""
        case, _ = self.case(key)
        shape = case.classes.shape[1:]
        if corrections is None:
            corrections = self.corrections_of(key, shape)
        if measured is None:
            measured = self.measure(key, corrections)
        values = measured.row
        return {
            "id": key,
            "width": shape[1],
            "height": shape[0],
            "display_scale": _display_scale(shape),
            "disc": _disc(measured.disc),
            "found_disc": _disc(case.disc),
            "corrections": (corrections or Corrections(key)).to_json(),
            "summary": {k: _finite(values.get(k)) for k in SUMMARY},
            "pixel_um": _finite(values.get("pixel_um")),
            "pixel_um_estimated": bool(values.get("pixel_um_estimated")),
            "flags": [f for f in str(values.get("flags", "")).split("; ") if f],
            "vessels": [
                {**{k: _finite(v) for k, v in row.items()}, "edits": vessel.edits}
                for row, vessel in zip(measured.vessels, measured.found.vessels)
            ],
            "unmatched_edits": len(measured.found.unmatched_edits),
        }

    def save(self, key: str, data: object) -> dict:
        """Check ``data`` (the page's corrections, with the version it started from), save it as the
        next version and return the new state. InvalidCorrection: a value is wrong, or a new edit names
        no vessel (its point is on no vessel crossing zone B); VersionConflict: another page saved first.
        An edit saved before that no longer matches a vessel (the disc moved) is kept, and flagged."""
        case, _ = self.case(key)
        shape = case.classes.shape[1:]
        proposed = parse(data, key, shape)
        if proposed.disc is not None:
            try:
                Disc(*proposed.disc).check_fits(shape, "the disc")
            except UsageError as err:
                raise InvalidCorrection(str(err)) from None
        self.corrections.mkdir(exist_ok=True)
        with filelock.FileLock(str(self.corrections / f".{key}.lock"), timeout=10):
            current = self.corrections_of(key, shape)
            on_disk = current.version if current is not None else 0
            if proposed.version != on_disk:
                raise VersionConflict(
                    f"{key} was saved by another page (version {on_disk}; this page had version "
                    f"{proposed.version}): reload to see that version, then make your change again"
                )
            measured = self.measure(key, proposed)
            before = set(current.edits) if current is not None else set()
            unknown = [e for e in measured.found.unmatched_edits if e not in before]
            if unknown:
                e = unknown[0]
                raise InvalidCorrection(
                    f"no vessel crosses zone B at ({e.x:g}, {e.y:g}): {e.action} names a vessel by a point on its "
                    "crossing; pick one of the numbered vessels"
                )
            saved = write_corrections(self.corrections, proposed)
        return self.state(key, saved, measured)

    def picture(self, key: str, which: str) -> bytes:
        """The photograph (``photo``) or the A/V map (``map``, transparent where there is no vessel) as a
        PNG of at most ``DISPLAY_PX`` px."""
        case, _ = self.case(key)
        shape = case.classes.shape[1:]
        scale = _display_scale(shape)
        size = (max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale)))
        if which == "photo":
            photo = case.photo if case.photo is not None else np.zeros((*shape, 3), np.uint8)
            picture = cv2.resize(np.ascontiguousarray(photo[..., :3]), size, interpolation=cv2.INTER_AREA)
        else:
            rgba = np.zeros((*shape, 4), np.uint8)
            colours = ((255, 0, 0, 255), (0, 0, 255, 255), (0, 255, 0, 255))
            for channel, colour in zip(case.classes, colours):
                rgba[channel] = colour
            picture = cv2.resize(rgba, size, interpolation=cv2.INTER_NEAREST)
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()


def _unreadable(path: Path) -> str:
    """Why ``path`` is not a picture at all (its header alone is read; a damaged body shows when it is opened)."""
    try:
        Image.open(path).close()  # reads the header
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        return f"{path.name}: not a readable picture ({type(err).__name__}: {err})"
    return ""


def _display_scale(shape: tuple[int, int]) -> float:
    return min(1.0, DISPLAY_PX / max(shape))


def _finite(value):
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _disc(disc: Disc | None) -> dict | None:
    if disc is None:
        return None
    return {"x": disc.x, "y": disc.y, "radius": disc.radius, "source": disc.source, "confidence": disc.confidence}
