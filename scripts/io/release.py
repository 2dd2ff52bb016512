"""The authors' released checkpoints (the 2023 variant, SPEC 9.2): find the three files and load them.

The release is a folder per dataset, ``<DATASET>/<DATASET>_randomseed_42/Discriminator_unet/``,
holding ``CP_best_F1_all.pth`` (G), ``CP_best_F1_A.pth`` (G_A) and ``CP_best_F1_V.pth`` (G_V):
bare state dicts of the original code, possibly saved from the GPU.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from scripts.io.checkpoint import CheckpointError, load_original_generators

log = logging.getLogger("avseg")
RELEASE_FILES = {"G_A": "CP_best_F1_A.pth", "G_V": "CP_best_F1_V.pth", "G": "CP_best_F1_all.pth"}
_LAYOUT = "<DATASET>/<DATASET>_randomseed_42/Discriminator_unet/CP_best_F1_{all,A,V}.pth"


def find_release(folder: Path, dataset: str | None = None) -> Path:
    """The folder holding the three release files: ``folder`` itself, or the one below it whose path
    names ``dataset`` (an unzipped release with several datasets)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"--release {folder}: folder not found; give the unzipped release folder ({_LAYOUT})")
    if any((folder / f).is_file() for f in RELEASE_FILES.values()):
        return folder
    found = sorted({p.parent for f in RELEASE_FILES.values() for p in folder.rglob(f)})
    if dataset and len(found) > 1:
        found = [p for p in found if any(part.lower().startswith(dataset.lower()) for part in p.relative_to(folder).parts)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CheckpointError(f"--release {folder}: no {', '.join(RELEASE_FILES.values())} in it or below it"
                              + (f" for dataset {dataset}" if dataset else "")
                              + f"; give the folder that holds them (layout: {_LAYOUT})")
    listing = "\n  ".join(str(p) for p in found)
    raise CheckpointError(f"--release {folder}: several release folders below it; name one"
                          f"{'' if dataset else ' or give --dataset'}:\n  {listing}")


def load_release(folder: Path, dataset: str | None = None, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """G_A, G_V and G of the 2023 release (eval mode, on ``device``). Files are read on the CPU
    (``weights_only=True``), so weights saved on a GPU load on any machine."""
    where = find_release(folder, dataset)
    paths = {name: where / f for name, f in RELEASE_FILES.items()}
    missing = [f"{p.name} ({name})" for name, p in paths.items() if not p.is_file()]
    if missing:
        raise CheckpointError(f"{where}: missing {', '.join(missing)}; a release folder holds CP_best_F1_all.pth (G), "
                              "CP_best_F1_A.pth (G_A) and CP_best_F1_V.pth (G_V). Unzip the complete release.")
    nets, variant = load_original_generators(
        paths, device, hint="a release folder holds CP_best_F1_all.pth (G), CP_best_F1_A.pth (G_A), CP_best_F1_V.pth (G_V)")
    if variant != "v2023":
        raise CheckpointError(f"{where}: these files hold the 2021 paper variant (3 sigmoid outputs), not the 2023 "
                              "release (4 softmax classes); load them with --original G_A.pth G_V.pth G.pth "
                              "--image-size W H instead of --release")
    log.info("release: %s (2023 variant: 4-class softmax, feature-mean fusion)", where)
    return nets
