"""The vessel graph of an artery/vein label map: its centreline cut into segments.

The vessel mask (any class) is skeletonised (scikit-image's thinning,
:mod:`scripts.vessels.skeleton`). Skeleton pixels with three or more skeleton neighbours are branch
points; skeleton pixels on the green crossing label are crossing points; both are nodes. Removing
the nodes cuts the skeleton into segments (8-connected), which are cut again where the ground-truth
class changes along the centreline, so that each segment has one ground-truth class (artery, vein,
or uncertain), a length in skeleton pixels and its pixels in order along the centreline.

Crossings: every segment ends at a node, so "near a node" would select nearly all of them. What
the paper is about happens where an artery and a vein meet, so a node (a connected group of node
pixels) is an artery/vein crossing when it is labelled green, or when both an artery and a vein
segment pass within ``radius`` pixels of it; segments within ``radius`` of a crossing are marked
``near_crossing``. Branch points of one class (an artery splitting in two) are not crossings. Spurs (short end branches that skeletonisation grows from the blunt
end or a bulge of a wide vessel: no longer than the vessel is wide there) are pruned first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import depth_first_order

from scripts.vessels.skeleton import skeletonize

ARTERY, VEIN, UNCERTAIN = 1, 2, 3
_EIGHT = np.ones((3, 3), np.uint8)
RADIUS_SHARE = 0.01  # default node radius: 1 % of the vessel tree's width (5-6 px on DRIVE, ~33 px on HRF)
MIN_LENGTH = 5  # segments shorter than this (pixels) are kept in the graph but not scored


@dataclass
class VesselGraph:
    """Segments of a ground-truth centreline. Pixel arrays hold flat indices into an (H, W) image,
    ordered along each segment, with the segments one after another."""

    shape: tuple[int, int]
    pixels: np.ndarray  # (N,) flat pixel indices
    segment: np.ndarray  # (N,) segment id of each pixel, non-decreasing
    truth: np.ndarray  # (S,) ground-truth class: ARTERY, VEIN or UNCERTAIN
    length: np.ndarray  # (S,) skeleton pixels
    near_crossing: np.ndarray  # (S,) bool: passes within ``radius`` of an artery/vein crossing
    nodes: np.ndarray  # flat indices of branch and crossing points
    crossings: np.ndarray  # flat indices of the node pixels that are artery/vein crossings
    ends: np.ndarray  # flat indices of the centreline's end points
    radius: float

    @property
    def n_segments(self) -> int:
        return len(self.truth)

    def scored(self, min_length: int = MIN_LENGTH) -> np.ndarray:
        """(S,) bool: segments long enough to be scored."""
        return self.length >= min_length


def pixel_classes(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) bool label channels -> (H, W) class (0 none, ARTERY, VEIN, UNCERTAIN; a pixel that
    decodes as both artery and vein counts as uncertain) and the (H, W) green crossing mask."""
    ch0, ch1, ch2 = (np.asarray(c, bool) for c in label)
    artery, vein = ch0 & ~ch1, ch2 & ~ch1
    cls = np.zeros(ch0.shape, np.uint8)
    cls[artery] = ARTERY
    cls[vein] = VEIN
    cls[ch1 | (artery & vein)] = UNCERTAIN
    return cls, ch1 & ~ch0 & ~ch2


