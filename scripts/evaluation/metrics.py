"""Paper metrics (SPEC section 6) from confusion counts, plus threshold-free AUCs.

All per-pixel work is vectorised torch on the tensors' own device; only 3 x 4 counts per image
come back to the host, where the ratios are formed in float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from scripts.data.labels import CLASS_CHANNEL, CLASSES, decode_classes

PAPER_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "g_mean", "f1", "iou", "mse", "roc", "pr")
PROB_METRICS = ("roc_auc_prob", "pr_auc_prob")  # threshold-free, not the paper's "ROC"/"PR"
AVERAGE = "average"
VESSEL = "vessel"  # binary vessel-level scores: vessel = any channel on (not part of the average)
_AUC_BINS = 65536  # probabilities are quantised to 16 bits; exact for 8-bit maps (k/255 -> k*257)


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    return x


def validate_inputs(prob: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Check shapes and dtypes; return the FOV mask as a (H, W) bool tensor."""
    if prob.dim() != 3 or prob.shape[0] != 3:
        raise ValueError(f"prob must have shape (3, H, W), got {tuple(prob.shape)} ({prob.dtype})")
    if not prob.is_floating_point():
        raise ValueError(f"prob must be a floating-point probability map in [0, 1], got dtype {prob.dtype}")
    if label.shape != prob.shape:
        raise ValueError(f"label shape {tuple(label.shape)} differs from prob shape {tuple(prob.shape)}")
    if label.is_floating_point() and not bool(((label == 0) | (label == 1)).all()):
        raise ValueError(f"label must be binary (0/1 or bool), got dtype {label.dtype} with other values")
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if tuple(mask.shape) != tuple(prob.shape[1:]):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the image size {tuple(prob.shape[1:])}")
    return mask.bool()


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """The paper's binary metrics from one confusion matrix; NaN where a ratio is 0/0.

    "roc" and "pr" are sklearn's ``roc_auc_score`` and ``auc(precision_recall_curve)`` of the
    *binary* prediction, in closed form: a binary score gives a two-point curve.
    """
    n, pos = tp + fp + fn + tn, tp + fn
    sens, spec = _ratio(tp, pos), _ratio(tn, tn + fp)
    prec = _ratio(tp, tp + fp)
    prevalence = _ratio(pos, n)
    if pos == 0 or pos == n:
        roc = math.nan  # one class only: ROC AUC undefined (sklearn raises)
    else:
        roc = (sens + spec) / 2
    if pos == 0:
        pr = math.nan
    elif tp + fp == 0:  # nothing predicted: curve (1, prevalence) -> (0, 1)
        pr = (prevalence + 1) / 2
    else:  # (1, prevalence) -> (recall, precision) -> (0, 1); exact also when recall is 1
        pr = (1 - sens) * (prevalence + prec) / 2 + sens * (prec + 1) / 2
    return {
        "accuracy": _ratio(tp + tn, n),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "g_mean": math.sqrt(sens * spec) if not (math.isnan(sens) or math.isnan(spec)) else math.nan,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "mse": _ratio(fp + fn, n),
        "roc": roc,
        "pr": pr,
    }


