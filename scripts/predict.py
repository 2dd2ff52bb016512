"""Run a trained model on any fundus photographs.

    python -m scripts.predict photos/ --checkpoint DRIVE_AV/paper/best.pt --out predictions
    python -m scripts.predict 'clinic/*.jpg' --original CP_A.pth CP_V.pth CP_G.pth --image-size 592 592
    python -m scripts.predict photos/ --release weights/DRIVE_AV --out predictions   # authors' 2023 release

Inputs: files, folders or globs (jpg, png, tif, bmp, ...; any size; grey, RGB, RGBA, 8- or 16-bit).
The model runs at its training size; maps come back at each photograph's own size. Per image
``<out>/<name>_av.png`` (red artery, blue vein, green uncertain/crossing), ``_prob.png``
(probabilities x 255, RGB = artery, uncertain, vein), ``_vessel.png`` (binary vessel map) and
``_overlay.png``. ``--out`` is replaced as a whole when every input is done (an interrupted run
leaves the previous predictions as they were; a folder holding other files is refused);
``predictions.csv`` also holds the vascular biomarkers of each map (optic disc
located in the photograph; ``--no-biomarkers`` skips them); with the 2023 release the probabilities are its softmax classes (artery,
uncertain, vein) and the classes its argmax (SPEC 9.4). For the run ``<out>/predictions.csv`` (one row per input: its output name and
source file) and ``<out>/report.html`` (each photograph's overlay, A/V map and biomarkers on one page,
the inputs that failed and why). ``<name>`` is the file name without extension; where two inputs share it, their folders
and extension are added (``a/01.jpg``, ``b/01.png``: ``a__01_jpg``, ``b__01_png``). FOV masks come from ``--masks DIR`` (``<stem>_mask.*`` or ``<stem>.*``) or
are derived from the photograph.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.groups import add_weight_options
from scripts.cli.types import pixel_um, positive_int
from scripts.core.runtime import resolve_device
from scripts.data.images import collect_inputs
from scripts.inference.batch import PredictOptions, is_output, output_names, predict_all
from scripts.inference.weights import load_predictor
from scripts.io.staging import StagedFolder
from scripts.vessels.disc import read_disc_csv, warn_unmatched_rows


def run(args: argparse.Namespace) -> tuple[int, list[tuple[Path, str]]]:
    """Predict every input into a staged copy of ``--out``, published whole when all are done."""
    device = resolve_device(args.device)
    files = collect_inputs(args.inputs)
    predictor = load_predictor(device, args.checkpoint, args.release, args.original, args.dataset, args.image_size)
    discs = read_disc_csv(args.disc_csv) if args.disc_csv else {}
    if discs:
        warn_unmatched_rows(discs, [*output_names(files), *(p.stem for p in files)], args.disc_csv)
    staged = StagedFolder(args.out, "--out", is_output, str(os.getpid()))
    with staged as stage:
        options = PredictOptions(args.out, args.masks, args.batch_size, args.tta, not args.no_biomarkers, args.pixel_um)
        done = predict_all(options, files, predictor, discs, device, stage)
        staged.publish()
    return done


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders or globs")
    add_weight_options(p, "a .pt of this project, or a job folder (uses best.pt)")
    p.add_argument("--dataset", default=None, help="with --release: which dataset's weights, when DIR holds several")
    p.add_argument("--out", type=Path, default=Path("predictions"))
    p.add_argument("--masks", type=Path, default=None, help="folder of FOV masks (<name>_mask.* or <name>.*)")
    p.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="model input size (default: the checkpoint's training size; 720 720 for the 2023 release)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument(
        "--no-biomarkers",
        action="store_true",
        help="skip the vascular biomarkers (docs/biomarkers.md) in predictions.csv",
    )
    p.add_argument(
        "--pixel-um",
        type=pixel_um,
        default=None,
        metavar="U",
        help="micrometres per pixel of the photographs: calibres and CRAE/CRVE also in micrometres",
    )
    p.add_argument(
        "--disc-csv",
        type=Path,
        default=None,
        help="optic discs you know (columns id, x, y, radius in pixels; id = output name or file name "
        "without extension); photographs without a row get a located disc",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: predict(args))


def predict(args: argparse.Namespace) -> int:
    done, failures = run(args)
    print(f"{done} image(s) written to {args.out} (predictions.csv)")
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, msg in failures:  # the message names the file
            print(f"  {msg}" if str(path) in msg else f"  {path}: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
