"""The thinning equals scikit-image's skeletonize pixel for pixel (the centreline both protocols define)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.morphology import skeletonize as skimage_skeletonize

from scripts.vessels.skeleton import skeletonize


def _same(mask: np.ndarray) -> None:
    ours, theirs = skeletonize(mask), skimage_skeletonize(mask.astype(bool))
    assert ours.dtype == bool and ours.shape == mask.shape
    assert np.array_equal(ours, theirs), f"{int((ours != theirs).sum())} pixel(s) differ"


def test_every_3x3_pattern():
    for code in range(512):
        mask = np.zeros((5, 5), bool)
        mask[1:4, 1:4] = np.array([(code >> i) & 1 for i in range(9)], bool).reshape(3, 3)
        _same(mask)


def test_random_masks_of_every_density():
    rng = np.random.default_rng(7)  # not the seed the table was read with
    for size in (6, 11, 17):
        for density in (0.2, 0.4, 0.6, 0.8, 0.95):
            for _ in range(40):
                _same(rng.random((size, size)) < density)


def test_vessel_like_drawings():
    """Thick curves, branchings, crossings and blobs, touching the image border too."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        img = np.zeros((96, 128), np.uint8)
        for _ in range(rng.integers(2, 8)):
            pts = rng.integers(-10, 130, size=(rng.integers(2, 5), 2)).astype(np.int32)
            cv2.polylines(img, [pts], False, 1, int(rng.integers(1, 12)))
        if rng.random() < 0.5:
            cv2.circle(img, (int(rng.integers(0, 128)), int(rng.integers(0, 96))), int(rng.integers(3, 20)), 1, -1)
        _same(img.astype(bool))


def test_a_skeleton_is_its_own_skeleton_and_inside_the_mask():
    img = np.zeros((64, 64), np.uint8)
    cv2.line(img, (5, 10), (60, 50), 1, 7)
    cv2.line(img, (5, 55), (60, 5), 1, 4)
    skel = skeletonize(img)
    assert skel.any() and not (skel & ~img.astype(bool)).any()
    assert np.array_equal(skeletonize(skel), skel)


def test_edge_cases():
    assert not skeletonize(np.zeros((4, 5), bool)).any()
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    assert np.array_equal(skeletonize(one), one)  # a lone pixel stays
    _same(np.ones((7, 9), bool))  # foreground up to the border
    _same(np.ones((1, 6), bool))
    assert skeletonize(np.array([[0, 2, 2, 2, 0]])).tolist() == [[False, True, True, True, False]]


def test_a_mask_that_is_not_2d_is_refused():
    with pytest.raises(ValueError, match=r"2-D mask, got shape \(2, 3, 4\)"):
        skeletonize(np.zeros((2, 3, 4), bool))


@pytest.mark.slow
def test_real_labels(real_data):
    """Artery, vein and vessel-tree masks of DRIVE test, LES-AV and four HRF-AV labels."""
    labels = sorted((real_data / "DRIVE_AV" / "test" / "1st_manual").glob("*.png"))
    labels += sorted((real_data / "LES-AV" / "training" / "1st_manual").glob("*.png"))
    labels += sorted((real_data / "HRF-AV" / "training" / "1st_manual").glob("*.png"))[::6]
    assert len(labels) == 35
    for path in labels:
        rgb = np.asarray(Image.open(path).convert("RGB")) > 127
        for mask in (rgb[..., 0] | rgb[..., 1], rgb[..., 2] | rgb[..., 1], rgb.any(axis=2)):
            _same(mask)
