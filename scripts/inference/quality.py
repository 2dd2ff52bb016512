"""Whether a photograph can be graded: the measures of image quality that the literature uses, and
the rule that marks a photograph good, usable or reject (docs/cohorts.md#the-quality-flag).

Measures, on a copy reduced so that the field of view (FOV) is ``WORK_WIDTH`` pixels wide (so that
they do not depend on the camera's resolution; a photograph whose FOV is narrower is measured at its
own size):

* ``fov_fraction``: share of the image inside the FOV (not a fundus photograph, or a small field),
  ``fov_offset``: distance of the FOV's centroid from the image centre, in FOV widths, and
  ``fov_cut``: the share of the image's height over which the FOV runs into its left or right edge (a
  photograph cropped at the side: a full field is round and ends inside the image);
* ``brightness``: mean luminance inside the FOV, 0-255 (under- or over-exposed), and
  ``illumination_cv``: coefficient of variation of the luminance smoothed over an eighth of the FOV
  (uneven illumination; Fleming et al. 2006, Pires Dias et al. 2014);
* ``contrast``: standard deviation of the green channel inside the FOV;
* ``sharpness``: variance of the Laplacian of the green channel inside the FOV divided by its
  variance (Pech-Pacheco et al. 2000's focus measure, made independent of contrast);
* ``vessel_fraction``: share of the FOV the model marks as vessel (Koehler et al. 2013: where the
  vessels cannot be segmented, the photograph cannot be graded), and ``disc_confidence`` of the
  optic disc used for the biomarkers.

The thresholds (``RULE``) were set from these measures on the 75 photographs of the public datasets
(DRIVE, LES-AV, HRF; all gradable) and on degraded copies of them (blurred, darkened, cropped): see
the table in docs/cohorts.md and ``python -m scripts.quality``, which prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from scripts.vessels.disc import LOW_CONFIDENCE, MIN_VESSEL_SHARE, fov_width

WORK_WIDTH = 512
MEASURES = (
    "fov_fraction",
    "fov_offset",
    "fov_cut",
    "brightness",
    "illumination_cv",
    "contrast",
    "sharpness",
    "vessel_fraction",
    "disc_confidence",
)


@dataclass(frozen=True)
class Limit:
    """``measure`` below ``low`` or above ``high`` sends a photograph to ``flag`` (reject or usable)."""

    measure: str
    flag: str
    low: float = -np.inf
    high: float = np.inf
    why: str = ""


RULE = (
    Limit("fov_fraction", "reject", low=0.25, why="the field of view covers too little of the image"),
    Limit("brightness", "reject", low=20, why="too dark"),
    Limit("brightness", "reject", high=225, why="over-exposed"),
    Limit("contrast", "reject", low=4, why="no contrast"),
    Limit("sharpness", "reject", low=0.004, why="out of focus"),
    Limit("vessel_fraction", "reject", low=MIN_VESSEL_SHARE, why="almost no vessels found"),
    Limit("fov_cut", "reject", high=0.5, why="the field of view is cut off at the side"),
    Limit("fov_offset", "usable", high=0.15, why="the field of view is off-centre"),
    Limit("fov_cut", "usable", high=0.2, why="the field of view is cut off at the side"),
    Limit("illumination_cv", "usable", high=0.5, why="uneven illumination"),
    Limit("brightness", "usable", low=35, why="dark"),
    Limit("contrast", "usable", low=7, why="low contrast"),
    Limit("sharpness", "usable", low=0.012, why="blurred"),
    Limit("disc_confidence", "usable", low=LOW_CONFIDENCE, why="the optic disc is doubtful"),
)


def photo_measures(photo: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """The measures of the photograph itself: (H, W, 3) uint8 and its (H, W) bool FOV."""
    h, w = fov.shape
    out = {"fov_fraction": float(fov.mean())}
    if not fov.any():
        nothing = {"fov_offset": np.nan, "fov_cut": 0.0, "brightness": 0.0, "illumination_cv": np.nan}
        return {**out, **nothing, "contrast": 0.0, "sharpness": 0.0}
    ys, xs = np.nonzero(fov)
    width = fov_width(fov)
    out["fov_offset"] = float(np.hypot(xs.mean() - (w - 1) / 2, ys.mean() - (h - 1) / 2) / width)
    out["fov_cut"] = float(max(fov[:, 0].mean(), fov[:, -1].mean()))
    scale = min(1.0, WORK_WIDTH / width)  # a smaller photograph is measured at its own size
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    inside = cv2.resize(fov.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # away from the rim's edge
    if not inside.any():
        inside = cv2.resize(fov.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    luminance = small.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    green = small[..., 1].astype(np.float32)
    out["brightness"] = float(luminance[inside].mean())
    smooth = cv2.GaussianBlur(luminance, (0, 0), width * scale / 8)
    out["illumination_cv"] = float(smooth[inside].std() / max(smooth[inside].mean(), 1e-6))
    out["contrast"] = float(green[inside].std())
    laplacian = cv2.Laplacian(green, cv2.CV_32F)
    out["sharpness"] = float(laplacian[inside].var() / max(green[inside].var(), 1e-6))
    return out


def grade(measures: dict[str, float]) -> tuple[str, str]:
    """(good | usable | reject, the reasons joined by "; ") for a photograph's measures by ``RULE``;
    a measure that is missing or NaN is not judged."""
    found: dict[str, list[str]] = {"reject": [], "usable": []}
    for limit in RULE:
        value = measures.get(limit.measure)
        if value is None or not np.isfinite(value):
            continue
        if value < limit.low or value > limit.high:
            found[limit.flag].append(f"{limit.why} ({limit.measure} {value:.3g})")
    for flag in ("reject", "usable"):
        if found[flag]:
            return flag, "; ".join(found[flag])
    return "good", ""


def not_a_fundus_photograph(measures: dict[str, float]) -> str | None:
    """Why a picture cannot be a fundus photograph at all (then it is a failure, not a reject), or None:
    no field of view (less than a tenth of the image), or one colour throughout."""
    if measures["fov_fraction"] < 0.1:
        return f"not a fundus photograph: the field of view covers {measures['fov_fraction']:.1%} of it"
    if measures["contrast"] < 1.0:
        return "not a fundus photograph: it is one colour throughout"
    return None


def _blur(sigma: float):
    def apply(photo: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cv2.GaussianBlur(photo, (0, 0), sigma * max(1.0, fov_width(fov) / WORK_WIDTH)), fov

    return apply


def _scaled(factor: float):
    def apply(photo: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.clip(photo * factor, 0, 255).astype(np.uint8), fov

    return apply


def _ramp(photo: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gain = np.linspace(0.2, 1.3, photo.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(photo * gain, 0, 255).astype(np.uint8), fov


def _left_third(photo: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    third = photo.shape[1] // 3
    return photo[:, :third].copy(), fov[:, :third].copy()


# Copies of gradable photographs made worse in one way each, to see where the rule puts them. Blur
# sigmas are in pixels at the working size (a FOV WORK_WIDTH wide).
DEGRADATIONS = {
    "blurred, sigma 1": _blur(1),
    "blurred, sigma 2": _blur(2),
    "blurred, sigma 4": _blur(4),
    "half as bright": _scaled(0.5),
    "a quarter as bright": _scaled(0.25),
    "lit from one side": _ramp,
    "left third only": _left_third,
}
