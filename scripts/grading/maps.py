"""The biomarkers of map files on disk: each map's photograph, FOV mask and optic disc found by its
image id, one row of measures per map and one per zone-B vessel, with a grader's corrections, and
their CSV files (``scripts/biomarkers.py``, the grading page)."""

from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.core.errors import UsageError
from scripts.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    collect_inputs,
    derive_fov,
    find_file,
    find_mask,
    load_mask,
    load_photo,
)
from scripts.data.map_files import NOT_MAPS, Skipped, image_id, read_map
from scripts.figures.pages import biomarkers_page
from scripts.figures.zone_b import zone_b_figure
from scripts.grading.corrections import Corrections, graded_disc, read_corrections
from scripts.io.atomic import write_atomic
from scripts.io.tables import write_csv, write_rows
from scripts.vessels.disc import Disc, locate_disc, read_disc_csv, warn_unmatched_rows
from scripts.vessels.graph import VesselGraph
from scripts.vessels.measures import Biomarkers, measure
from scripts.vessels.zone_b import VESSEL_FIELDS, vessel_rows


@dataclass(frozen=True)
class MapOptions:
    """Where each map's photograph, mask and disc come from (the options of ``biomarkers.py``)."""

    photos: Path | None = None
    masks: Path | None = None
    disc: tuple[float, float, float] | None = None  # X, Y, R for every map
    disc_csv: Path | None = None
    pixel_um: float | None = None
    kind: str = "auto"
    corrections: Path | None = None  # a folder of a grader's <id>.json files
    figures: Path | None = None  # write each map's zone-B figure here


def _find(folder: Path | None, option: str, key: str, path: Path, finder) -> Path | None:
    """The file of image ``key`` in ``folder`` (None when the option was not given); a DataError
    naming the id when the option was given and it holds none."""
    if folder is None:
        return None
    found = finder(folder, key)
    if found is None:
        raise DataError(
            f"{path}: no file for image id '{key}' in {option} {folder}; add it, or rename the map so "
            "its id (its name without _av/_prob) matches"
        )
    return found


@dataclass
class MapCase:
    """One map ready to measure: its classes, photograph (if found), FOV and the disc found for it
    before any grader's correction."""

    id: str
    path: Path
    kind: str
    classes: np.ndarray  # (3, H, W) bool: artery, vein, uncertain
    photo: np.ndarray | None
    fov: np.ndarray
    disc: Disc | None


def load_case(path: Path, options: MapOptions, discs: dict[str, Disc], photo_file: Path | None = None) -> MapCase:
    """The map ``path`` with its photograph (``photo_file``, else found in ``options.photos`` by its
    image id), FOV mask and optic disc (``options``' disc, else a row of ``discs``, else located)."""
    for suffix, what in NOT_MAPS.items():
        if path.stem.endswith(suffix):
            raise Skipped(f"{path}: {what}, not a map")
    classes, kind = read_map(path, options.kind)
    key = image_id(path)
    if photo_file is None:
        photo_file = _find(options.photos, "--photos", key, path, lambda f, k: find_file(f, k, IMAGE_EXTENSIONS))
    photo = load_photo(photo_file) if photo_file else None
    if photo is not None and photo.shape[:2] != classes.shape[1:]:
        raise DataError(
            f"{photo_file}: photograph size {photo.shape[1]}x{photo.shape[0]} differs from the map "
            f"{path} ({classes.shape[2]}x{classes.shape[1]})"
        )
    mask_file = _find(options.masks, "--masks", key, path, find_mask)
    if mask_file:
        fov = load_mask(mask_file)
    elif photo is not None:
        fov = derive_fov(photo, str(photo_file))
    else:
        fov = np.ones(classes.shape[1:], bool)
        warnings.warn(
            f"{path}: no FOV for image '{key}' (give --masks or --photos): the whole image counts as the field of view",
            stacklevel=2,
        )
    if fov.shape != classes.shape[1:]:
        raise DataError(f"{mask_file}: mask size {fov.shape[::-1]} differs from the map {path}")
    if options.disc:
        disc = Disc(*options.disc)
    elif key in discs:
        disc = discs[key]
    elif options.disc_csv:
        raise DataError(
            f"{path}: no row for image id '{key}' in --disc-csv {options.disc_csv}; add one (or "
            "leave --disc-csv out to locate the discs in --photos)"
        )
    elif photo is not None:
        disc = locate_disc(photo, fov, str(photo_file), vessels=np.asarray(classes.any(axis=0)))
    else:
        disc = None
        warnings.warn(
            f"{path}: no optic disc (give --disc, --disc-csv or --photos): zone measures, CRAE, CRVE "
            "and AVR are left empty",
            stacklevel=2,
        )
    return MapCase(key, path, kind, classes, photo, fov, disc)


# What an excluded image leaves empty: the zone-B summaries a grader judged unusable
ZONE_B_SUMMARIES = ("crae_px", "crve_px", "avr", "crae_um", "crve_um")


