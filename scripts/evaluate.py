"""Score any method's predictions with the paper protocol (SPEC section 6).

The prediction folder holds one RGB PNG per image id: channels artery / uncertain / vein
probability x 255, at the raw image size or at the model size (resized bicubic to the raw size).

    python -m scripts.evaluate --pred Final_pre/DRIVE_AV/paper/raw_pre --dataset DRIVE_AV --split test --data-root data
    python -m scripts.evaluate --pred rrwnet_maps --pred-convention rrwnet --protocol rrwnet --dataset DRIVE_AV

``--protocol rrwnet`` scores the same maps under RRWNet's protocol (``scripts/evaluation/rrwnet.py``),
``all`` under both; each table and output names its protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.groups import add_protocol_options, add_segment_options
from scripts.cli.types import positive_int
from scripts.core.config import DATASETS
from scripts.evaluation.folder import EvaluateOptions, format_score, score_folder

log = logging.getLogger("avseg")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, type=Path, help="folder with <id>.png probability maps")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASETS)} or a folder name)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("W", "H"),
        help="model size the predictions may be at (default: the dataset's)",
    )
    p.add_argument(
        "--pred-convention",
        choices=("ours", "rrwnet"),
        default="ours",
        help="channels of the maps: ours = artery, uncertain, vein probabilities (default); rrwnet = "
        "artery, vein, vessel tree, as RRWNet writes them (only --protocol rrwnet)",
    )
    add_protocol_options(p)
    p.add_argument("--csv", type=Path, help="write per-image, per-class rows of the paper protocol here")
    p.add_argument("--segments-csv", type=Path, help="write per-image segment counts and rates here")
    p.add_argument(
        "--rrwnet-csv",
        type=Path,
        help="write RRWNet's numbers here: one row per image (its topology) and "
        "a row 'all' with every pooled number, each named rrwnet_<group>_<metric>",
    )
    p.add_argument(
        "--json",
        type=Path,
        help="write the paper protocol's mean over images here as {class: {metric: "
        "value}}, plus 'segments' (the pooled segment metrics) and 'rrwnet' (RRWNet's table)",
    )
    add_segment_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = vars(args)
    if values["image_size"] is not None:
        values = {**values, "image_size": tuple(values["image_size"])}
    opts = EvaluateOptions(**values)
    return run_command(lambda: print(format_score(score_folder(opts), opts)) or 0)


if __name__ == "__main__":
    sys.exit(main())
