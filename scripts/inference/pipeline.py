"""Predicting photographs in three overlapped stages, each photograph's outputs written as it finishes.

* decode (:class:`PhotoReader`, in DataLoader worker processes): fingerprint and decode the file,
  find or derive its FOV, resize and normalise it to the model's input;
* infer (this process, on the device, in batches): the networks, then each map back at its
  photograph's size;
* finish (:func:`finish_photo`, in a process pool): the four pictures, the biomarkers and the
  photograph's record (``scripts/inference/records.py``), written before the next photograph waits.

The queues between them are bounded (the loader's prefetch, at most two photographs per finishing
process in flight), so memory stays flat however many photographs there are. With no workers every
stage runs in this process, one photograph after another: the sequential pipeline. A photograph
that fails in any stage becomes a failed record (with the traceback when the cause is not a bad
input) and the others go on; a write that fails (a full disk) stops the run, since every later
photograph would fail the same way, and the finished ones stay.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from scripts.core.errors import UserError
from scripts.data.augment import normalise, resize_image
from scripts.data.images import DataError, derive_fov, find_mask, load_mask, load_photo
from scripts.data.labels import av_colour_map, decode_classes
from scripts.figures.visualise import overlay
from scripts.figures.zone_b import zone_b_figure
from scripts.inference.predictor import Predictor
from scripts.inference.quality import grade, not_a_fundus_photograph, photo_measures
from scripts.inference.records import Record, identity, write_record
from scripts.io.atomic import WriteError, atomic_write
from scripts.io.checkpoint import file_sha256
from scripts.vessels.disc import Disc, locate_disc
from scripts.vessels.measures import measure
from scripts.vessels.zone_b import vessel_rows


@dataclass(frozen=True)
class Photo:
    """One input and its output name; ``group``: its batch (photographs of one group run through the
    networks together); ``done``: already finished (it is in a group with unfinished ones, and runs
    again only so that the group is the same batch as before)."""

    path: Path
    name: str
    group: int = 0
    done: bool = False


@dataclass(frozen=True)
class Workers:
    """Processes per stage: ``decode`` DataLoader workers, ``finish`` pool processes (0: in this process)."""

    decode: int = 0
    finish: int = 0


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over photographs (decode: reading to the network's input; infer:
    the networks and the maps at full size; write: the four pictures; measure: quality, disc and
    biomarkers), and seconds this process waited for the workers; for the benchmark and the log."""

    decode: float = 0.0
    infer: float = 0.0
    write: float = 0.0
    measure: float = 0.0
    waiting: float = 0.0
    photos: int = 0
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Finish:
    """Everything :func:`finish_photo` needs, picklable (NumPy arrays, no tensors)."""

    folder: Path
    photo: Photo
    input: dict
    image: np.ndarray  # (H, W, 3) uint8
    fov: np.ndarray  # (H, W) bool
    prob: np.ndarray  # (H, W, 3) uint8: artery, uncertain, vein x 255
    binary: np.ndarray  # (3, H, W) bool channel map, zero outside the FOV
    disc: Disc | None
    biomarkers: bool
    pixel_um: float | None
    quality: dict[str, float]  # the photograph's own quality measures
    warnings: tuple[str, ...]
    stages: dict[str, float]  # seconds spent so far per stage


def _failure(photo: Photo, ident: dict, stage: str, err: BaseException, stages: dict[str, float]) -> Record:
    """A failed record: a user's problem (bad input) by its message, anything else with its traceback."""
    bad_input = isinstance(err, UserError)
    reason = str(err) if bad_input else f"{photo.path}: {type(err).__name__}: {err}"
    trace = "" if bad_input else "".join(traceback.format_exception(err))
    return Record(photo.name, ident, "failed", {}, stage, reason, trace, stages=stages)


OUTPUT_SUFFIXES = ("_av.png", "_prob.png", "_vessel.png", "_overlay.png", "_zone_b.png")


def _save_png(path: Path, picture: np.ndarray) -> None:
    # zlib level 1: a 576 x 576 overlay encodes in 40 ms instead of 100 (level 6) for a file 14 % larger
    atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG", compress_level=1))


