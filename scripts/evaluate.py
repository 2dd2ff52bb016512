"""Score any method's predictions with the paper protocol (SPEC section 6).

The prediction folder holds one RGB PNG per image id: channels artery / uncertain / vein
probability x 255, at the raw image size or at the model size (resized bicubic to the raw size).

    python -m scripts.evaluate --pred Final_pre/raw_pre --dataset DRIVE_AV --split test --data-root data
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.core.runtime import positive_int
from scripts.core.errors import UserError
from scripts.core.config import DATASETS, dataset_info, default_data_root
from scripts.data.dataset import find_items
from scripts.data.images import DataError, decode_image, load_label, load_mask
from scripts.data.labels import decode_classes
from scripts.evaluation.metrics import PROB_METRICS, image_metrics, mean_metrics
from scripts.inference.predictor import resize_prob
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
                    min_segment_length: int = seg.MIN_LENGTH) -> list[tuple[str, dict, dict]]:
    """Per image: id, paper metrics and segment counts (``scripts.vessels.segments``) of the
    predictions in ``pred_dir``."""
    info = dataset_info(dataset)
    items = find_items(Path(data_root) / dataset / split, info.label_suffixes)
    results = []
    for item in items:
        label, _ = load_label(item.label)
        mask = load_mask(item.mask) if item.mask is not None else None
        if mask is None:
            raise DataError(f"{item.image}: no FOV mask; the paper protocol needs one per test image")
        prob = load_prediction(pred_dir / f"{item.id}.png", item.id, mask.shape, model_size or info.model_size)
        label = label.transpose(2, 0, 1)
        classes = decode_classes(prob * torch.from_numpy(mask) > 0.5).numpy()
        counts = seg.segment_counts(build_graph(label, crossing_radius, mask), classes, min_segment_length)
        results.append((item.id, image_metrics(prob, label, mask, source=f"{dataset}/{split} {item.id}"), counts))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, type=Path, help="folder with <id>.png probability maps")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASETS)} or a folder name)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--image-size", type=positive_int, nargs=2, default=None, metavar=("W", "H"),
                   help="model size the predictions may be at (default: the dataset's)")
    p.add_argument("--csv", type=Path, help="write per-image, per-class rows here")
    p.add_argument("--segments-csv", type=Path, help="write per-image segment counts and rates here")
    p.add_argument("--json", type=Path, help="write the mean over images here as {class: {metric: value}}, "
                                             "plus 'segments': the pooled segment metrics")
    seg.add_segment_options(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not a.pred.is_dir():
            raise DataError(f"prediction folder not found: {a.pred}")
        results = evaluate_folder(a.pred, a.dataset, a.split, a.data_root or default_data_root(),
                                  tuple(a.image_size) if a.image_size else None, a.crossing_radius,
                                  a.min_segment_length)
        rows = [(image_id, r) for image_id, r, _ in results]
        mean = mean_metrics([r for _, r in rows])
        segments = seg.segment_metrics(seg.pool([c for _, _, c in results]), a.mixed_share)
        if a.csv:
            metrics_csv(a.csv, rows)
        if a.segments_csv:
            write_csv(a.segments_csv, [{"id": i, **c, **seg.segment_metrics(c, a.mixed_share)} for i, _, c in results])
        if a.json:
            summary_json(a.json, mean, extra={"segments": segments})
    except UserError as err:  # a bug shows its traceback instead
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{a.dataset}/{a.split}: {len(rows)} images, paper protocol (percent)")
    print(format_table(mean))
    print("\nthreshold-free AUCs of the probabilities (not the paper's binary ROC/PR):")
    print(format_table(mean, PROB_METRICS))
    print(f"\nsegments (ground-truth centreline segments, pooled over images; mixed at {100 * a.mixed_share:g} %):")
    print(format_segments(segments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
