"""The authors' released checkpoints (the 2023 variant, SPEC 9.2): find the three files and load them.

The release is a folder per dataset, ``<DATASET>/<DATASET>_randomseed_42/Discriminator_unet/``,
holding ``CP_best_F1_all.pth`` (G), ``CP_best_F1_A.pth`` (G_A) and ``CP_best_F1_V.pth`` (G_V):
bare state dicts of the original code, possibly saved from the GPU. The files do not say which
dataset they were trained on; their folder does (``<DATASET>_randomseed_42``, or a dataset's name),
and a release whose folder names another dataset than the one asked for is refused.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from scripts.core.config import DATASETS
from scripts.io.checkpoint import CheckpointError, load_original_generators

log = logging.getLogger("avseg")
RELEASE_FILES = {"G_A": "CP_best_F1_A.pth", "G_V": "CP_best_F1_V.pth", "G": "CP_best_F1_all.pth"}
_LAYOUT = "<DATASET>/<DATASET>_randomseed_42/Discriminator_unet/CP_best_F1_{all,A,V}.pth"


def find_release(folder: Path, dataset: str | None = None) -> Path:
    """The folder holding the three release files: ``folder`` itself, or the one below it whose path
    names ``dataset`` (an unzipped release with several datasets)."""
    folder = Path(folder)
    if folder.is_file() and zipfile.is_zipfile(folder):
        raise CheckpointError(
            f"--release {folder}: this is a zip archive; unzip it first and give the folder it unpacks to ({_LAYOUT})"
        )
    if not folder.is_dir():
        raise CheckpointError(f"--release {folder}: folder not found; give the unzipped release folder ({_LAYOUT})")
    if any((folder / f).is_file() for f in RELEASE_FILES.values()):
        return _matching(folder, dataset)
    found = sorted({p.parent for f in RELEASE_FILES.values() for p in folder.rglob(f)})
    if dataset and len(found) > 1:
        found = [p for p in found if _same(release_dataset(p), dataset)]
    if len(found) == 1:
        return _matching(found[0], dataset)
    if not found:
        raise CheckpointError(
            f"--release {folder}: no {', '.join(RELEASE_FILES.values())} in it or below it"
            + (f" for dataset {dataset}" if dataset else "")
            + f"; give the folder that holds them (layout: {_LAYOUT})"
        )
    listing = "\n  ".join(str(p) for p in found)
    raise CheckpointError(
        f"--release {folder}: several release folders below it; name one"
        f"{'' if dataset else ' or give --dataset'}:\n  {listing}"
    )


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def _same(found: str | None, dataset: str) -> bool:
    return found is not None and _key(found) == _key(dataset)


def release_dataset(where: Path) -> str | None:
    """The dataset a release folder's path names: the ``<DATASET>`` of its deepest
    ``<DATASET>_randomseed_<N>`` part, else the deepest part that is a known dataset's name, else None."""
    parts = Path(where).resolve().parts[::-1]
    for part in parts:
        match = re.fullmatch(r"(.+)_randomseed_\d+", part)
        if match:
            return match.group(1)
    known = {_key(name): name for name in DATASETS}
    return next((known[_key(part)] for part in parts if _key(part) in known), None)


def _matching(where: Path, dataset: str | None) -> Path:
    """``where``, after checking that its path does not name another dataset than ``dataset``."""
    found = release_dataset(where)
    if dataset and found and not _same(found, dataset):
        raise CheckpointError(
            f"--release {where}: these are the {found} weights (so its folder says), and this "
            f"command scores {dataset}. Give the {dataset} release folder, or --dataset {found}."
        )
    if dataset and not found:
        log.warning(
            "--release %s: its folder names no dataset, so it cannot be checked that these weights were "
            "trained on %s; make sure they were",
            where,
            dataset,
        )
    return where


def release_files(where: Path) -> dict[str, Path]:
    return {name: where / f for name, f in RELEASE_FILES.items()}


def load_release(folder: Path, dataset: str | None = None, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """G_A, G_V and G of the 2023 release (eval mode, on ``device``). Files are read on the CPU
    (``weights_only=True``), so weights saved on a GPU load on any machine."""
    where = find_release(folder, dataset)
    paths = release_files(where)
    missing = [f"{p.name} ({name})" for name, p in paths.items() if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"{where}: missing {', '.join(missing)}; a release folder holds CP_best_F1_all.pth (G), "
            "CP_best_F1_A.pth (G_A) and CP_best_F1_V.pth (G_V). Unzip the complete release."
        )
    nets, variant = load_original_generators(
        paths,
        device,
        hint="a release folder holds CP_best_F1_all.pth (G), CP_best_F1_A.pth (G_A), CP_best_F1_V.pth (G_V)",
    )
    if variant != "v2023":
        raise CheckpointError(
            f"{where}: these files hold the 2021 paper variant (3 sigmoid outputs), not the 2023 "
            "release (4 softmax classes); load them with --original G_A.pth G_V.pth G.pth "
            "--image-size W H instead of --release"
        )
    log.info("release: %s (2023 variant: 4-class softmax, feature-mean fusion)", where)
    return nets
