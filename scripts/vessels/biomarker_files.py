"""The biomarkers of map files on disk: each map's photograph, FOV mask and optic disc found by its
image id, one row of measures per map, and a CSV of them all (``scripts/biomarkers.py``)."""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
from scripts.io.tables import write_csv
from scripts.vessels.disc import Disc, locate_disc, read_disc_csv, warn_unmatched_rows
from scripts.vessels.measures import measure


@dataclass(frozen=True)
class MapOptions:
    """Where each map's photograph, mask and disc come from (the options of ``biomarkers.py``)."""

    photos: Path | None = None
    masks: Path | None = None
    disc: tuple[float, float, float] | None = None  # X, Y, R for every map
    disc_csv: Path | None = None
    pixel_um: float | None = None
    kind: str = "auto"


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


def measure_map(path: Path, options: MapOptions, discs: dict[str, Disc]) -> dict:
    """One CSV row: the map's id, file, kind, disc source and every biomarker."""
    for suffix, what in NOT_MAPS.items():
        if path.stem.endswith(suffix):
            raise Skipped(f"{path}: {what}, not a map")
    classes, kind = read_map(path, options.kind)
    key = image_id(path)
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
        fov = derive_fov(photo, photo_file)
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
    elif options.disc_csv:
        if key not in discs:
            raise DataError(
                f"{path}: no row for image id '{key}' in --disc-csv {options.disc_csv}; add one (or "
                "leave --disc-csv out to locate the discs in --photos)"
            )
        disc = discs[key]
    elif photo is not None:
        disc = locate_disc(photo, fov, str(photo_file), vessels=classes.any(axis=0))
    else:
        disc = None
        warnings.warn(
            f"{path}: no optic disc (give --disc, --disc-csv or --photos): zone measures, CRAE, CRVE "
            "and AVR are left empty",
            stacklevel=2,
        )
    values = measure(classes, disc, fov, options.pixel_um, source=str(path))
    return {"id": key, "map": str(path), "kind": kind, "disc_source": disc.source if disc else "", **values}


def measure_maps(inputs: list[str], options: MapOptions, csv_path: Path) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Measure every map of ``inputs`` (files, folders, globs) into ``csv_path``; returns the rows
    and the failures. A file that is not a map (an overlay, a vessel map, a second map of an image
    already measured) is skipped with a line on stderr; one that cannot be read is a failure."""
    files = collect_inputs(inputs)
    if options.disc is not None and (options.disc[2] <= 0 or not all(math.isfinite(v) for v in options.disc)):
        raise UsageError(f"--disc {' '.join(f'{v:g}' for v in options.disc)}: X and Y must be finite and R > 0 pixels")
    discs = read_disc_csv(options.disc_csv) if options.disc_csv else {}
    if discs:
        warn_unmatched_rows(discs, [image_id(p) for p in files], options.disc_csv)
    for folder, option in ((options.photos, "--photos"), (options.masks, "--masks")):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{option} {folder}: folder not found")
    rows, failures, measured = [], [], {}
    for path in files:
        try:
            if image_id(path) in measured and not path.stem.endswith(tuple(NOT_MAPS)):
                raise Skipped(f"{path}: image '{image_id(path)}' is already measured from {measured[image_id(path)]}")
            rows.append(measure_map(path, options, discs))
            measured[rows[-1]["id"]] = path.name
        except Skipped as why:
            print(f"skipped: {why}", file=sys.stderr)
        except DataError as err:
            failures.append((path, str(err)))
            print(f"failed: {err}", file=sys.stderr)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    write_csv(
        csv_path,
        [{k: "" if isinstance(r.get(k), float) and math.isnan(r[k]) else r.get(k, "") for k in columns} for r in rows],
    )
    return rows, failures
