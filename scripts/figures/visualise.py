"""Pictures people can read: colour A/V maps, error maps and side-by-side comparison figures.

Error-map colours (ground truth vs prediction, inside the FOV):
red = artery correct, blue = vein correct, yellow = artery/vein confusion, cyan = uncertain or
crossing pixel found as vessel, green = missed vessel, magenta = false vessel, black = background.
"""

from __future__ import annotations

import textwrap
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


PANEL_TITLES = (
    "photograph",
    "ground truth",
    "prediction",
    "error map",
    "vessel probability (black 0, white 1)",
    "segment verdicts (ground-truth centreline)",
)
AV_LEGEND = {"artery": (255, 0, 0), "vein": (0, 0, 255), "uncertain / crossing": (0, 255, 0)}
ERROR_LEGEND = {
    "artery correct": "artery_correct",
    "vein correct": "vein_correct",
    "artery/vein swapped": "av_confusion",
    "uncertain or crossing found": "uncertain_found",
    "missed vessel": "missed_vessel",
    "false vessel": "false_vessel",
}
VERDICT_LEGEND = {
    "correct": "correct",
    "wrong class": "wrong_class",
    "mixed": "mixed",
    "missed": "missed",
    "not scored (uncertain or short)": "not_scored",
}


def comparison_panels(
    photo: np.ndarray,
    prob: np.ndarray,
    label: np.ndarray,
    mask: np.ndarray,
    binary: np.ndarray | None = None,
    segments: Callable[[int], np.ndarray] | None = None,
    height: int = 480,
) -> list[tuple[str, np.ndarray]]:
    """(title, (h, w, 3) uint8 picture) of each panel, ``height`` pixels high (smaller photographs are
    enlarged, larger ones reduced, so that every figure reads alike).

    The prediction is ``prob > 0.5`` unless a bool channel map ``binary`` is given (argmax maps).
    The vessel probability (max over the channels) shows what the model sees below the threshold.
    ``segments(thickness)`` draws the sixth panel (``scripts.vessels.segments.VERDICT_COLOURS``), with
    lines thick enough to survive the downscaling.
    """
    pred = ((prob > 0.5) if binary is None else binary.astype(bool)) & mask
    heat = np.repeat((np.clip(prob.max(axis=0) * mask, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    panels = [
        photo,
        av_colour_map(label.astype(bool)),
        av_colour_map(pred),
        error_map(pred, label.astype(bool), mask),
        heat,
    ]
    h, w = photo.shape[:2]
    if segments is not None:
        panels.append(segments(max(1, int(np.ceil(h / height)))))
    if h != height:
        size = (round(w * height / h), height)
        panels = [
            np.asarray(
                Image.fromarray(p).resize(size, Image.Resampling.BILINEAR if i in (0, 4) else Image.Resampling.NEAREST)
            )
            for i, p in enumerate(panels)
        ]
    return list(zip(PANEL_TITLES, panels))


def _handles(legend: dict[str, tuple[int, int, int]]) -> list:
    from matplotlib.patches import Patch

    return [Patch(facecolor=tuple(c / 255 for c in rgb), edgecolor="0.5", label=name) for name, rgb in legend.items()]


def comparison_figure(
    photo: np.ndarray,
    prob: np.ndarray,
    label: np.ndarray,
    mask: np.ndarray,
    binary: np.ndarray | None = None,
    segments: Callable[[int], np.ndarray] | None = None,
    title: str = "",
    height: int = 480,
) -> np.ndarray:
    """The panels of :func:`comparison_panels` on a titled 2 x 3 grid with the colour legends below,
    as one (H, W, 3) uint8 picture. Each panel is at most ``height`` pixels high whatever the raw
    size, so titles and legends read the same on a 565 px DRIVE and a 3504 px HRF photograph."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = comparison_panels(photo, prob, label, mask, binary, segments, height)
    legends = [
        ("A/V maps", AV_LEGEND),
        ("Error map (black: background)", {k: ERROR_COLOURS[v] for k, v in ERROR_LEGEND.items()}),
    ]
    if segments is not None:
        from scripts.vessels.segments import VERDICT_COLOURS

        legends.append(("Segment verdicts", {k: VERDICT_COLOURS[v] for k, v in VERDICT_LEGEND.items()}))
    ph, pw = panels[0][1].shape[:2]
    dpi, legend_in = 100, 0.55  # inches: one legend row
    fig_w = max(3 * pw / dpi, 12.0) + 0.2
    title = textwrap.fill(title, width=int(fig_w * dpi / 12))  # about 12 px per character at 14 pt
    title_in = 0.45 + 0.25 * (title.count("\n") + 1)
    fig_h = 2 * ph / dpi + 0.4 + title_in + legend_in * len(legends)
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        2,
        3,
        left=0.005,
        right=0.995,
        top=1 - title_in / fig_h,
        bottom=(legend_in * len(legends) + 0.1) / fig_h,
        hspace=0.14,
        wspace=0.02,
    )
    for k in range(6):
        ax = fig.add_subplot(grid[k // 3, k % 3])
        ax.set_axis_off()
        if k < len(panels):
            ax.imshow(panels[k][1], interpolation="nearest")
            ax.set_title(panels[k][0], fontsize=12)
    fig.suptitle(title, fontsize=14, y=1 - 0.12 / fig_h, va="top")
    for i, (name, colours) in enumerate(legends):
        fig.legend(
            handles=_handles(colours),
            title=name,
            loc="upper center",
            ncol=len(colours),
            fontsize=11,
            title_fontsize=11,
            frameon=False,
            bbox_to_anchor=(0.5, legend_in * (len(legends) - i) / fig_h),
            borderaxespad=0,
            handlelength=1.2,
            columnspacing=1.2,
        )
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]


def comparison_row(
    dataset,
    index: int,
    prob: torch.Tensor,
    label: torch.Tensor,
    mask: torch.Tensor,
    binary: torch.Tensor | None = None,
    segments: Callable[[int], np.ndarray] | None = None,
    photo: np.ndarray | None = None,
    title: str = "",
) -> np.ndarray:
    """:func:`comparison_figure` for item ``index`` of an evaluation dataset (raw-size tensors);
    ``photo``: its photograph if already decoded."""
    photo = load_photo(dataset.items[index].image) if photo is None else photo
    return comparison_figure(
        photo,
        prob.cpu().numpy(),
        label.cpu().numpy().astype(bool),
        mask.cpu().numpy(),
        binary=None if binary is None else binary.cpu().numpy(),
        segments=segments,
        title=title,
    )


def overlay(photo: np.ndarray, pred: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The A/V colour map of a (3, H, W) bool prediction blended over the photograph."""
    colours = av_colour_map(pred)
    vessel = colours.any(axis=2, keepdims=True)
    out = np.where(vessel, (1 - alpha) * photo + alpha * colours, photo)
    return out.astype(np.uint8)
