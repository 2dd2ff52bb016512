"""Vascular biomarkers from artery/vein maps: calibre (CRAE, CRVE, AVR), tortuosity, fractal
dimension, vessel density (README "Vascular biomarkers").

    python -m scripts.biomarkers predictions/*_av.png --photos photos/ --csv biomarkers.csv
    python -m scripts.biomarkers data/DRIVE_AV/test/1st_manual --photos data/DRIVE_AV/test/images \\
        --masks data/DRIVE_AV/test/mask --pixel-um 25 --csv drive_truth.csv

MAPS: files, folders or globs of RGB A/V maps (this project's ``_av.png``, or label-coloured PNGs:
red artery, blue vein, green/white uncertain), index maps (one channel: 0 background, 1 artery,
2 vein, 3 uncertain) or probability maps (``_prob.png``: RGB = artery, uncertain, vein
probability; thresholded at 0.5 and decoded by the paper protocol). The kind is told from the
pixel values (``--kind`` to force it); a file that is none of these is refused by name. Given
predict's output folder, the ``_av.png`` maps are measured and the other files skipped with a
line each (overlays, binary vessel maps, and a second map of an image already measured). An image's id is the map's file name without
extension and without a ``_av``/``_prob``/``_AVmanual`` suffix; its photograph (``--photos``) and
FOV mask (``--masks``) are found by that id. The optic disc is ``--disc X Y R`` (pixels, for every
map), a row of ``--disc-csv`` (columns id, x, y, radius), or located in the photograph.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.core.errors import UserError
from scripts.data.images import find_file, find_mask
from scripts.data.images import IMAGE_EXTENSIONS, DataError, collect_inputs, decode_image, derive_fov, load_mask, load_photo
from scripts.data.labels import LabelError, decode_classes, label_to_channels
from scripts.evaluation.report import write_csv
from scripts.core.runtime import UsageError, positive_float
from scripts.vessels.disc import Disc, locate_disc, read_disc_csv
from scripts.vessels.measures import measure

log = logging.getLogger("avseg")
SUFFIXES = ("_av", "_prob", "_AVmanual", "_manual", "_label")
NOT_MAPS = {"_overlay": "an overlay picture (the photograph with the map drawn on it)"}
PROBABILITY_SHARE = 0.01  # more pixels than this with values other than 0 and 255: a probability map
PHOTO_SHARE = 0.2  # more pixels than this bright red and not dark green: a photograph, not a probability map
KINDS = {"av": "A/V colour map", "index": "index map", "prob": "probability map", "vessel": "binary vessel map"}


class Skipped(Exception):
    """A file that is not a map to measure (an overlay, a vessel map, a second map of one image)."""


def image_id(path: Path) -> str:
    stem = path.stem
    for suffix in SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def classify(img: Image.Image, path: Path) -> str:
    """The kind of a decoded map file (a key of ``KINDS``), or a DataError naming the file.

    One channel: values 0-3 are an index map, 0/255 a binary vessel map. Colour: label colours only
    (up to ``PROBABILITY_SHARE`` anti-aliased pixels) is an A/V colour map; other values are a
    probability map, unless most pixels are bright red with some green, as in a photograph."""
    if img.mode in ("L", "I", "I;16", "1"):
        values = np.unique(np.asarray(img))
        if np.isin(values, (0, 1, 2, 3)).all() and img.mode != "1":
            return "index"
        if np.isin(values, (0, 255)).all() or img.mode == "1":
            return "vessel"
        raise DataError(f"{path}: a one-channel image with values {values[:8].tolist()}: neither an index map (0 "
                        "background, 1 artery, 2 vein, 3 uncertain) nor a binary vessel map (0/255)")
    rgb = np.asarray(img.convert("RGB"))
    if ((rgb != 0) & (rgb != 255)).any(axis=2).mean() <= PROBABILITY_SHARE:
        return "av"
    if ((rgb[..., 0] >= 128) & (rgb[..., 1] >= 32)).mean() > PHOTO_SHARE:
        raise DataError(f"{path}: looks like a photograph or an overlay (most pixels bright red and green), not a "
                        "map; give A/V maps (_av.png) or probability maps (_prob.png)")
    return "prob"


def read_map(path: Path, kind: str = "auto") -> tuple[np.ndarray, str]:
    """A map file as (3, H, W) bool decoded classes (artery, vein, uncertain), and its kind.

    Raises :class:`Skipped` for a binary vessel map (it has no artery/vein classes)."""
    img = decode_image(path)
    found = classify(img, path) if kind == "auto" else ("index" if img.mode in ("L", "I", "I;16") and kind == "av"
                                                         else kind)
    if found == "vessel":
        raise Skipped(f"{path}: a binary vessel map; the biomarkers need artery and vein classes (an A/V map)")
    if found == "index":
        channels, _ = label_to_channels(img, path)
        return decode_classes(torch.from_numpy(channels.transpose(2, 0, 1))).numpy(), "index"
    rgb = np.asarray(img.convert("RGB"))
    if found == "prob":
        binary = rgb.transpose(2, 0, 1).astype(np.float32) / 255 > 0.5
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a few anti-aliased pixels in a label file
            try:
                binary = label_to_channels(img, path)[0].transpose(2, 0, 1)
            except LabelError as err:
                raise DataError(f"{err} Use --kind prob for a probability map.") from None
    return decode_classes(torch.from_numpy(np.ascontiguousarray(binary))).numpy(), found


def _find(folder: Path | None, option: str, key: str, path: Path, finder) -> Path | None:
    """The file of image ``key`` in ``folder`` (None when the option was not given); a DataError
    naming the id when the option was given and it holds none."""
    if folder is None:
        return None
    found = finder(folder, key)
    if found is None:
        raise DataError(f"{path}: no file for image id '{key}' in {option} {folder}; add it, or rename the map so "
                        "its id (its name without _av/_prob) matches")
    return found


def measure_map(path: Path, args: argparse.Namespace, discs: dict[str, Disc]) -> dict:
    """One CSV row: the map's id, file, kind, disc source and every biomarker."""
    for suffix, what in NOT_MAPS.items():
        if path.stem.endswith(suffix):
            raise Skipped(f"{path}: {what}, not a map")
    classes, kind = read_map(path, args.kind)
    key = image_id(path)
    photo_file = _find(args.photos, "--photos", key, path, lambda f, k: find_file(f, k, IMAGE_EXTENSIONS))
    photo = load_photo(photo_file) if photo_file else None
    if photo is not None and photo.shape[:2] != classes.shape[1:]:
        raise DataError(f"{photo_file}: photograph size {photo.shape[1]}x{photo.shape[0]} differs from the map "
                        f"{path} ({classes.shape[2]}x{classes.shape[1]})")
    mask_file = _find(args.masks, "--masks", key, path, find_mask)
    if mask_file:
        fov = load_mask(mask_file)
    elif photo is not None:
        fov = derive_fov(photo, photo_file)
    else:
        fov = np.ones(classes.shape[1:], bool)
        warnings.warn(f"{path}: no FOV for image '{key}' (give --masks or --photos): the whole image counts as the "
                      "field of view", stacklevel=2)
    if fov.shape != classes.shape[1:]:
        raise DataError(f"{mask_file}: mask size {fov.shape[::-1]} differs from the map {path}")
    if args.disc:
        disc = Disc(*args.disc)
    elif args.disc_csv:
        if key not in discs:
            raise DataError(f"{path}: no row for image id '{key}' in --disc-csv {args.disc_csv}; add one (or leave "
                            "--disc-csv out to locate the discs in --photos)")
        disc = discs[key]
    elif photo is not None:
        disc = locate_disc(photo, fov, str(photo_file), vessels=classes.any(axis=0))
    else:
        disc = None
        warnings.warn(f"{path}: no optic disc (give --disc, --disc-csv or --photos): zone measures, CRAE, CRVE "
                      "and AVR are left empty", stacklevel=2)
    values = measure(classes, disc, fov, args.pixel_um, source=str(path))
    return {"id": key, "map": str(path), "kind": kind, "disc_source": disc.source if disc else "", **values}


