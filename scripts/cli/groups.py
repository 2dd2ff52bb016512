"""Option groups that several entry points share: which weights to load, segment-level evaluation,
the evaluation protocol."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.cli.types import int_between, non_negative_float, positive_int, seed
from scripts.evaluation.rrwnet import DEFAULT_PATHS, PROTOCOLS
from scripts.vessels.segments import MIN_LENGTH, MIXED_SHARES


def add_weight_options(p, checkpoint_help: str, repeatable: bool = False) -> None:
    """The mutually exclusive ways test.py and predict.py take weights: ``--checkpoint`` (this
    project's), ``--original`` (three original-code state dicts) or ``--release`` (the authors' files)."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=Path, action="append" if repeatable else "store", help=checkpoint_help)
    which.add_argument(
        "--original",
        type=Path,
        nargs=3,
        metavar=("G_A", "G_V", "G"),
        help="state dicts written by the original code (artery, vein, fusion); the variant (2021 "
        "paper or 2023 release) is read from their shapes",
    )
    which.add_argument(
        "--release",
        type=Path,
        metavar="DIR",
        help="the authors' released checkpoints: the folder with CP_best_F1_{all,A,V}.pth, or the "
        "unzipped release above it (the one named by --dataset is used)",
    )


def add_segment_options(p: argparse.ArgumentParser) -> None:
    """The options of segment-level evaluation, shared by test.py and evaluate.py."""
    p.add_argument(
        "--crossing-radius",
        type=non_negative_float,
        default=None,
        metavar="PX",
        help="segments within PX pixels (raw size) of an artery/vein crossing count as near it "
        "(default: 1%% of the FOV width: ~5 px on DRIVE, ~33 px on HRF)",
    )
    p.add_argument(
        "--mixed-share",
        type=float,
        default=0.10,
        choices=MIXED_SHARES,
        help="a detected segment is mixed when artery and vein each hold this share of its found "
        "centreline pixels (default 0.10; 0.05 and 0.20 are always reported too)",
    )
    p.add_argument(
        "--min-segment-length",
        type=positive_int,
        default=MIN_LENGTH,
        metavar="PX",
        help=f"shorter segments are not scored (default {MIN_LENGTH})",
    )


def add_protocol_options(p: argparse.ArgumentParser) -> None:
    """--protocol and RRWNet's settings, for evaluate.py and test.py."""
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="paper",
        help="paper (default): SPEC section 6; rrwnet: RRWNet's (docs/protocols.md); all: both",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="RRWNet protocol: seeds its random draws (artery/vein ties, the topology's paths)",
    )
    p.add_argument(
        "--topo-paths",
        type=int_between(1, 100_000, "paths per image and class; RRWNet's code uses 100"),
        default=DEFAULT_PATHS,
        metavar="N",
        help=f"RRWNet protocol: random centreline paths per image and class (default {DEFAULT_PATHS}; "
        "RRWNet's code uses 100: docs/protocols.md)",
    )
