"""Evaluate a training run's checkpoints on the test split with the paper protocol (SPEC section 6).

    python -m scripts.test --dataset DRIVE_AV --job_name drive_paper
    python -m scripts.test --dataset DRIVE_AV --release weights/DRIVE_AV   # the authors' 2023 release

The authors' released checkpoints (``--release``, or ``--original`` files of that variant) are scored
as their own test code does (SPEC 9.3-9.4: 720 x 720, argmax of the softmax): one checkpoint, so no
std; the binary "ROC"/"PR" columns are section 6's reading of the argmax maps.

Evaluates every ``epoch_XXXX.pt`` snapshot of the run (or ``best.pt`` when there is none, or the
files given with ``--checkpoint``), prints the paper table row as mean +- std over checkpoints
and the per-class tables, and writes
``Final_pre/small_pre/<id>.png`` and ``Final_pre/raw_pre/<id>.png`` (maps of the last checkpoint),
``<results>/per_image.csv``, ``<results>/summary.csv``, ``<results>/paper_row.json``,
``<results>/segments.csv`` (segment-level evaluation), ``<results>/biomarkers.csv`` (vascular
biomarkers of the ground truth and of the last checkpoint's maps, side by side) and one
comparison figure per image in ``<results>/figures/``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import warnings
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Subset

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts import checkpoint as ckpt
from scripts.atomic import WriteError
from scripts.config import DATASETS, default_data_root
from scripts.dataset import AVDataset
from scripts.images import DataError, load_photo
from scripts.inference import Predictor, iterate_predictions, score_prediction
from scripts.labels import decode_classes
from scripts.metrics import PROB_METRICS, mean_metrics
from scripts.release import RELEASE_SIZE, load_release
from scripts.report import format_table, metrics_csv, nan_to_null, write_atomic, write_csv
from scripts.runtime import UsageError, ensure_folder, resolve_device
from scripts.training.distributed import Context, init_from_env
from scripts.vessels import segments as seg
from scripts.vessels.disc import locate_disc
from scripts.vessels.measures import measure
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


def biomarker_comparison(dataset: AVDataset, index: int, image_id: str, classes: np.ndarray,
                         photo: np.ndarray) -> list[dict]:
    """Rows (id, measure, truth, predicted, difference) of the biomarkers of the ground truth and of
    the prediction of one image, with one optic disc located in its photograph for both."""
    label, fov = dataset.ground_truth(index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # located discs and empty zones: the numbers say it
        disc = locate_disc(photo, fov, str(dataset.items[index].image))
        truth = measure(decode_classes(torch.from_numpy(label.transpose(2, 0, 1))).numpy(), disc, fov)
        predicted = measure(classes, disc, fov)
    return [{"id": image_id, "measure": k, "truth": truth[k], "predicted": predicted.get(k, math.nan),
             "difference": predicted.get(k, math.nan) - truth[k]} for k in truth if not k.startswith("disc_")]


def paper_row(scores: list[dict]) -> dict[str, tuple[float, float]]:
    """Table entry: mean and (population) std over checkpoints of the dataset's average, in percent."""
    return {col: (100 * float(np.mean([s["average"][m] for s in scores])), 100 * float(np.std([s["average"][m] for s in scores])))
            for col, m in PAPER_COLUMNS.items()}


def load_predictor(source: Path | None, args: argparse.Namespace, device: torch.device) -> Predictor:
    """The generators to score: a project checkpoint (``source``), ``--release`` or ``--original``."""
    if args.release:
        nets, variant, size = load_release(args.release, args.dataset, device), "v2023", RELEASE_SIZE
    elif args.original:
        nets, variant = ckpt.load_original_generators(dict(zip(ckpt.GENERATORS, args.original)), device)
        log.info("--original: the files hold the %s variant", "2023 release (4-class softmax)" if variant == "v2023"
                 else "2021 paper (3 sigmoid outputs)")
        size = RELEASE_SIZE if variant == "v2023" else None
    else:
        nets, cfg = ckpt.load_generators(source, device)
        variant, size = "v2021", cfg.get("image_size")
    size = args.image_size or size
    return Predictor(nets, variant, tuple(size) if size else None)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> dict:
    """Score the sources; under torchrun every process scores every world-th image, rank 0 reports."""
    ctx, device = init_from_env(resolve_device(args.device))
    try:
        if ctx.active and not ctx.main:
            logging.getLogger("avseg").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore")
        return _run(args, ctx, device)
    finally:
        ctx.close()


