"""Vascular biomarkers from artery/vein maps: calibre (CRAE, CRVE, AVR), tortuosity, fractal
dimension, vessel density (README "Vascular biomarkers").

    python -m scripts.biomarkers predictions/*_av.png --photos photos/ --csv biomarkers.csv
    python -m scripts.biomarkers data/DRIVE_AV/test/1st_manual --photos data/DRIVE_AV/test/images \\
        --masks data/DRIVE_AV/test/mask --pixel-um 25 --csv drive_truth.csv

MAPS: files, folders or globs of RGB A/V maps (this project's ``_av.png``, or label-coloured PNGs:
red artery, blue vein, green/white uncertain) or probability maps (``_prob.png``: RGB = artery,
uncertain, vein probability; thresholded at 0.5 and decoded by the paper protocol). The kind is
told from the pixel values (``--kind`` to force it). An image's id is the map's file name without
extension and without a ``_av``/``_prob``/``_AVmanual`` suffix; its photograph (``--photos``) and
FOV mask (``--masks``) are found by that id. The optic disc is ``--disc X Y R`` (pixels, for every
map), a row of ``--disc-csv`` (columns id, x, y, radius), or located in the photograph.
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.core.errors import UserError
from scripts.data.images import find_file, find_mask
from scripts.data.images import IMAGE_EXTENSIONS, DataError, collect_inputs, decode_image, derive_fov, load_mask, load_photo
from scripts.data.labels import LabelError, decode_classes, label_to_channels
from scripts.evaluation.report import write_csv
from scripts.core.runtime import UsageError, positive_float
from scripts.vessels.disc import Disc, locate_disc
from scripts.vessels.measures import measure

log = logging.getLogger("avseg")
SUFFIXES = ("_av", "_prob", "_AVmanual", "_manual", "_label")
PROBABILITY_SHARE = 0.01  # more pixels than this with values other than 0 and 255: a probability map


def image_id(path: Path) -> str:
    stem = path.stem
    for suffix in SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def read_map(path: Path, kind: str = "auto") -> tuple[np.ndarray, str]:
    """A map file as (3, H, W) bool decoded classes (artery, vein, uncertain), and its kind."""
    img = decode_image(path)
    if img.mode in ("L", "I", "I;16", "1", "P") and kind != "prob":
        channels, _ = label_to_channels(img, path)  # index maps, palette labels
        return decode_classes(torch.from_numpy(channels.transpose(2, 0, 1))).numpy(), "av"
    rgb = np.asarray(img.convert("RGB"))
    if kind == "auto":
        off = ((rgb != 0) & (rgb != 255)).any(axis=2).mean()
        kind = "prob" if off > PROBABILITY_SHARE else "av"
    if kind == "prob":
        binary = rgb.transpose(2, 0, 1).astype(np.float32) / 255 > 0.5
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a few anti-aliased pixels in a label file
            try:
                binary = label_to_channels(img, path)[0].transpose(2, 0, 1)
            except LabelError as err:
                raise DataError(f"{err} Use --kind prob for a probability map.") from None
    return decode_classes(torch.from_numpy(np.ascontiguousarray(binary))).numpy(), kind


def read_disc_csv(path: Path) -> dict[str, Disc]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise UsageError(f"--disc-csv {path}: cannot be read ({err.strerror or err})") from None
    discs = {}
    for i, row in enumerate(rows, start=2):
        try:
            discs[row["id"]] = Disc(float(row["x"]), float(row["y"]), float(row["radius"]))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"--disc-csv {path}, line {i}: expected columns id, x, y, radius (pixels) with numbers, "
                             f"got {dict(row)}") from None
    return discs


def measure_map(path: Path, args: argparse.Namespace, discs: dict[str, Disc]) -> dict:
    """One CSV row: the map's id, file, kind, disc source and every biomarker."""
    classes, kind = read_map(path, args.kind)
    key = image_id(path)
    photo_file = find_file(args.photos, key, IMAGE_EXTENSIONS) if args.photos else None
    photo = load_photo(photo_file) if photo_file else None
    if photo is not None and photo.shape[:2] != classes.shape[1:]:
        raise DataError(f"{photo_file}: photograph size {photo.shape[1]}x{photo.shape[0]} differs from the map "
                        f"{path} ({classes.shape[2]}x{classes.shape[1]})")
    mask_file = args.masks and find_mask(args.masks, key)
    if mask_file:
        fov = load_mask(mask_file)
    elif photo is not None:
        fov = derive_fov(photo, photo_file)
    else:
        fov = np.ones(classes.shape[1:], bool)
    if fov.shape != classes.shape[1:]:
        raise DataError(f"{mask_file}: mask size {fov.shape[::-1]} differs from the map {path}")
    if args.disc:
        disc = Disc(*args.disc)
    elif key in discs:
        disc = discs[key]
    elif photo is not None:
        disc = locate_disc(photo, fov, str(photo_file))
    else:
        disc = None
        warnings.warn(f"{path}: no optic disc (give --disc, --disc-csv or --photos): zone measures, CRAE, CRVE "
                      "and AVR are left empty", stacklevel=2)
    values = measure(classes, disc, fov, args.pixel_um, source=str(path))
    return {"id": key, "map": str(path), "kind": kind, "disc_source": disc.source if disc else "", **values}


def run(args: argparse.Namespace) -> tuple[list[dict], list[tuple[Path, str]]]:
    files = collect_inputs(args.inputs)
    discs = read_disc_csv(args.disc_csv) if args.disc_csv else {}
    for folder, option in ((args.photos, "--photos"), (args.masks, "--masks")):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{option} {folder}: folder not found")
    rows, failures = [], []
    for path in files:
        try:
            rows.append(measure_map(path, args, discs))
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
