"""RRWNet's evaluation protocol (Morano et al., Expert Systems with Applications 2024), beside the paper's.

The rules are those of RRWNet's public evaluation code (``eval/test_utils.py: mav``,
``data_processing/groundtruth.py``, ``detailed_evaluation/topo_metric.py`` of ``j-morano/rrwnet``),
re-written here; docs/protocols.md puts them next to the paper's.

Their convention: a prediction has channels (artery, vein, vessel tree) in [0, 1] (8-bit PNGs / 255);
a ground truth has channels (artery, vein, vessel tree), where a crossing is artery and vein at once
and an "unknown" vessel is vessel tree without artery or vein. :func:`truth_channels` and
:func:`prediction_levels` convert this project's labels and 3-class maps to it (predictions as 8-bit
levels, value x 255, which is what their code reads from a PNG).

What is computed, pooled over all pixels of all images unless said otherwise:

- A/V classification over the ground-truth vessel pixels that are neither unknown nor crossings;
  artery is the positive class; a pixel is predicted artery when its artery value >= its vein value
  (ties go to artery, as ``argmax`` does), except where both are exactly 0: there their code draws
  a random class, and so does this one, from ``numpy.random.default_rng((seed, image index))``.
  Those random values also replace the two channels in the AUCs below, as in their code. "All": every
  such pixel; "Intersection": only those with vessel tree > 0.5. Sensitivity, specificity,
  accuracy, F1. (A pool with one class only gives 1 for all four, as their code's fallback does.)
- ROC and PR areas (trapezoids under sklearn's ``roc_curve`` and ``precision_recall_curve``) of the
  artery channel against artery truth and of the vein channel against vein truth, FOV pixels.
- Vessel tree: sensitivity, specificity, accuracy, F1 of tree > 0.5, and its ROC/PR areas, FOV pixels.
- Topology (Araujo et al.): per image and for artery, vein and tree, ``n_paths`` random pairs of
  connected ground-truth centreline points; INF = the share whose points lie in different (or no)
  components of the thresholded prediction, COR = the share whose shortest centreline paths (truth,
  and the prediction's between the centreline points nearest to them) have lengths within 10 %;
  mean and population std over images. Centrelines are scikit-image's skeletons
  (:mod:`scripts.vessels.skeleton`, pixel for pixel), components 8-connected, path lengths along
  8-connected centreline pixels (1 or sqrt 2 per step): what their ``route_through_array`` on a
  cost of 1 on and 10,000 off the centreline returns whenever a path along the centreline exists
  and is shorter than 10,001 px; otherwise (never seen on these datasets) it is called exactly as
  theirs does. Pairs are drawn from the seeded generator.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from scripts.vessels.skeleton import skeletonize

PROTOCOLS = ("paper", "rrwnet", "all")
DEFAULT_PATHS = 1000
LEVELS = 256  # 8-bit maps: the values k / 255
CLASSES = ("artery", "vein", "tree")
OFF_CENTRELINE_COST = 10_000.0
# A path that leaves the centreline costs at least two half-steps of (1 + 10,000) / 2: below this
# length the path along the centreline is the cheapest, and its length is what their router returns.
SHORTCUT = OFF_CENTRELINE_COST + 1.0


def truth_channels(channels: np.ndarray) -> np.ndarray:
    """This project's label channels (H, W, 3) bool (red, green, blue; SPEC 1) -> their ground truth
    (3, H, W) bool (artery, vein, tree), by their conversion of RITE colours: white (all three on) is
    an unknown vessel; green (alone or with red or blue) is a crossing, artery and vein at once."""
    r, g, b = (channels[..., i].astype(bool) for i in range(3))
    unknown = r & g & b
    a_u, g_u, b_u = r & ~unknown, g & ~unknown, b & ~unknown
    return np.stack([a_u | g_u, b_u | g_u, a_u | b_u | g_u | unknown])


def prediction_levels(prob: np.ndarray) -> np.ndarray:
    """A 3-class map (3, H, W) float (artery, uncertain, vein probabilities) -> theirs (artery, vein,
    tree) as 8-bit levels (value x 255, as the saved PNG holds them).

    The uncertain class holds the crossings (SPEC 1: green decodes to it), and in their convention a
    crossing is artery and vein at once: so artery = max(artery, uncertain), vein = max(vein,
    uncertain). The tree probability is the largest of the three (tree > 0.5 exactly where this
    project's binary vessel map is on). Where uncertain is the largest, artery and vein are equal
    and their tie rule (argmax) reads the pixel as artery."""
    q = to_levels(prob)
    return np.stack([np.maximum(q[0], q[1]), np.maximum(q[2], q[1]), np.maximum(np.maximum(q[0], q[1]), q[2])])


def to_levels(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 levels (round(v x 255)), as an 8-bit PNG stores them."""
    return np.rint(np.clip(np.asarray(values, np.float32), 0, 1) * np.float32(255)).astype(np.uint8)


# -- pooled curves ----------------------------------------------------------------------------------
def curve_areas(values: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """ROC and PR areas (trapezoids, as sklearn's ``auc`` over ``roc_curve`` / ``precision_recall_curve``)
    of scores ``values`` with ``pos``/``neg`` counts each (a weighted sample; values may repeat)."""
    if pos.sum() == 0 or neg.sum() == 0:
        return math.nan, math.nan
    distinct, inverse = np.unique(values, return_inverse=True)
    p = np.bincount(inverse, weights=pos, minlength=len(distinct))[::-1]
    n = np.bincount(inverse, weights=neg, minlength=len(distinct))[::-1]
    keep = (p + n) > 0
    tps, fps = np.cumsum(p[keep]), np.cumsum(n[keep])
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    roc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    precision, recall = np.r_[1.0, tps / (tps + fps)], np.r_[0.0, tps / tps[-1]]
    pr = float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))
    return roc, pr