def _run(args: argparse.Namespace, ctx: Context, device: torch.device) -> dict:
    structure = importlib.util.find_spec("skimage") is not None  # the vessel graph's skeletons
    if not structure:
        log.warning("scikit-image is not installed: the paper tables are computed, the segment metrics and "
                    "biomarkers are not (pip install -r requirements.txt)")
    job_dir = args.out / args.dataset / args.job_name
    # a release or original files are not a training run of --job_name: their results go apart
    run_name = "release" if args.release else "original" if args.original else args.job_name
    results_dir = ensure_folder(args.results or Path("results") / args.dataset / run_name, "--results")
    for sub in ("small_pre", "raw_pre"):
        ensure_folder(args.maps_dir / sub, "--maps-dir")
    if args.release or args.original:
        sources: list[tuple[str, Path | None]] = [("release" if args.release else "original", None)]
    else:
        sources = [(p.stem, p) for p in find_checkpoints(job_dir, args.checkpoint)]
    per_image, summaries, scores = [], [], []
    segment_rows, segment_scores, biomarker_rows = [], [], []
    dataset = None
    for i, (name, path) in enumerate(sources):
        predictor = load_predictor(path, args, device)
        wanted = (tuple(predictor.model_size or ()), predictor.variant)
        if dataset is None or wanted != (tuple(dataset.model_size) if predictor.model_size else (), dataset.variant):
            dataset = AVDataset(args.dataset, args.split, args.data_root or default_data_root(), train=False,
                                image_size=predictor.model_size, variant=predictor.variant)
            dataset.preload()  # every file checked before the first checkpoint is scored
        predictor.model_size = dataset.model_size
        last = i == len(sources) - 1
        rows, counts, seg_rows, bio_rows = [], [], [], []
        mine = ctx.shard(len(dataset))
        for j, pred in zip(mine, iterate_predictions(predictor, Subset(dataset, mine), device)):
            rows.append((j, pred["id"], score_prediction(predictor, pred)))
            classes = decode_classes(pred["binary"]).cpu().numpy()
            graph = dataset.vessel_graph(j, args.crossing_radius) if structure else None
            if structure:
                counts.append((j, seg.segment_counts(graph, classes, args.min_segment_length)))
                seg_rows.append((j, {"checkpoint": name, "id": pred["id"], **counts[-1][1],
                                     **seg.segment_metrics(counts[-1][1], args.mixed_share)}))
            if last:
                save_prob_png(args.maps_dir / "small_pre" / f"{pred['id']}.png", pred["small"])
                save_prob_png(args.maps_dir / "raw_pre" / f"{pred['id']}.png", pred["raw"])
                photo = load_photo(dataset.items[j].image)
                if structure and not args.no_biomarkers:
                    bio_rows += [(j, r) for r in biomarker_comparison(dataset, j, pred["id"], classes, photo)]
                panel = None
                if structure:
                    verdict = seg.verdicts(graph, classes, args.min_segment_length, args.mixed_share)
                    panel = lambda width, g=graph, v=verdict: seg.verdict_picture(g, v, width)  # noqa: E731
                fig = comparison_row(dataset, j, pred["raw"], pred["label"], pred["mask"], pred["binary"],
                                     segments=panel, photo=photo)
                (results_dir / "figures").mkdir(parents=True, exist_ok=True)
                Image.fromarray(fig).save(results_dir / "figures" / f"{pred['id']}.png")
        # every process's images, in dataset order (the stable sort keeps each image's rows together)
        rows, counts, seg_rows, bio_rows = ([x[1:] if len(x) > 2 else x[1] for x in
                                             sorted(ctx.gather(part), key=lambda item: item[0])]
                                            for part in (rows, counts, seg_rows, bio_rows))
        segment_rows += seg_rows
        biomarker_rows += bio_rows
        if structure:
            segment_scores.append(seg.segment_metrics(seg.pool(counts), args.mixed_share))
        score = mean_metrics([r for _, r in rows])
        scores.append(score)
        per_image += [((name, image_id), r) for image_id, r in rows]
        summaries.append((name, score))
        log.info("%s: F1 %.2f  sensitivity %.2f", name, 100 * score["average"]["f1"], 100 * score["average"]["sensitivity"])

    if not ctx.main:
        return {}
    row = paper_row(scores)
    seg_keys = segment_scores[0] if segment_scores else {}
    seg_mean = nan_to_null({k: float(np.mean([s[k] for s in segment_scores])) for k in seg_keys})
    seg_std = nan_to_null({k: float(np.std([s[k] for s in segment_scores])) for k in seg_keys})
    metrics_csv(results_dir / "per_image.csv", per_image, key_names=("checkpoint", "id"))
    metrics_csv(results_dir / "summary.csv", summaries, key_names=("checkpoint",))
    protocol = "SPEC 9.4 (2023 release: softmax argmax)" if predictor.variant == "v2023" else "SPEC 6 (paper)"
    write_atomic(results_dir / "paper_row.json", json.dumps(
        {"dataset": args.dataset, "split": args.split, "protocol": protocol, "variant": predictor.variant,
         "model_size": list(dataset.model_size), "checkpoints": [n for n, _ in sources],
         "percent": {k: {"mean": m, "std": s} for k, (m, s) in row.items()},
         "per_checkpoint": {n: {col: 100 * score["average"][m] for col, m in PAPER_COLUMNS.items()}
                            for (n, _), score in zip(sources, scores)},
         "segments": {"settings": {"mixed_share": args.mixed_share, "min_segment_length": args.min_segment_length,
                                   "crossing_radius": args.crossing_radius},
                      "mean": seg_mean, "std": seg_std,
                      "per_checkpoint": {n: nan_to_null(s) for (n, _), s in zip(sources, segment_scores)}}},
        indent=1, allow_nan=False) + "\n")
    if segment_rows:
        write_csv(results_dir / "segments.csv", segment_rows)
    if biomarker_rows:
        write_csv(results_dir / "biomarkers.csv", biomarker_rows)
    mean = mean_metrics(scores)
    names = sources[0][0] if len(sources) == 1 else f"{sources[0][0]} .. {sources[-1][0]}"
    print(f"\n{args.dataset}/{args.split}: {len(dataset)} images, {len(sources)} checkpoint(s) ({names})")
    if predictor.variant == "v2023":
        print(f"\nThe authors' 2023 release, scored as their test code does (SPEC 9.3-9.4): model size "
              f"{dataset.model_size[0]}x{dataset.model_size[1]}, argmax of the softmax, FOV pixels; 'ROC'/'PR' are "
              "section 6's binary reading of the argmax maps (their test code prints none).")
    if len(sources) == 1:
        print("\nPaper table row (percent; 1 checkpoint, so no std):")
        print("  ".join(f"{k}: {m:.2f}" for k, (m, _) in row.items()))
    else:
        print("\nPaper table row (percent, mean +- std over checkpoints; binary 'ROC'/'PR' as in the paper):")
        print("  ".join(f"{k}: {m:.2f} +- {s:.2f}" for k, (m, s) in row.items()))
    print("\nPer class (percent, mean over checkpoints):")
    print(format_table(mean))
    print("\nThreshold-free AUCs of the probabilities (not the paper's 'ROC'/'PR'):")
    print(format_table(mean, PROB_METRICS))
    if segment_scores:
        print(f"\nSegments (ground-truth centreline segments, pooled over images; mean over checkpoints; "
              f"mixed at {100 * args.mixed_share:g} %; README 'Segment-level evaluation'):")
        print(seg.format_segments({k: np.nan if v is None else v for k, v in seg_mean.items()},
                                  None if len(sources) == 1 else
                                  {k: np.nan if v is None else v for k, v in seg_std.items()}))
    print(f"\nmaps: {args.maps_dir}/{{small_pre,raw_pre}}  tables and figures: {results_dir}")
    return {"row": row, "mean": mean, "results_dir": results_dir}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="DRIVE_AV", help=f"{', '.join(DATASETS)} or a folder name under --data-root")
    p.add_argument("--job_name", "--job-name", dest="job_name", default="job")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="default: $AVSEG_DATA or ./data")
    p.add_argument("--out", type=Path, default=Path("."), help="where training wrote OUT/<DATASET>/<job>")
    ckpt.add_weight_options(p, "evaluate this file (repeatable)", repeatable=True)
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="model size (default: the checkpoint's; 720 720 for the 2023 release)")
    p.add_argument("--device", default="auto")
    p.add_argument("--maps-dir", type=Path, default=Path("Final_pre"))
    seg.add_segment_options(p)
    p.add_argument("--no-biomarkers", action="store_true",
                   help="do not write biomarkers.csv (ground-truth and predicted biomarkers, last checkpoint)")
    p.add_argument("--results", type=Path, default=None,
                   help="default: results/<DATASET>/<job> (results/<DATASET>/release or .../original for those)")
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
