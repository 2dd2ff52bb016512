"""A/V map files as the biomarkers read them: which kind a file is (an A/V colour map, an index
map, a probability map, or a binary vessel map that has no classes), the image id in its name, and
its decoded classes.

Kinds: this project's ``_av.png`` and label-coloured PNGs (red artery, blue vein, green/white
uncertain), index maps (one channel: 0 background, 1 artery, 2 vein, 3 uncertain) and probability
maps (``_prob.png``: RGB = artery, uncertain, vein probability; thresholded at 0.5 and decoded as
the paper protocol does).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scripts.data.images import DataError, decode_image
from scripts.data.labels import LabelError, decode_classes, label_to_channels

SUFFIXES = ("_av", "_prob", "_AVmanual", "_manual", "_label")
NOT_MAPS = {
    "_overlay": "an overlay picture (the photograph with the map drawn on it)",
    "_zone_b": "a zone-B figure (the vessels measured for CRAE and CRVE)",
}
PROBABILITY_SHARE = 0.01  # more pixels than this with values other than 0 and 255: a probability map
PHOTO_SHARE = 0.2  # more pixels than this bright red and not dark green: a photograph, not a probability map
KINDS = {"av": "A/V colour map", "index": "index map", "prob": "probability map", "vessel": "binary vessel map"}


class Skipped(Exception):
    """A file that is not a map to measure (an overlay, a vessel map, a second map of one image)."""


def image_id(path: Path) -> str:
    """The image a map file belongs to: its name without extension and without a known suffix."""
    stem = path.stem
    for suffix in SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def classify(img: Image.Image, path: Path) -> str:
    """The kind of a decoded map file (a key of ``KINDS``), or a DataError naming the file.

    One channel: values 0-3 are an index map, 0/255 a binary vessel map. Colour: label colours only
    (up to ``PROBABILITY_SHARE`` anti-aliased pixels) is an A/V colour map; other values are a
    probability map, unless most pixels are bright red with some green, as in a photograph."""
    if img.mode in ("L", "I", "I;16", "1"):
        values = np.unique(np.asarray(img))
        if np.isin(values, (0, 1, 2, 3)).all() and img.mode != "1":
            return "index"
        if np.isin(values, (0, 255)).all() or img.mode == "1":
            return "vessel"
        raise DataError(
            f"{path}: a one-channel image with values {values[:8].tolist()}: neither an index map (0 "
            "background, 1 artery, 2 vein, 3 uncertain) nor a binary vessel map (0/255)"
        )
    rgb = np.asarray(img.convert("RGB"))
    if ((rgb != 0) & (rgb != 255)).any(axis=2).mean() <= PROBABILITY_SHARE:
        return "av"
    if ((rgb[..., 0] >= 128) & (rgb[..., 1] >= 32)).mean() > PHOTO_SHARE:
        raise DataError(
            f"{path}: looks like a photograph or an overlay (most pixels bright red and green), not a "
            "map; give A/V maps (_av.png) or probability maps (_prob.png)"
        )
    return "prob"


def read_map(path: Path, kind: str = "auto") -> tuple[np.ndarray, str]:
    """A map file as (3, H, W) bool decoded classes (artery, vein, uncertain), and its kind.

    Raises :class:`Skipped` for a binary vessel map (it has no artery/vein classes)."""
    img = decode_image(path)
    found = (
        classify(img, path)
        if kind == "auto"
        else ("index" if img.mode in ("L", "I", "I;16") and kind == "av" else kind)
    )
    if found == "vessel":
        raise Skipped(f"{path}: a binary vessel map; the biomarkers need artery and vein classes (an A/V map)")
    if found == "index":
        channels, _ = label_to_channels(img, path)
        return decode_classes(torch.from_numpy(channels.transpose(2, 0, 1))).numpy(), "index"
    rgb = np.asarray(img.convert("RGB"))
    if found == "prob":
        binary = rgb.transpose(2, 0, 1).astype(np.float32) / 255 > 0.5
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a few anti-aliased pixels in a label file
            try:
                binary = label_to_channels(img, path)[0].transpose(2, 0, 1)
            except LabelError as err:
                raise DataError(f"{err} Use --kind prob for a probability map.") from None
    return decode_classes(torch.from_numpy(np.ascontiguousarray(binary))).numpy(), found
