"""Vascular biomarkers of an artery/vein map: calibre, CRAE/CRVE/AVR, tortuosity, fractal dimension,
vessel density. Every measure is defined in docs/biomarkers.md.

The map's centreline graph is ``scripts.vessels.graph`` (the one the segment evaluation uses);
here it is built from the map itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from scripts.vessels.disc import LOW_CONFIDENCE, Disc
from scripts.vessels.graph import ARTERY, VEIN, VesselGraph, build_graph
from scripts.vessels.zone_b import (
    KNUDTSON,
    VesselEdit,
    ZoneBVessel,
    apply_edits,
    knudtson,
    number,
    select,
    zone_b_vessels,
)

CLASS_IDS = {"artery": ARTERY, "vein": VEIN}
MIN_TORTUOSITY_LENGTH = 20  # segments shorter than this (centreline pixels) get no tortuosity
SMOOTHING = 2.0  # Gaussian sigma (pixels) applied to centreline coordinates before the arc length
CURVATURE_SMOOTHING = 4.0  # ... and before curvature, which the pixel staircase would otherwise dominate
TANGENT_SPAN = 3  # centreline pixels either side that give the direction of the centreline
PROFILE_STEP = 0.25  # pixels between samples of a perpendicular profile
# The mean optic disc diameter of adult eyes, about 1.8 mm (Jonas et al., Invest Ophthalmol Vis Sci
# 1988: 1.76 mm horizontally, 1.92 mm vertically): the scale of a photograph whose scale is unknown.
DISC_DIAMETER_UM = 1800.0
# An AVR outside this range is flagged for a person to look at: population studies with the revised
# Knudtson formula report means near 0.7 with standard deviations under 0.1, in healthy and in
# hypertensive and diabetic eyes (Wong et al., Ophthalmology 2004, Beaver Dam; Liew et al., Invest
# Ophthalmol Vis Sci 2007); an artery summary as wide as the vein summary (AVR 1) is not reported.
AVR_RANGE = (0.4, 1.0)
MIN_ZONE_B_VESSELS = 4  # fewer widths of a class than this make CRAE or CRVE rest on too few vessels


def channels_of(classes: np.ndarray) -> np.ndarray:
    """Decoded classes (artery, vein, uncertain) -> label channels (artery, uncertain, vein) for
    :func:`scripts.vessels.graph.build_graph`."""
    a, v, u = (np.asarray(c, bool) for c in classes)
    return np.stack([a, u, v])


def _starts(graph: VesselGraph) -> tuple[np.ndarray, np.ndarray]:
    """For every centreline pixel, the index of its segment's first and last pixel."""
    first = np.r_[0, np.flatnonzero(np.diff(graph.segment)) + 1]
    last = np.r_[first[1:] - 1, len(graph.segment) - 1]
    seg_rank = np.cumsum(np.r_[0, np.diff(graph.segment) != 0]) if len(graph.segment) else np.zeros(0, int)
    return first[seg_rank], last[seg_rank]


def pixel_widths(graph: VesselGraph, vessel: np.ndarray | dict[int, np.ndarray]) -> np.ndarray:
    """Vessel width at every centreline pixel (NaN where undefined), measured perpendicular to the
    centreline: the distance between the two places where a line through the pixel, normal to the
    local direction, crosses the vessel edge (the 0.5 level of the bilinearly interpolated mask,
    sampled every ``PROFILE_STEP`` px and interpolated between samples, so that staircase edges of
    oblique vessels count as straight ones). The distance transform bounds how far each profile looks.
    ``vessel``: one (H, W) bool mask, or one per ground-truth class of the segments ({ARTERY: mask,
    VEIN: mask}: an artery is measured in the artery map, so a vein touching it does not widen it;
    pixels of other classes get NaN)."""
    n = len(graph.pixels)
    if n == 0:
        return np.zeros(0)
    h, w = graph.shape
    y, x = np.divmod(graph.pixels, w)
    first, last = _starts(graph)
    i = np.arange(n)
    j0, j1 = np.maximum(i - TANGENT_SPAN, first), np.minimum(i + TANGENT_SPAN, last)
    dy, dx = (y[j1] - y[j0]).astype(np.float64), (x[j1] - x[j0]).astype(np.float64)
    norm = np.hypot(dx, dy)
    ok = norm > 0
    ny, nx = np.where(ok, dx / np.where(ok, norm, 1), 0), np.where(ok, -dy / np.where(ok, norm, 1), 0)
    masks = vessel if isinstance(vessel, dict) else {None: vessel}
    half = np.full((2, n), np.nan)
    for cls, mask in masks.items():
        pick = np.flatnonzero(graph.truth[graph.segment] == cls) if cls is not None else np.arange(n)
        if pick.size:
            half[:, pick] = _profiles(np.asarray(mask, bool), graph.pixels[pick], y[pick], x[pick], ny[pick], nx[pick])
    width = half.sum(axis=0)
    width[~ok] = np.nan
    return width


