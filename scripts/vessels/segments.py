"""Segment-level artery/vein evaluation: intra-segment misclassification (what the paper is about).

Each ground-truth segment (``scripts.vessels.graph``) is read along its centreline in the
prediction: every skeleton pixel is artery, vein, uncertain (also a pixel predicted both artery
and vein) or missed. Scored segments are the artery and vein segments at least ``min_length``
pixels long; uncertain segments are counted apart. For them:

- detected: at least half of the skeleton pixels are found as vessel (any class);
- correct: detected, and the class found on most of its found pixels is the true one;
- mixed (at share t): detected, and artery and vein each hold at least t of its found pixels;
- switches: along the centreline, ignoring missed and uncertain pixels, how often the found class
  changes between artery and vein.

Rates: detection = detected / segments; A/V accuracy = correct / detected (also weighted by
length); mixed rate = mixed / detected at t = 5, 10, 20 % (``mixed_share`` picks the headline
one); switches per detected segment; the first three again for segments near an artery/vein
crossing. Per dataset, segments of all images are pooled (each segment counts once).
"""

from __future__ import annotations

import numpy as np

from scripts.vessels.graph import ARTERY, MIN_LENGTH, UNCERTAIN, VEIN, VesselGraph

MIXED_SHARES = (0.05, 0.10, 0.20)
MISSED = 0
VERDICT_COLOURS = {  # figure panel: the ground-truth centreline coloured by segment verdict
    "correct": (0, 200, 0),
    "wrong_class": (255, 0, 0),
    "mixed": (255, 220, 0),
    "missed": (120, 120, 120),
    "not_scored": (50, 50, 90),  # uncertain segments and segments shorter than min_length
}
METRICS = (
    "detection_rate",
    "av_accuracy",
    "av_accuracy_length",
    "mixed_rate",
    "mixed_rate_05",
    "mixed_rate_10",
    "mixed_rate_20",
    "switches_per_segment",
    "crossing_detection_rate",
    "crossing_av_accuracy",
    "crossing_mixed_rate",
)


