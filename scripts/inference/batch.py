"""Predicting a list of photographs into a folder: a unique output name per input, the four
pictures of each (A/V map, probabilities, vessel map, overlay), its biomarkers, ``predictions.csv``
and ``report.html`` (``scripts/predict.py``; docs/predicting.md)."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from scripts.data.augment import resize_image
from scripts.data.images import DataError, derive_fov, find_mask, load_mask, load_photo
from scripts.data.labels import av_colour_map, decode_classes
from scripts.figures.pages import predictions_page
from scripts.figures.visualise import overlay
from scripts.inference.predictor import Predictor
from scripts.io import checkpoint as ckpt
from scripts.io.atomic import write_atomic
from scripts.vessels.disc import Disc, locate_disc
from scripts.vessels.measures import measure

log = logging.getLogger("avseg")
CSV_FIELDS = (
    "id",
    "file",
    "width",
    "height",
    "vessel_fraction",
    "artery_fraction",
    "vein_fraction",
    "artery_vein_ratio",
    "seconds",
)


def output_names(files: list[Path]) -> list[str]:
    """A unique, predictable output name per input.

    The file name without extension; where several inputs share it (``a/01.jpg`` and ``b/01.png``,
    or ``01.jpg`` next to ``01.png``), their path below the inputs' common folder, folders joined
    by ``__`` and the extension appended (``a__01_jpg``, ``b__01_png``; ``01_jpg``, ``01_png``);
    a name still taken gets ``_2``, ``_3`` ... in input order."""
    stems = Counter(p.stem.lower() for p in files)
    resolved = [p.resolve() for p in files]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved])) if files else Path()
    names, taken = [], set()
    for path, full in zip(files, resolved):
        name = path.stem
        if stems[path.stem.lower()] > 1:
            name = "__".join(full.relative_to(common).with_suffix("").parts) + "_" + path.suffix.lstrip(".").lower()
        unique, k = name, 2
        while unique.lower() in taken:
            unique, k = f"{name}_{k}", k + 1
        taken.add(unique.lower())
        names.append(unique)
    return names


OUTPUT_SUFFIXES = ("_av.png", "_prob.png", "_vessel.png", "_overlay.png")


def is_output(path: Path) -> bool:
    """Whether ``path`` in an existing ``--out`` folder is one of predict's own outputs (replaceable)."""
    return path.is_file() and (path.name in ("predictions.csv", "report.html") or path.name.endswith(OUTPUT_SUFFIXES))


def save_outputs(
    out: Path, stem: str, photo: np.ndarray, prob: torch.Tensor, binary: torch.Tensor, fov: np.ndarray
) -> dict:
    """Write the four pictures of one image (probabilities and bool channel map at its size) and
    return its CSV statistics."""
    pred = binary.cpu().numpy() & fov
    Image.fromarray(av_colour_map(pred)).save(out / f"{stem}_av.png")
    Image.fromarray((prob.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()).save(
        out / f"{stem}_prob.png"
    )
    Image.fromarray(pred.any(0).astype(np.uint8) * 255).save(out / f"{stem}_vessel.png")
    Image.fromarray(overlay(photo, pred)).save(out / f"{stem}_overlay.png")
    artery, vein, _ = decode_classes(torch.from_numpy(pred)).numpy()
    n = max(int(fov.sum()), 1)
    a, v = int((artery & fov).sum()), int((vein & fov).sum())
    return {
        "vessel_fraction": pred.any(0)[fov].mean() if fov.any() else 0.0,
        "artery_fraction": a / n,
        "vein_fraction": v / n,
        "artery_vein_ratio": a / v if a and v else None,
    }  # undefined without both classes


@dataclass(frozen=True)
class PredictOptions:
    """How to predict (the options of ``predict.py``); ``out`` is the folder named in the report."""

    out: Path
    masks: Path | None = None
    batch_size: int = 1
    tta: bool = False
    biomarkers: bool = True
    pixel_um: float | None = None


def predict_all(
    options: PredictOptions,
    files: list[Path],
    predictor: Predictor,
    discs: dict[str, Disc],
    device: torch.device,
    folder: Path,
) -> tuple[int, list[tuple[Path, str]]]:
    """The maps and predictions.csv of every input into ``folder``; a file that cannot be read is
    reported and skipped."""
    started = time.perf_counter()
    names = dict(zip(files, output_names(files)))
    size = predictor.model_size
    log.info("%d image(s), model size %dx%d, device %s", len(files), *size, device)
    rows, failures = [], []
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=None)
    for start in range(0, len(files), options.batch_size):
        chunk, photos, fovs, xs, t0 = files[start : start + options.batch_size], [], [], [], time.perf_counter()
        ok = []
        for path in chunk:
            try:
                photo = load_photo(path)
                mask_file = options.masks and find_mask(options.masks, path.stem)
                fov = load_mask(mask_file) if mask_file else derive_fov(photo, path)
                if fov.shape != photo.shape[:2]:
                    raise DataError(
                        f"{mask_file}: mask size {fov.shape[::-1]} differs from the photograph {photo.shape[1::-1]}"
                    )
            except DataError as err:
                failures.append((path, str(err)))
                tqdm.write(f"failed: {err}")
                bar.update(1)
                continue
            ok.append(path), photos.append(photo), fovs.append(fov)
            xs.append(torch.from_numpy(predictor.normalise(resize_image(photo, size))))
        if not ok:
            continue
        outs = predictor.forward(torch.stack(xs).to(device), flip_tta=options.tta)
        per_image = (time.perf_counter() - t0) / len(ok)
        for path, photo, fov, out in zip(ok, photos, fovs, outs):
            t1 = time.perf_counter()
            raw, binary = predictor.raw(out, photo.shape[:2], torch.from_numpy(fov).to(out.device))
            stats = save_outputs(folder, names[path], photo, raw, binary, fov)
            if options.biomarkers:
                classes = decode_classes(binary.cpu()).numpy()
                disc = (
                    discs.get(names[path])
                    or discs.get(path.stem)
                    or locate_disc(
                        photo, fov, str(path), hint="give its disc in a --disc-csv row", vessels=classes.any(axis=0)
                    )
                )
                stats.update(disc_source=disc.source, **measure(classes, disc, fov, options.pixel_um, source=str(path)))
            rows.append(
                {
                    "id": names[path],
                    "file": str(path),
                    "width": photo.shape[1],
                    "height": photo.shape[0],
                    **stats,
                    "seconds": per_image + time.perf_counter() - t1,
                }
            )
            bar.update(1)
    bar.close()
    buf = io.StringIO()
    fields = list(CSV_FIELDS) + [k for r in rows[:1] for k in r if k not in CSV_FIELDS]
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                k: ""
                if v is None or (isinstance(v, float) and np.isnan(v))
                else f"{v:.6g}"
                if isinstance(v, float)
                else v
                for k, v in r.items()
            }
        )
    write_atomic(folder / "predictions.csv", buf.getvalue())
    info = {
        "out": str(options.out),
        "command": " ".join(sys.argv),
        "photographs": len(files),
        "written": len(rows),
        "failed": len(failures),
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "weights": [str(f) for f in predictor.files],
        "model_size": list(size),
        "variant": predictor.variant,
        "versions": ckpt.versions(),
    }
    write_atomic(folder / "report.html", predictions_page(folder, info, [(str(p), m) for p, m in failures]))
    return len(rows), failures
