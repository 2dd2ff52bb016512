"""Resizing, training augmentation and normalisation (SPEC section 3; the 2023 variant's: docs/training_v2023.md),
on uint8/bool arrays."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageEnhance
from scipy import ndimage

ROTATION_STEP = 3  # degrees; angles 0, 3, ..., 357
COLOUR_RANGE = (0.8, 1.2)


def init_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: OpenCV on one thread in each worker (the workers are the
    parallelism). Set here rather than at import, so that processes without workers (test, predict,
    biomarkers, the vessel graph) keep OpenCV's threads."""
    cv2.setNumThreads(1)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an (H, W, 3) uint8 image to ``size`` = (W, H)."""
    if image.shape[1::-1] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def resize_nearest(binary: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) or (H, W, 3) bool map to ``size`` = (W, H)."""
    if binary.shape[1::-1] == tuple(size):
        return binary
    return np.asarray(Image.fromarray(binary.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127


def _rotate(arr: np.ndarray, angle: float, interpolation: int) -> np.ndarray:
    """Rotate counter-clockwise about the image centre, same size, zero fill."""
    h, w = arr.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return cv2.warpAffine(arr, m, (w, h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def augment(
    image: np.ndarray, label: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random flip, rotation by a multiple of 3 degrees (zero fill) and one saturation factor.

    Image: bicubic rotation; label and mask: nearest, so they stay binary per channel.
    """
    lab = label.view(np.uint8)
    msk = mask.view(np.uint8)
    if rng.random() < 0.5:
        image, lab, msk = (cv2.flip(a, 1) for a in (image, lab, msk))
    angle = ROTATION_STEP * int(rng.integers(0, 360 // ROTATION_STEP))
    if angle:
        image = _rotate(image, angle, cv2.INTER_CUBIC)
        lab = _rotate(lab, angle, cv2.INTER_NEAREST)
        msk = _rotate(msk, angle, cv2.INTER_NEAREST)
    factor = float(rng.uniform(*COLOUR_RANGE))
    image = np.asarray(ImageEnhance.Color(Image.fromarray(image)).enhance(factor))
    return image, lab.astype(bool), msk.astype(bool)  # copies: the cached arrays stay untouched


def augment_v2023(image: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The 2023 code's training augmentation, in its order: a horizontal flip with p = 0.5; a rotation by
    a random multiple of 90 degrees about the centre (``scipy.ndimage.rotate`` with the same size, as that
    code: an order-3 spline for the image, the class indices rotated with ``mode="nearest"`` and rounded,
    so a non-square image is cropped and zero-filled as there); then a saturation factor U(0.8, 1.2)
    drawn for every image row separately (its ``random_perturbation``).

    ``image`` (H, W, 3) uint8, ``index`` (H, W) uint8 class indices; returns new arrays.
    """
    if rng.random() > 0.5:
        image, index = image[:, ::-1], index[:, ::-1]
    quarter_turns = int(rng.integers(4))
    if (
        image.shape[0] == image.shape[1]
    ):  # then SciPy's rotation is exactly np.rot90 (tests/scripts/data/test_augment.py)
        image, index = np.rot90(image, quarter_turns), np.rot90(index, quarter_turns)
    else:
        angle = 90 * quarter_turns
        image = ndimage.rotate(np.ascontiguousarray(image), angle, axes=(0, 1), reshape=False)
        index = ndimage.rotate(np.ascontiguousarray(index), angle, axes=(0, 1), reshape=False, mode="nearest")
    image = saturation_per_row(np.ascontiguousarray(image), rng)
    return image, np.ascontiguousarray(np.round(index).astype(np.uint8))


def saturation_per_row(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pillow's saturation enhancement (``ImageEnhance.Color``) with its own factor U(0.8, 1.2) for every
    row of an (H, W, 3) uint8 image, as the 2023 code did (one factor per image is what SPEC 3 does for
    2021). Pillow blends the image with its grey version (``convert("L")``) in single precision and
    truncates into 0..255; done here for all rows at once, with the same bits as one Pillow call per
    row (tests/scripts/data/test_augment.py) at a twentieth of the time."""
    factors = rng.uniform(*COLOUR_RANGE, size=image.shape[0]).astype(np.float32)
    grey = np.asarray(Image.fromarray(image).convert("L").convert("RGB")).astype(np.float32)
    blended = grey + factors[:, None, None] * (image.astype(np.float32) - grey)
    return np.clip(blended, 0, 255).astype(np.uint8)


def normalise(image: np.ndarray, multiply_std: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32, standardised per channel over pixels with red > 0.

    (x - mean) / std, as decided in SPEC section 3. The original code multiplied by std instead
    (x in 0..255); ``multiply_std=True`` does that, for the authors' 2023 released weights, which
    were trained with it (SPEC 9.3). The statistics come exactly (float64) from each channel's
    256-bin histogram, and the output from a lookup table.
    """
    image = np.ascontiguousarray(image)
    inside = (image[..., 0] > 0).view(np.uint8)
    if not inside.any():
        inside = np.ones_like(inside)
    values = np.arange(256, dtype=np.float64)
    lut = np.empty((1, 256, 3), np.float32)
    for c in range(3):
        hist = cv2.calcHist([image], [c], inside, [256], [0, 256]).ravel().astype(np.float64)
        n = hist.sum()
        mean = hist @ values / n
        std = np.sqrt(hist @ (values - mean) ** 2 / n)
        lut[0, :, c] = (values - mean) * std if multiply_std else (values - mean) / max(std, 1e-6)
    return np.ascontiguousarray(cv2.LUT(image, lut).transpose(2, 0, 1))
