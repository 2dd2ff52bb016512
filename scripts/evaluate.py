"""Score any method's predictions with the paper protocol (SPEC section 6).

The prediction folder holds one RGB PNG per image id: channels artery / uncertain / vein
probability x 255, at the raw image size or at the model size (resized bicubic to the raw size).

    python -m scripts.evaluate --pred Final_pre/raw_pre --dataset DRIVE_AV --split test --data-root data
    python -m scripts.evaluate --pred rrwnet_maps --pred-convention rrwnet --protocol rrwnet --dataset DRIVE_AV

``--protocol rrwnet`` scores the same maps under RRWNet's protocol (``scripts/evaluation/rrwnet.py``),
``all`` under both; each table and output names its protocol.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.core.runtime import UsageError, positive_int
from scripts.core.errors import UserError
from scripts.core.config import DATASETS, dataset_info, default_data_root
from scripts.data.dataset import find_items
from scripts.data.images import DataError, decode_image, load_label, load_mask
from scripts.data.labels import decode_classes
from scripts.evaluation.metrics import PROB_METRICS, image_metrics, mean_metrics
from scripts.inference.predictor import resize_prob
from scripts.evaluation import rrwnet
from scripts.evaluation.report import format_table, metrics_csv, summary_json, write_csv
from scripts.vessels import segments as seg
from scripts.vessels.graph import build_graph
from scripts.vessels.segments import format_segments

log = logging.getLogger("avseg")


def load_prediction(path: Path, image_id: str, raw_hw: tuple[int, int], model_wh: tuple[int, int]) -> torch.Tensor:
    """Read a prediction PNG as a (3, H, W) probability tensor at the raw size."""
    if not path.is_file():
        raise DataError(f"image {image_id}: prediction {path} is missing")
    img = decode_image(path)
    if img.mode != "RGB":
        raise DataError(f"image {image_id}: prediction {path} has mode {img.mode} ({len(img.getbands())} channels); "
                        "expected an RGB PNG (artery, uncertain, vein probability x 255)")
    w, h = img.size
    if (h, w) != tuple(raw_hw) and (w, h) != tuple(model_wh):
        raise DataError(f"image {image_id}: prediction {path} is {w}x{h}; expected the raw size "
                        f"{raw_hw[1]}x{raw_hw[0]} or the model size {model_wh[0]}x{model_wh[1]}")
    prob = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).astype(np.float32) / 255.0)
    return resize_prob(prob, raw_hw)


def evaluate_folder(pred_dir: Path, dataset: str, split: str, data_root: Path,
                    model_size: tuple[int, int] | None = None, crossing_radius: float | None = None,
                    min_segment_length: int = seg.MIN_LENGTH, protocol: str = "paper", seed: int = 0,
                    paths: int = rrwnet.DEFAULT_PATHS, convention: str = "ours") -> list[dict]:
    """Per image: ``id``, and for the paper protocol ``metrics`` and segment ``counts``
    (``scripts.vessels.segments``), for RRWNet's ``rrwnet`` (:class:`rrwnet.ImageStats`), of the maps in
    ``pred_dir`` (``convention``: ``ours`` = artery, uncertain, vein; ``rrwnet`` = artery, vein, tree)."""
    info = dataset_info(dataset)
    items = find_items(Path(data_root) / dataset / split, info.label_suffixes)
    results = []
    for index, item in enumerate(items):
        label, _ = load_label(item.label)
        mask = load_mask(item.mask) if item.mask is not None else None
        if mask is None:
            raise DataError(f"{item.image}: no FOV mask; the paper protocol needs one per test image")
        prob = load_prediction(pred_dir / f"{item.id}.png", item.id, mask.shape, model_size or info.model_size)
        result = {"id": item.id}
        truth = rrwnet.truth_channels(label) if protocol in ("rrwnet", "all") else None
        # both protocols skeletonise the whole vessel tree of the truth: once is enough
        centrelines = rrwnet.truth_centrelines(truth) if protocol == "all" else None
        if protocol in ("paper", "all"):
            channels = label.transpose(2, 0, 1)
            classes = decode_classes(prob * torch.from_numpy(mask) > 0.5).numpy()
            tree = None if centrelines is None else rrwnet.as_skeleton(centrelines[2], mask.shape)
            result["counts"] = seg.segment_counts(build_graph(channels, crossing_radius, mask, tree), classes,
                                                  min_segment_length)
            result["metrics"] = image_metrics(prob, channels, mask, source=f"{dataset}/{split} {item.id}")
        if protocol in ("rrwnet", "all"):
            prob = prob.numpy()
            theirs = rrwnet.to_levels(prob) if convention == "rrwnet" else rrwnet.prediction_levels(prob)
            result["rrwnet"] = rrwnet.image_stats(item.id, theirs, truth, mask, paths, np.random.default_rng((seed, index)),
                                                  centrelines, source=f"{dataset}/{split} {item.id}")
        results.append(result)
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, type=Path, help="folder with <id>.png probability maps")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASETS)} or a folder name)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--image-size", type=positive_int, nargs=2, default=None, metavar=("W", "H"),
                   help="model size the predictions may be at (default: the dataset's)")
    p.add_argument("--pred-convention", choices=("ours", "rrwnet"), default="ours",
                   help="channels of the maps: ours = artery, uncertain, vein probabilities (default); rrwnet = "
                   "artery, vein, vessel tree, as RRWNet writes them (only --protocol rrwnet)")
    rrwnet.add_protocol_options(p)
    p.add_argument("--csv", type=Path, help="write per-image, per-class rows of the paper protocol here")
    p.add_argument("--segments-csv", type=Path, help="write per-image segment counts and rates here")
    p.add_argument("--rrwnet-csv", type=Path, help="write RRWNet's numbers here: one row per image (its topology) and "
                   "a row 'all' with every pooled number, each named rrwnet_<group>_<metric>")
    p.add_argument("--json", type=Path, help="write the paper protocol's mean over images here as {class: {metric: "
                   "value}}, plus 'segments' (the pooled segment metrics) and 'rrwnet' (RRWNet's table)")
    seg.add_segment_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not a.pred.is_dir():
            raise DataError(f"prediction folder not found: {a.pred}")
        if a.pred_convention == "rrwnet" and a.protocol != "rrwnet":
            raise UsageError("--pred-convention rrwnet: the paper protocol needs 3-class maps (artery, uncertain, "
                             "vein); give --protocol rrwnet")
        started = time.perf_counter()
        results = evaluate_folder(a.pred, a.dataset, a.split, a.data_root or default_data_root(),
                                  tuple(a.image_size) if a.image_size else None, a.crossing_radius,
                                  a.min_segment_length, a.protocol, a.seed, a.topo_paths, a.pred_convention)
        seconds = time.perf_counter() - started
        extra, mean, segments, theirs = {}, None, None, None
        if a.protocol in ("paper", "all"):
            rows = [(r["id"], r["metrics"]) for r in results]
            mean = mean_metrics([m for _, m in rows])
            segments = seg.segment_metrics(seg.pool([r["counts"] for r in results]), a.mixed_share)
            extra["segments"] = segments
            if a.csv:
                metrics_csv(a.csv, rows)
            if a.segments_csv:
                write_csv(a.segments_csv, [{"id": r["id"], **r["counts"], **seg.segment_metrics(r["counts"], a.mixed_share)}
                                           for r in results])
        if a.protocol in ("rrwnet", "all"):
            theirs = rrwnet.pooled([r["rrwnet"] for r in results])
            extra["rrwnet"] = {**theirs, "settings": {"seed": a.seed, "topo_paths": a.topo_paths,
                                                      "convention": a.pred_convention}}
            if a.rrwnet_csv:
                write_csv(a.rrwnet_csv, rrwnet_rows([r["rrwnet"] for r in results], theirs))
        if a.json:
            summary_json(a.json, mean, extra=extra)
    except UserError as err:  # a bug shows its traceback instead
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{a.dataset}/{a.split}: {len(results)} images")
    if mean is not None:
        print("\npaper protocol (SPEC section 6; percent, mean over images):")
        print(format_table(mean))
        print("\nthreshold-free AUCs of the probabilities (not the paper's binary ROC/PR):")
        print(format_table(mean, PROB_METRICS))
        print(f"\nsegments (ground-truth centreline segments, pooled over images; mixed at {100 * a.mixed_share:g} %):")
        print(format_segments(segments))
    if theirs is not None:
        print(f"\nRRWNet protocol (percent; pooled over images; topology over {a.topo_paths} paths per image and "
              f"class, seed {a.seed}):")
        print(rrwnet.format_rrwnet(theirs))
    print(f"\n{seconds:.1f} s ({a.protocol} protocol{'s' if a.protocol == 'all' else ''})")
    return 0


def rrwnet_rows(stats: list, pooled: dict) -> list[dict]:
    """RRWNet CSV rows: per image its topology shares, then 'all' with every pooled number."""
    rows = [{"id": s.id, **rrwnet.image_row(s)} for s in stats] + [{"id": "all", **rrwnet.flat(pooled)}]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in columns} for r in rows]


if __name__ == "__main__":
    sys.exit(main())
