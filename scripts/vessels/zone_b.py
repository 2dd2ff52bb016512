"""The vessels that enter CRAE and CRVE: every vessel crossing zone B's middle circle (2.5 disc radii
from the disc centre), its width checked against the crossing, a grader's edits, and Knudtson's
summary of the six widest (docs/biomarkers.md, "Which vessels enter CRAE/CRVE")."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from scripts.vessels.disc import Disc
from scripts.vessels.graph import VesselGraph

KNUDTSON = {"artery": 0.88, "vein": 0.95}  # Knudtson et al. 2003, revised Parr-Hubbard constants
N_LARGEST = 6
CHORD_TOLERANCE_PX = 2.0  # how far a width may exceed its crossing: the half-pixel sampling of both, and a pixel ...
CHORD_TOLERANCE_SHARE = 0.1  # ... plus a tenth of the chord: a zone-B median width against the width at one place
ANGLE_TOLERANCE_DEG = 10.0  # how far the vessel's direction at the crossing may be off
DIRECTION_REACH_PX = 8.0  # a segment's centreline pixels this close to the crossing (or its chord) give its direction
# A vessel is at most this many times as wide as the widest vessel it meets at a node (+ the chord's
# tolerance): by Murray's law a parent is at most 2^(1/3) = 1.26 times its wider child; twice that
# leaves room for measurement error and for real departures from the law.
NEIGHBOUR_RATIO = 2.0
# ... checked on short segments only (centreline shorter than this many widths): the pieces inside a
# junction whose "width" runs along a vessel; a long segment's width is measured across it, and its
# same-class neighbours may all be side branches (its own continuation cut off by a crossing).
SHORT_SEGMENT_WIDTHS = 3.0
NEIGHBOUR_REACH_PX = 5.0  # segment ends this close (plus the segment's width: across a crossing) meet at one node
EDIT_REACH_PX = 5.0  # a grader's edit applies to the vessel crossing this close to its point
ACTIONS = ("flip", "exclude")


@dataclass
class ZoneBVessel:
    """One vessel crossing zone B's middle circle: where (the middle of its longest run of vessel
    pixels along the circle, clockwise degrees from 3 o'clock around the disc), the vessel's angle to
    the circle (90: radial; NaN when its centreline there is too short to tell), the run's length
    (chord), its width (NaN: left out) and the centreline segments it was measured on."""

    cls: str
    x: float
    y: float
    position_deg: float
    angle_deg: float
    chord_px: float
    width_px: float
    segments: tuple[int, ...]
    width_segment: int = -1  # the segment that gave the width
    flag: str = ""  # why a width of this vessel was not used
    number: int = 0  # 1, 2, ... clockwise around the disc, both classes together
    used: bool = False  # among the six widest of its class: entered Knudtson's pairing
    edit: str = ""  # "flipped" (measured as the other class) or "excluded" by a grader
    edits: list[int] = field(default_factory=list)  # the indices of the grader's edits that matched it


@dataclass(frozen=True)
class VesselEdit:
    """A grader's correction of one vessel, found again by a point on its crossing (image pixels)."""

    x: float
    y: float
    action: str  # one of ACTIONS