def measure_case(
    case: MapCase, pixel_um: float | None, corrections: Corrections | None = None, graph: VesselGraph | None = None
) -> Measured:
    """The biomarkers of ``case`` with a grader's ``corrections`` applied: its CSV row (id, file,
    kind, disc source, every measure, the plausibility flags, what the grader changed) and its
    per-vessel rows."""
    if corrections is not None and corrections.disc is not None:
        Disc(*corrections.disc).check_fits(case.classes.shape[1:], f"{case.path}: the grader's disc")
    disc = graded_disc(corrections, case.disc)
    edits = corrections.edits if corrections is not None else ()
    found = measure(case.classes, disc, case.fov, pixel_um, graph=graph, source=str(case.path), edits=edits)
    values = dict(found.values)
    flags = list(found.flags)
    if found.unmatched_edits:
        flags.append(f"{len(found.unmatched_edits)} grader edit(s) match no vessel")
    if corrections is not None and corrections.exclude_image:
        values.update({k: math.nan for k in ZONE_B_SUMMARIES if k in values})
        flags.insert(0, "excluded by the grader")
    row = {
        "id": case.id,
        "map": str(case.path),
        "kind": case.kind,
        "disc_source": disc.source if disc else "",
        **values,
        "flags": "; ".join(flags),
        "graded": int(corrections is not None),
        "corrections": corrections.changes if corrections is not None else "",
    }
    return Measured(row, vessel_rows(case.id, found.vessels, values.get("pixel_um")), found, disc)


@dataclass
class Measured:
    """One map's measurement: its CSV row, its per-vessel rows, what :func:`measure` found and the disc used."""

    row: dict
    vessels: list[dict]
    found: Biomarkers
    disc: Disc | None


def measure_map(path: Path, options: MapOptions, discs: dict[str, Disc]) -> Measured:
    """One map's measurement, with its corrections (``options.corrections``) and figure (``options.figures``)."""
    case = load_case(path, options, discs)
    corrections = (
        read_corrections(options.corrections, case.id, case.classes.shape[1:]) if options.corrections else None
    )
    measured = measure_case(case, options.pixel_um, corrections)
    if options.figures is not None and measured.disc is not None:
        photo = case.photo if case.photo is not None else np.zeros((*case.classes.shape[1:], 3), np.uint8)
        figure = zone_b_figure(photo, case.classes, measured.disc, measured.found.vessels)
        options.figures.mkdir(parents=True, exist_ok=True)
        Image.fromarray(figure).save(options.figures / f"{case.id}_zone_b.png")
    return measured


def measure_maps(inputs: list[str], options: MapOptions, csv_path: Path) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Measure every map of ``inputs`` (files, folders, globs) into ``csv_path``; returns the rows
    and the failures. A file that is not a map (an overlay, a vessel map, a second map of an image
    already measured) is skipped with a line on stderr; one that cannot be read is a failure."""
    files = collect_inputs(inputs)
    if options.disc is not None and (options.disc[2] <= 0 or not all(math.isfinite(v) for v in options.disc)):
        raise UsageError(f"--disc {' '.join(f'{v:g}' for v in options.disc)}: X and Y must be finite and R > 0 pixels")
    discs = read_disc_csv(options.disc_csv) if options.disc_csv else {}
    if discs and options.disc_csv:
        warn_unmatched_rows(discs, [image_id(p) for p in files], options.disc_csv)
    for folder, option in ((options.photos, "--photos"), (options.masks, "--masks")):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{option} {folder}: folder not found")
    if options.corrections is not None and not options.corrections.is_dir():
        raise UsageError(f"--corrections {options.corrections}: folder not found")
    rows: list[dict] = []
    vessels: list[dict] = []
    failures: list[tuple[Path, str]] = []
    measured: dict[str, str] = {}
    for path in files:
        try:
            if image_id(path) in measured and not path.stem.endswith(tuple(NOT_MAPS)):
                raise Skipped(f"{path}: image '{image_id(path)}' is already measured from {measured[image_id(path)]}")
            done = measure_map(path, options, discs)
            rows.append(done.row)
            vessels += done.vessels
            measured[done.row["id"]] = path.name
        except Skipped as why:
            print(f"skipped: {why}", file=sys.stderr)
        except DataError as err:
            failures.append((path, str(err)))
            print(f"failed: {err}", file=sys.stderr)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    write_csv(csv_path, [{k: _cell(r.get(k, "")) for k in columns} for r in rows])
    write_rows(vessels_csv(csv_path), list(VESSEL_FIELDS), ({k: _cell(v) for k, v in r.items()} for r in vessels))
    return rows, failures


def write_report(csv_path: Path, rows: list[dict], options: MapOptions) -> Path:
    """``<name>_report.html`` beside the CSV: the table, each map's zone-B figure (from
    ``options.figures``) and the per-vessel table; returns its path."""
    page_path = csv_path.with_name(f"{csv_path.stem}_report.html")
    figures = options.figures
    pictures = [os.path.relpath(figures / f"{r['id']}_zone_b.png", csv_path.parent) for r in rows] if figures else []
    info = {
        "maps": len(rows),
        "photographs": str(options.photos or ""),
        "corrections": str(options.corrections or "none"),
        "graded": sum(1 for r in rows if r.get("graded")),
    }
    write_atomic(page_path, biomarkers_page(csv_path, vessels_csv(csv_path), pictures, info))
    return page_path


def vessels_csv(csv_path: Path) -> Path:
    """Where the per-vessel table of a biomarkers CSV goes: beside it, ``<name>_vessels.csv``."""
    return csv_path.with_name(f"{csv_path.stem}_vessels.csv")


def _cell(value):
    return "" if isinstance(value, float) and math.isnan(value) else value