def _profiles(
    vessel: np.ndarray, pixels: np.ndarray, y: np.ndarray, x: np.ndarray, ny: np.ndarray, nx: np.ndarray
) -> np.ndarray:
    """(2, n) distances from each pixel to the vessel edge along +normal and -normal."""
    n = len(pixels)
    dist = cv2.distanceTransform(vessel.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE).ravel()[pixels]
    reach = min(2.0 * float(dist.max()) + 3.0, float(np.hypot(*vessel.shape)) + 2.0)  # no background: no bound
    steps = np.arange(0.0, reach, PROFILE_STEP)
    image = vessel.astype(np.float32)
    half = np.zeros((2, n))
    for k, sign in enumerate((1.0, -1.0)):
        out = np.full(n, np.nan)
        # cv2.remap maps must stay under 32767 rows; about 4 M samples per chunk
        for chunk in np.array_split(np.arange(n), max(n // 30_000 + 1, n * len(steps) // 4_000_000 + 1)):
            map_y = (y[chunk, None] + sign * ny[chunk, None] * steps).astype(np.float32)
            map_x = (x[chunk, None] + sign * nx[chunk, None] * steps).astype(np.float32)
            v = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            below = v < 0.5
            hit = below.any(axis=1)
            j = np.maximum(below.argmax(axis=1), 1)
            rows = np.arange(len(chunk))
            v0, v1 = v[rows, j - 1], v[rows, j]
            frac = np.clip((v0 - 0.5) / np.maximum(v0 - v1, 1e-6), 0, 1)
            out[chunk] = np.where(hit, steps[j - 1] + frac * PROFILE_STEP, np.nan)
        half[k] = out
    return half


def _segment_median(values: np.ndarray, segment: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    keep = ~np.isnan(values) if where is None else (~np.isnan(values) & where)
    out = np.full(n, np.nan)
    if not keep.any():
        return out
    seg, val = segment[keep], values[keep]
    order = np.lexsort((val, seg))
    seg, val = seg[order], val[order]
    starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    ends = np.r_[starts[1:], len(seg)]
    mid = (starts + ends - 1) / 2
    out[seg[starts]] = (val[np.floor(mid).astype(int)] + val[np.ceil(mid).astype(int)]) / 2
    return out


def tortuosity(graph: VesselGraph) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: distance factor (arc length / chord) and the integral of squared curvature
    (1/px) along the centreline, from coordinates smoothed by Gaussians of ``SMOOTHING`` and
    ``CURVATURE_SMOOTHING`` px; NaN for segments shorter than ``MIN_TORTUOSITY_LENGTH``."""
    n = graph.n_segments
    dfac, curv = np.full(n, np.nan), np.full(n, np.nan)
    y, x = np.divmod(graph.pixels, graph.shape[1])
    starts = np.r_[0, np.flatnonzero(np.diff(graph.segment)) + 1] if n else np.zeros(0, int)
    for s, start in zip(graph.segment[starts] if n else [], starts):
        length = graph.length[s]
        if length < MIN_TORTUOSITY_LENGTH:
            continue
        ys = gaussian_filter1d(y[start : start + length].astype(np.float64), SMOOTHING, mode="nearest")
        xs = gaussian_filter1d(x[start : start + length].astype(np.float64), SMOOTHING, mode="nearest")
        arc = float(np.hypot(np.diff(xs), np.diff(ys)).sum())
        chord = float(np.hypot(xs[-1] - xs[0], ys[-1] - ys[0]))
        if chord <= 0:
            continue
        dfac[s] = arc / chord
        ys = gaussian_filter1d(y[start : start + length].astype(np.float64), CURVATURE_SMOOTHING, mode="nearest")
        xs = gaussian_filter1d(x[start : start + length].astype(np.float64), CURVATURE_SMOOTHING, mode="nearest")
        dx, dy = np.gradient(xs), np.gradient(ys)
        ddx, ddy = np.gradient(dx), np.gradient(dy)
        speed = np.hypot(dx, dy)
        kappa = np.abs(dx * ddy - dy * ddx) / np.maximum(speed, 1e-9) ** 3
        curv[s] = float((kappa**2 * speed).sum())
    return dfac, curv


def fractal_dimension(binary: np.ndarray) -> float:
    """Box-counting dimension: the slope of log(boxes holding a vessel pixel) against log(1 / box
    size), box sizes 2, 4, 8, ... up to a quarter of the shorter image side. NaN for an empty map."""
    if not binary.any():
        return math.nan
    h, w = binary.shape
    sizes = [2**k for k in range(1, 16) if 2**k <= min(h, w) / 4]
    if len(sizes) < 2:
        return math.nan
    counts = []
    for s in sizes:
        ph, pw = -h % s, -w % s
        padded = np.pad(binary, ((0, ph), (0, pw)))
        counts.append(padded.reshape(padded.shape[0] // s, s, padded.shape[1] // s, s).any(axis=(1, 3)).sum())
    return float(np.polyfit(np.log(1.0 / np.array(sizes)), np.log(counts), 1)[0])


def _weighted(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    keep = ~np.isnan(values)
    if not keep.any():
        return math.nan, math.nan
    return float(values[keep].mean()), float(np.average(values[keep], weights=weights[keep]))


@dataclass
class Biomarkers:
    """What :func:`measure` finds in one map: every measure by name (docs/biomarkers.md), each vessel
    measured in zone B, the plausibility flags, and the grader's edits that matched no vessel."""

    values: dict[str, float]
    vessels: list[ZoneBVessel] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    unmatched_edits: list[VesselEdit] = field(default_factory=list)


def plausibility_flags(values: dict[str, float], vessels: list[ZoneBVessel], disc: Disc | None) -> list[str]:
    """Why a person should look at this image's CRAE, CRVE and AVR before using them."""
    flags = []
    avr = values.get("avr", math.nan)
    if not math.isnan(avr) and not AVR_RANGE[0] <= avr <= AVR_RANGE[1]:
        flags.append(f"AVR {avr:.2f} outside {AVR_RANGE[0]:g}-{AVR_RANGE[1]:g}")
    if disc is not None:
        for name in CLASS_IDS:
            n = int(values.get(f"{name}_zone_b_vessels", 0))
            if n < MIN_ZONE_B_VESSELS:
                flags.append(f"{n} {name} width(s) in zone B (fewer than {MIN_ZONE_B_VESSELS})")
        if disc.source == "located" and disc.confidence < LOW_CONFIDENCE:
            flags.append(f"disc confidence {disc.confidence:.2f} (below {LOW_CONFIDENCE:g})")
    rejected = sum(1 for v in vessels if v.flag)
    if rejected:
        flags.append(f"{rejected} vessel(s) with a zone-B width rejected")
    return flags


def measure(
    classes: np.ndarray,
    disc: Disc | None,
    fov: np.ndarray | None = None,
    pixel_um: float | None = None,
    graph: VesselGraph | None = None,
    source: str = "map",
    edits: Sequence[VesselEdit] = (),
) -> Biomarkers:
    """All biomarkers of one map. ``classes``: (3, H, W) bool decoded classes (artery, vein,
    uncertain); ``disc``: the optic disc (None: no zone measures); ``fov``: (H, W) bool (default:
    the whole image); ``pixel_um``: micrometres per pixel, if known; ``graph``: the map's vessel
    graph if already built; ``edits``: a grader's corrections of zone-B vessels.

    Lengths in pixels end in ``_px``; each also comes in micrometres (``_um``) at ``pixel_um``, or,
    when it is not given and there is a disc, at the scale that makes the disc
    ``DISC_DIAMETER_UM`` wide: then ``pixel_um_estimated`` is 1 (0 when given)."""
    classes = np.asarray(classes, bool)
    shape = classes.shape[1:]
    if disc is not None and disc.source == "given":
        disc.check_fits(shape, source)
    fov = np.ones(shape, bool) if fov is None else np.asarray(fov, bool)
    vessel = classes.any(axis=0)
    graph = graph if graph is not None else build_graph(channels_of(classes), fov=fov)
    widths = pixel_widths(graph, {ARTERY: classes[0] | classes[2], VEIN: classes[1] | classes[2]})
    seg_width = _segment_median(widths, graph.segment, graph.n_segments)
    dfac, curv = tortuosity(graph)
    zones = disc.zones(shape) if disc is not None else {}
    out: dict[str, float] = {}
    found: list[ZoneBVessel] = []
    if disc is not None:
        out.update(disc_x=disc.x, disc_y=disc.y, disc_radius=disc.radius, disc_confidence=disc.confidence)
        rho = disc.distance(shape).ravel()[graph.pixels]
        in_b = (rho >= 2 * disc.radius) & (rho <= 3 * disc.radius)
        zone_width = _segment_median(widths, graph.segment, graph.n_segments, where=in_b)
    for name, cls in CLASS_IDS.items():
        mine = graph.truth == cls
        mask = classes[0 if name == "artery" else 1]
        out[f"{name}_segments"] = float(mine.sum())
        calibre = _weighted(seg_width[mine], graph.length[mine].astype(float))[1]
        out[f"{name}_calibre_px"] = calibre
        t_mean, t_w = _weighted(dfac[mine], graph.length[mine].astype(float))
        c_mean, c_w = _weighted(curv[mine], graph.length[mine].astype(float))
        out.update(
            {
                f"{name}_tortuosity_distance": t_mean,
                f"{name}_tortuosity_distance_weighted": t_w,
                f"{name}_tortuosity_curvature": c_mean,
                f"{name}_tortuosity_curvature_weighted": c_w,
                f"{name}_fractal_dimension": fractal_dimension(mask & fov),
                f"{name}_density_fov": float((mask & fov).sum() / max(fov.sum(), 1)),
            }
        )
        for zone, zmask in zones.items():
            inside = zmask & fov
            out[f"{name}_density_{zone}"] = float((mask & inside).sum() / inside.sum()) if inside.any() else math.nan
        if disc is not None:
            found += zone_b_vessels(
                graph, name, mine, (mask | classes[2]) & fov, zone_width, seg_width, disc, vessel & fov
            )
    vessels = number(found)
    unmatched = apply_edits(vessels, edits, graph)
    if disc is not None:
        for name in CLASS_IDS:
            key = "crae" if name == "artery" else "crve"
            chosen = select(vessels, name)
            mine_v = [v for v in vessels if v.cls == name and v.edit != "excluded"]
            unfit = [v.number for v in mine_v if math.isnan(v.width_px)]
            out[f"{name}_zone_b_vessels"] = float(len(mine_v) - len(unfit))
            out[f"{name}_zone_b_unfit"] = float(len(unfit))
            out[f"{name}_zone_b_rejected"] = float(sum(1 for v in mine_v if v.flag))
            out[f"{key}_px"] = knudtson(chosen, KNUDTSON[name])
            if unfit:
                warnings.warn(
                    f"{source}: {len(unfit)} {name}(s) crossing zone B (vessel {', '.join(map(str, unfit))}) had no "
                    "width that fits the crossing and the vessels it meets; left out of "
                    f"{key.upper()}",
                    stacklevel=2,
                )
            elif not chosen:
                warnings.warn(
                    f"{source}: no {name} crosses zone B (0.5-1 disc diameter from the disc margin); "
                    f"{key.upper()} and AVR are undefined",
                    stacklevel=2,
                )
    out["vessel_fractal_dimension"] = fractal_dimension(vessel & fov)
    out["vessel_density_fov"] = float((vessel & fov).sum() / max(fov.sum(), 1))
    if disc is not None:
        out["avr"] = out["crae_px"] / out["crve_px"] if out["crve_px"] else math.nan
    estimated = not pixel_um and disc is not None
    if estimated:
        pixel_um = DISC_DIAMETER_UM / (2 * disc.radius)
    if pixel_um:
        for k in [k for k in out if k.endswith("_px")]:
            out[k[:-3] + "_um"] = out[k] * pixel_um
        out.update(pixel_um=float(pixel_um), pixel_um_estimated=float(estimated))
    return Biomarkers(out, vessels, plausibility_flags(out, vessels, disc), unmatched)