def knudtson(widths: Iterable[float], constant: float) -> float:
    """Knudtson's iterative pairing of the (up to six) largest widths: sort, pair the largest with the
    smallest, the second largest with the second smallest, ... each pair giving
    ``constant * sqrt(a^2 + b^2)``; an odd middle width is carried to the next round as it is;
    repeat until one value remains. NaN for no widths."""
    w = sorted((float(v) for v in widths if not math.isnan(v)), reverse=True)[:N_LARGEST]
    if not w:
        return math.nan
    while len(w) > 1:
        w.sort()
        n = len(w)
        paired = [constant * math.hypot(w[i], w[n - 1 - i]) for i in range(n // 2)]
        w = paired + ([w[n // 2]] if n % 2 else [])
    return w[0]


def circle_crossings(
    mask: np.ndarray, disc: Disc, radius: float, step: float = 0.5
) -> list[tuple[float, float, float]]:
    """Where ``mask`` (H, W) crosses the circle of ``radius`` around the disc centre: one
    (x, y, length) per run of mask pixels along the circle (its middle and its length in pixels),
    sampled every ``step`` px of arc; the parts of the circle outside the image are not searched."""
    h, w = mask.shape
    n = max(int(math.ceil(2 * math.pi * radius / step)), 8)
    angle = np.arange(n) * (2 * math.pi / n)
    xs, ys = disc.x + radius * np.cos(angle), disc.y + radius * np.sin(angle)
    col, row = np.rint(xs).astype(int), np.rint(ys).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    on = np.zeros(n, bool)
    on[inside] = mask[row[inside], col[inside]]
    if on.all():
        return [(disc.x, disc.y, 2 * math.pi * radius)]
    shift = int(np.flatnonzero(~on)[0])  # start the walk off the mask so no run wraps around
    on, xs, ys = np.roll(on, -shift), np.roll(xs, -shift), np.roll(ys, -shift)
    edges = np.flatnonzero(np.diff(np.r_[on, False].astype(np.int8)))  # a run may end at the last sample
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    return [
        (float(xs[(a + b - 1) // 2]), float(ys[(a + b - 1) // 2]), float((b - a) * 2 * math.pi * radius / n))
        for a, b in zip(starts, ends)
    ]


def _angle_to_circle(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, disc: Disc) -> float:
    """Degrees between the centreline through (xs, ys) (its principal direction) and the circle's
    tangent at (cx, cy): 90 for a radial vessel; NaN for fewer than 3 points."""
    if len(xs) < 3:
        return math.nan
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    pts -= pts.mean(axis=0)
    values, vectors = np.linalg.eigh(pts.T @ pts)
    if values[-1] <= 0:
        return math.nan
    radial = np.array([cx - disc.x, cy - disc.y])
    norm = float(np.hypot(*radial))
    if norm == 0:
        return math.nan
    return math.degrees(math.asin(min(1.0, abs(float(vectors[:, -1] @ radial)) / norm)))


def _crossing_bound(chord: float, angle: float) -> float:
    """The widest vessel that can leave a run of ``chord`` px on the circle when it crosses at ``angle``
    degrees (NaN: unknown, taken as radial), with the tolerances."""
    sine = 1.0 if math.isnan(angle) else math.sin(math.radians(min(90.0, angle + ANGLE_TOLERANCE_DEG)))
    return chord * sine * (1 + CHORD_TOLERANCE_SHARE) + CHORD_TOLERANCE_PX


def zone_b_vessels(
    graph: VesselGraph,
    cls: str,
    mine: np.ndarray,
    mask: np.ndarray,
    zone_width: np.ndarray,
    seg_width: np.ndarray,
    disc: Disc,
    vessel: np.ndarray | None = None,
) -> list[ZoneBVessel]:
    """Every vessel of class ``cls`` crossing zone B's middle circle, each once, with its width.

    A vessel is a run of ``mask`` across the circle (:func:`circle_crossings`), so that a vessel
    whose centreline is cut on the circle by a branch point or an artery/vein crossing is still
    found. Its segments (``mine``) are those with a centreline pixel within half the run's length
    plus 3 px of the run's middle, leaving out stubs shorter than the run (the centreline's short
    spurs inside a junction, whose "width" is measured along the vessel); runs that share a segment
    are one vessel (a vessel leaving and re-entering the circle counts once). Its width is the
    largest zone-B width (``zone_width``, the median over the segment's pixels in zone B) of its
    segments that passes two checks, so that a piece at a junction measured along a vessel, or a
    neighbour, cannot stand in for it:

    - the crossing: a vessel of width w cut by the circle at an angle a leaves a run (chord) of
      w / sin(a), so w may not exceed chord x sin(a + ``ANGLE_TOLERANCE_DEG``) x
      (1 + ``CHORD_TOLERANCE_SHARE``) + ``CHORD_TOLERANCE_PX`` (a: the direction of the segment's
      centreline within the chord, or ``DIRECTION_REACH_PX``, of the crossing);
    - its neighbours (a segment shorter than ``SHORT_SEGMENT_WIDTHS`` widths): w may not exceed
      ``NEIGHBOUR_RATIO`` times the widest vessel its segment meets
      at a node (a segment of the class ending within ``NEIGHBOUR_REACH_PX`` + w of its ends, so
      that the vessel's own continuation across an artery/vein crossing counts; ``seg_width``,
      whole-segment medians), plus ``CHORD_TOLERANCE_PX``.

    A width that fails is named in ``flag``; a vessel none of whose widths passes keeps a NaN width
    (left out). At a branch point on the circle the width is the parent vessel's, at a crossing the
    vessel's own on either side. The chord of the bound is the run of ``vessel`` (every class, default
    ``mask``) holding the vessel's run: an artery lying across a vein on the circle cuts the vein's own
    run short, not the vein."""
    runs = circle_crossings(mask, disc, 2.5 * disc.radius)
    if not runs:
        return []
    whole = runs if vessel is None else circle_crossings(vessel, disc, 2.5 * disc.radius)
    y, x = np.divmod(graph.pixels, graph.shape[1])
    candidate = mine[graph.segment] & ~np.isnan(zone_width[graph.segment])
    groups: list[tuple[set[int], tuple[float, float, float]]] = []  # segments, longest run
    for cx, cy, length in runs:
        near = np.unique(graph.segment[candidate & (np.hypot(x - cx, y - cy) <= length / 2 + 3)])
        long_enough = near[graph.length[near] >= length]
        segments = set((long_enough if len(long_enough) else near).tolist())
        if not segments:
            continue
        overlapping = [g for g in groups if g[0] & segments]
        merged = segments.union(*(g[0] for g in overlapping))
        held = max(
            (w for w in whole if math.hypot(w[0] - cx, w[1] - cy) <= w[2] / 2 + 1), key=lambda w: w[2], default=None
        )
        chord = max(length, held[2] if held else length)
        run = max([(cx, cy, chord)] + [g[1] for g in overlapping], key=lambda r: r[2])
        groups = [g for g in groups if not g[0] & segments] + [(merged, run)]
    ends = _segment_ends(graph)
    return [
        _vessel(graph, cls, mine, segments, run, zone_width, seg_width, ends, x, y, disc) for segments, run in groups
    ]


def _segment_ends(graph: VesselGraph) -> np.ndarray:
    """(S, 2, 2) the (x, y) of every segment's first and last centreline pixel."""
    if not len(graph.segment):
        return np.zeros((0, 2, 2))
    first = np.r_[0, np.flatnonzero(np.diff(graph.segment)) + 1]
    last = np.r_[first[1:] - 1, len(graph.segment) - 1]
    out = np.zeros((graph.n_segments, 2, 2))
    for k, idx in enumerate((first, last)):
        yy, xx = np.divmod(graph.pixels[idx], graph.shape[1])
        out[graph.segment[idx], k] = np.stack([xx, yy], axis=1)
    return out


def _vessel(
    graph: VesselGraph,
    cls: str,
    mine: np.ndarray,
    segments: set[int],
    run: tuple[float, float, float],
    zone_width: np.ndarray,
    seg_width: np.ndarray,
    ends: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    disc: Disc,
) -> ZoneBVessel:
    cx, cy, chord = run
    close = np.hypot(x - cx, y - cy) <= max(DIRECTION_REACH_PX, chord)
    width, chosen, rejected, angles = math.nan, -1, [], {}
    for s in sorted(segments, key=lambda s: -zone_width[s]):
        pick = close & (graph.segment == s)
        angles[s] = _angle_to_circle(x[pick], y[pick], cx, cy, disc)
        w = float(zone_width[s])
        bound = _crossing_bound(chord, angles[s])
        if w > bound:
            rejected.append(f"segment {s} width {w:.1f} px > {bound:.1f} px its crossing allows")
            continue
        diff = ends[:, :, None, :] - ends[s][None, None, :, :]  # every segment's ends against this one's
        gap = np.hypot(diff[..., 0], diff[..., 1]).min(axis=(1, 2))
        joined = np.flatnonzero((gap <= NEIGHBOUR_REACH_PX + w) & mine & ~np.isnan(seg_width))
        joined = joined[joined != s]
        short = graph.length[s] < SHORT_SEGMENT_WIDTHS * w
        if short and len(joined) and w > NEIGHBOUR_RATIO * float(seg_width[joined].max()) + CHORD_TOLERANCE_PX:
            rejected.append(
                f"segment {s} width {w:.1f} px > {NEIGHBOUR_RATIO:g} x {float(seg_width[joined].max()):.1f} px "
                "of the vessels it meets"
            )
            continue
        width, chosen = w, s
        break
    # the vessel's angle: that of the segment whose width it has, else of the widest one
    angle = angles.get(chosen, angles[max(segments, key=lambda s: zone_width[s])])
    position = math.degrees(math.atan2(cy - disc.y, cx - disc.x)) % 360
    return ZoneBVessel(cls, cx, cy, position, angle, chord, width, tuple(sorted(segments)), chosen, "; ".join(rejected))


def apply_edits(vessels: list[ZoneBVessel], edits: Sequence[VesselEdit], graph: VesselGraph) -> list[VesselEdit]:
    """Apply a grader's edits to ``vessels`` (in place); returns the edits that match no vessel.

    An edit belongs to the vessel whose crossing lies within half its chord plus ``EDIT_REACH_PX``
    of the edit's point, else to the vessel holding the centreline segment nearest the point (within
    ``EDIT_REACH_PX``), so that an edit survives a small move of the disc. "flip" counts the vessel
    in the other class; "exclude" leaves it out of CRAE/CRVE."""
    unmatched = []
    y, x = np.divmod(graph.pixels, graph.shape[1])
    for index, edit in enumerate(edits):
        target = None
        if vessels:
            gaps = [math.hypot(v.x - edit.x, v.y - edit.y) - v.chord_px / 2 for v in vessels]
            best = int(np.argmin(gaps))
            if gaps[best] <= EDIT_REACH_PX:
                target = vessels[best]
        if target is None and len(x):
            d = np.hypot(x - edit.x, y - edit.y)
            if d.min() <= EDIT_REACH_PX:
                segment = int(graph.segment[d.argmin()])
                target = next((v for v in vessels if segment in v.segments), None)
        if target is None:
            unmatched.append(edit)
            continue
        target.edits.append(index)
        if edit.action == "flip":
            target.cls = "vein" if target.cls == "artery" else "artery"
            target.edit = "" if target.edit == "flipped" else "flipped"
        else:
            target.edit = "excluded"
    return unmatched


def select(vessels: list[ZoneBVessel], cls: str) -> list[float]:
    """The widths of class ``cls`` that enter Knudtson's pairing (the ``N_LARGEST`` widest measured,
    not excluded), marking those vessels ``used``."""
    eligible = [v for v in vessels if v.cls == cls and not math.isnan(v.width_px) and v.edit != "excluded"]
    eligible.sort(key=lambda v: -v.width_px)
    for v in eligible[:N_LARGEST]:
        v.used = True
    return [v.width_px for v in eligible[:N_LARGEST]]


def number(vessels: list[ZoneBVessel]) -> list[ZoneBVessel]:
    """The vessels in clockwise order around the disc, numbered 1, 2, ..."""
    ordered = sorted(vessels, key=lambda v: v.position_deg)
    for k, v in enumerate(ordered, 1):
        v.number = k
    return ordered


VESSEL_FIELDS = (
    "id",
    "vessel",
    "class",
    "x",
    "y",
    "position_deg",
    "angle_deg",
    "chord_px",
    "width_px",
    "width_um",
    "segments",
    "width_segment",
    "knudtson",
    "edit",
    "flag",
)


def vessel_rows(image_id: str, vessels: list[ZoneBVessel], pixel_um: float | None) -> list[dict]:
    """One row per zone-B vessel (``VESSEL_FIELDS``): where it crosses the circle, its chord and
    width, the segments it was measured on, whether Knudtson's pairing used it, a grader's edit and
    why a width was not used."""
    return [
        {
            "id": image_id,
            "vessel": v.number,
            "class": v.cls,
            "x": round(v.x, 2),
            "y": round(v.y, 2),
            "position_deg": round(v.position_deg, 1),
            "angle_deg": round(v.angle_deg, 1),
            "chord_px": v.chord_px,
            "width_px": v.width_px,
            "width_um": v.width_px * pixel_um if pixel_um else math.nan,
            "segments": " ".join(map(str, v.segments)),
            "width_segment": v.width_segment,
            "knudtson": int(v.used),
            "edit": v.edit,
            "flag": v.flag,
        }
        for v in vessels
    ]