def _threshold_free(score: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """ROC AUC and average precision of continuous scores in [0, 1] against a bool target (1-D)."""
    q = (score.clamp(0, 1) * (_AUC_BINS - 1)).round_().int()
    hist = torch.bincount(q + target.int() * _AUC_BINS, minlength=2 * _AUC_BINS).double().cpu().numpy()
    neg_hist, pos_hist = hist[:_AUC_BINS], hist[_AUC_BINS:]
    n_pos, n_neg = pos_hist.sum(), neg_hist.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan, math.nan
    neg_below = np.cumsum(neg_hist) - neg_hist
    roc = float((pos_hist * (neg_below + 0.5 * neg_hist)).sum() / (n_pos * n_neg))
    tp = np.cumsum(pos_hist[::-1])  # predicted positive at thresholds from high to low
    fp = np.cumsum(neg_hist[::-1])
    keep = (pos_hist[::-1] + neg_hist[::-1]) > 0
    tp, fp = tp[keep], fp[keep]
    recall_step = np.diff(np.concatenate([[0.0], tp])) / n_pos
    ap = float((recall_step * tp / (tp + fp)).sum())
    return roc, ap


def _pack(classes: torch.Tensor) -> torch.Tensor:
    """(3, H, W) bool -> (H, W) uint8 with bit c set where class c is on."""
    c = classes.to(torch.uint8)
    return c[0] | (c[1] << 1) | (c[2] << 2)


def class_counts(pred_cls: torch.Tensor, gt_cls: torch.Tensor, fov: torch.Tensor) -> np.ndarray:
    """(4, 4) counts [tp, fp, fn, tn] inside the FOV for artery, vein, uncertain and vessel (any class).

    One pass: each pixel's 3 predicted and 3 true class bits form a 6-bit code, counted by bincount.
    """
    code = _pack(pred_cls) | (_pack(gt_cls) << 3)
    code = code.masked_fill(~fov, 64)  # outside the FOV: a 65th code, dropped
    hist = torch.bincount(code.flatten(), minlength=65)[:64].cpu().numpy()
    codes = np.arange(64)
    p_bits, g_bits = codes & 7, codes >> 3
    rows = []
    for p_on, g_on in [((p_bits >> c) & 1 == 1, (g_bits >> c) & 1 == 1) for c in range(3)] + [(p_bits > 0, g_bits > 0)]:
        rows.append(
            [hist[p_on & g_on].sum(), hist[p_on & ~g_on].sum(), hist[~p_on & g_on].sum(), hist[~p_on & ~g_on].sum()]
        )
    return np.array(rows, dtype=np.int64)


def image_metrics(
    prob: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    threshold: float = 0.5,
    with_prob_auc: bool = True,
    binary: np.ndarray | torch.Tensor | None = None,
    nan_policy: str = "zero",
    source: str = "",
) -> dict[str, dict[str, float]]:
    """Paper metrics of one image: {artery, vein, uncertain, average, vessel} -> {metric: value}.

    ``prob``: (3, H, W) float probabilities at the raw image size; ``label``: (3, H, W) binary
    ground truth; ``mask``: (H, W) or (1, H, W) FOV. The probability is zeroed outside the FOV and
    thresholded (> ``threshold``); the classes are decoded as in :func:`decode_classes`. A ratio that is
    0/0 counts as 0 (with a warning for artery and vein); when the uncertain class has an F1 that the
    original's formula 2PS / (P + S) leaves undefined (no true-positive uncertain pixel) all its
    numbers count as 0. The average
    weights each class by its number of ground-truth pixels in the whole image. ``vessel`` scores the
    binary vessel map (any channel on) and is not part of the average.

    ``source`` names the image in warnings. ``binary``: a (3, H, W) bool channel map to score instead of ``prob > threshold`` (the 2023
    release's argmax maps); ``prob`` then only gives the threshold-free AUCs. ``nan_policy="authors"``
    follows the 2023 test code (SPEC 9.4): artery/vein NaNs stay NaN, and a class whose FOV
    confusion matrix has one cell (ground truth and prediction both all-negative, or both
    all-positive) scores 0 in every number; the uncertain rule is the same in both policies.
    """
    if nan_policy not in ("zero", "authors"):
        raise ValueError(f"nan_policy must be 'zero' or 'authors', got {nan_policy!r}")
    prob, label, mask = _as_tensor(prob, "prob"), _as_tensor(label, "label"), _as_tensor(mask, "mask")
    fov = validate_inputs(prob, label, mask)
    prob = prob * fov
    if binary is None:
        binary = prob > threshold
    else:
        binary = _as_tensor(binary, "binary")
        if binary.shape != prob.shape or binary.dtype != torch.bool:
            raise ValueError(
                f"binary must be a bool map of shape {tuple(prob.shape)}, got {tuple(binary.shape)} ({binary.dtype})"
            )
        binary = binary.to(prob.device) & fov
    pred_cls = decode_classes(binary)
    gt_cls = decode_classes(label.bool())
    counts = class_counts(pred_cls, gt_cls, fov).tolist()
    weights = torch.bincount(_pack(gt_cls).flatten(), minlength=8).cpu().numpy()
    weights = np.array([weights[(np.arange(8) >> c) & 1 == 1].sum() for c in range(3)], dtype=np.float64)
    # FOV pixel indices, found once: gathering by index is several times faster than a bool mask
    keep = None if bool(fov.all()) else fov.flatten().nonzero().squeeze(1)

    def inside(t: torch.Tensor) -> torch.Tensor:
        return t.flatten() if keep is None else t.flatten().index_select(0, keep)

    def scores(name: str, counts_row: list[int], score: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        m = metrics_from_counts(*counts_row)
        if with_prob_auc:
            roc_p, pr_p = _threshold_free(inside(score), inside(target))
            m.update(roc_auc_prob=roc_p, pr_auc_prob=pr_p)
        tp, fp, fn, tn = counts_row
        # The original computed F1 as 2PS / (P + S): undefined whenever no pixel is a true positive.
        original_f1_undefined = tp == 0
        one_cell = (tp + fp + fn == 0) or (fp + fn + tn == 0)
        if (name == "uncertain" and original_f1_undefined) or (nan_policy == "authors" and one_cell):
            m = dict.fromkeys(m, 0.0)
        if nan_policy == "authors":
            if original_f1_undefined and not one_cell and name != "uncertain":
                m["f1"] = math.nan
            return m
        undefined = [k for k, v in m.items() if math.isnan(v)]
        if undefined and name in ("artery", "vein"):
            warnings.warn(
                f"{source or 'an image'}: {name} {', '.join(undefined)} undefined (0/0), counted as 0", stacklevel=3
            )
        return {k: (0.0 if math.isnan(v) else v) for k, v in m.items()}

    result = {name: scores(name, counts[c], prob[CLASS_CHANNEL[name]], gt_cls[c]) for c, name in enumerate(CLASSES)}
    total = weights.sum()
    empty = math.nan if nan_policy == "authors" else 0.0
    result[AVERAGE] = {
        k: float(sum(weights[c] * result[name][k] for c, name in enumerate(CLASSES)) / total) if total else empty
        for k in result[CLASSES[0]]
    }
    result[VESSEL] = scores(VESSEL, counts[3], prob.amax(0), gt_cls.any(0))
    return result


def mean_metrics(per_image: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean over images of :func:`image_metrics` results (the dataset score)."""
    if not per_image:
        raise ValueError("no image results to average")
    return {cls: {k: float(np.mean([r[cls][k] for r in per_image])) for k in per_image[0][cls]} for cls in per_image[0]}
