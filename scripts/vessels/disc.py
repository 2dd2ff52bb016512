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

from scripts.core.runtime import UsageError

DISC_DIAMETER_SHARE = 0.15  # a disc diameter is about 15 % of the FOV width (45-degree photographs)


@dataclass(frozen=True)
class Disc:
    """Centre (x, y) and radius in pixels; ``source`` is "given" or "located"; ``confidence`` in 0..1."""

    x: float
    y: float
    radius: float
    source: str = "given"
    confidence: float = 1.0

    def distance(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) distance of every pixel from the disc centre."""
        yy, xx = np.mgrid[:shape[0], :shape[1]]
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
    discs: dict[str, Disc] = {}
    lines: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        where = f"--disc-csv {path}, line {i}"
        try:
            key, x, y, r = row["id"].strip(), float(row["x"]), float(row["y"]), float(row["radius"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(f"{where}: expected columns id, x, y, radius (pixels) with numbers, got "
                             f"{dict(row)}") from None
        if not all(math.isfinite(v) for v in (x, y, r)):
            raise UsageError(f"{where} ({key}): x, y and radius must be finite numbers, got {x}, {y}, {r}")
        if r <= 0:
            raise UsageError(f"{where} ({key}): the radius must be > 0 pixels, got {r:g}")
        if key in discs:
            raise UsageError(f"{where}: id {key} is already given on line {lines[key]}; keep one row per image")
        discs[key], lines[key] = Disc(x, y, r), i
    return discs


def locate_disc(photo: np.ndarray, fov: np.ndarray, source: str = "photograph",
                hint: str = "give --disc X Y R / --disc-csv") -> Disc:
    """The brightest large blob inside the FOV: the photograph's luminance smoothed at the scale of a
    disc (which also erases vessels), its maximum away from the FOV rim. The radius is the typical
    share of the FOV width (``DISC_DIAMETER_SHARE``). Confidence: how much brighter the peak is than
    the brightest place more than two disc diameters away, relative to the FOV's median (0: as
    bright, 1: nothing else bright). Always warns: check the result or give the disc."""
    scale = min(1.0, 512 / max(photo.shape[:2]))  # the disc is large: locate it on a small copy
    if scale < 1.0:
        size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
        small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        small_fov = cv2.resize(fov.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = locate_disc(small, small_fov, source, hint)
        sx, sy = photo.shape[1] / size[0], photo.shape[0] / size[1]
        disc = Disc((d.x + 0.5) * sx - 0.5, (d.y + 0.5) * sy - 0.5, DISC_DIAMETER_SHARE * fov_width(fov) / 2,
                    "located", d.confidence)
        _warn(disc, source, hint)
        return disc
    width = fov_width(fov)
    radius = DISC_DIAMETER_SHARE * width / 2
    grey = photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    inside = cv2.erode(fov.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, round(radius / 2))) > 0
    if not inside.any():
        inside = fov
    median = float(np.median(grey[fov])) if fov.any() else 0.0
    grey = np.where(fov, grey, median)
    smooth = cv2.GaussianBlur(grey, (0, 0), sigmaX=max(1.0, radius / 2))
    scored = np.where(inside, smooth, -np.inf)
    y, x = np.unravel_index(int(np.argmax(scored)), scored.shape)
    far = np.hypot(*np.mgrid[:grey.shape[0], :grey.shape[1]][::-1] - np.array([x, y])[:, None, None]) > 4 * radius
    peak = float(smooth[y, x])
    rest = float(scored[far & inside].max()) if (far & inside).any() else median
    confidence = float(np.clip((peak - rest) / max(peak - median, 1e-6), 0.0, 1.0))
    disc = Disc(float(x), float(y), float(radius), "located", confidence)
    _warn(disc, source, hint)
    return disc


def _warn(disc: Disc, source: str, hint: str) -> None:
    warnings.warn(f"{source}: optic disc located automatically at ({disc.x:.0f}, {disc.y:.0f}), radius "
                  f"{disc.radius:.0f} px (confidence {disc.confidence:.2f}); check it, or {hint}", stacklevel=3)
