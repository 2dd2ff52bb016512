"""The test protocol: a run's checkpoints scored on a test split (SPEC section 6; SPEC 9.4 for the 2023
release), the paper row, the tables, maps and figures (what ``scripts/test.py`` runs).

Which checkpoints enter the paper row: the files given (``--checkpoint``), else the job's snapshots
chosen by ``--snapshots`` (:func:`scripts.io.job.find_snapshots`: by default the protocol's
``epoch_XXXX.pt`` only). The row is the mean and population standard deviation over them of each
dataset score (:func:`paper_row`); ``paper_row.json`` records their epochs and SHA-256 hashes.
The results folder and the maps folder are complete or absent (:mod:`scripts.io.staging`): both
are written aside and moved into place when everything is written.
Under torchrun every process scores every world-th image; rank 0 writes and prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scripts.core.config import default_data_root
from scripts.core.distributed import Context
from scripts.core.errors import UsageError, UserError
from scripts.data.dataset import AVDataset
from scripts.data.images import load_photo
from scripts.data.labels import decode_classes
from scripts.evaluation import rrwnet
from scripts.evaluation.metric_tables import format_table, metrics_csv, nan_to_null
from scripts.evaluation.metrics import PROB_METRICS, mean_metrics
from scripts.evaluation.options import TestOptions
from scripts.evaluation.scoring import score_prediction
from scripts.figures.pages import results_page
from scripts.figures.visualise import comparison_row
from scripts.figures.zone_b import zone_b_figure
from scripts.inference.predictor import Predictor, gather_in_order, iterate_shard
from scripts.inference.weights import load_predictor
from scripts.io import checkpoint as ckpt
from scripts.io.atomic import write_atomic
from scripts.io.job import find_snapshots, job_folder, maps_folder, results_folder, runs_folder, snapshot_epoch
from scripts.io.staging import StagedFolder
from scripts.io.tables import write_csv, write_rows
from scripts.vessels import segments as seg
from scripts.vessels.disc import locate_disc
from scripts.vessels.graph import VesselGraph, build_graph
from scripts.vessels.measures import measure
from scripts.vessels.zone_b import VESSEL_FIELDS, vessel_rows

log = logging.getLogger("avseg")
PAPER_COLUMNS = {"Sensitivity": "sensitivity", "ROC": "roc", "F1": "f1", "PR": "pr", "MSE": "mse"}


RESULT_NAMES = (
    "paper_row.json",
    "per_image.csv",
    "summary.csv",
    "segments.csv",
    "biomarkers.csv",
    "vessels.csv",
    "figures",
    "report.html",
    "rrwnet.csv",
    "rrwnet_per_image.csv",
)
MAP_FOLDERS = ("small_pre", "raw_pre")


def save_prob_png(path: Path, prob: torch.Tensor) -> None:
    """(3, H, W) probabilities -> RGB PNG of probability x 255."""
    arr = (prob.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)


@dataclass
class BiomarkerComparison:
    """The biomarkers of one test image's ground truth and prediction, measured with one disc."""

    rows: list[dict]  # per measure: id, measure, truth, predicted, difference
    vessels: list[dict]  # per zone-B vessel of both maps: "source" (truth, predicted) and its vessels.csv row
    figure: np.ndarray  # the prediction's zone-B figure


