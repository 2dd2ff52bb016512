"""Which input size (W, H) a model runs at: one rule for every command.

1. the size asked for (``--image-size``);
2. the size the weights were trained at (a project checkpoint's config, or a resumed run's);
3. the authors' 2023 release: 720 x 720 (SPEC 9.3, their ``--uniform=True`` runs);
4. the dataset's (SPEC 2; 912 x 912 for ``--uniform`` training);
otherwise there is nothing to go by (the 2021 original files on one's own photographs) and the
user is asked for ``--image-size``. Sizes are two positive multiples of 16 (the networks halve the
input four times).
"""
from __future__ import annotations

from collections.abc import Sequence

from scripts.core.config import UNIFORM_SIZE, dataset_info
from scripts.core.runtime import UsageError

RELEASE_SIZE = (720, 720)  # (W, H): the README's --uniform=True runs, at which the release was trained


def check_model_size(size: Sequence[int], what: str = "--image-size") -> tuple[int, int]:
    """Validate a (W, H) model size: two positive multiples of 16."""
    if len(size) != 2 or any(int(s) <= 0 or int(s) % 16 for s in size):
        raise UsageError(f"{what} must be two positive multiples of 16 (width height), got {list(size)}")
    return int(size[0]), int(size[1])


def decide_model_size(asked: Sequence[int] | None = None, trained: Sequence[int] | None = None,
                      variant: str = "v2021", dataset: str | None = None, uniform: bool = False) -> tuple[int, int]:
    """The model size by the module's rule (``trained``: the weights' own size, if known)."""
    if asked:
        return check_model_size(asked)
    if trained:
        return check_model_size(trained, "the checkpoint's image_size")
    if variant == "v2023":
        return RELEASE_SIZE
    if dataset is not None:
        return UNIFORM_SIZE if uniform else check_model_size(dataset_info(dataset).model_size, f"{dataset}'s size")
    raise UsageError("--original: give --image-size W H, the size the original model was trained at (592 592 for DRIVE_AV, 800 720 for "
                     "LES-AV, 880 592 for HRF-AV)")
