"""Reading photographs, labels and FOV masks from disk, with errors that name the file."""

from __future__ import annotations

import glob
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from scripts.core.errors import UsageError, UserError
from scripts.data.labels import label_to_channels, release_label_channels

log = logging.getLogger("avseg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".ppm")


class DataError(UserError):
    """Bad input data; the message names the file or folder and what to do."""


def open_image(path: Path) -> Image.Image:
    """Open an image file (lazily: the header only), raising :class:`DataError` if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        pixels = next((w for w in str(err).replace("(", " ").split() if w.isdigit()), "?")
        raise DataError(
            f"{path}: {pixels} pixels, more than the {(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels an image "
            "may have here (Pillow's guard against decompression bombs); no fundus photograph is that "
            "large: check the file, or resize it"
        ) from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: cannot be read as an image (unknown or damaged format); replace or remove the file"
        ) from None
    except OSError as err:
        raise DataError(
            f"{path}: cannot be read as an image ({err.strerror or err}); replace or remove the file"
        ) from None
    return img


def decode_image(path: Path) -> Image.Image:
    """Open and decode an image file, raising :class:`DataError` (naming it) if it is unreadable or truncated."""
    img = open_image(path)
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: the image data is corrupt or truncated ({err}); replace the file") from None
    return img


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL image (grey, RGB, RGBA, palette, 8- or 16-bit) -> (H, W, 3) uint8."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max()
        arr = arr / (65535.0 if top > 255 and top <= 65535 else max(top, 1.0)) * 255.0
        grey = np.clip(arr, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if np.asarray(img).dtype == np.uint16:  # 16-bit RGB read by some plugins
        return (np.asarray(img) // 257).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


def load_photo(path: Path) -> np.ndarray:
    """A photograph as (H, W, 3) uint8 RGB."""
    return to_rgb8(decode_image(path))


def load_label(path: Path, variant: str = "v2021") -> tuple[np.ndarray, str]:
    """A label file as (H, W, 3) bool channels plus its encoding ("rgb" or "index").

    ``variant="v2023"`` converts it as the authors' 2023 test code did (SPEC 9.3).
    """
    convert = release_label_channels if variant == "v2023" else label_to_channels
    channels, encoding = convert(decode_image(path), path)
    if not channels.any():
        warnings.warn(
            f"{path}: the label is all background (no vessel pixel); it is used as it is, and its "
            "sensitivities and F1 are 0/0 (counted as 0)",
            stacklevel=2,
        )
    return channels, encoding


def load_mask(path: Path, variant: str = "v2021") -> np.ndarray:
    """An FOV mask (0/1 or 0/255, one or three channels, any palette) as (H, W) bool.

    Inside = value > half the maximum, over any channel. ``variant="v2023"`` follows the 2023 test
    code (SPEC 9.3): channel 0 only, divided by 255 when the maximum is > 1, inside = > 0.5.
    """
    arr = np.asarray(decode_image(path))
    if variant == "v2023":
        arr = arr[..., 0] if arr.ndim == 3 else arr
        fov = (arr / 255.0 if arr.max() > 1 else arr) > 0.5
    else:
        arr = np.maximum.reduce([arr[..., c] for c in range(arr.shape[2])]) if arr.ndim == 3 else arr
        fov = arr > arr.max() / 2
    if not fov.any():
        raise DataError(f"{path}: the FOV mask is empty (all zero); fix the mask or remove it to derive one")
    return fov


def derive_fov(image: np.ndarray, source: Path | str = "image") -> np.ndarray:
    """FOV estimated from a photograph: brightness above 8 % of its 99th percentile, holes filled."""
    warnings.warn(f"{source}: no FOV mask; deriving one from the image brightness", stacklevel=2)
    grey = image.astype(np.float32).mean(axis=2)
    fov = grey > 0.08 * max(np.percentile(grey, 99), 1.0)
    fov = ndimage.binary_opening(fov, iterations=2)
    fov = ndimage.binary_fill_holes(fov)
    if not fov.any():
        return np.ones(grey.shape, dtype=bool)
    return fov


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header."""
    with open_image(path) as img:
        return img.size


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders and globs; warn about (and skip) anything that is not an image file."""
    found: list[Path] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            candidates = [path]
        else:
            candidates = [Path(p) for p in sorted(glob.glob(entry)) if Path(p).is_file()]
            if not candidates:
                raise UsageError(f"input not found: {entry} (no such file or folder, and no file matches it as a glob)")
        for p in candidates:
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(p)
            else:
                warnings.warn(f"skipping {p}: not an image file (extension '{p.suffix}')", stacklevel=2)
    if not found:
        raise UsageError(f"no image files in {', '.join(inputs)}")
    unique = {p.resolve(): p for p in reversed(found)}  # a file named twice (folder and file) runs once
    return [p for p in found if unique[p.resolve()] is p]


MASK_EXTENSIONS = (".gif", ".png", ".tif", ".tiff", ".jpg", ".bmp")


def find_file(folder: Path, stem: str, extensions: Sequence[str]) -> Path | None:
    """``folder/stem + ext`` for the first extension that exists, in any capitalisation (.png, .PNG, .Png)."""
    for ext in extensions:
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    if folder.is_dir():
        found = {p.name[len(stem) :].lower(): p for p in folder.iterdir() if p.name.startswith(stem) and p.is_file()}
        for ext in extensions:
            if ext.lower() in found:
                return found[ext.lower()]
    return None


def find_mask(folder: Path, stem: str) -> Path | None:
    """The FOV mask of image ``stem`` in ``folder``: ``<stem>_mask.*``, else ``<stem>.*``."""
    return find_file(folder, f"{stem}_mask", MASK_EXTENSIONS) or find_file(folder, stem, MASK_EXTENSIONS)