def biomarker_comparison(
    dataset: AVDataset, index: int, image_id: str, classes: np.ndarray, photo: np.ndarray
) -> BiomarkerComparison:
    """The biomarkers of the ground truth and of the prediction of one image, with one optic disc for
    both, located in its photograph and its ground-truth vessels."""
    label, fov = dataset.ground_truth(index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # located discs and empty zones: the numbers say it
        disc = locate_disc(photo, fov, str(dataset.items[index].image), vessels=label.any(axis=2))
        truth = measure(decode_classes(torch.from_numpy(label.transpose(2, 0, 1))).numpy(), disc, fov)
        predicted = measure(classes, disc, fov)
    rows = [
        {
            "id": image_id,
            "measure": k,
            "truth": truth.values[k],
            "predicted": predicted.values.get(k, math.nan),
            "difference": predicted.values.get(k, math.nan) - truth.values[k],
        }
        for k in truth.values
        if not k.startswith("disc_")
    ]
    vessels = [
        {"source": source, **row}
        for source, found in (("truth", truth), ("predicted", predicted))
        for row in vessel_rows(image_id, found.vessels, found.values.get("pixel_um"))
    ]
    return BiomarkerComparison(rows, vessels, zone_b_figure(photo, classes & fov, disc, predicted.vessels))


def paper_row(scores: list[dict]) -> dict[str, tuple[float, float]]:
    """Table entry: mean and (population) std over checkpoints of the dataset's average, in percent."""
    return {
        col: (
            100 * float(np.mean([s["average"][m] for s in scores])),
            100 * float(np.std([s["average"][m] for s in scores])),
        )
        for col, m in PAPER_COLUMNS.items()
    }


@dataclass
class Scored:
    """One checkpoint's results over the whole split, in dataset order."""

    name: str
    rows: list = field(default_factory=list)  # (id, metrics)
    seg_rows: list = field(default_factory=list)  # per image: segment counts and rates
    bio_rows: list = field(default_factory=list)  # per image and measure: truth, predicted, difference
    vessel_rows: list = field(default_factory=list)  # per image and zone-B vessel of the truth and the prediction
    score: dict = field(default_factory=dict)  # the dataset score (mean over images)
    segments: dict = field(default_factory=dict)  # pooled segment metrics
    rrwnet_images: list = field(default_factory=list)  # RRWNet protocol: per image (rrwnet.ImageStats)
    rrwnet: dict | None = None  # RRWNet protocol: the pooled table


class TestRun:
    """One ``scripts/test.py`` run (module docstring); ``run()`` returns the row, the mean tables and
    the results folder (an empty dict on ranks other than 0)."""

    def __init__(self, opts: TestOptions, ctx: Context, device: torch.device) -> None:
        self.opts, self.ctx, self.device = opts, ctx, device
        # a release or original files are not a training run of --job_name: their results go apart
        run_name = "release" if opts.release else "original" if opts.original else opts.job_name
        self.centrelines: dict[int, list[np.ndarray]] = {}  # RRWNet protocol: ground-truth centrelines by image
        self.graphs: dict[int, VesselGraph] = {}  # segment metrics: ground-truth vessel graphs by image
        self.results_dir = opts.results or results_folder(opts.dataset, run_name)
        self.maps_dir = opts.maps_dir or maps_folder(opts.dataset, run_name)

    def sources(self) -> list[tuple[str, Path | None]]:
        """(name, checkpoint) of what enters the row (module docstring)."""
        opts = self.opts
        if opts.release or opts.original:
            return [("release" if opts.release else "original", None)]
        if not self.from_job():
            return given_checkpoints(opts.checkpoint or (), opts.snapshots)
        return [(p.stem, p) for p in find_snapshots(job_folder(opts.out, opts.dataset, opts.job_name), self.rule)]

    @property
    def rule(self) -> str:
        """Which of a job's checkpoints make the row: ``--snapshots``, else the job's variant's own rule, the
        epoch snapshots for v2021 (SPEC 6: consecutive checkpoints) and best.pt for v2023 (its code keeps
        the best-validation triple only, SPEC 9.2)."""
        if self.opts.snapshots:
            return self.opts.snapshots
        job_dir = job_folder(self.opts.out, self.opts.dataset, self.opts.job_name)
        try:
            variant = json.loads((job_dir / "config.json").read_text()).get("variant", "v2021")
        except (OSError, ValueError):  # no readable config: the snapshots themselves say what they are
            variant = "v2021"
        return "best" if variant == "v2023" else "protocol"

    def run(self) -> dict:
        """Stage the output folders (rank 0 locks and checks them), score, then publish them."""
        self.started, self.started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %z")
        sources = self.sources()
        self.source_paths = dict(sources)
        first = self.load(sources[0][1])  # a checkpoint that cannot be used stops the run before any folder is touched
        if self.opts.variant and first.variant != self.opts.variant:
            raise UsageError(
                f"--variant {self.opts.variant}: {sources[0][1] or sources[0][0]} holds the {first.variant} variant; "
                f"test it without --variant (or with --variant {first.variant}), or give the {self.opts.variant} job "
                "(sh train.sh DATASET --variant v2023 names it paper_v2023)"
            )
        token = self.ctx.broadcast(f"{os.getpid()}-{time.time_ns()}")
        staged = [
            StagedFolder(self.results_dir, "--results", lambda p: p.name in RESULT_NAMES, token),
            StagedFolder(self.maps_dir, "--maps-dir", lambda p: p.name in MAP_FOLDERS, token),
        ]
        with contextlib.ExitStack() as stack:
            problem = None
            if self.ctx.main:
                try:
                    for folder in staged:
                        stack.enter_context(folder)
                    for sub in MAP_FOLDERS:
                        (staged[1].stage / sub).mkdir()
                except UserError as err:
                    problem = err
            if self.ctx.any(problem is not None):
                raise problem or UsageError("rank 0 could not prepare the output folders (its message says why)")
            self.out, self.maps = staged[0].stage, staged[1].stage
            result = self.score_all(sources, first)
            if self.ctx.main:
                for folder in staged:
                    folder.publish()
        if self.ctx.main:
            print(f"\nmaps: {self.maps_dir}/{{small_pre,raw_pre}}  tables and figures: {self.results_dir}")
        return result

    def load(self, path: Path | None) -> Predictor:
        opts = self.opts
        return load_predictor(self.device, path, opts.release, opts.original, opts.dataset, opts.image_size)

    def score_all(self, sources: list[tuple[str, Path | None]], first: Predictor) -> dict:
        """Score every source into the staged folders; rank 0 writes the tables and prints the tables."""
        opts = self.opts
        dataset, scored, files = None, [], []
        last = f", the last of {len(sources)} checkpoints" if len(sources) > 1 else ""
        self.maps_of = f"maps of {sources[-1][0]}{last}"  # the figures' titles
        for i, (name, path) in enumerate(sources):
            predictor = first if i == 0 else self.load(path)
            if dataset is None or (predictor.model_size, predictor.variant) != (dataset.model_size, dataset.variant):
                dataset = AVDataset(
                    opts.dataset,
                    opts.split,
                    opts.data_root or default_data_root(),
                    train=False,
                    image_size=predictor.model_size,
                    variant=predictor.variant,
                )
                dataset.preload()  # every file checked before the first checkpoint is scored
            files += predictor.files
            scored.append(self.score(name, predictor, dataset, last=i == len(sources) - 1))
            score = scored[-1].score
            log.info(
                "%s: F1 %.2f  sensitivity %.2f",
                name,
                100 * score["average"]["f1"],
                100 * score["average"]["sensitivity"],
            )
        if not self.ctx.main:
            return {}
        row = paper_row([s.score for s in scored])
        self.write_tables(scored, row, predictor, dataset, files)
        self.write_report_page(len(dataset))
        mean = mean_metrics([s.score for s in scored])
        self.print_tables(scored, row, mean, predictor, dataset)
        return {"row": row, "mean": mean, "results_dir": self.results_dir}

    def from_job(self) -> bool:
        """Whether the checkpoints are the job folder's snapshots (so its config and curves apply)."""
        return not (self.opts.release or self.opts.original or self.opts.checkpoint)

    def write_report_page(self, n_images: int) -> None:
        """report.html of the staged results (scripts/figures/pages.py), from the files just written."""
        opts = self.opts
        job_dir = job_folder(opts.out, opts.dataset, opts.job_name)
        config = None
        if self.from_job():
            try:
                config = json.loads((job_dir / "config.json").read_text())
            except (OSError, ValueError) as err:
                config = f"the job's config.json could not be read ({err})"
        info = {
            "job": opts.job_name if self.from_job() else self.results_dir.name,
            "results": str(self.results_dir),
            "images": n_images,
            "command": " ".join(sys.argv),
            "started": self.started_at,
            "seconds": round(time.perf_counter() - self.started, 1),
            "device": str(self.device),
            "processes": self.ctx.world,
            "versions": ckpt.versions(),
            "config": config,
        }
        runs = runs_folder(opts.runs_dir, opts.job_name) if self.from_job() else None
        write_atomic(self.out / "report.html", results_page(self.out, info, runs))

    def rrwnet_summary(self, scored: list[Scored]) -> dict:
        """RRWNet's numbers for paper_row.json: mean and std over checkpoints, and per checkpoint."""
        flats = [rrwnet.flat(s.rrwnet) for s in scored]
        return {
            "settings": {"seed": self.opts.seed, "topo_paths": self.opts.topo_paths},
            "mean": {k: float(np.mean([f[k] for f in flats])) for k in flats[0]},
            "std": {k: float(np.std([f[k] for f in flats])) for k in flats[0]},
            "per_checkpoint": {s.name: f for s, f in zip(scored, flats)},
        }

    def selection(self, scored: list[Scored]) -> dict:
        """Which checkpoints made the row, and by which rule (recorded and printed)."""
        opts = self.opts
        rule = (
            "release"
            if opts.release
            else "original"
            if opts.original
            else "given (--checkpoint)"
            if opts.checkpoint
            else self.rule
        )
        return {"rule": rule, "epochs": [self.epoch_of(s.name) for s in scored]}

    def epoch_of(self, name: str) -> int | None:
        """A checkpoint's epoch: from a snapshot's name, else as the file records it (best.pt)."""
        epoch = snapshot_epoch(Path(name))
        path = self.source_paths.get(name)
        if epoch is None and path is not None and path.suffix == ".pt":
            epoch = ckpt.load(path).get("epoch")
        return epoch

    def score(self, name: str, predictor: Predictor, dataset: AVDataset, last: bool) -> Scored:
        """Score one checkpoint (this process's share of the images, then gathered); the last checkpoint
        also writes the maps, the figures and the biomarker rows."""
        opts = self.opts
        rows, counts, seg_rows, bio_rows, vessel_rows, theirs = [], [], [], [], [], []
        for j, pred in iterate_shard(predictor, dataset, self.device, self.ctx):
            if opts.protocol in ("rrwnet", "all"):
                truth = rrwnet.truth_channels(pred["label"].permute(1, 2, 0).cpu().numpy())
                if j not in self.centrelines:  # the same for every checkpoint
                    self.centrelines[j] = rrwnet.truth_centrelines(truth)
                theirs.append(
                    (
                        j,
                        rrwnet.image_stats(
                            pred["id"],
                            rrwnet.prediction_levels(pred["raw"].cpu().numpy()),
                            truth,
                            pred["mask"].cpu().numpy(),
                            opts.topo_paths,
                            np.random.default_rng((opts.seed, j)),
                            self.centrelines[j],
                            source=f"image {pred['id']}",
                        ),
                    )
                )
            rows.append((j, pred["id"], score_prediction(predictor, pred)))
            classes = decode_classes(pred["binary"]).cpu().numpy()
            graph = self.truth_graph(dataset, j)
            counts.append((j, seg.segment_counts(graph, classes, opts.min_segment_length)))
            seg_rows.append(
                (
                    j,
                    {
                        "checkpoint": name,
                        "id": pred["id"],
                        **counts[-1][1],
                        **seg.segment_metrics(counts[-1][1], opts.mixed_share),
                    },
                )
            )
            if last:
                compared = self.image_outputs(dataset, j, pred, classes, graph)
                if compared is not None:
                    bio_rows += [(j, r) for r in compared.rows]
                    vessel_rows += [(j, r) for r in compared.vessels]
        rows, counts, seg_rows, bio_rows, vessel_rows, theirs = (
            gather_in_order(self.ctx, part) for part in (rows, counts, seg_rows, bio_rows, vessel_rows, theirs)
        )
        segments = seg.segment_metrics(seg.pool(counts), opts.mixed_share)
        return Scored(
            name,
            rows,
            seg_rows,
            bio_rows,
            vessel_rows,
            mean_metrics([r for _, r in rows]),
            segments,
            theirs,
            rrwnet.pooled(theirs) if theirs else None,
        )

    def truth_graph(self, dataset: AVDataset, j: int) -> VesselGraph:
        """The ground-truth vessel graph of test image ``j`` (built once, then kept for every checkpoint)."""
        if j not in self.graphs:
            label, mask = dataset.ground_truth(j)
            self.graphs[j] = build_graph(label.transpose(2, 0, 1), radius=self.opts.crossing_radius, fov=mask)
        return self.graphs[j]

    def image_outputs(
        self, dataset: AVDataset, j: int, pred: dict, classes: np.ndarray, graph
    ) -> BiomarkerComparison | None:
        """The maps and the figures of one image; returns its biomarkers (none with --no-biomarkers)."""
        opts = self.opts
        save_prob_png(self.maps / "small_pre" / f"{pred['id']}.png", pred["small"])
        save_prob_png(self.maps / "raw_pre" / f"{pred['id']}.png", pred["raw"])
        photo = load_photo(dataset.items[j].image)
        compared = None if opts.no_biomarkers else biomarker_comparison(dataset, j, pred["id"], classes, photo)
        (self.out / "figures").mkdir(exist_ok=True)
        if compared is not None:
            Image.fromarray(compared.figure).save(self.out / "figures" / f"{pred['id']}_zone_b.png")
        verdict = seg.verdicts(graph, classes, opts.min_segment_length, opts.mixed_share)
        panel = lambda width, g=graph, v=verdict: seg.verdict_picture(g, v, width)  # noqa: E731
        fig = comparison_row(
            dataset,
            j,
            pred["raw"],
            pred["label"],
            pred["mask"],
            pred["binary"],
            segments=panel,
            photo=photo,
            title=f"{opts.dataset} {opts.split} image {pred['id']}: {self.maps_of}",
        )
        Image.fromarray(fig).save(self.out / "figures" / f"{pred['id']}.png")
        return compared

    def write_tables(
        self, scored: list[Scored], row: dict, predictor: Predictor, dataset: AVDataset, files: list[Path]
    ) -> None:
        opts, out = self.opts, self.out
        seg_mean, seg_std = segment_summary([s.segments for s in scored])
        metrics_csv(
            out / "per_image.csv",
            [((s.name, image_id), r) for s in scored for image_id, r in s.rows],
            key_names=("checkpoint", "id"),
        )
        metrics_csv(out / "summary.csv", [(s.name, s.score) for s in scored], key_names=("checkpoint",))
        protocol = "SPEC 9.4 (2023 release: softmax argmax)" if predictor.variant == "v2023" else "SPEC 6 (paper)"
        write_atomic(
            out / "paper_row.json",
            json.dumps(
                nan_to_null(
                    {
                        "dataset": opts.dataset,
                        "split": opts.split,
                        "protocol": protocol,
                        "variant": predictor.variant,
                        "model_size": list(dataset.model_size),
                        "checkpoints": [s.name for s in scored],
                        "snapshots": self.selection(scored),
                        "weights": [{"file": str(f), "sha256": ckpt.file_sha256(f)} for f in dict.fromkeys(files)],
                        "percent": {k: {"mean": m, "std": sd} for k, (m, sd) in row.items()},
                        "per_checkpoint": {
                            s.name: {col: 100 * s.score["average"][m] for col, m in PAPER_COLUMNS.items()}
                            for s in scored
                        },
                        "segments": {
                            "settings": {
                                "mixed_share": opts.mixed_share,
                                "min_segment_length": opts.min_segment_length,
                                "crossing_radius": opts.crossing_radius,
                            },
                            "mean": seg_mean,
                            "std": seg_std,
                            "per_checkpoint": {s.name: s.segments for s in scored},
                        },
                        **({"rrwnet": self.rrwnet_summary(scored)} if scored[0].rrwnet is not None else {}),
                    }
                ),
                indent=1,
                allow_nan=False,
            )
            + "\n",
        )
        segment_rows = [r for s in scored for r in s.seg_rows]
        biomarker_rows = [r for s in scored for r in s.bio_rows]
        if scored[0].rrwnet is not None:
            write_csv(out / "rrwnet.csv", [{"checkpoint": s.name, **rrwnet.flat(s.rrwnet)} for s in scored])
            write_csv(
                out / "rrwnet_per_image.csv",
                [{"checkpoint": s.name, "id": st.id, **rrwnet.image_row(st)} for s in scored for st in s.rrwnet_images],
            )
        if segment_rows:
            write_csv(out / "segments.csv", segment_rows)
        if biomarker_rows:
            write_csv(out / "biomarkers.csv", biomarker_rows)
            vessels = [r for s in scored for r in s.vessel_rows]
            write_rows(out / "vessels.csv", ["source", *VESSEL_FIELDS], vessels)

    def print_tables(
        self, scored: list[Scored], row: dict, mean: dict, predictor: Predictor, dataset: AVDataset
    ) -> None:
        opts = self.opts
        chosen = self.selection(scored)
        epochs = [e for e in chosen["epochs"] if e is not None]
        names = (
            f"epochs {', '.join(map(str, epochs))}" if len(epochs) == len(scored) else ", ".join(s.name for s in scored)
        )
        print(
            f"\n{opts.dataset}/{opts.split}: {len(dataset)} images, {len(scored)} checkpoint(s): {names} "
            f"({chosen['rule']})"
        )
        if predictor.variant == "v2023":
            print(
                f"\nThe authors' 2023 release, scored as their test code does (SPEC 9.3-9.4): model size "
                f"{dataset.model_size[0]}x{dataset.model_size[1]}, argmax of the softmax, FOV pixels; 'ROC'/'PR' are "
                "section 6's binary reading of the argmax maps (their test code prints none)."
            )
        if len(scored) == 1:
            print("\nPaper table row (percent; 1 checkpoint, so no std):")
            print("  ".join(f"{k}: {m:.2f}" for k, (m, _) in row.items()))
        else:
            print("\nPaper table row (percent, mean +- std over checkpoints; binary 'ROC'/'PR' as in the paper):")
            print("  ".join(f"{k}: {m:.2f} +- {s:.2f}" for k, (m, s) in row.items()))
        print("\nPer class (percent, mean over checkpoints):")
        print(format_table(mean))
        print("\nThreshold-free AUCs of the probabilities (not the paper's 'ROC'/'PR'):")
        print(format_table(mean, PROB_METRICS))
        seg_mean, seg_std = segment_summary([s.segments for s in scored])
        print(
            f"\nSegments (ground-truth centreline segments, pooled over images; mean over checkpoints; "
            f"mixed at {100 * opts.mixed_share:g} %; docs/segments.md):"
        )
        print(seg.format_segments(seg_mean, None if len(scored) == 1 else seg_std))
        if scored[0].rrwnet is not None:
            over = "" if len(scored) == 1 else f"; mean over {len(scored)} checkpoints"
            print(
                f"\nRRWNet protocol (percent; pooled over images{over}; topology: {opts.topo_paths} paths per "
                f"image and class, seed {opts.seed}; docs/protocols.md):"
            )
            print(rrwnet.format_rrwnet(rrwnet.mean_over([s.rrwnet for s in scored])))


def given_checkpoints(paths, snapshots: str | None) -> list[tuple[str, Path]]:
    """``--checkpoint`` files as (name, path): each file once (the same file twice would count twice in
    the mean and make the std 0); ``--snapshots`` chooses among a job's files, so it cannot go with them."""
    if snapshots is not None:
        raise UsageError(
            f"--snapshots {snapshots} chooses among the job's snapshots; with --checkpoint exactly the files given are "
            "scored: leave out one of the two"
        )
    seen: dict[str, Path] = {}
    for path in paths:
        key = ckpt.file_sha256(path) if Path(path).is_file() else str(Path(path).resolve())
        if key in seen:
            raise UsageError(
                f"--checkpoint {path} is the same file as --checkpoint {seen[key]}: give each checkpoint once "
                "(the row is a mean over different checkpoints)"
            )
        seen[key] = Path(path)
    names = [p.stem for p in seen.values()]
    return [(p.stem if names.count(p.stem) == 1 else str(p), p) for p in seen.values()]


def segment_summary(segment_scores: list[dict]) -> tuple[dict, dict]:
    """Mean and std over checkpoints of the pooled segment metrics (NaN where undefined)."""
    keys = segment_scores[0] if segment_scores else {}
    return (
        {k: float(np.mean([s[k] for s in segment_scores])) for k in keys},
        {k: float(np.std([s[k] for s in segment_scores])) for k in keys},
    )