def run(args: argparse.Namespace) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Measure every map; returns the rows and the failures (skipped files are neither)."""
    files = collect_inputs(args.inputs)
    if args.disc is not None and (args.disc[2] <= 0 or not all(math.isfinite(v) for v in args.disc)):
        raise UsageError(f"--disc {' '.join(f'{v:g}' for v in args.disc)}: X and Y must be finite and R > 0 pixels")
    discs = read_disc_csv(args.disc_csv) if args.disc_csv else {}
    for folder, option in ((args.photos, "--photos"), (args.masks, "--masks")):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{option} {folder}: folder not found")
    rows, failures, measured = [], [], {}
    for path in files:
        try:
            if image_id(path) in measured and not path.stem.endswith(tuple(NOT_MAPS)):
                raise Skipped(f"{path}: image '{image_id(path)}' is already measured from {measured[image_id(path)]}")
            rows.append(measure_map(path, args, discs))
            measured[rows[-1]["id"]] = path.name
        except Skipped as why:
            print(f"skipped: {why}", file=sys.stderr)
        except DataError as err:
            failures.append((path, str(err)))
            print(f"failed: {err}", file=sys.stderr)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    write_csv(args.csv, [{k: "" if isinstance(r.get(k), float) and math.isnan(r[k]) else r.get(k, "") for k in columns}
                         for r in rows])
    return rows, failures


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="MAPS", help="A/V or probability maps: files, folders or globs")
    p.add_argument("--csv", type=Path, required=True, help="write one row per map here")
    p.add_argument("--photos", type=Path, help="folder of the photographs (disc location, FOV)")
    p.add_argument("--masks", type=Path, help="folder of FOV masks (<id>_mask.* or <id>.*)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--disc", type=float, nargs=3, metavar=("X", "Y", "R"), help="optic disc centre and radius (px)")
    where.add_argument("--disc-csv", type=Path, help="CSV with columns id, x, y, radius (px)")
    p.add_argument("--pixel-um", type=positive_float, default=None, metavar="U",
                   help="micrometres per pixel: calibres and CRAE/CRVE also in micrometres")
    p.add_argument("--kind", choices=["auto", "av", "prob"], default="auto", help="map kind (default: from the values)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rows, failures = run(args)
    except UserError as err:  # a bug shows its traceback instead
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(rows)} map(s) measured: {args.csv}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
