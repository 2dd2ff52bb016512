"""Evaluate a training run's checkpoints on the test split with the paper protocol (SPEC section 6).

    python -m scripts.test --dataset DRIVE_AV --job_name drive_paper

Evaluates every ``epoch_XXXX.pt`` snapshot of the run (or ``best.pt`` when there is none, or the
files given with ``--checkpoint``), prints the paper table row as mean +- std over checkpoints
and the per-class tables, and writes
``Final_pre/small_pre/<id>.png`` and ``Final_pre/raw_pre/<id>.png`` (maps of the last checkpoint),
``<results>/per_image.csv``, ``<results>/summary.csv``, ``<results>/paper_row.json`` and one comparison
figure per image in ``<results>/figures/``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scripts import checkpoint as ckpt
from scripts.atomic import WriteError
from scripts.config import DATASETS, default_data_root
from scripts.dataset import AVDataset
from scripts.images import DataError
from scripts.inference import iterate_predictions
from scripts.metrics import PROB_METRICS, image_metrics, mean_metrics
from scripts.report import format_table, metrics_csv, write_atomic
from scripts.runtime import UsageError, ensure_folder, resolve_device
from scripts.visualise import comparison_row

log = logging.getLogger("avseg")
PAPER_COLUMNS = {"Sensitivity": "sensitivity", "ROC": "roc", "F1": "f1", "PR": "pr", "MSE": "mse"}


def find_checkpoints(job_dir: Path, given: list[Path] | None) -> list[Path]:
    if given:
        return given
    snapshots = sorted(job_dir.glob("epoch_*.pt"))
    if snapshots:
        return snapshots
    if (job_dir / "best.pt").is_file():
        return [job_dir / "best.pt"]
    raise ckpt.CheckpointError(f"no checkpoints (epoch_*.pt or best.pt) in {job_dir.resolve()}; train this job first "
                               "(sh train.sh <DATASET>) or pass --checkpoint PATH")


def save_prob_png(path: Path, prob: torch.Tensor) -> None:
    """(3, H, W) probabilities -> RGB PNG of probability x 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (prob.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)


def paper_row(scores: list[dict]) -> dict[str, tuple[float, float]]:
    """Table entry: mean and (population) std over checkpoints of the dataset's average, in percent."""
    return {col: (100 * float(np.mean([s["average"][m] for s in scores])), 100 * float(np.std([s["average"][m] for s in scores])))
            for col, m in PAPER_COLUMNS.items()}


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    job_dir = args.out / args.dataset / args.job_name
    results_dir = ensure_folder(args.results or Path("results") / args.dataset / args.job_name, "--results")
    for sub in ("small_pre", "raw_pre"):
        ensure_folder(args.maps_dir / sub, "--maps-dir")
    if args.original:
        sources = [("original", None)]
    else:
        sources = [(p.stem, p) for p in find_checkpoints(job_dir, args.checkpoint)]
    per_image, summaries, scores = [], [], []
    dataset = None
    for i, (name, path) in enumerate(sources):
        if path is None:
            nets = ckpt.load_original_generators(dict(zip(ckpt.GENERATORS, args.original)), device)
            size = args.image_size
        else:
            nets, cfg = ckpt.load_generators(path, device)
            size = args.image_size or cfg.get("image_size")
        if dataset is None or tuple(dataset.model_size) != tuple(size or dataset.model_size):
            dataset = AVDataset(args.dataset, args.split, args.data_root or default_data_root(), train=False,
                                image_size=size)
            dataset.preload()  # every file checked before the first checkpoint is scored
        last = i == len(sources) - 1
        rows = []
        for j, pred in enumerate(iterate_predictions(nets, dataset, device)):
            rows.append((pred["id"], image_metrics(pred["raw"], pred["label"], pred["mask"])))
            if last:
                save_prob_png(args.maps_dir / "small_pre" / f"{pred['id']}.png", pred["small"])
                save_prob_png(args.maps_dir / "raw_pre" / f"{pred['id']}.png", pred["raw"])
                fig = comparison_row(dataset, j, pred["raw"], pred["label"], pred["mask"])
                (results_dir / "figures").mkdir(parents=True, exist_ok=True)
                Image.fromarray(fig).save(results_dir / "figures" / f"{pred['id']}.png")
        score = mean_metrics([r for _, r in rows])
        scores.append(score)
        per_image += [((name, image_id), r) for image_id, r in rows]
        summaries.append((name, score))
        log.info("%s: F1 %.2f  sensitivity %.2f", name, 100 * score["average"]["f1"], 100 * score["average"]["sensitivity"])

    row = paper_row(scores)
    metrics_csv(results_dir / "per_image.csv", per_image, key_names=("checkpoint", "id"))
    metrics_csv(results_dir / "summary.csv", summaries, key_names=("checkpoint",))
    write_atomic(results_dir / "paper_row.json", json.dumps(
        {"dataset": args.dataset, "split": args.split, "checkpoints": [n for n, _ in sources],
         "percent": {k: {"mean": m, "std": s} for k, (m, s) in row.items()},
         "per_checkpoint": {n: {col: 100 * score["average"][m] for col, m in PAPER_COLUMNS.items()}
                            for (n, _), score in zip(sources, scores)}}, indent=1) + "\n")
    mean = mean_metrics(scores)
    print(f"\n{args.dataset}/{args.split}: {len(dataset)} images, {len(sources)} checkpoint(s) "
          f"({sources[0][0]} .. {sources[-1][0]})")
    print("\nPaper table row (percent, mean +- std over checkpoints; binary 'ROC'/'PR' as in the paper):")
    print("  ".join(f"{k}: {m:.2f} +- {s:.2f}" for k, (m, s) in row.items()))
    print("\nPer class (percent, mean over checkpoints):")
    print(format_table(mean))
    print("\nThreshold-free AUCs of the probabilities (not the paper's 'ROC'/'PR'):")
    print(format_table(mean, PROB_METRICS))
    print(f"\nmaps: {args.maps_dir}/{{small_pre,raw_pre}}  tables and figures: {results_dir}")
    return {"row": row, "mean": mean, "results_dir": results_dir}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="DRIVE_AV", help=f"{', '.join(DATASETS)} or a folder name under --data-root")
    p.add_argument("--job_name", "--job-name", dest="job_name", default="job")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--out", type=Path, default=Path("."), help="where training wrote OUT/<DATASET>/<job>")
    p.add_argument("--checkpoint", type=Path, action="append", help="evaluate this file (repeatable)")
    p.add_argument("--original", type=Path, nargs=3, metavar=("G_A", "G_V", "G"),
                   help="state dicts written by the original code (artery, vein, fusion)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--maps-dir", type=Path, default=Path("Final_pre"))
    p.add_argument("--results", type=Path, default=None, help="default: results/<DATASET>/<job>")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run(args)
    except (DataError, ckpt.CheckpointError, UsageError, ValueError, WriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
