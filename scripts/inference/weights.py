"""The one loader of generator weights for every command: a project checkpoint, the original
code's files (``--original``) or the authors' 2023 release (``--release``), as a ready Predictor
at the size :mod:`scripts.core.config` decides."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from scripts.core.config import decide_model_size
from scripts.core.errors import UsageError
from scripts.inference.predictor import Predictor
from scripts.io import checkpoint as ckpt
from scripts.io.release import find_release, load_release, release_files

log = logging.getLogger("avseg")


def load_predictor(
    device: torch.device,
    checkpoint: Path | None = None,
    release: Path | None = None,
    original: Sequence[Path] | None = None,
    dataset: str | None = None,
    image_size: Sequence[int] | None = None,
) -> Predictor:
    """Generators from exactly one source; ``dataset``: whose release weights to take, and whose
    size to fall back on; ``image_size``: ``--image-size`` (wins over everything)."""
    trained = None
    if release:
        where = find_release(release, dataset)
        files = tuple(release_files(where).values())
        nets, variant = load_release(where, None, device), "v2023"
    elif original:
        files = tuple(original)
        nets, variant = ckpt.load_original_generators(dict(zip(ckpt.GENERATORS, original)), device)
        log.info(
            "--original: the files hold the %s variant",
            "2023 release (4-class softmax)" if variant == "v2023" else "2021 paper (3 sigmoid outputs)",
        )
    else:
        if checkpoint is None:
            raise UsageError(
                "give --checkpoint PATH (a .pt of this project, e.g. DRIVE_AV/paper/best.pt), --release DIR (the "
                "authors' released weights) or --original G_A.pth G_V.pth G.pth"
            )
        path = checkpoint / "best.pt" if checkpoint.is_dir() else checkpoint
        nets, cfg = ckpt.load_generators(path, device)
        variant, trained, files = cfg.get("variant", "v2021"), cfg.get("image_size"), (path,)
    return Predictor(nets, variant, decide_model_size(image_size, trained, variant, dataset), files)
