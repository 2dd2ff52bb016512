"""Evaluate a training run's checkpoints on the test split with the paper protocol (SPEC section 6).

    python -m scripts.test --dataset DRIVE_AV --job_name drive_paper
    python -m scripts.test --dataset DRIVE_AV --release weights/DRIVE_AV   # the authors' 2023 release

The authors' released checkpoints (``--release``, or ``--original`` files of that variant) are scored
as their own test code does (SPEC 9.3-9.4: 720 x 720, argmax of the softmax): one checkpoint, so no
std; the binary "ROC"/"PR" columns are section 6's reading of the argmax maps.

Evaluates the run's protocol snapshots ``epoch_XXXX.pt`` (``--snapshots`` for others, or the files
given with ``--checkpoint``), prints their epochs, the paper table row as mean +- std over
checkpoints and the per-class tables, and writes
``<maps>/small_pre/<id>.png`` and ``<maps>/raw_pre/<id>.png`` (maps of the last checkpoint; ``<maps>`` is
``Final_pre/<DATASET>/<job>`` unless ``--maps-dir`` says otherwise),
``<results>/per_image.csv``, ``<results>/summary.csv``, ``<results>/paper_row.json``,
``<results>/segments.csv`` (segment-level evaluation), ``<results>/biomarkers.csv`` (vascular
biomarkers of the ground truth and of the last checkpoint's maps, side by side), one
comparison figure per image in ``<results>/figures/`` and ``<results>/report.html`` (all of it on one
page, with the training curves from ``--runs-dir``); with ``--protocol rrwnet`` or ``all`` also RRWNet's
table (printed after the paper's, in ``paper_row.json`` under ``rrwnet``, per checkpoint in
``rrwnet.csv`` and per image in ``rrwnet_per_image.csv``). Both folders are replaced as a whole when
the run is complete: an interrupted run leaves the previous results as they were.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import fields
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from model.variants import VARIANTS
from scripts.cli.entry import quiet_parser, run_command
from scripts.cli.groups import add_protocol_options, add_segment_options, add_weight_options
from scripts.cli.types import positive_int
from scripts.core.config import DATASETS
from scripts.core.distributed import init_from_env
from scripts.core.runtime import resolve_device
from scripts.evaluation.options import DEFAULTS, SNAPSHOT_RULES, TestOptions
from scripts.evaluation.protocol import TestRun

log = logging.getLogger("avseg")


def run(opts: TestOptions) -> dict:
    """Score the sources; under torchrun every process scores every world-th image, rank 0 reports."""
    ctx, device = init_from_env(resolve_device(opts.device))
    try:
        if ctx.active and not ctx.main:
            logging.getLogger("avseg").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore")
        return TestRun(opts, ctx, device).run()
    finally:
        ctx.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} or a folder name under --data-root")
    p.add_argument("--job_name", "--job-name", dest="job_name")
    p.add_argument("--split")
    p.add_argument("--data-root", type=Path, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--out", type=Path, help="where training wrote OUT/<DATASET>/<job>")
    add_weight_options(p, "evaluate this file (repeatable)", repeatable=True)
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        help="the variant the weights must be (v2021 paper, v2023 the authors' 2023 code; stops with a message "
        "otherwise); sh test.sh DATASET --variant v2023 tests the job of sh train.sh DATASET --variant v2023",
    )
    p.add_argument(
        "--snapshots",
        choices=SNAPSHOT_RULES,
        help="which of the job's checkpoints make the row: protocol (default for a v2021 job) = the "
        "epoch_XXXX.pt snapshots (every --save-every epochs from --save-from); all = also stop_epoch_XXXX.pt, "
        "written where a run ended before or between them (a shortened or time-limited run); best = best.pt "
        "(default for a v2023 job: its code keeps the best-validation checkpoint only)",
    )
    p.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        metavar=("W", "H"),
        help="model size (default: the checkpoint's; 720 720 for the 2023 release)",
    )
    p.add_argument("--device")
    p.add_argument(
        "--maps-dir",
        type=Path,
        help="probability maps (small_pre/, raw_pre/); default: Final_pre/<DATASET>/<job> (one folder per run)",
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        help="TensorBoard folder of the training run (as given to train.py): report.html draws its curves",
    )
    add_segment_options(p)
    add_protocol_options(p)
    p.add_argument(
        "--no-biomarkers",
        action="store_true",
        help="do not write biomarkers.csv (ground-truth and predicted biomarkers, last checkpoint)",
    )
    p.add_argument(
        "--results",
        type=Path,
        help="default: results/<DATASET>/<job> (results/<DATASET>/release or .../original for those)",
    )
    p.set_defaults(**{f.name: getattr(DEFAULTS, f.name) for f in fields(TestOptions)})
    return p


def options(args: argparse.Namespace) -> TestOptions:
    """The parsed command line as typed options."""
    values = vars(args)
    for key in ("image_size", "checkpoint", "original"):
        if values[key] is not None:
            values = {**values, key: tuple(values[key])}
    return TestOptions(**values)


def main(argv: list[str] | None = None) -> int:
    args = quiet_parser(build_parser()).parse_args(argv)
    return run_command(lambda: score(options(args)))


def score(opts: TestOptions) -> int:
    """Run; every process that gets here finished its part (rank 0 printed and wrote the results)."""
    run(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
