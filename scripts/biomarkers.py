"""Vascular biomarkers from artery/vein maps: calibre (CRAE, CRVE, AVR), tortuosity, fractal
dimension, vessel density (docs/biomarkers.md).

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

Beside the CSV, ``<name>_vessels.csv`` lists every vessel measured in zone B (where it crosses,
its chord and width, whether Knudtson's pairing used it, why a width was not used); the ``flags``
column says what a person should look at. ``--corrections`` applies a grader's corrections
(``sh grade.sh``); ``--figures`` draws what was measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.types import pixel_um
from scripts.grading.maps import MapOptions, measure_maps, vessels_csv, write_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="MAPS", help="A/V or probability maps: files, folders or globs")
    p.add_argument("--csv", type=Path, required=True, help="write one row per map here")
    p.add_argument("--photos", type=Path, help="folder of the photographs (disc location, FOV)")
    p.add_argument("--masks", type=Path, help="folder of FOV masks (<id>_mask.* or <id>.*)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--disc", type=float, nargs=3, metavar=("X", "Y", "R"), help="optic disc centre and radius (px)")
    where.add_argument("--disc-csv", type=Path, help="CSV with columns id, x, y, radius (px)")
    p.add_argument(
        "--pixel-um",
        type=pixel_um,
        default=None,
        metavar="U",
        help="micrometres per pixel: calibres and CRAE/CRVE also in micrometres",
    )
    p.add_argument("--kind", choices=["auto", "av", "prob"], default="auto", help="map kind (default: from the values)")
    p.add_argument(
        "--corrections",
        type=Path,
        metavar="FOLDER",
        help="a grader's corrections (<id>.json, written by sh grade.sh): the disc, vessels flipped or "
        "excluded, images excluded; the rows say what was corrected",
    )
    p.add_argument("--figures", type=Path, metavar="DIR", help="write each map's zone-B figure here (<id>_zone_b.png)")
    p.add_argument(
        "--report",
        action="store_true",
        help="also write <name>_report.html beside the CSV: the table, the zone-B figures (in --figures, "
        "default <name>_figures/) and the vessel table",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = MapOptions(
        args.photos,
        args.masks,
        tuple(args.disc) if args.disc else None,
        args.disc_csv,
        args.pixel_um,
        args.kind,
        args.corrections,
        args.figures if args.figures or not args.report else args.csv.with_name(f"{args.csv.stem}_figures"),
    )
    return run_command(lambda: measure(args.inputs, options, args.csv, args.report))


def measure(inputs: list[str], options: MapOptions, csv: Path, report: bool) -> int:
    rows, failures = measure_maps(inputs, options, csv)
    print(f"{len(rows)} map(s) measured: {csv}, its vessels: {vessels_csv(csv)}")
    if report:
        print(f"report: {write_report(csv, rows, options)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
