"""Scoring a folder of probability maps written by any method (what ``scripts/evaluate.py`` runs).

The folder holds one RGB PNG per image id: channels artery / uncertain / vein probability x 255, at the
raw image size or at the model size (resized bicubic to the raw size); RRWNet's maps (artery, vein,
vessel tree) are read with ``convention="rrwnet"``. The paper protocol (SPEC section 6) with the
segment metrics, RRWNet's protocol, or both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scripts.core.config import dataset_info, default_data_root
from scripts.core.errors import UsageError
from scripts.data.dataset import find_items
from scripts.data.images import DataError, decode_image, load_label, load_mask
from scripts.data.labels import decode_classes
from scripts.evaluation import rrwnet
from scripts.evaluation.metric_tables import format_table, metrics_csv, summary_json
from scripts.evaluation.metrics import PROB_METRICS, image_metrics, mean_metrics
from scripts.inference.predictor import resize_prob
from scripts.io.tables import write_csv
from scripts.vessels import segments as seg
from scripts.vessels.graph import build_graph
from scripts.vessels.segments import format_segments

CONVENTIONS = ("ours", "rrwnet")


@dataclass(frozen=True)
class EvaluateOptions:
    """What to score and where to write it (``scripts/evaluate.py --help`` says what each does)."""

    pred: Path
    dataset: str
    split: str = "test"
    data_root: Path | None = None
    image_size: tuple[int, int] | None = None
    pred_convention: str = "ours"
    protocol: str = "paper"
    seed: int = 0
    topo_paths: int = rrwnet.DEFAULT_PATHS
    crossing_radius: float | None = None
    mixed_share: float = 0.1
    min_segment_length: int = seg.MIN_LENGTH
    csv: Path | None = None
    segments_csv: Path | None = None
    rrwnet_csv: Path | None = None
    json: Path | None = None


@dataclass
class FolderScore:
    """The pooled results of one folder (None where the protocol was not asked for)."""

    images: int
    seconds: float
    mean: dict | None = None
    segments: dict | None = None
    rrwnet: dict | None = None
    extra: dict = field(default_factory=dict)


def load_prediction(path: Path, image_id: str, raw_hw: tuple[int, int], model_wh: tuple[int, int]) -> torch.Tensor:
    """Read a prediction PNG as a (3, H, W) probability tensor at the raw size."""
    if not path.is_file():
        raise DataError(f"image {image_id}: prediction {path} is missing")
    img = decode_image(path)
    if img.mode != "RGB":
        raise DataError(
            f"image {image_id}: prediction {path} has mode {img.mode} ({len(img.getbands())} channels); "
            "expected an RGB PNG (artery, uncertain, vein probability x 255)"
        )
    w, h = img.size
    if (h, w) != tuple(raw_hw) and (w, h) != tuple(model_wh):
        raise DataError(
            f"image {image_id}: prediction {path} is {w}x{h}; expected the raw size "
            f"{raw_hw[1]}x{raw_hw[0]} or the model size {model_wh[0]}x{model_wh[1]}"
        )
    prob = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).astype(np.float32) / 255.0)
    return resize_prob(prob, raw_hw)


def evaluate_folder(
    pred_dir: Path,
    dataset: str,
    split: str,
    data_root: Path,
    model_size: tuple[int, int] | None = None,
    crossing_radius: float | None = None,
    min_segment_length: int = seg.MIN_LENGTH,
    protocol: str = "paper",
    seed: int = 0,
    paths: int = rrwnet.DEFAULT_PATHS,
    convention: str = "ours",
) -> list[dict]:
    """Per image: ``id``, and for the paper protocol ``metrics`` and segment ``counts``
    (``scripts.vessels.segments``), for RRWNet's ``rrwnet`` (:class:`rrwnet.ImageStats`), of the maps in
    ``pred_dir`` (``convention``: ``ours`` = artery, uncertain, vein; ``rrwnet`` = artery, vein, tree)."""
    info = dataset_info(dataset)
    items = find_items(Path(data_root) / dataset / split, info.label_suffixes)
    for what in ("images", "1st_manual", "mask"):  # a folder of the dataset itself is not predictions
        if items and Path(pred_dir).resolve() == (Path(data_root) / dataset / split / what).resolve():
            raise UsageError(
                f"--pred {pred_dir}: this is the dataset's own {what} folder, not predicted maps; give the folder of "
                "<id>.png probability maps (test.sh writes them to Final_pre/<DATASET>/<job>/raw_pre)"
            )
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
            result["counts"] = seg.segment_counts(
                build_graph(channels, crossing_radius, mask, tree), classes, min_segment_length
            )
            result["metrics"] = image_metrics(prob, channels, mask, source=f"{dataset}/{split} {item.id}")
        if protocol in ("rrwnet", "all"):
            prob = prob.numpy()
            theirs = rrwnet.to_levels(prob) if convention == "rrwnet" else rrwnet.prediction_levels(prob)
            result["rrwnet"] = rrwnet.image_stats(
                item.id,
                theirs,
                truth,
                mask,
                paths,
                np.random.default_rng((seed, index)),
                centrelines,
                source=f"{dataset}/{split} {item.id}",
            )
        results.append(result)
    return results


def score_folder(opts: EvaluateOptions) -> FolderScore:
    """Score the folder and write the files asked for; returns the pooled numbers."""
    if not opts.pred.is_dir():
        what = "is a file, not a folder" if opts.pred.exists() else "not found"
        raise DataError(f"--pred {opts.pred}: prediction folder {what} (give the folder that holds <id>.png maps)")
    if opts.pred_convention == "rrwnet" and opts.protocol != "rrwnet":
        raise UsageError(
            "--pred-convention rrwnet: the paper protocol needs 3-class maps (artery, uncertain, "
            "vein); give --protocol rrwnet"
        )
    started = time.perf_counter()
    results = evaluate_folder(
        opts.pred,
        opts.dataset,
        opts.split,
        opts.data_root or default_data_root(),
        opts.image_size,
        opts.crossing_radius,
        opts.min_segment_length,
        opts.protocol,
        opts.seed,
        opts.topo_paths,
        opts.pred_convention,
    )
    score = FolderScore(len(results), time.perf_counter() - started)
    if opts.protocol in ("paper", "all"):
        rows = [(r["id"], r["metrics"]) for r in results]
        score.mean = mean_metrics([m for _, m in rows])
        score.segments = seg.segment_metrics(seg.pool([r["counts"] for r in results]), opts.mixed_share)
        score.extra["segments"] = score.segments
        if opts.csv:
            metrics_csv(opts.csv, rows)
        if opts.segments_csv:
            write_csv(
                opts.segments_csv,
                [{"id": r["id"], **r["counts"], **seg.segment_metrics(r["counts"], opts.mixed_share)} for r in results],
            )
    if opts.protocol in ("rrwnet", "all"):
        score.rrwnet = rrwnet.pooled([r["rrwnet"] for r in results])
        score.extra["rrwnet"] = {
            **score.rrwnet,
            "settings": {"seed": opts.seed, "topo_paths": opts.topo_paths, "convention": opts.pred_convention},
        }
        if opts.rrwnet_csv:
            write_csv(opts.rrwnet_csv, rrwnet_rows([r["rrwnet"] for r in results], score.rrwnet))
    if opts.json:
        summary_json(opts.json, score.mean, extra=score.extra)
    return score


def format_score(score: FolderScore, opts: EvaluateOptions) -> str:
    """The tables ``scripts/evaluate.py`` prints."""
    lines = [f"{opts.dataset}/{opts.split}: {score.images} images"]
    if score.mean is not None:
        lines += ["", "paper protocol (SPEC section 6; percent, mean over images):", format_table(score.mean)]
        lines += ["", "threshold-free AUCs of the probabilities (not the paper's binary ROC/PR):"]
        lines.append(format_table(score.mean, PROB_METRICS))
        lines += [
            "",
            f"segments (ground-truth centreline segments, pooled over images; mixed at {100 * opts.mixed_share:g} %):",
        ]
        lines.append(format_segments(score.segments or {}))
    if score.rrwnet is not None:
        lines += [
            "",
            f"RRWNet protocol (percent; pooled over images; topology over {opts.topo_paths} paths per image and "
            f"class, seed {opts.seed}):",
            rrwnet.format_rrwnet(score.rrwnet),
        ]
    lines += ["", f"{score.seconds:.1f} s ({opts.protocol} protocol{'s' if opts.protocol == 'all' else ''})"]
    return "\n".join(lines)


def rrwnet_rows(stats: list, pooled: dict) -> list[dict]:
    """RRWNet CSV rows: per image its topology shares, then 'all' with every pooled number."""
    rows = [{"id": s.id, **rrwnet.image_row(s)} for s in stats] + [{"id": "all", **rrwnet.flat(pooled)}]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in columns} for r in rows]
