"""Label encodings, class decoding and colour maps (SPEC section 1).

Channel order everywhere: 0 = artery (red), 1 = uncertain/crossing (green), 2 = vein (blue).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scripts.core.errors import UserError

CLASSES = ("artery", "vein", "uncertain")
# For each class of CLASSES, the channel whose probability scores it (threshold-free AUCs).
CLASS_CHANNEL = {"artery": 0, "vein": 2, "uncertain": 1}
INDEX_TO_RGB = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 1, 1]], dtype=bool)  # bg, A, V, uncertain
# An RGB label whose share of off-colour pixels (some channel neither 0 nor 255) is above this is
# not a label map (a photograph, a JPEG-saved label). Official label files hold up to a few hundred
# anti-aliased pixels (well under 0.1 %); a JPEG-saved label has them along every vessel edge.
MAX_OFF_COLOUR_SHARE = 0.01


class LabelError(UserError):
    """A label file that is not an A/V label in a known encoding."""


def label_to_channels(img: Image.Image, path: Path | str) -> tuple[np.ndarray, str]:
    """Convert a label image to a (H, W, 3) bool array of channels; also return the encoding.

    RGB (or palette) labels: channel on = value / 255 > 0.5 (SPEC section 1); a few off-colour pixels
    (anti-aliasing) are thresholded with a warning that counts them, more than
    ``MAX_OFF_COLOUR_SHARE`` of the image means the file is not a label map. One-channel labels are
    index maps (0 background, 1 artery, 2 vein, 3 uncertain). Anything else raises :class:`LabelError`.
    """
    if img.mode in ("L", "I", "I;16", "1"):
        idx = np.asarray(img)
        values = np.unique(idx)
        bad = values[(values < 0) | (values > 3)]
        if bad.size:
            raise LabelError(
                f"{path}: one-channel label with values {values[:10].tolist()}; an index-map label may only "
                "hold 0 (background), 1 (artery), 2 (vein), 3 (uncertain). Save RGB labels as RGB PNGs."
            )
        return INDEX_TO_RGB[idx.astype(np.int64)], "index"
    rgb = np.asarray(img.convert("RGB"))
    odd = (rgb != 0) & (rgb != 255)
    off = odd[..., 0] | odd[..., 1] | odd[..., 2]  # (channel by channel: faster than .any(axis=2))
    n_off = int(off.sum())
    if n_off:
        cols, counts = np.unique(rgb[off], axis=0, return_counts=True)
        top = [tuple(int(v) for v in c) for c in cols[np.argsort(-counts)[:5]]]
        if n_off > MAX_OFF_COLOUR_SHARE * off.size:
            raise LabelError(
                f"{path}: {100 * n_off / off.size:.1f} % of the pixels have colours that are not label colours "
                f"(e.g. {top}), more than the {100 * MAX_OFF_COLOUR_SHARE:g} % a label file may hold: this is not an "
                "A/V label map (a photograph, or a label saved as JPEG?). Labels use red (artery), blue (vein), "
                "green (crossing), white (uncertain) and black, saved losslessly (PNG)."
            )
        warnings.warn(
            f"{path}: {n_off} pixel(s) with off-label colours (e.g. {top}) were thresholded at 0.5 per "
            "channel, as the original evaluation did",
            stacklevel=2,
        )
    return rgb > 127, "rgb"


# The 2023 release's label conversion (SPEC 9.3, commit df1d36d): exact colours to class indices;
# any other colour (anti-aliased edge pixels) becomes background.
RELEASE_COLOURS = {
    (0, 0, 0): 0,
    (255, 0, 0): 1,
    (0, 0, 255): 2,
    (0, 255, 0): 3,
    (255, 255, 255): 3,
    (0, 255, 255): 3,
    (255, 0, 255): 1,
}


def release_label_channels(img: Image.Image, path: Path | str) -> tuple[np.ndarray, str]:
    """A label file converted as the 2023 release's test code does, as (H, W, 3) bool channels.

    RGB labels: exact colours only (see ``RELEASE_COLOURS``), other colours count as background;
    index-map labels as in :func:`label_to_channels`. The result uses the one-class-per-pixel
    channel codes of ``INDEX_TO_RGB``, which :func:`decode_classes` maps back to the same class.
    """
    if img.mode in ("L", "I", "I;16", "1"):
        return label_to_channels(img, path)
    rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    index = np.zeros(code.shape, np.int64)
    for (r, g, b), cls in RELEASE_COLOURS.items():
        index[code == ((r << 16) | (g << 8) | b)] = cls
    return INDEX_TO_RGB[index], "rgb"


def class_indices(channels: np.ndarray) -> np.ndarray:
    """(H, W, 3) bool channels -> (H, W) uint8 class indices of the 2023 variant (SPEC 9.1): 0 background,
    1 artery, 2 vein, 3 uncertain. Channel 1 (uncertain/crossing) wins, then artery, then vein: the
    inverse of ``INDEX_TO_RGB``, and SPEC 9.3's conversion of a label read by
    :func:`release_label_channels`."""
    artery, uncertain, vein = channels[..., 0], channels[..., 1], channels[..., 2]
    return np.where(uncertain, 3, np.where(artery, 1, np.where(vein, 2, 0))).astype(np.uint8)


def decode_classes(binary: torch.Tensor) -> torch.Tensor:
    """Decode a (..., 3, H, W) bool map into (..., 3, H, W) class masks ordered as ``CLASSES``.

    The paper protocol: pixels with channels 0 and 1 on become (0,1,0); then artery = ch0 and not
    ch1, vein = ch2 and not ch1, uncertain = ch1 and not ch0. After the reset, ch1 implies not ch0,
    so uncertain reduces to ch1. Magenta counts as artery and vein, cyan as uncertain.
    """
    ch0, ch1, ch2 = binary.unbind(dim=-3)
    return torch.stack([ch0 & ~ch1, ch2 & ~ch1, ch1], dim=-3)


def av_colour_map(binary: np.ndarray | torch.Tensor) -> np.ndarray:
    """(3, H, W) channel map -> (H, W, 3) uint8 picture of the decoded classes.

    Red = artery, blue = vein, green = uncertain/crossing, black = background (a pixel decoded as
    both artery and vein shows magenta). Used for ground truth and predictions alike.
    """
    t = torch.as_tensor(np.asarray(binary.detach().cpu() if isinstance(binary, torch.Tensor) else binary))
    t = t > 0.5 if t.dtype != torch.bool else t
    artery, vein, uncertain = decode_classes(t).unbind(0)
    return (torch.stack([artery, uncertain, vein], dim=-1).numpy() * 255).astype(np.uint8)
