"""Dataset table and paper hyperparameters (SPEC sections 2 and 5) in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
    "(see README, 'Data'); DRIVE-AV, LES-AV and HRF-AV are distributed by their authors. "
    "For a quick try without any download, run `sh train.sh demo`, which generates a synthetic set."
)


def dataset_info(name: str) -> DatasetInfo:
    """Known dataset info, or a generic entry for another folder in the same layout."""
    return DATASETS.get(name, DatasetInfo(name, GENERIC_MODEL_SIZE, GENERIC_LABEL_SUFFIXES))


def default_data_root() -> Path:
    """``$AVSEG_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("AVSEG_DATA", "data"))


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
