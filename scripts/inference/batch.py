"""Predicting a list of photographs into a folder: a unique output name per input, each photograph
through the stages of ``pipeline.py`` (its four pictures, biomarkers and record), then the run's
tables and ``report.html`` (``scripts/predict.py``; docs/predicting.md, docs/cohorts.md).

A folder is written in one of two ways: staged (the default; the whole ``--out`` appears when every
photograph is done, the better choice for a folder of photographs) or as a cohort run (``--cohort``:
each photograph is kept as soon as it is done, and the same command resumes where a run stopped)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from scripts.core.distributed import Context
from scripts.core.errors import UsageError
from scripts.figures.pages import predictions_page
from scripts.inference.pipeline import OUTPUT_SUFFIXES, Photo, Plan, StageTimes, Workers, run_photos
from scripts.inference.predictor import Predictor
from scripts.inference.records import (
    RECORDS,
    RUN_FILE,
    VESSELS_TABLE,
    Tables,
    check_settings,
    is_finished,
    read_record,
    rebuild_tables,
)
from scripts.io import checkpoint as ckpt
from scripts.io.atomic import WriteError, remove_stale_temporaries, write_atomic
from scripts.io.lock import FolderLock
from scripts.io.staging import OutputFolderError
from scripts.vessels.disc import Disc

log = logging.getLogger("avseg")
RUN_TABLES = ("predictions.csv", "failures.csv", VESSELS_TABLE, "report.html", RUN_FILE)


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


def is_output(path: Path) -> bool:
    """Whether ``path`` in an existing ``--out`` folder is one of predict's own outputs (replaceable)."""
    if path.is_dir():
        return path.name == RECORDS and all(p.suffix == ".json" or p.name.startswith(".") for p in path.iterdir())
    return path.is_file() and (path.name in RUN_TABLES or path.name.endswith(OUTPUT_SUFFIXES))


@dataclass(frozen=True)
class PredictOptions:
    """How to predict (the options of ``predict.py``); ``out`` is the folder named in the report."""

    out: Path
    masks: Path | None = None
    batch_size: int = 1
    tta: bool = False
    biomarkers: bool = True
    pixel_um: float | None = None
    workers: Workers = Workers()
    retry_failed: bool = False
    progress_every: float = 60.0  # seconds between progress lines when the output is not a terminal


def run_settings(options: PredictOptions, predictor: Predictor, disc_csv: Path | None) -> dict:
    """What shapes a run's outputs (its ``run.json``): a resume with other settings is refused."""
    return {
        "weights_sha256": [ckpt.file_sha256(f) for f in predictor.files],
        "variant": predictor.variant,
        "model_size": list(predictor.model_size),
        "tta": options.tta,
        "biomarkers": options.biomarkers,
        "pixel_um": options.pixel_um,
        "masks": str(options.masks.resolve()) if options.masks else None,
        "disc_csv_sha256": ckpt.file_sha256(disc_csv) if disc_csv else None,
    }


def open_cohort(folder: Path, settings: dict, resume: bool, overwrite: bool) -> None:
    """Make ``folder`` a cohort run with ``settings``: a new one, the same run again (resumed), or
    (``overwrite``) this command's earlier outputs removed first. Anything else is refused."""
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"--out {folder}: a file of that name is in the way; give a folder")
    if resume and not (folder / RUN_FILE).is_file():
        raise UsageError(f"--resume: {folder} holds no prediction run to resume ({RUN_FILE} is missing); check --out")
    if folder.is_dir():
        for part in (folder, folder / RECORDS):  # a killed run's half-written files
            remove_stale_temporaries(part)
        foreign = [p.name for p in sorted(folder.iterdir()) if not is_output(p)]
        if foreign:
            raise OutputFolderError(
                f"--out {folder} holds files that are not this command's outputs ({', '.join(foreign[:5])}"
                f"{' ...' if len(foreign) > 5 else ''}); give an empty or new folder, or move those files away"
            )
    folder.mkdir(parents=True, exist_ok=True)
    if check_settings(folder, settings, overwrite):
        return
    log.info("--overwrite: removing the earlier run's outputs in %s", folder)
    for path in sorted(folder.iterdir()):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    check_settings(folder, settings, overwrite=False)


@dataclass
class Outcome:
    """What a run left: the tables (finished and failed photographs of all inputs), this process's share."""

    tables: Tables
    skipped: int
    worked: int
    times: StageTimes


