"""The optic disc (given, or located in the photograph) and the measurement zones around it.

Zones follow the ARIC / Knudtson convention, measured from the disc margin in disc diameters (DD):
zone B is 0.5 to 1 DD from the margin, zone C 0.5 to 2 DD. With the disc radius R (DD = 2R) these
are the annuli R + R .. R + 2R = 2R .. 3R (B) and 2R .. 5R (C) from the disc centre.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scripts.core.errors import UsageError, name_list

DISC_DIAMETER_SHARE = 0.15  # a disc diameter is about 15 % of the FOV width (45-degree photographs)


@dataclass(frozen=True)
class Disc:
    """Centre (x, y) and radius in pixels; ``source`` is "given" or "located"; ``confidence`` in 0..1."""

    x: float
    y: float
    radius: float
    source: str = "given"
    confidence: float = 1.0

    def check_fits(self, shape: tuple[int, int], where: str) -> None:
        """A given disc must make sense for the image it is given for: its centre inside the image, its
        radius > 0 and at most the image's larger side (an optic disc is a small part of a photograph)."""
        h, w = shape
        if not (0 <= self.x < w and 0 <= self.y < h) or not (0 < self.radius <= max(h, w)):
            raise UsageError(
                f"{where}: the disc given (x {self.x:g}, y {self.y:g}, radius {self.radius:g} px) does not fit the "
                f"{w} x {h} image: the centre must lie inside it and the radius be at most {max(h, w)} px (an optic "
                "disc's radius is about a fifteenth of the field of view's width); check the disc's row or numbers"
            )

    def distance(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) distance of every pixel from the disc centre."""
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        return np.hypot(xx - self.x, yy - self.y)

    def zones(self, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """(H, W) bool masks of zone B and zone C."""
        d = self.distance(shape)
        r = self.radius
        return {"zone_b": (d >= 2 * r) & (d <= 3 * r), "zone_c": (d >= 2 * r) & (d <= 5 * r)}


def fov_width(fov: np.ndarray) -> int:
    cols = np.flatnonzero(fov.any(axis=0))
    return int(cols[-1] - cols[0] + 1) if cols.size else fov.shape[1]


def read_disc_csv(path: Path) -> dict[str, Disc]:
    """Known discs by image id from a CSV with columns id, x, y, radius (pixels). A byte-order mark
    (as spreadsheet programs write) is accepted; a row without finite numbers, a radius <= 0 or an
    id given twice is refused, naming the line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--disc-csv {path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if not rows:
        raise UsageError(f"--disc-csv {path}: holds no rows; expected a header id,x,y,radius and one row per image")
    discs: dict[str, Disc] = {}
    lines: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        where = f"--disc-csv {path}, line {i}"
        try:
            key, x, y, r = row["id"].strip(), float(row["x"]), float(row["y"]), float(row["radius"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(
                f"{where}: expected columns id, x, y, radius (pixels) with numbers, got {dict(row)}"
            ) from None
        if not all(math.isfinite(v) for v in (x, y, r)):
            raise UsageError(f"{where} ({key}): x, y and radius must be finite numbers, got {x}, {y}, {r}")
        if r <= 0:
            raise UsageError(f"{where} ({key}): the radius must be > 0 pixels, got {r:g}")
        if key in discs:
            raise UsageError(f"{where}: id {key} is already given on line {lines[key]}; keep one row per image")
        discs[key], lines[key] = Disc(x, y, r), i
    return discs


def warn_unmatched_rows(discs: dict[str, Disc], ids: list[str], path: Path) -> None:
    """Warn about ``--disc-csv`` rows whose id is none of the images' ``ids`` (they would be ignored
    silently, and those images' discs located instead), with the likely reason when one is seen."""
    unmatched = sorted(set(discs) - set(ids))
    if not unmatched:
        return
    lower = {i.lower(): i for i in ids}
    near = [f"'{u}' (the image is '{lower[Path(u).stem.lower()]}')" for u in unmatched if Path(u).stem.lower() in lower]
    warnings.warn(
        f"--disc-csv {path}: {len(unmatched)} of its {len(discs)} row(s) match no image and are not used ({name_list(unmatched)}). "
        "A row's id is the image's file name without its extension, exactly (case included)"
        + (f"; close: {', '.join(near[:3])}" if near else "")
        + f". This run's ids: {', '.join(sorted(ids)[:5])}{' ...' if len(ids) > 5 else ''}.",
        stacklevel=2,
    )


LOW_CONFIDENCE = 0.3  # below this the warning says the disc is probably wrong
MIN_VESSEL_SHARE = 0.02  # a vessel map covering less of the FOV (ground truth: 6-14 %) cannot show where vessels meet
WORK_SIZE = 512  # the disc is large: it is located on a copy at most this many pixels wide or high


def locate_disc(
    photo: np.ndarray,
    fov: np.ndarray,
    source: str = "photograph",
    hint: str = "give --disc X Y R / --disc-csv",
    vessels: np.ndarray | None = None,
) -> Disc:
    """Where the widest vessels converge on a bright spot.

    Brightness alone (the photograph's luminance smoothed at a third of a disc radius) finds the
    brightest blob, which in a diseased eye is often a lesion, a laser scar or a reflex. With the
    (H, W) bool ``vessels`` map of the same photograph, the score is the width-weighted vessel
    density (the squared distance transform of the vessel map smoothed over a disc radius: large
    vessels meet only at the disc) times (0.3 + the normalised brightness); its maximum away from
    the FOV rim is the centre. The radius is the typical share of the FOV width
    (``DISC_DIAMETER_SHARE``). A vessel map covering less than ``MIN_VESSEL_SHARE`` of the FOV (a
    model that found almost nothing) is not used. Confidence: 1 - (the best score more than two disc
    diameters away) / (the score at the centre), 0 when another place is as likely, times the
    brightness there relative to half the brightest place's (at most 1): a dim place that only the
    vessels chose is doubtful. Always warns: check the result or give the disc; below
    ``LOW_CONFIDENCE`` the warning says it is probably wrong.
    """
    radius = DISC_DIAMETER_SHARE * fov_width(fov) / 2
    scale = min(1.0, WORK_SIZE / max(photo.shape[:2]))
    size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA) if scale < 1 else photo
    small_fov = (cv2.resize(fov.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0) if scale < 1 else fov
    weight = None
    if vessels is not None and np.asarray(vessels, bool)[fov].mean() >= MIN_VESSEL_SHARE:
        depth = cv2.distanceTransform(np.asarray(vessels, np.uint8), cv2.DIST_L2, 5)
        if scale < 1:
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_AREA)
        weight = depth * depth  # squared, so that the widest vessels dominate
    x, y, confidence = _best_place(small, small_fov, radius * scale, weight)
    disc = Disc((x + 0.5) / scale - 0.5, (y + 0.5) / scale - 0.5, float(radius), "located", confidence)
    _warn(disc, source, hint)
    return disc


def _best_place(
    photo: np.ndarray, fov: np.ndarray, radius: float, weight: np.ndarray | None
) -> tuple[float, float, float]:
    """(x, y, confidence) of :func:`locate_disc` on a working copy (pixels of that copy)."""
    grey = (
        photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if photo.ndim == 3
        else photo.astype(np.float32)
    )
    inside = cv2.erode(fov.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, round(radius / 2))) > 0
    if not inside.any():
        inside = fov if fov.any() else np.ones(fov.shape, bool)
    median = float(np.median(grey[fov])) if fov.any() else 0.0
    grey = np.where(fov, grey, median)
    bright = cv2.GaussianBlur(grey, (0, 0), sigmaX=max(1.0, radius / 3))
    brightness = score = np.clip((bright - median) / max(float(bright[inside].max()) - median, 1e-6), 0, 1)
    if weight is not None:
        convergence = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), sigmaX=max(1.0, radius))
        score = convergence / max(float(convergence[inside].max()), 1e-12) * (0.3 + score)
    score = np.where(inside, score, -np.inf)
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    yy, xx = np.mgrid[: score.shape[0], : score.shape[1]]
    far = (np.hypot(xx - x, yy - y) > 4 * radius) & inside
    best = float(score[y, x])
    rest = float(score[far].max()) if far.any() else 0.0
    separation = float(np.clip(1 - max(rest, 0.0) / best, 0.0, 1.0)) if best > 0 else 0.0
    return float(x), float(y), separation * min(1.0, float(brightness[y, x]) / 0.5)


def _warn(disc: Disc, source: str, hint: str) -> None:
    doubt = (
        f"LOW confidence {disc.confidence:.2f}: probably wrong"
        if disc.confidence < LOW_CONFIDENCE
        else f"confidence {disc.confidence:.2f}"
    )
    warnings.warn(
        f"{source}: optic disc located automatically at ({disc.x:.0f}, {disc.y:.0f}), radius "
        f"{disc.radius:.0f} px ({doubt}); check it, or {hint}",
        stacklevel=3,
    )