POOLS = {
    "av_all": "A/V All (ground-truth artery and vein pixels)",
    "av_intersection": "A/V Intersection (ground-truth artery and vein pixels predicted as vessel)",
    "tree": "vessel tree (FOV pixels)",
}


def _rates(tp: float, fp: float, fn: float, tn: float, pool: str = "") -> dict[str, float]:
    if (tp + fn == 0) or (tn + fp == 0):  # one class only: their code's fallback counts as (1, 0, 0, 1)
        if pool:
            total = tp + fp + fn + tn
            warnings.warn(
                f"RRWNet protocol, {POOLS[pool]}: the pool "
                + ("is empty" if total == 0 else f"holds one class only ({total} pixels)")
                + "; as RRWNet's code does, its sensitivity, specificity, accuracy and F1 are reported as 100 %, "
                "which says nothing about the prediction"
                + (
                    " (no ground-truth artery or vein pixel was predicted as vessel)"
                    if pool == "av_intersection"
                    else ""
                ),
                stacklevel=3,
            )
        tp, fp, fn, tn = 1, 0, 0, 1
    return {
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


def _confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """[tp, fp, fn, tn] of two bool vectors."""
    tp = int(np.count_nonzero(truth & predicted))
    fp = int(np.count_nonzero(predicted)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return np.array([tp, fp, fn, truth.size - tp - fp - fn], np.int64)


# -- topology ---------------------------------------------------------------------------------------
_STEPS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, math.sqrt(2)), (1, -1, math.sqrt(2)))


