"""Resizing, training augmentation and normalisation (SPEC section 3), on uint8/bool arrays."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

ROTATION_STEP = 3  # degrees; angles 0, 3, ..., 357
COLOUR_RANGE = (0.8, 1.2)


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


def augment(
    image: np.ndarray, label: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random flip, rotation by a multiple of 3 degrees (zero fill) and one saturation factor.

    Image: bicubic rotation; label and mask: nearest, so they stay binary per channel.
    """
    img = Image.fromarray(image)
    lab = Image.fromarray(label.astype(np.uint8) * 255)
    msk = Image.fromarray(mask.astype(np.uint8) * 255)
    if rng.random() < 0.5:
        img, lab, msk = (x.transpose(Image.FLIP_LEFT_RIGHT) for x in (img, lab, msk))
    angle = ROTATION_STEP * int(rng.integers(0, 360 // ROTATION_STEP))
    if angle:
        img = img.rotate(angle, resample=Image.BICUBIC, fillcolor=0)
        lab = lab.rotate(angle, resample=Image.NEAREST, fillcolor=0)
        msk = msk.rotate(angle, resample=Image.NEAREST, fillcolor=0)
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(*COLOUR_RANGE)))
    return np.asarray(img), np.asarray(lab) > 127, np.asarray(msk) > 127


def normalise(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32, standardised per channel over pixels with red > 0.

    (x - mean) / std, as decided in SPEC section 3 (the original multiplied by std).
    """
    x = image.astype(np.float32)
    inside = x[..., 0] > 0
    pixels = x[inside] if inside.any() else x.reshape(-1, 3)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    x = (x - mean) / np.maximum(std, 1e-6)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
