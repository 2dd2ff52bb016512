"""Run a trained model on any fundus photographs.

    python -m scripts.predict photos/ --checkpoint DRIVE_AV/paper/best.pt --out predictions
    python -m scripts.predict 'clinic/*.jpg' --original CP_A.pth CP_V.pth CP_G.pth --image-size 592 592
    python -m scripts.predict photos/ --release weights/DRIVE_AV --out predictions   # authors' 2023 release
    python -m scripts.predict cohort/ --checkpoint best.pt --out maps --cohort --finish-workers 2 --threads 1

Inputs: files, folders or globs (jpg, png, tif, bmp, ...; any size; grey, RGB, RGBA, 8- or 16-bit).
The model runs at its training size; maps come back at each photograph's own size. Per image
``<out>/<name>_av.png`` (red artery, blue vein, green uncertain/crossing), ``_prob.png``
(probabilities x 255, RGB = artery, uncertain, vein), ``_vessel.png`` (binary vessel map) and
``_overlay.png``. ``--out`` is replaced as a whole when every input is done (an interrupted run
leaves the previous predictions as they were; a folder holding other files is refused); with
``--cohort`` (or under torchrun, ``NPROC=N sh predict.sh``) each photograph is kept as soon as it is
done and the same command resumes (docs/cohorts.md). Inputs that fail are listed in ``failures.csv``;
each photograph gets a quality flag (good, usable, reject: a rejected one has no biomarkers);
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
import shutil
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.groups import add_weight_options
from scripts.cli.types import float_between, int_between, pixel_um, positive_int
from scripts.core.distributed import init_from_env
from scripts.core.runtime import resolve_device
from scripts.data.images import collect_inputs
from scripts.inference.batch import (
    Outcome,
    PredictOptions,
    is_output,
    output_names,
    predict_cohort,
    predict_folder,
    run_settings,
)
from scripts.inference.pipeline import Workers
from scripts.inference.records import RECORDS
from scripts.inference.weights import load_predictor
from scripts.io.staging import StagedFolder
from scripts.vessels.disc import read_disc_csv, warn_unmatched_rows


def run(args: argparse.Namespace) -> Outcome:
    """Predict every input: into a staged copy of ``--out`` published whole when all are done, or
    (``--cohort``) photograph by photograph into ``--out`` itself, this process's share under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cohort = args.cohort or args.resume or world > 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ctx, device = init_from_env(device) if world > 1 else (None, device)
    files = collect_inputs(args.inputs)
    predictor = load_predictor(device, args.checkpoint, args.release, args.original, args.dataset, args.image_size)
    discs = read_disc_csv(args.disc_csv) if args.disc_csv else {}
    if discs:
        warn_unmatched_rows(discs, [*output_names(files), *(p.stem for p in files)], args.disc_csv)
    options = PredictOptions(
        args.out,
        args.masks,
        args.batch_size,
        args.tta,
        not args.no_biomarkers,
        args.pixel_um,
        Workers(args.decode_workers, args.finish_workers),
        args.retry_failed,
        args.progress_every,
    )
    if cohort:
        settings = run_settings(options, predictor, args.disc_csv)
        return predict_cohort(options, files, predictor, discs, device, settings, args.resume, args.overwrite, ctx)
    staged = StagedFolder(args.out, "--out", is_output, str(os.getpid()))
    with staged as stage:
        outcome = predict_folder(options, files, predictor, discs, device, stage, echo_warnings=True)
        shutil.rmtree(stage / RECORDS)  # the photographs' records serve a cohort run's resume only
        staged.publish()
    return outcome


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
    g = p.add_argument_group(
        "cohorts (docs/cohorts.md)",
        "Without --cohort, --out is written as a whole when every photograph is done (an interrupted run "
        "leaves the previous --out as it was): the better choice for a folder of photographs. With --cohort "
        "each photograph's outputs are kept as soon as it is done, and running the same command again "
        "resumes: finished photographs are skipped, the tables rebuilt. Under torchrun (NPROC=N sh "
        "predict.sh) the photographs are split between the processes and --cohort is implied.",
    )
    g.add_argument("--cohort", action="store_true", help="write and resume photograph by photograph")
    g.add_argument("--resume", action="store_true", help="like --cohort, and --out must hold a run to resume")
    g.add_argument("--overwrite", action="store_true", help="with --cohort: start afresh when the settings changed")
    g.add_argument("--retry-failed", action="store_true", help="with --cohort: redo the photographs that failed")
    for stage, work in (
        ("decode", "decode and resize photographs while the model runs"),
        ("finish", "write the pictures and measure the biomarkers"),
    ):
        g.add_argument(
            f"--{stage}-workers",
            type=int_between(0, 64, "worker processes"),
            default=0,
            metavar="N",
            help=f"processes that {work} (0: in this process)",
        )
    g.add_argument(
        "--threads",
        type=int_between(1, 1024, "CPU threads"),
        default=None,
        metavar="N",
        help="CPU threads of the networks (default: PyTorch's, one per core); with --finish-workers on a CPU, 1 "
        "leaves the other cores to the workers (docs/cohorts.md#every-stage-overlapped)",
    )
    g.add_argument(
        "--progress-every",
        type=float_between(1, 86400, "seconds, up to a day"),
        default=60.0,
        metavar="S",
        help="seconds between progress lines when the output is not a terminal",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: predict(args))


def predict(args: argparse.Namespace) -> int:
    outcome = run(args)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    who = f"process {rank} of {world}: " if world > 1 else ""
    tables = outcome.tables
    print(
        f"{who}{outcome.worked} photograph(s) processed now, {outcome.skipped} already finished; {args.out} holds "
        f"{tables.done} finished and {len(tables.failed)} failed (predictions.csv, failures.csv)"
        + (f"; {tables.warnings} warning(s) in the warnings column of predictions.csv" if tables.warnings else "")
    )
    if tables.failed:
        print(f"{len(tables.failed)} photograph(s) failed:", file=sys.stderr)
        for record in tables.failed[:20]:  # the message names the file
            print(f"  {record.reason}", file=sys.stderr)
        if len(tables.failed) > 20:
            print(f"  ... and {len(tables.failed) - 20} more in failures.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
