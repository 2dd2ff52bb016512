"""Helpers shared by several test modules."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import torch


def reference_weights(ref: dict, net: str) -> dict[str, torch.Tensor]:
    """SPEC section 8's rule for the i-th original key of ``net``."""
    out = {}
    for i, (key, shape) in enumerate(ref["keys"][net]):
        g = torch.Generator().manual_seed(ref["seeds"][net] + i)
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out


def authors_misc_measures(truth, pred) -> tuple[float, ...]:
    """The original evaluation's per-class numbers, written out independently with scikit-learn:
    (acc, sensitivity, specificity, precision, G, F1, mse, iou). A one-cell confusion matrix
    (a single class present) gives all zeros; other 0/0 ratios give NaN, as numpy does."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, mean_squared_error

    cm = confusion_matrix(truth, pred)
    if cm.shape != (2, 2):
        return (0.0,) * 8
    mse = mean_squared_error(truth, pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        cm = cm.astype(np.float64)
        acc = (cm[0, 0] + cm[1, 1]) / cm.sum()
        sens = cm[1, 1] / (cm[1, 0] + cm[1, 1])
        spec = cm[0, 0] / (cm[0, 1] + cm[0, 0])
        prec = cm[1, 1] / (cm[1, 1] + cm[0, 1])
        g = np.sqrt(sens * spec)
        f1 = 2 * prec * sens / (prec + sens)
        iou = cm[1, 1] / (cm[1, 0] + cm[0, 1] + cm[1, 1])
    return tuple(float(v) for v in (acc, sens, spec, prec, g, f1, mse, iou))


def corrupt_ground_truth(label, graph, mode: str):
    """Decoded ground-truth classes (3, H, W) with artery and vein swapped, segment by segment, on
    the vessel pixels nearest to the chosen centreline pixels: ``"half_of_each"`` swaps the first
    half of every segment (mixed segments), ``"every_other"`` swaps every other segment whole (wrong
    segments), ``"drop_every_other"`` removes every other segment (missed segments)."""
    import cv2
    import numpy as np
    import torch

    from scripts.data.labels import decode_classes

    classes = decode_classes(torch.from_numpy(np.asarray(label, bool))).numpy().copy()
    if graph.n_segments == 0:
        return classes
    start = np.r_[0, np.flatnonzero(np.diff(graph.segment)) + 1]
    position = np.arange(len(graph.pixels)) - np.repeat(start, graph.length[graph.segment[start]])
    if mode == "half_of_each":
        chosen = position < graph.length[graph.segment] // 2
    elif mode in ("every_other", "drop_every_other"):
        chosen = graph.segment % 2 == 0
    else:
        raise ValueError(mode)
    centre = np.zeros(graph.shape, bool)
    centre.ravel()[graph.pixels] = True
    _, nearest = cv2.distanceTransformWithLabels(
        (~centre).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    order = np.argsort(graph.pixels)  # DIST_LABEL_PIXEL numbers centreline pixels in row-major order
    region = chosen[order][nearest - 1] & classes.any(axis=0)
    a, v = classes[0].copy(), classes[1].copy()
    if mode == "drop_every_other":
        classes[:, region] = False
    else:
        classes[0][region], classes[1][region] = v[region], a[region]
    return classes


PLANNED_GIB = {  # a made-up memory plan (GiB of planned peak): batched the largest, checkpointing a third
    ("batched", False): 15.0,
    ("reuse", False): 11.0,
    ("batched", True): 4.8,
    ("reuse", True): 2.6,
    ("literal", False): 12.5,
    ("literal", True): 2.7,
}


def fake_plan_step(needed_gib: dict[tuple[str, bool], float] = PLANNED_GIB):
    """A stand-in for ``scripts.training.memory.plan_step`` that returns the peaks of ``needed_gib``."""
    from scripts.training.memory import StepPlan

    def plan(config, breakdown: bool = True) -> StepPlan:
        return StepPlan(config, int(needed_gib[(config.mode, config.checkpointing)] * 2**30), {}, {}, 0)

    return plan


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header announces width x height (no pixel data): what a reader sees first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