def save_outputs(
    folder: Path, stem: str, photo: np.ndarray, prob: np.ndarray, binary: np.ndarray, fov: np.ndarray
) -> dict:
    """Write the four pictures of one photograph (``prob``: (H, W, 3) uint8; ``binary``: (3, H, W)
    bool channel map) and return its predictions.csv statistics."""
    pred = binary & fov
    _save_png(folder / f"{stem}_av.png", av_colour_map(pred))
    _save_png(folder / f"{stem}_prob.png", prob)
    _save_png(folder / f"{stem}_vessel.png", pred.any(0).astype(np.uint8) * 255)
    _save_png(folder / f"{stem}_overlay.png", overlay(photo, pred))
    artery, vein, _ = decode_classes(torch.from_numpy(pred)).numpy()
    n = max(int(fov.sum()), 1)
    a, v = int((artery & fov).sum()), int((vein & fov).sum())
    return {
        "vessel_fraction": float(pred.any(0)[fov].mean()) if fov.any() else 0.0,
        "artery_fraction": a / n,
        "vein_fraction": v / n,
        "artery_vein_ratio": a / v if a and v else None,
    }  # undefined without both classes


def _no_collate(item):  # batch_size=None: items one by one, arrays kept as they are
    return item


class PhotoReader(Dataset):
    """The decode stage: item ``i`` is a dict with the photograph's ``input`` identity, ``image``,
    ``fov`` and network input ``x``, or a failed ``record``."""

    def __init__(self, photos: list[Photo], masks: Path | None, size: tuple[int, int], multiply_std: bool) -> None:
        self.photos, self.masks, self.size, self.multiply_std = photos, masks, size, multiply_std

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> dict:
        photo, started = self.photos[i], time.perf_counter()
        ident = {"file": str(photo.path)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ident = identity(photo.path, file_sha256(photo.path))
                image = load_photo(photo.path)
                mask_file = self.masks and find_mask(self.masks, photo.path.stem)
                fov = load_mask(mask_file) if mask_file else derive_fov(image, photo.path)
                if fov.shape != image.shape[:2]:
                    raise DataError(
                        f"{mask_file}: mask size {fov.shape[::-1]} differs from the photograph {image.shape[1::-1]}"
                    )
                quality = photo_measures(image, fov)
                wrong = not_a_fundus_photograph(quality)
                if wrong:
                    raise DataError(f"{photo.path}: {wrong}")
                x = torch.from_numpy(normalise(resize_image(image, self.size), self.multiply_std))
            except OSError as err:  # gone or unreadable since it was listed
                failed = DataError(f"{photo.path}: cannot be read ({err.strerror or err})")
                record = _failure(photo, ident, "decode", failed, {"decode": time.perf_counter() - started})
                return {"photo": photo, "record": record}
            except Exception as err:  # noqa: BLE001 - one photograph's problem, recorded with its cause
                record = _failure(photo, ident, "decode", err, {"decode": time.perf_counter() - started})
                return {"photo": photo, "record": record}
        return {
            "photo": photo,
            "input": ident,
            "image": image,
            "fov": fov,
            "x": x,
            "quality": quality,
            "warnings": tuple(str(w.message) for w in caught),
            "decode": time.perf_counter() - started,
        }


def finish_photo(task: Finish) -> Record:
    """The finish stage of one photograph: pictures, biomarkers, then its record (the commit).
    Raises :class:`WriteError` when an output cannot be written."""
    started = time.perf_counter()
    photo = task.photo
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stats = save_outputs(task.folder, photo.name, task.image, task.prob, task.binary, task.fov)
            wrote = time.perf_counter()
            quality = {**task.quality, "vessel_fraction": stats["vessel_fraction"]}
            disc, measures, vessels = None, {}, []
            if task.biomarkers:
                classes = decode_classes(torch.from_numpy(task.binary)).numpy()
                disc = task.disc or locate_disc(
                    task.image,
                    task.fov,
                    str(photo.path),
                    hint="give its disc in a --disc-csv row",
                    vessels=np.asarray(classes.any(axis=0)),
                )
                quality["disc_confidence"] = disc.confidence
            flag, reason = grade(quality)
            if disc is not None and flag != "reject":
                found = measure(classes, disc, task.fov, task.pixel_um, source=str(photo.path))
                measures = {**found.values, "flags": "; ".join(found.flags)}
                vessels = vessel_rows(photo.name, found.vessels, found.values.get("pixel_um"))
                _save_png(
                    task.folder / f"{photo.name}_zone_b.png",
                    zone_b_figure(task.image, classes & task.fov, disc, found.vessels),
                )
            stats.update(quality=flag, quality_reason=reason, **quality)
            if disc is not None:
                stats.update(disc_source=disc.source, **measures)
            h, w = task.image.shape[:2]
            row = {"id": photo.name, "file": str(photo.path), "width": w, "height": h, **stats}
            notes = (*task.warnings, *(str(w.message) for w in caught))
            stages = {**task.stages, "write": wrote - started, "measure": time.perf_counter() - wrote}
            record = Record(photo.name, task.input, "done", row, warnings=notes, stages=stages, vessels=vessels)
        except WriteError:
            raise
        except Exception as err:  # noqa: BLE001 - one photograph's problem, recorded with its cause
            record = _failure(
                photo, task.input, "finish", err, {**task.stages, "measure": time.perf_counter() - started}
            )
    write_record(task.folder, record)
    return record


def _init_finisher() -> None:
    torch.set_num_threads(1)  # the pool's processes share the machine with inference


@dataclass(frozen=True)
class Plan:
    """What the stages need besides the photographs."""

    folder: Path
    predictor: Predictor
    device: torch.device
    masks: Path | None = None
    tta: bool = False
    biomarkers: bool = True
    pixel_um: float | None = None
    discs: dict[str, Disc] = field(default_factory=dict)
    workers: Workers = Workers()


def run_photos(plan: Plan, photos: list[Photo], times: StageTimes | None = None) -> Iterator[Record]:
    """Every photograph not ``done`` through the three stages, a ``group`` per batch (consecutive);
    yields each record once it is written."""
    times = times if times is not None else StageTimes()
    predictor, workers = plan.predictor, plan.workers
    reader = PhotoReader(photos, plan.masks, predictor.model_size, predictor.variant == "v2023")
    loader = DataLoader(
        reader,
        batch_size=None,
        num_workers=workers.decode,
        collate_fn=_no_collate,
        prefetch_factor=2 if workers.decode else None,
    )
    pool = (
        ProcessPoolExecutor(workers.finish, multiprocessing.get_context("spawn"), initializer=_init_finisher)
        if workers.finish
        else None
    )
    in_flight: deque[Future] = deque()

    def collect(limit: int) -> Iterator[Record]:
        while len(in_flight) > limit:
            waited = time.perf_counter()
            record = in_flight.popleft().result()
            times.waiting += time.perf_counter() - waited
            yield count(record)

    def count(record: Record) -> Record:
        times.write += record.stages.get("write", 0.0)
        times.measure += record.stages.get("measure", 0.0)
        times.photos += 1
        return record

    def infer(batch: list[dict]) -> Iterator[Record]:
        if all(b["photo"].done for b in batch):
            return
        started = time.perf_counter()
        try:
            outs = predictor.forward(torch.stack([b["x"] for b in batch]).to(plan.device), flip_tta=plan.tta)
        except Exception as err:  # noqa: BLE001 - e.g. out of memory: these photographs fail, the others go on
            for b in batch:
                yield written(_failure(b["photo"], b["input"], "infer", err, {"decode": b["decode"]}))
            return
        share = (time.perf_counter() - started) / len(batch)
        for b, out in zip(batch, outs):
            t0 = time.perf_counter()
            photo = b["photo"]
            if photo.done:
                continue
            try:
                prob, binary = predictor.raw(out, b["image"].shape[:2], torch.from_numpy(b["fov"]).to(out.device))
                prob_u8 = (prob.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
                binary_np = binary.cpu().numpy()
            except Exception as err:  # noqa: BLE001
                yield written(_failure(photo, b["input"], "infer", err, {"decode": b["decode"]}))
                continue
            spent = share + time.perf_counter() - t0
            times.infer += spent
            disc = plan.discs.get(photo.name) or plan.discs.get(photo.path.stem)
            task = Finish(
                plan.folder,
                photo,
                b["input"],
                b["image"],
                b["fov"],
                prob_u8,
                binary_np,
                disc,
                plan.biomarkers,
                plan.pixel_um,
                b["quality"],
                b["warnings"],
                {"decode": b["decode"], "infer": spent},
            )
            if pool is None:
                yield count(finish_photo(task))
            else:
                in_flight.append(pool.submit(finish_photo, task))
                yield from collect(2 * workers.finish)

    def written(record: Record) -> Record:
        write_record(plan.folder, record)
        return count(record)

    try:
        batch: list[dict] = []
        waited = time.perf_counter()
        for item in loader:
            if workers.decode:  # else the loader's time is the decode stage itself
                times.waiting += time.perf_counter() - waited
            if batch and item["photo"].group != batch[0]["photo"].group:
                yield from infer(batch)
                batch = []
            if "record" in item:
                if not item["photo"].done:
                    yield written(item["record"])
            else:
                times.decode += item["decode"]
                batch.append(item)
            waited = time.perf_counter()
        if batch:
            yield from infer(batch)
        yield from collect(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
