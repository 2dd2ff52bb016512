"""Run a trained model on any fundus photographs.

    python -m scripts.predict photos/ --checkpoint DRIVE_AV/paper/best.pt --out predictions
    python -m scripts.predict 'clinic/*.jpg' --original CP_A.pth CP_V.pth CP_G.pth --image-size 592 592
    python -m scripts.predict photos/ --release weights/DRIVE_AV --out predictions   # authors' 2023 release

Inputs: files, folders or globs (jpg, png, tif, bmp, ...; any size; grey, RGB, RGBA, 8- or 16-bit).
The model runs at its training size; maps come back at each photograph's own size. Per image
``<out>/<name>_av.png`` (red artery, blue vein, green uncertain/crossing), ``_prob.png``
(probabilities x 255, RGB = artery, uncertain, vein), ``_vessel.png`` (binary vessel map) and
``_overlay.png``. ``--out`` is replaced as a whole when every input is done (an interrupted run
leaves the previous predictions as they were; a folder holding other files is refused);
``predictions.csv`` also holds the vascular biomarkers of each map (optic disc
located in the photograph; ``--no-biomarkers`` skips them); with the 2023 release the probabilities are its softmax classes (artery,
uncertain, vein) and the classes its argmax (SPEC 9.4). For the run ``<out>/predictions.csv`` (one row per input: its output name and
source file) and ``<out>/report.html`` (each photograph's overlay, A/V map and biomarkers on one page,
the inputs that failed and why). ``<name>`` is the file name without extension; where two inputs share it, see
:func:`output_names`. FOV masks come from ``--masks DIR`` (``<stem>_mask.*`` or ``<stem>.*``) or
are derived from the photograph.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.io.weights import add_weight_options
from scripts.core.errors import UserError
from scripts.data.augment import resize_image
from scripts.data.images import find_mask
from scripts.data.images import DataError, collect_inputs, derive_fov, load_mask, load_photo
from scripts.data.labels import av_colour_map, decode_classes
from scripts.io.weights import load_predictor
from scripts.io.atomic import write_atomic
from scripts.io.staging import StagedFolder
from scripts.core.runtime import positive_float, positive_int, resolve_device
from scripts.figures.pages import predictions_page
from scripts.figures.visualise import overlay
from scripts.io import checkpoint as ckpt
from scripts.vessels.disc import Disc, locate_disc, read_disc_csv
from scripts.vessels.measures import measure

log = logging.getLogger("avseg")
CSV_FIELDS = ("id", "file", "width", "height", "vessel_fraction", "artery_fraction", "vein_fraction",
              "artery_vein_ratio", "seconds")


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


def save_outputs(out: Path, stem: str, photo: np.ndarray, prob: torch.Tensor, binary: torch.Tensor,
                 fov: np.ndarray) -> dict:
    """Write the four pictures of one image (probabilities and bool channel map at its size) and
    return its CSV statistics."""
    pred = binary.cpu().numpy() & fov
    Image.fromarray(av_colour_map(pred)).save(out / f"{stem}_av.png")
    Image.fromarray((prob.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()).save(out / f"{stem}_prob.png")
    Image.fromarray(pred.any(0).astype(np.uint8) * 255).save(out / f"{stem}_vessel.png")
    Image.fromarray(overlay(photo, pred)).save(out / f"{stem}_overlay.png")
    artery, vein, _ = decode_classes(torch.from_numpy(pred)).numpy()
    n = max(int(fov.sum()), 1)
    a, v = int((artery & fov).sum()), int((vein & fov).sum())
    return {"vessel_fraction": pred.any(0)[fov].mean() if fov.any() else 0.0, "artery_fraction": a / n,
            "vein_fraction": v / n, "artery_vein_ratio": a / v if a and v else None}  # undefined without both classes


def run(args: argparse.Namespace) -> tuple[int, list[tuple[Path, str]]]:
    """Predict every input into a staged copy of ``--out``, published whole when all are done."""
    device = resolve_device(args.device)
    files = collect_inputs(args.inputs)
    predictor = load_predictor(device, args.checkpoint, args.release, args.original, args.dataset, args.image_size)
    discs = read_disc_csv(args.disc_csv) if args.disc_csv else {}
    staged = StagedFolder(args.out, "--out", is_output, str(os.getpid()))
    with staged as stage:
        done = predict_all(args, files, predictor, discs, device, stage)
        staged.publish()
    return done


def predict_all(args: argparse.Namespace, files: list[Path], predictor, discs: dict[str, Disc], device: torch.device,
                folder: Path) -> tuple[int, list[tuple[Path, str]]]:
    """The maps and predictions.csv of every input into ``folder``; a file that cannot be read is
    reported and skipped."""
    started = time.perf_counter()
    names = dict(zip(files, output_names(files)))
    size = predictor.model_size
    log.info("%d image(s), model size %dx%d, device %s", len(files), *size, device)
    rows, failures = [], []
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=None)
    for start in range(0, len(files), args.batch_size):
        chunk, photos, fovs, xs, t0 = files[start:start + args.batch_size], [], [], [], time.perf_counter()
        ok = []
        for path in chunk:
            try:
                photo = load_photo(path)
                mask_file = args.masks and find_mask(args.masks, path.stem)
                fov = load_mask(mask_file) if mask_file else derive_fov(photo, path)
                if fov.shape != photo.shape[:2]:
                    raise DataError(f"{mask_file}: mask size {fov.shape[::-1]} differs from the photograph {photo.shape[1::-1]}")
            except DataError as err:
                failures.append((path, str(err)))
                tqdm.write(f"failed: {err}")
                bar.update(1)
                continue
            ok.append(path), photos.append(photo), fovs.append(fov)
            xs.append(torch.from_numpy(predictor.normalise(resize_image(photo, size))))
        if not ok:
            continue
        outs = predictor.forward(torch.stack(xs).to(device), flip_tta=args.tta)
        per_image = (time.perf_counter() - t0) / len(ok)
        for path, photo, fov, out in zip(ok, photos, fovs, outs):
            t1 = time.perf_counter()
            raw, binary = predictor.raw(out, photo.shape[:2], torch.from_numpy(fov).to(out.device))
            stats = save_outputs(folder, names[path], photo, raw, binary, fov)
            if not args.no_biomarkers:
                classes = decode_classes(binary.cpu()).numpy()
                disc = discs.get(names[path]) or discs.get(path.stem) or locate_disc(
                    photo, fov, str(path), hint="give its disc in a --disc-csv row", vessels=classes.any(axis=0))
                stats.update(measure(classes, disc, fov, args.pixel_um, source=str(path)))
            rows.append({"id": names[path], "file": str(path), "width": photo.shape[1], "height": photo.shape[0],
                         **stats, "seconds": per_image + time.perf_counter() - t1})
            bar.update(1)
    bar.close()
    buf = io.StringIO()
    fields = list(CSV_FIELDS) + [k for r in rows[:1] for k in r if k not in CSV_FIELDS]
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.6g}"
                         if isinstance(v, float) else v for k, v in r.items()})
    write_atomic(folder / "predictions.csv", buf.getvalue())
    info = {"out": str(args.out), "command": " ".join(sys.argv), "photographs": len(files), "written": len(rows),
            "failed": len(failures), "seconds": round(time.perf_counter() - started, 1), "device": str(device),
            "weights": [str(f) for f in predictor.files], "model_size": list(size), "variant": predictor.variant,
            "versions": ckpt.versions()}
    write_atomic(folder / "report.html", predictions_page(folder, info, [(str(p), m) for p, m in failures]))
    return len(rows), failures


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders or globs")
    add_weight_options(p, "a .pt of this project, or a job folder (uses best.pt)")
    p.add_argument("--dataset", default=None, help="with --release: which dataset's weights, when DIR holds several")
    p.add_argument("--out", type=Path, default=Path("predictions"))
    p.add_argument("--masks", type=Path, default=None, help="folder of FOV masks (<name>_mask.* or <name>.*)")
    p.add_argument("--image-size", type=positive_int, nargs=2, metavar=("W", "H"), default=None,
                   help="model input size (default: the checkpoint's training size; 720 720 for the 2023 release)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--no-biomarkers", action="store_true",
                   help="skip the vascular biomarkers (README 'Vascular biomarkers') in predictions.csv")
    p.add_argument("--pixel-um", type=positive_float, default=None, metavar="U",
                   help="micrometres per pixel of the photographs: calibres and CRAE/CRVE also in micrometres")
    p.add_argument("--disc-csv", type=Path, default=None,
                   help="optic discs you know (columns id, x, y, radius in pixels; id = output name or file name "
                   "without extension); photographs without a row get a located disc")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        done, failures = run(args)
    except UserError as err:  # a bug shows its traceback instead
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{done} image(s) written to {args.out} (predictions.csv)")
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, msg in failures:  # the message names the file
            print(f"  {msg}" if str(path) in msg else f"  {path}: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