def _neighbour_count(skel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(skel.view(np.uint8), cv2.CV_16S, _EIGHT, borderType=cv2.BORDER_CONSTANT) - skel


def _segments(
    skel: np.ndarray, crossing: np.ndarray, cls: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Node mask, end mask, segment labels (0 = not a segment pixel) and the number of segments;
    with ``cls``, runs of different classes are different segments."""
    count = _neighbour_count(skel)
    nodes = skel & ((count >= 3) | crossing)
    path = skel & ~nodes
    if cls is None:
        labels, n = ndimage.label(path, structure=_EIGHT)
        return nodes, skel & (count <= 1), labels, n
    labels, n = np.zeros(skel.shape, np.int32), 0
    for c in (ARTERY, VEIN, UNCERTAIN):
        part, k = ndimage.label(path & (cls == c), structure=_EIGHT)
        labels[part > 0] = part[part > 0] + n
        n += k
    return nodes, skel & (count <= 1), labels, n


def _prune_spurs(skel: np.ndarray, crossing: np.ndarray, half_width: np.ndarray, passes: int = 2) -> np.ndarray:
    """Remove end segments that touch a node and are no longer than the vessel is wide there."""
    for _ in range(passes):
        nodes, ends, labels, n = _segments(skel, crossing)
        if n == 0:
            break
        flat = labels.ravel()
        on = flat > 0
        seg = flat[on]
        length = np.bincount(seg, minlength=n + 1)
        has_end = np.bincount(seg, weights=ends.ravel()[on], minlength=n + 1) > 0
        touches_node = np.bincount(labels[cv2.dilate(nodes.view(np.uint8), _EIGHT).astype(bool)], minlength=n + 1) > 0
        width = np.zeros(n + 1)
        np.maximum.at(width, seg, half_width.ravel()[on])
        spur = has_end & touches_node & (length <= 2 * width + 1)
        spur[0] = False
        if not spur.any():
            break
        skel = skel & ~spur[labels]
    return skel


def _order(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices of every segment in centreline order (from an end), and their segment ids."""
    h, w = labels.shape
    flat = labels.ravel()
    pix = np.flatnonzero(flat)
    if n == 0:
        return pix, flat[pix]
    where = np.full(flat.size, -1, np.int64)
    where[pix] = np.arange(len(pix))
    rows, cols = [], []
    y, x = np.divmod(pix, w)
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        ok = (y + dy < h) & (x + dx >= 0) & (x + dx < w)
        j = where[pix[ok] + dy * w + dx]
        keep = j >= 0
        rows.append(np.flatnonzero(ok)[keep])
        cols.append(j[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    degree = np.bincount(rows, minlength=len(pix)) + np.bincount(cols, minlength=len(pix))
    seg = flat[pix]
    # start each segment at an end pixel (degree <= 1), or anywhere on a closed loop
    rank = np.lexsort((degree > 1, seg))
    first = rank[np.r_[True, seg[rank][1:] != seg[rank][:-1]]]
    root = len(pix)
    rows = np.concatenate([rows, np.full(len(first), root)])
    cols = np.concatenate([cols, first])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(root + 1, root + 1)).tocsr()
    order = depth_first_order(graph, root, directed=False, return_predecessors=False)[1:]
    # segments are connected only through the root, so each is walked whole before the next
    order = order[np.argsort(seg[order], kind="stable")]
    return pix[order], seg[order]


def build_graph(
    label: np.ndarray, radius: float | None = None, fov: np.ndarray | None = None, skeleton: np.ndarray | None = None
) -> VesselGraph:
    """The vessel graph of a (3, H, W) bool label (channels artery, uncertain/crossing, vein).

    ``radius``: node neighbourhood in pixels (default: ``RADIUS_SHARE`` of the width of the FOV, or
    of the vessel tree when no FOV is given). ``skeleton``: the vessel mask's (any channel on)
    :func:`scripts.vessels.skeleton.skeletonize` when the caller already has it.
    """
    label = np.asarray(label, bool)
    if label.ndim != 3 or label.shape[0] != 3:
        raise ValueError(f"label must be a (3, H, W) channel map, got shape {label.shape}")
    cls, crossing = pixel_classes(label)
    vessel = cls > 0
    shape = vessel.shape
    if radius is None:
        extent = fov if fov is not None and fov.any() else vessel
        cols = np.flatnonzero(extent.any(axis=0))
        radius = max(2.0, RADIUS_SHARE * (cols[-1] - cols[0] + 1)) if cols.size else 2.0
    if not vessel.any():
        empty = np.zeros(0, np.int64)
        return VesselGraph(
            shape, empty, empty, np.zeros(0, np.uint8), empty, np.zeros(0, bool), empty, empty, empty, float(radius)
        )
    half_width = cv2.distanceTransform(vessel.view(np.uint8), cv2.DIST_L2, 5)
    if skeleton is None:
        skeleton = skeletonize(vessel)
    elif skeleton.shape != shape:
        raise ValueError(f"skeleton shape {skeleton.shape} differs from the label's {shape}")
    skel = _prune_spurs(np.asarray(skeleton, bool), crossing, half_width)
    nodes, ends, labels, n = _segments(skel, crossing, cls)
    pixels, seg = _order(labels, n)
    seg = seg - 1
    length = np.bincount(seg, minlength=n)
    votes = np.bincount(seg * 4 + cls.ravel()[pixels], minlength=4 * n).reshape(n, 4)
    truth = (1 + votes[:, 1:].argmax(axis=1)).astype(np.uint8)
    near, crossing_pix = _near_crossings(nodes, crossing, pixels, seg, truth, radius)
    return VesselGraph(
        shape,
        pixels,
        seg,
        truth,
        length,
        near,
        np.flatnonzero(nodes),
        crossing_pix,
        np.flatnonzero(ends),
        float(radius),
    )


def _near_crossings(
    nodes: np.ndarray, green: np.ndarray, pixels: np.ndarray, seg: np.ndarray, truth: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """(S,) bool near an artery/vein crossing, and the crossing node pixels (see the module docstring)."""
    n = len(truth)
    groups, n_groups = ndimage.label(nodes, structure=_EIGHT)
    if n_groups == 0:
        return np.zeros(n, bool), np.zeros(0, np.int64)
    # for every segment pixel: the distance to, and the group of, the nearest node pixel
    dist, nearest = cv2.distanceTransformWithLabels(
        (~nodes).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    node_pixels = np.flatnonzero(nodes)
    # DIST_LABEL_PIXEL numbers the zero pixels 1.. in row-major order, i.e. the order of flatnonzero
    group_of = groups.ravel()[node_pixels[nearest.ravel()[pixels] - 1]]
    close = dist.ravel()[pixels] <= radius
    pairs = np.unique(group_of[close].astype(np.int64) * n + seg[close])
    g, s = np.divmod(pairs, n)
    has = {c: np.bincount(g[truth[s] == c], minlength=n_groups + 1) > 0 for c in (ARTERY, VEIN)}
    green_group = np.bincount(groups[nodes & green], minlength=n_groups + 1) > 0
    is_crossing = (has[ARTERY] & has[VEIN]) | green_group
    is_crossing[0] = False
    near = np.zeros(n, bool)
    near[s[is_crossing[g]]] = True
    return near, node_pixels[is_crossing[groups.ravel()[node_pixels]]]