def predicted_labels(pred_classes: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Class found at each flat pixel: MISSED, ARTERY, VEIN or UNCERTAIN (artery-and-vein counts as
    uncertain). ``pred_classes``: (3, H, W) bool decoded classes (artery, vein, uncertain)."""
    a, v, u = (np.asarray(c, bool).ravel()[pixels] for c in pred_classes)
    out = np.full(len(pixels), MISSED, np.uint8)
    out[a] = ARTERY
    out[v] = VEIN
    out[u | (a & v)] = UNCERTAIN
    return out


def read_segments(graph: VesselGraph, pred_classes: np.ndarray) -> dict[str, np.ndarray]:
    """Per segment: ``shares`` (S, 4) of missed/artery/vein/uncertain skeleton pixels, ``majority``
    (class found most, among found pixels), ``switches``."""
    n = graph.n_segments
    found = predicted_labels(pred_classes, graph.pixels)
    counts = np.bincount(graph.segment.astype(np.int64) * 4 + found, minlength=4 * n).reshape(n, 4).astype(np.float64)
    shares = counts / np.maximum(graph.length, 1)[:, None]
    av = (found == ARTERY) | (found == VEIN)
    lab, seg = found[av], graph.segment[av]
    change = (lab[1:] != lab[:-1]) & (seg[1:] == seg[:-1])
    switches = np.bincount(seg[1:][change], minlength=n)
    majority = 1 + counts[:, 1:].argmax(axis=1)
    return {"shares": shares, "majority": majority, "switches": switches, "found_av": counts[:, 1:3]}


def verdicts(
    graph: VesselGraph, pred_classes: np.ndarray, min_length: int = MIN_LENGTH, mixed_share: float = 0.10
) -> np.ndarray:
    """(S,) verdict names (keys of ``VERDICT_COLOURS``): mixed before correct or wrong class."""
    read = read_segments(graph, pred_classes)
    scored = graph.scored(min_length) & (graph.truth != UNCERTAIN)
    found_share = 1 - read["shares"][:, MISSED]
    detected = found_share >= 0.5
    found_pixels = np.maximum(found_share * graph.length, 1)
    mixed = (read["found_av"] / found_pixels[:, None] >= mixed_share).all(axis=1)
    out = np.where(read["majority"] == graph.truth, "correct", "wrong_class").astype(object)
    out[mixed] = "mixed"
    out[~detected] = "missed"
    out[~scored] = "not_scored"
    return out


def segment_counts(graph: VesselGraph, pred_classes: np.ndarray, min_length: int = MIN_LENGTH) -> dict[str, float]:
    """Numerators and denominators of the segment metrics for one image (they add up over images)."""
    read = read_segments(graph, pred_classes)
    length = graph.length
    av = graph.scored(min_length) & ((graph.truth == ARTERY) | (graph.truth == VEIN))
    found_share = 1 - read["shares"][:, MISSED]
    detected = av & (found_share >= 0.5)
    correct = detected & (read["majority"] == graph.truth)
    found_pixels = np.maximum(found_share * length, 1)
    av_share = read["found_av"] / found_pixels[:, None]
    counts = {
        "segments": av.sum(),
        "uncertain_segments": (graph.scored(min_length) & (graph.truth == UNCERTAIN)).sum(),
        "detected": detected.sum(),
        "correct": correct.sum(),
        "detected_length": length[detected].sum(),
        "correct_length": length[correct].sum(),
        "switches": read["switches"][detected].sum(),
    }
    for t in MIXED_SHARES:
        counts[f"mixed_{round(100 * t):02d}"] = (detected & (av_share >= t).all(axis=1)).sum()
    near = av & graph.near_crossing
    counts.update(
        crossing_segments=near.sum(), crossing_detected=(near & detected).sum(), crossing_correct=(near & correct).sum()
    )
    for t in MIXED_SHARES:
        counts[f"crossing_mixed_{round(100 * t):02d}"] = (near & detected & (av_share >= t).all(axis=1)).sum()
    return {k: float(v) for k, v in counts.items()}


def _share(num: float, den: float) -> float:
    return num / den if den else float("nan")


def segment_metrics(counts: dict[str, float], mixed_share: float = 0.10) -> dict[str, float]:
    """Rates from (summed) :func:`segment_counts`; NaN where a rate has nothing to count."""
    c = counts
    key = f"mixed_{round(100 * mixed_share):02d}"
    if key not in c:
        raise ValueError(f"mixed_share must be one of {MIXED_SHARES}, got {mixed_share}")
    return {
        "detection_rate": _share(c["detected"], c["segments"]),
        "av_accuracy": _share(c["correct"], c["detected"]),
        "av_accuracy_length": _share(c["correct_length"], c["detected_length"]),
        "mixed_rate": _share(c[key], c["detected"]),
        **{
            f"mixed_rate_{round(100 * t):02d}": _share(c[f"mixed_{round(100 * t):02d}"], c["detected"])
            for t in MIXED_SHARES
        },
        "switches_per_segment": _share(c["switches"], c["detected"]),
        "crossing_detection_rate": _share(c["crossing_detected"], c["crossing_segments"]),
        "crossing_av_accuracy": _share(c["crossing_correct"], c["crossing_detected"]),
        "crossing_mixed_rate": _share(c[f"crossing_{key}"], c["crossing_detected"]),
        "segments": c["segments"],
    }


def pool(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Sum per-image counts: the dataset's counts (each segment counts once)."""
    if not per_image:
        raise ValueError("no segment counts to pool")
    return {k: float(sum(c[k] for c in per_image)) for k in per_image[0]}


def verdict_picture(graph: VesselGraph, verdict: np.ndarray, thickness: int = 1) -> np.ndarray:
    """(H, W, 3) uint8: the centreline coloured by verdict, lines ``thickness`` pixels wide."""
    import cv2

    out = np.zeros((*graph.shape, 3), np.uint8)
    flat = out.reshape(-1, 3)
    for name, colour in VERDICT_COLOURS.items():
        flat[graph.pixels[(verdict == name)[graph.segment]]] = colour
    if thickness > 1:
        out = cv2.dilate(out, np.ones((thickness, thickness), np.uint8))
    return out


def format_segments(metrics: dict[str, float], std: dict[str, float] | None = None) -> str:
    """The printed segments table (percent, switches as a number)."""
    lines = []
    for k in METRICS:
        v = metrics[k]
        scale, unit = (1.0, "") if k == "switches_per_segment" else (100.0, " %")
        text = f"{scale * v:7.2f}{unit}"
        if std is not None:
            text += f" +- {scale * std[k]:.2f}"
        lines.append(f"  {k:<26}{text}")
    return "\n".join(lines)