class Centreline:
    """The 8-connected graph of a skeleton's pixels (flat indices, row-major order)."""

    def __init__(self, skeleton: np.ndarray) -> None:
        self.shape = skeleton.shape
        self.pixels = np.flatnonzero(skeleton)
        width = skeleton.shape[1]
        rows, cols = np.divmod(self.pixels, width)
        src, dst, weight = [], [], []
        for dy, dx, w in _STEPS:
            ok = (rows + dy < skeleton.shape[0]) & (cols + dx >= 0) & (cols + dx < width)
            other = self.node(self.pixels[ok] + dy * width + dx)
            has = other >= 0
            src.append(np.flatnonzero(ok)[has]), dst.append(other[has]), weight.append(np.full(int(has.sum()), w))
        self.u, self.v, self.w = np.concatenate(src), np.concatenate(dst), np.concatenate(weight)
        self.degree = np.bincount(self.u, minlength=len(self.pixels)) + np.bincount(self.v, minlength=len(self.pixels))

    def node(self, flat: np.ndarray) -> np.ndarray:
        """Node numbers of flat pixel indices (-1 where a pixel is not on the skeleton)."""
        i = np.searchsorted(self.pixels, flat)
        found = (i < len(self.pixels)) & (self.pixels[np.minimum(i, len(self.pixels) - 1)] == flat)
        return np.where(found, i, -1)

    def distances(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Shortest centreline lengths from each source pixel to its target pixel (flat indices; inf
        when no centreline path joins them). Runs of pixels with two neighbours that hold no query
        are contracted to one edge of their length first (exact: a shortest path crosses such a run
        whole), so each search visits the junctions and ends only."""
        if len(sources) == 0:
            return np.zeros(0)
        a, b = self.node(sources), self.node(targets)
        n = len(self.pixels)
        key = self.degree != 2
        key[a], key[b] = True, True
        inner = ~key[self.u] & ~key[self.v]  # edges inside runs
        _, run = connected_components(
            coo_matrix((np.ones(int(inner.sum())), (self.u[inner], self.v[inner])), shape=(n, n)), directed=False
        )
        run_length = np.bincount(run[self.u[inner]], weights=self.w[inner], minlength=n)
        attach = key[self.u] ^ key[self.v]  # a run's two end edges
        end_key = np.where(key[self.u], self.u, self.v)[attach]
        end_run = run[np.where(key[self.u], self.v, self.u)[attach]]
        order = np.argsort(end_run, kind="stable")
        end_key, end_run, end_w = end_key[order], end_run[order], self.w[attach][order]
        pairs = np.flatnonzero(np.r_[end_run[1:] == end_run[:-1], False])  # each run: its two end edges
        direct = key[self.u] & key[self.v]
        ids = np.cumsum(key) - 1  # key node -> compressed node
        u = np.r_[ids[self.u[direct]], ids[end_key[pairs]]]
        v = np.r_[ids[self.v[direct]], ids[end_key[pairs + 1]]]
        w = np.r_[self.w[direct], end_w[pairs] + end_w[pairs + 1] + run_length[end_run[pairs]]]
        m = int(key.sum())
        graph = _min_edges(u, v, w, m)  # of parallel edges (a run beside a direct step), the shorter
        unique, inverse = np.unique(ids[a], return_inverse=True)
        dist = np.atleast_2d(dijkstra(graph, directed=False, indices=unique))
        return dist[inverse, ids[b]]

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """For each flat index, the centreline pixel nearest to it (the first in row-major order on
        ties, as ``np.argmin`` over ``np.where`` gives). A k-d tree finds the nearest distance; every
        pixel at exactly that (integer squared) distance is then looked up to apply the tie rule."""
        from scipy.spatial import cKDTree

        width = self.shape[1]
        yx = np.stack(np.divmod(self.pixels, width), axis=1)
        query = np.stack(np.divmod(np.asarray(points, np.int64), width), axis=1)
        tree = cKDTree(yx)
        dist, index = tree.query(query)
        out = self.pixels[index]
        off = np.flatnonzero(dist > 0)  # a point on the centreline is its own nearest pixel
        if off.size:
            d2 = np.rint(dist[off] ** 2).astype(np.int64)
            for i, r2, near in zip(off, d2, tree.query_ball_point(query[off], np.sqrt(d2) + 1e-6)):
                near = np.asarray(near, np.int64)
                ties = near[((yx[near] - query[i]) ** 2).sum(axis=1) == r2]
                out[i] = self.pixels[ties.min()]  # pixels are sorted: the smallest node is the first
        return out


def _min_edges(u: np.ndarray, v: np.ndarray, w: np.ndarray, m: int):
    """A symmetric sparse graph keeping the shortest of parallel edges (self-loops dropped)."""
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    keep = lo != hi
    lo, hi, w = lo[keep], hi[keep], w[keep]
    order = np.lexsort((w, hi, lo))
    lo, hi, w = lo[order], hi[order], w[order]
    first = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])][: len(lo)]  # (no edge at all: empty)
    return coo_matrix((w[first], (lo[first], hi[first])), shape=(m, m)).tocsr()


def _route_length(skeleton: np.ndarray, start: int, end: int) -> float:
    """Their path length, the way they compute it (used only where the centreline graph cannot stand in)."""
    from skimage.graph import route_through_array

    cost = np.where(skeleton, 1.0, OFF_CENTRELINE_COST)
    path, _ = route_through_array(cost, np.unravel_index(start, skeleton.shape), np.unravel_index(end, skeleton.shape))
    return float(np.sum(np.sqrt(np.sum(np.diff(np.asarray(path), axis=0) ** 2, axis=1))))


def components(mask: np.ndarray) -> np.ndarray:
    """Flat 8-connected component labels of a (H, W) mask (0: background). Only which pixels share a
    component is used, never the numbering, so any correct labelling gives the same numbers; OpenCV's
    is several times faster than scikit-image's ``label`` their code calls."""
    return cv2.connectedComponents(np.ascontiguousarray(mask, np.uint8), connectivity=8, ltype=cv2.CV_32S)[1].ravel()


def sample_pairs(truth_skeleton: np.ndarray, n_paths: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_paths`` pairs (flat indices) of centreline pixels: the first uniform over the centreline, the
    second uniform over the first one's 8-connected centreline component (their sampling)."""
    pixels = np.flatnonzero(truth_skeleton)
    parts = components(truth_skeleton)
    by_part = pixels[np.argsort(parts[pixels], kind="stable")]
    names, first, count = np.unique(parts[by_part], return_index=True, return_counts=True)
    p1 = pixels[rng.integers(0, len(pixels), n_paths)]
    which = np.searchsorted(names, parts[p1])
    p2 = by_part[first[which] + (rng.random(n_paths) * count[which]).astype(np.int64)]
    return p1, p2


def judge_pairs(truth_skeleton: np.ndarray, predicted: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Per pair: 0 infeasible (different or no components of ``predicted``), 1 path lengths differ by
    more than 10 %, 2 correct."""
    pred_parts = components(predicted)
    result = np.zeros(len(p1), np.int64)
    feasible = (pred_parts[p1] == pred_parts[p2]) & (pred_parts[p1] != 0)
    if not feasible.any():
        return result
    q1, q2 = p1[feasible], p2[feasible]
    pred_skeleton = skeletonize(predicted)
    truth_line, pred_line = Centreline(truth_skeleton), Centreline(pred_skeleton)
    c1, c2 = pred_line.nearest(q1), pred_line.nearest(q2)
    truth_len, pred_len = truth_line.distances(q1, q2), pred_line.distances(c1, c2)
    for i in np.flatnonzero(~(truth_len <= SHORTCUT)):  # where their router could leave the centreline
        truth_len[i] = _route_length(truth_skeleton, q1[i], q2[i])
    for i in np.flatnonzero(~(pred_len <= SHORTCUT)):
        pred_len[i] = _route_length(pred_skeleton, c1[i], c2[i])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = truth_len / pred_len
    result[feasible] = np.where((c1 == c2) | ((ratio >= 0.9) & (ratio <= 1.1)), 2, 1)
    return result


def truth_centrelines(truth: np.ndarray) -> list[np.ndarray]:
    """The flat indices of each ground-truth channel's centreline: what :func:`image_stats` needs of
    the truth, kept by callers that score several checkpoints on the same images (a skeleton of an
    HRF image takes 0.1-0.3 s)."""
    return [np.flatnonzero(skeletonize(channel)) for channel in truth]


def as_skeleton(centreline: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat centreline indices (from :func:`truth_centrelines`) -> a (H, W) bool skeleton."""
    skeleton = np.zeros(shape, bool)
    skeleton.ravel()[centreline] = True
    return skeleton


def topology(
    truth: np.ndarray,
    predicted: np.ndarray,
    n_paths: int,
    rng: np.random.Generator,
    centreline: np.ndarray | None = None,
) -> np.ndarray | None:
    """[infeasible, wrong length, correct] path counts of one image and class (``predicted``: the
    prediction thresholded at 0.5; ``centreline``: the truth's, from :func:`truth_centrelines`, if
    known); None when the truth has no centreline."""
    truth_skeleton = skeletonize(truth) if centreline is None else as_skeleton(centreline, truth.shape)
    if not truth_skeleton.any():
        return None
    p1, p2 = sample_pairs(truth_skeleton, n_paths, rng)
    return np.bincount(judge_pairs(truth_skeleton, predicted, p1, p2), minlength=3)


# -- one image, and the pool --------------------------------------------------------------------------
@dataclass
class ImageStats:
    """What one image contributes to the pooled numbers (gathered in dataset order under torchrun)."""

    id: str
    av_all: np.ndarray  # [tp, fp, fn, tn], artery positive
    av_intersection: np.ndarray
    tree: np.ndarray  # [tp, fp, fn, tn] of tree > 0.5 in the FOV
    hist: np.ndarray  # (3 classes, 2 [neg, pos], LEVELS) FOV counts of the 8-bit values
    ties: dict = field(default_factory=dict)  # class -> (values, is_positive) of the randomised pixels in the FOV
    topo: dict = field(default_factory=dict)  # class -> [inf, wrong, correct] or None


def image_stats(
    image_id: str,
    levels: np.ndarray,
    truth: np.ndarray,
    fov: np.ndarray,
    n_paths: int,
    rng: np.random.Generator,
    centrelines: list[np.ndarray] | None = None,
    source: str | None = None,
) -> ImageStats:
    """``levels``: (3, H, W) uint8, their convention x 255; ``truth``: (3, H, W) bool; ``fov``: (H, W)
    bool; ``centrelines``: :func:`truth_centrelines` of ``truth`` when already known; ``source``: how
    warnings name the image (default: its id)."""
    artery, vein, tree = truth
    av_mask = tree & (artery != vein)  # neither a crossing (both) nor unknown (neither)
    la, lv, lt = levels
    topo = {}
    for c, name in enumerate(CLASSES):
        topo[name] = topology(
            truth[c],
            levels[c] > 127,
            n_paths,
            rng,  # > 0.5 on the 8-bit scale
            None if centrelines is None else centrelines[c],
        )
        if topo[name] is None:
            warnings.warn(
                f"{source or image_id}: the ground truth has no {name} centreline; no {name} paths for the "
                "topological measure (the image is left out of its mean)",
                stacklevel=2,
            )
    tie = av_mask & (la == 0) & (lv == 0)
    draw = rng.random(int(np.count_nonzero(tie)))
    predicted_artery = la >= lv
    predicted_artery[tie] = draw >= 0.5  # artery value = draw, vein value = 1 - draw
    intersection = av_mask & (lt > 127)
    hist = np.zeros((3, 2, LEVELS), np.int64)
    for c in range(3):
        inside = fov & ~tie if c < 2 else fov
        counts = np.bincount(levels[c][inside].astype(np.int64) + LEVELS * truth[c][inside], minlength=2 * LEVELS)
        hist[c] = counts.reshape(2, LEVELS)
    tie_in = tie[fov]
    draw_in = draw[fov[tie]]
    ties = {"artery": (draw_in, artery[fov][tie_in]), "vein": (1 - draw_in, vein[fov][tie_in])}
    return ImageStats(
        image_id,
        _confusion(artery[av_mask], predicted_artery[av_mask]),
        _confusion(artery[intersection], predicted_artery[intersection]),
        _confusion(tree[fov], lt[fov] > 127),
        hist,
        ties,
        topo,
    )


def pooled(stats: list[ImageStats]) -> dict:
    """The RRWNet table from every image's stats: {"av_all", "av_intersection", "artery", "vein",
    "tree", "topology"} -> {metric: value} (rates in 0..1; topology: mean and std over images)."""
    out = {
        "av_all": _rates(*sum(s.av_all for s in stats), pool="av_all"),
        "av_intersection": _rates(*sum(s.av_intersection for s in stats), pool="av_intersection"),
    }
    levels = np.arange(LEVELS) / 255
    for c, name in enumerate(CLASSES):
        hist = sum(s.hist[c] for s in stats)
        values, neg, pos = [levels], [hist[0]], [hist[1]]
        for s in stats:
            if name in s.ties:
                v, positive = s.ties[name]
                values.append(v), pos.append(positive.astype(np.int64)), neg.append((~positive).astype(np.int64))
        roc, pr = curve_areas(
            np.concatenate(values), np.concatenate(pos).astype(float), np.concatenate(neg).astype(float)
        )
        out[name] = {"roc_auc": roc, "pr_auc": pr}
    out["tree"].update(_rates(*sum(s.tree for s in stats), pool="tree"))
    topo = {}
    for name in CLASSES:
        counts = np.array([s.topo[name] for s in stats if s.topo.get(name) is not None], np.float64)
        if len(counts):
            share = counts / counts.sum(axis=1, keepdims=True)
            topo[name] = {
                "inf_mean": float(share[:, 0].mean()),
                "inf_std": float(share[:, 0].std()),
                "cor_mean": float(share[:, 2].mean()),
                "cor_std": float(share[:, 2].std()),
                "images": len(counts),
            }
    out["topology"] = topo
    return out


TABLE = (
    ("A/V All", "av_all", ("sensitivity", "specificity", "accuracy", "f1")),
    ("A/V Intersection", "av_intersection", ("sensitivity", "specificity", "accuracy", "f1")),
    ("Artery", "artery", ("roc_auc", "pr_auc")),
    ("Vein", "vein", ("roc_auc", "pr_auc")),
    ("Vessel tree", "tree", ("sensitivity", "specificity", "accuracy", "f1", "roc_auc", "pr_auc")),
)


def format_rrwnet(result: dict) -> str:
    """The RRWNet table as printed (percent)."""
    lines = []
    for title, key, metrics in TABLE:
        lines.append(f"  {title:<17}" + "  ".join(f"{m} {100 * result[key][m]:6.2f}" for m in metrics))
    for name, t in result["topology"].items():
        lines.append(
            f"  {'Topology ' + name:<17}INF {100 * t['inf_mean']:5.2f} +- {100 * t['inf_std']:5.2f}  "
            f"COR {100 * t['cor_mean']:5.2f} +- {100 * t['cor_std']:5.2f}  ({t['images']:g} images)"
        )
    return "\n".join(lines)


def image_row(stats: ImageStats) -> dict[str, float]:
    """One image's topology shares, ``rrwnet_topology_<class>_inf`` / ``_cor`` (per-image CSV rows)."""
    return {
        f"rrwnet_topology_{name}_{m}": counts[i] / counts.sum()
        for name, counts in stats.topo.items()
        if counts is not None
        for m, i in (("inf", 0), ("cor", 2))
    }


def flat(result: dict) -> dict[str, float]:
    """``rrwnet_<group>_<metric>`` -> value: every number under a name that says its protocol."""
    out = {}
    for key, values in result.items():
        if key == "topology":
            for name, t in values.items():
                out.update({f"rrwnet_topology_{name}_{k}": v for k, v in t.items()})
        else:
            out.update({f"rrwnet_{key}_{k}": v for k, v in values.items()})
    return out


def mean_over(results: list[dict]) -> dict:
    """The mean of several :func:`pooled` tables (one per checkpoint), in the same layout."""
    if len(results) == 1:
        return results[0]
    out = {}
    for key, values in results[0].items():
        if key == "topology":
            out[key] = {
                name: {k: float(np.mean([r[key][name][k] for r in results])) for k in t} for name, t in values.items()
            }
        else:
            out[key] = {k: float(np.mean([r[key][k] for r in results])) for k in values}
    return out
