"""The 2023 variant's training augmentation and class indices, checked by hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from scipy import ndimage

from scripts.data.augment import augment_v2023, saturation_per_row
from scripts.data.labels import INDEX_TO_RGB, class_indices


def test_class_indices_invert_the_index_encoding_and_let_uncertain_win():
    assert class_indices(INDEX_TO_RGB[np.arange(4)][None]).tolist() == [[0, 1, 2, 3]]
    # (artery, uncertain, vein): magenta is artery, cyan and yellow are uncertain (SPEC 9.3)
    channels = np.array([[[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 1, 0]]], bool)
    assert class_indices(channels).tolist() == [[1, 3, 3, 3]]


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.mark.parametrize("seed", range(6))
def test_augment_v2023_moves_image_and_classes_together_by_a_flip_and_quarter_turns(seed):
    """The classes come out as one of the 8 flips/quarter turns of the input, and the image's grey
    levels (which a saturation change keeps, up to rounding) went through the same one."""
    rng = np.random.default_rng(100 + seed)
    index = rng.integers(0, 4, (24, 24)).astype(np.uint8)
    image = rng.integers(70, 186, (24, 24, 3)).astype(np.uint8)  # no clipping at 0 or 255 by a 1.2x saturation
    out_image, out_index = augment_v2023(image, index, np.random.default_rng(seed))
    assert out_image.dtype == np.uint8 and out_image.shape == image.shape and out_index.dtype == np.uint8
    matches = [
        (flip, k)
        for flip in (False, True)
        for k in range(4)
        if np.array_equal(out_index, np.rot90(index[:, ::-1] if flip else index, k))
    ]
    assert len(matches) == 1
    flip, k = matches[0]
    expected_grey = np.rot90(_grey(image[:, ::-1] if flip else image), k)
    assert np.abs(_grey(out_image) - expected_grey).max() <= 2.0


@pytest.mark.parametrize("seed", range(40))
def test_saturation_per_row_has_the_bits_of_one_pillow_call_per_row(seed):
    """The 2023 code called ImageEnhance.Color on every row; the vectorised blend must give its bits,
    clipping included (factors above 1 push saturated colours past 0 and 255)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (int(rng.integers(1, 50)), int(rng.integers(1, 50)), 3)).astype(np.uint8)
    factors = np.random.default_rng(seed).uniform(0.8, 1.2, size=image.shape[0])
    expected = np.stack(
        [
            np.asarray(ImageEnhance.Color(Image.fromarray(image[i : i + 1])).enhance(float(f)))[0]
            for i, f in enumerate(factors)
        ]
    )
    assert np.array_equal(saturation_per_row(image, np.random.default_rng(seed)), expected)


@pytest.mark.parametrize("seed", range(20))
def test_a_quarter_turn_of_a_square_is_scipys_rotation(seed):
    """augment_v2023 turns square images with np.rot90: SciPy's order-3 rotation by 90 k degrees (the
    2023 code's, and what non-square images still get) gives the same bits there."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    image = rng.integers(0, 256, (n, n, 3)).astype(np.uint8)
    index = rng.integers(0, 4, (n, n)).astype(np.uint8)
    for k in range(4):
        assert np.array_equal(ndimage.rotate(image, 90 * k, axes=(0, 1), reshape=False), np.rot90(image, k))
        turned = np.round(ndimage.rotate(index, 90 * k, axes=(0, 1), reshape=False, mode="nearest"))
        assert np.array_equal(turned, np.rot90(index, k))


def test_saturation_changes_row_by_row():
    """One factor per row (the 2023 code's per-row jitter): a flat colour becomes a stack of flat rows
    of different saturations, each keeping its grey level."""
    image = np.zeros((40, 8, 3), np.uint8)
    image[...] = (200, 60, 40)
    out = saturation_per_row(image, np.random.default_rng(0))
    assert (out == out[:, :1]).all()  # every row is one colour
    assert len({tuple(row[0]) for row in out}) > 10  # and the rows differ
    assert np.abs(_grey(out) - _grey(image)).max() <= 2.0
