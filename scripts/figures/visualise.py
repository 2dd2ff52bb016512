"""Pictures people can read: colour A/V maps, error maps and side-by-side comparison figures.

Error-map colours (ground truth vs prediction, inside the FOV):
red = artery correct, blue = vein correct, yellow = artery/vein confusion, cyan = uncertain or
crossing pixel found as vessel, green = missed vessel, magenta = false vessel, black = background.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from scripts.data.images import load_photo
from scripts.data.labels import av_colour_map

ERROR_COLOURS = {
    "artery_correct": (255, 0, 0),
    "vein_correct": (0, 0, 255),
    "av_confusion": (255, 255, 0),
    "uncertain_found": (0, 255, 255),
    "missed_vessel": (0, 200, 0),
    "false_vessel": (255, 0, 255),
}


def error_map(pred: np.ndarray, label: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(3, H, W) bool prediction and ground truth, (H, W) FOV -> (H, W, 3) uint8 error map."""
    pa, pv = pred[0] & ~pred[1], pred[2] & ~pred[1]
    ga, gv, gu = label[0] & ~label[1], label[2] & ~label[1], label[1]
    p_any, g_any = pred.any(0), label.any(0)
    out = np.zeros((*mask.shape, 3), np.uint8)
    regions = {
        "missed_vessel": g_any & ~p_any,
        "false_vessel": p_any & ~g_any,
        "uncertain_found": gu & p_any,
        "av_confusion": (ga & pv & ~pa) | (gv & pa & ~pv),
        "artery_correct": ga & pa,
        "vein_correct": gv & pv,
    }
    for name, region in regions.items():
        out[region & mask] = ERROR_COLOURS[name]
    return out


def comparison_figure(photo: np.ndarray, prob: np.ndarray, label: np.ndarray, mask: np.ndarray,
                      max_height: int = 512, binary: np.ndarray | None = None,
                      segments: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """photograph | ground truth | prediction | error map | vessel probability [| segment verdicts],
    one (H, 5W or 6W, 3) image.

    The prediction is ``prob > 0.5`` unless a bool channel map ``binary`` is given (argmax maps).
    The fifth panel (max probability over the channels, black 0 to white 1) shows what the model
    sees below the threshold. ``segments(thickness)`` draws the sixth: the ground-truth centreline
    coloured by segment verdict (``scripts.vessels.segments.VERDICT_COLOURS``), with lines thick
    enough to survive the downscaling.
    """
    pred = ((prob > 0.5) if binary is None else binary.astype(bool)) & mask
    heat = np.repeat((np.clip(prob.max(axis=0) * mask, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    panels = [photo, av_colour_map(label.astype(bool)), av_colour_map(pred), error_map(pred, label.astype(bool), mask),
              heat]
    h, w = photo.shape[:2]
    if segments is not None:
        panels.append(segments(max(1, int(np.ceil(h / max_height)))))
    if h > max_height:
        size = (round(w * max_height / h), max_height)
        panels = [np.asarray(Image.fromarray(p).resize(size, Image.BILINEAR if i in (0, 4) else Image.NEAREST))
                  for i, p in enumerate(panels)]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    return np.concatenate(row, axis=1)


def comparison_row(dataset, index: int, prob: torch.Tensor, label: torch.Tensor, mask: torch.Tensor,
                   binary: torch.Tensor | None = None, segments: Callable[[int], np.ndarray] | None = None,
                   photo: np.ndarray | None = None) -> np.ndarray:
    """:func:`comparison_figure` for item ``index`` of an evaluation dataset (raw-size tensors);
    ``photo``: its photograph if already decoded."""
    photo = load_photo(dataset.items[index].image) if photo is None else photo
    return comparison_figure(photo, prob.cpu().numpy(), label.cpu().numpy().astype(bool), mask.cpu().numpy(),
                             binary=None if binary is None else binary.cpu().numpy(), segments=segments)


def overlay(photo: np.ndarray, pred: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The A/V colour map of a (3, H, W) bool prediction blended over the photograph."""
    colours = av_colour_map(pred)
    vessel = colours.any(axis=2, keepdims=True)
    out = np.where(vessel, (1 - alpha) * photo + alpha * colours, photo)
    return out.astype(np.uint8)
