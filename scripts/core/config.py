"""Dataset table, the model-size rule and paper hyperparameters (SPEC sections 2 and 5) in one place.

Which input size (W, H) a model runs at, one rule for every command:

1. the size asked for (``--image-size``);
2. the size the weights were trained at (a project checkpoint's config, or a resumed run's);
3. the authors' 2023 release: 720 x 720 (SPEC 9.3, their ``--uniform=True`` runs);
4. the dataset's (SPEC 2; 912 x 912 for ``--uniform`` training);
otherwise there is nothing to go by (the 2021 original files on one's own photographs) and the
user is asked for ``--image-size``. Sizes are two positive multiples of 16 (the networks halve the
input four times).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.core.errors import UsageError

UNIFORM_SIZE = (912, 912)


@dataclass(frozen=True)
class DatasetInfo:
    """How a dataset is laid out and at which size (W, H) the model sees it."""

    name: str
    model_size: tuple[int, int]  # (width, height), divisible by 16
    label_suffixes: tuple[str, ...] = ("",)  # label file = ID + suffix + ".png"
    has_test_split: bool = True
    note: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "DRIVE_AV": DatasetInfo("DRIVE_AV", (592, 592)),
    "LES-AV": DatasetInfo("LES-AV", (800, 720)),
    "HRF-AV": DatasetInfo("HRF-AV", (880, 592), label_suffixes=("_AVmanual",)),
    "SYNTHETIC": DatasetInfo("SYNTHETIC", (256, 256), note="made by scripts/synthetic.py"),
}
GENERIC_LABEL_SUFFIXES = ("", "_AVmanual", "_manual", "_label")
GENERIC_MODEL_SIZE = (512, 512)

DATA_HELP = (
    "Place each dataset as <data-root>/<DATASET>/{training,test}/{images,1st_manual,mask}/ "
    "(see docs/data.md); DRIVE-AV, LES-AV and HRF-AV are distributed by their authors. "
    "For a quick try without any download, run `sh train.sh demo`, which generates a synthetic set."
)


def dataset_info(name: str) -> DatasetInfo:
    """Known dataset info, or a generic entry for another folder in the same layout."""
    return DATASETS.get(name, DatasetInfo(name, GENERIC_MODEL_SIZE, GENERIC_LABEL_SUFFIXES))


def default_data_root() -> Path:
    """``$AVSEG_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("AVSEG_DATA", "data"))


RELEASE_SIZE = (720, 720)  # (W, H): the authors' README's --uniform=True runs, at which the release was trained


MAX_MODEL_SIDE = 4096  # about 4.7 times HRF-AV's 880: one such image already needs several GB per network


def check_model_size(size: Sequence[int], what: str = "--image-size") -> tuple[int, int]:
    """Validate a (W, H) model size: two positive multiples of 16, at most ``MAX_MODEL_SIDE``."""
    if len(size) != 2 or any(int(s) <= 0 or int(s) % 16 for s in size):
        raise UsageError(f"{what} must be two positive multiples of 16 (width height), got {list(size)}")
    if max(int(s) for s in size) > MAX_MODEL_SIDE:
        raise UsageError(
            f"{what} {' '.join(str(int(s)) for s in size)}: a model input side is at most {MAX_MODEL_SIDE} px (the "
            "paper's largest is HRF-AV's 880 x 592; photographs are resized to it, so a larger size adds no detail)"
        )
    return int(size[0]), int(size[1])


def decide_model_size(
    asked: Sequence[int] | None = None,
    trained: Sequence[int] | None = None,
    variant: str = "v2021",
    dataset: str | None = None,
    uniform: bool = False,
    uniform_size: tuple[int, int] = UNIFORM_SIZE,
) -> tuple[int, int]:
    """The model size by the module's rule (``trained``: the weights' own size, if known; ``uniform_size``:
    the size ``uniform`` means, 912 x 912 for 2021, 720 x 720 for the 2023 code's training)."""
    if asked:
        return check_model_size(asked)
    if trained:
        return check_model_size(trained, "the checkpoint's image_size")
    if variant == "v2023":
        return RELEASE_SIZE
    if dataset is not None:
        return uniform_size if uniform else check_model_size(dataset_info(dataset).model_size, f"{dataset}'s size")
    raise UsageError(
        "--original: give --image-size W H, the size the original model was trained at (592 592 for DRIVE_AV, 800 720 for "
        "LES-AV, 880 592 for HRF-AV)"
    )


@dataclass(frozen=True)
class PaperHyperparameters:
    """SPEC section 5: the settings of the paper runs."""

    alpha: float = 0.5  # weight of the MSE loss
    beta: float = 1.1  # weight of the BCE segmentation loss
    gamma: float = 0.08  # weight of the adversarial loss
    learning_rate: float = 8e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    adam_eps: float = 1e-8
    plateau_factor: float = 0.5
    plateau_patience: int = 50
    batch_size: int = 2
    epochs: int = 1500
    validation_percent: float = 10.0
    seed: int = 42
    save_from: int = 1300
    save_every: int = 10
    n_filters: int = 32


PAPER = PaperHyperparameters()
