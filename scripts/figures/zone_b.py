"""The zone-B figure of one photograph: what CRAE and CRVE were measured on, for a person to check.

The photograph around the disc with the A/V map overlaid, the disc and zone B's rings (2 R, 3 R,
and the 2.5 R circle the vessels are found on), and each measured vessel numbered at its crossing
with its width; a filled marker where Knudtson's pairing used the width, a hollow one where it did
not, a cross where no width was usable or a grader excluded the vessel."""

from __future__ import annotations

import math

import cv2
import numpy as np

from scripts.vessels.disc import Disc
from scripts.vessels.zone_b import ZoneBVessel

COLOURS = {"artery": (255, 60, 60), "vein": (70, 110, 255)}  # RGB, the A/V map's colours, lightened for text
FIGURE_PX = 900  # the figure's side: zone B fills it whatever the photograph's size
EXTENT = 3.6  # disc radii from the centre to the figure's edge


def zone_b_figure(photo: np.ndarray, classes: np.ndarray, disc: Disc, vessels: list[ZoneBVessel]) -> np.ndarray:
    """(FIGURE_PX, FIGURE_PX, 3) uint8 RGB. ``photo``: (H, W, 3) uint8; ``classes``: (3, H, W) bool
    (artery, vein, uncertain)."""
    h, w = photo.shape[:2]
    half = EXTENT * disc.radius
    scale = FIGURE_PX / (2 * half)
    # the square around the disc, in photograph pixels; outside the photograph stays black
    shift = np.array([[scale, 0, (half - disc.x) * scale], [0, scale, (half - disc.y) * scale]], np.float32)
    size = (FIGURE_PX, FIGURE_PX)
    base = cv2.warpAffine(np.ascontiguousarray(photo[..., :3]), shift, size, flags=cv2.INTER_LINEAR)
    tint = np.zeros((h, w, 3), np.uint8)
    tint[classes[0]] = (255, 0, 0)
    tint[classes[1]] = (0, 0, 255)
    tint[classes[2]] = (0, 255, 0)
    shown = cv2.warpAffine(tint, shift, size, flags=cv2.INTER_NEAREST)
    on = shown.any(axis=2)
    out = base.copy()
    out[on] = np.asarray(0.45 * base[on] + 0.55 * shown[on], np.uint8)
    centre = (FIGURE_PX // 2, FIGURE_PX // 2)
    line = max(1, FIGURE_PX // 450)
    for k, colour in ((1.0, (255, 255, 0)), (2.0, (255, 255, 255)), (3.0, (255, 255, 255))):
        cv2.circle(out, centre, int(round(k * disc.radius * scale)), colour, line, cv2.LINE_AA)
    _dashed_circle(out, centre, 2.5 * disc.radius * scale, (200, 200, 200), line)
    font, text_scale = cv2.FONT_HERSHEY_SIMPLEX, FIGURE_PX / 1600
    for v in vessels:
        px, py = (v.x - disc.x) * scale + centre[0], (v.y - disc.y) * scale + centre[1]
        colour = COLOURS.get(v.cls, (255, 255, 255))
        p = (int(round(px)), int(round(py)))
        usable = not math.isnan(v.width_px) and v.edit != "excluded"
        if not usable:
            d = 7
            cv2.line(out, (p[0] - d, p[1] - d), (p[0] + d, p[1] + d), (255, 255, 0), 2, cv2.LINE_AA)
            cv2.line(out, (p[0] - d, p[1] + d), (p[0] + d, p[1] - d), (255, 255, 0), 2, cv2.LINE_AA)
        else:
            cv2.circle(out, p, 7, colour, -1 if v.used else 2, cv2.LINE_AA)
            cv2.circle(out, p, 8, (255, 255, 255), 1, cv2.LINE_AA)
        # the label sits outside the 3 R ring, on the vessel's radius
        angle = math.radians(v.position_deg)
        r = 3.25 * disc.radius * scale
        label = f"{v.number}" + (f": {v.width_px:.1f}" if not math.isnan(v.width_px) else ": -")
        (tw, th), _ = cv2.getTextSize(label, font, text_scale, 1)
        lx = int(centre[0] + r * math.cos(angle) - tw / 2)
        ly = int(centre[1] + r * math.sin(angle) + th / 2)
        cv2.putText(out, label, (lx, ly), font, text_scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, (lx, ly), font, text_scale, colour, 1, cv2.LINE_AA)
    return out


def _dashed_circle(image: np.ndarray, centre: tuple[int, int], radius: float, colour, thickness: int) -> None:
    for start in range(0, 360, 6):
        cv2.ellipse(image, centre, (int(round(radius)), int(round(radius))), 0, start, start + 3, colour, thickness)