def predict_folder(
    options: PredictOptions,
    files: list[Path],
    predictor: Predictor,
    discs: dict[str, Disc],
    device: torch.device,
    folder: Path,
    shard: tuple[int, int] = (0, 1),
    echo_warnings: bool = False,
) -> Outcome:
    """Every unfinished photograph of this process's ``shard`` (rank, world) into ``folder``, then the
    tables of all inputs and the report. The inputs are cut into batches of ``batch_size`` in input
    order and the batches dealt out to the processes in turn: a photograph always runs in the same
    batch, however many processes share the work and whatever was finished before, so its maps are
    the same to the bit (a finished photograph in a batch with unfinished ones runs again, unsaved).
    ``echo_warnings``: what each photograph's stages warned about is also shown as a warning (else it is
    only in the warnings column)."""
    names = output_names(files)
    rank, world, size = *shard, options.batch_size
    mine = [
        Photo(path, name, i // size, is_finished(read_record(folder, name), path, options.retry_failed))
        for i, (path, name) in enumerate(zip(files, names))
        if (i // size) % world == rank
    ]
    unfinished = {p.group for p in mine if not p.done}
    photos = [p for p in mine if p.group in unfinished]  # batches as in any other run: same maps to the bit
    todo = sum(not p.done for p in photos)
    if todo < len(mine):
        log.info("%d of %d photograph(s) already finished here; %d to do", len(mine) - todo, len(mine), todo)
    log.info("%d photograph(s), model size %dx%d, device %s", todo, *predictor.model_size, device)
    plan = Plan(
        folder,
        predictor,
        device,
        options.masks,
        options.tta,
        options.biomarkers,
        options.pixel_um,
        discs,
        options.workers,
    )
    times = StageTimes()
    bar = tqdm(total=todo, desc="predict", unit="photo", disable=None)
    shown = time.perf_counter()
    try:
        for record in run_photos(plan, photos, times):
            bar.update(1)
            if record.status == "failed":
                tqdm.write(f"failed: {record.reason}" + (f"\n{record.trace}" if record.trace else ""))
            for note in record.warnings if echo_warnings else ():
                warnings.warn(note, stacklevel=1)
            if bar.disable and time.perf_counter() - shown >= options.progress_every:
                shown = time.perf_counter()
                log.info(progress_line(times, todo))
    finally:
        bar.close()
    tables = rebuild_tables(folder, names)
    info = {
        "out": str(options.out),
        "command": " ".join(sys.argv),
        "photographs": len(files),
        "written": tables.done,
        "failed": len(tables.failed),
        "seconds": round(time.perf_counter() - times.started, 1),
        "device": str(device),
        "weights": [str(f) for f in predictor.files],
        "model_size": list(predictor.model_size),
        "variant": predictor.variant,
        "versions": ckpt.versions(),
    }
    write_atomic(
        folder / "report.html", predictions_page(folder, info, [(r.input["file"], r.reason) for r in tables.failed])
    )
    return Outcome(tables, len(mine) - todo, todo, times)


def predict_cohort(
    options: PredictOptions,
    files: list[Path],
    predictor: Predictor,
    discs: dict[str, Disc],
    device: torch.device,
    settings: dict,
    resume: bool = False,
    overwrite: bool = False,
    ctx: Context | None = None,
) -> Outcome:
    """A cohort run into ``options.out``, photograph by photograph (module docstring); under torchrun
    (``ctx``) rank 0 prepares the folder and every process does its share."""
    rank, world = (ctx.rank, ctx.world) if ctx is not None else (0, 1)
    out = Path(os.path.abspath(options.out))
    # one command per folder: the lock the staged mode takes too (under torchrun the processes are one command)
    lock = FolderLock(out.parent / f".{out.name}.lock", f"--out {out}") if ctx is None else contextlib.nullcontext()
    try:
        with lock:
            if rank == 0:
                open_cohort(options.out, settings, resume, overwrite)
            if ctx is not None:
                ctx.barrier()  # the folder is ready (and an overwritten run gone) before any process writes
                ctx.close()  # from here on no process waits for another
            return predict_folder(options, files, predictor, discs, device, options.out, (rank, world))
    except WriteError as err:
        raise OutputFolderError(
            f"{err}. The run stopped; the photographs finished in {options.out} are kept: free some space (or "
            "fix the folder) and run the same command again to finish the others."
        ) from None


def progress_line(times: StageTimes, total: int) -> str:
    """Photographs done, their rate and the time left, as one log line."""
    elapsed = time.perf_counter() - times.started
    rate = times.photos / elapsed if elapsed > 0 else 0.0
    left = (total - times.photos) / rate / 60 if rate else float("nan")
    return f"predict: {times.photos}/{total} photographs, {rate:.2f}/s, about {left:.0f} min left"
