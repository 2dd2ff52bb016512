"""Helpers shared by several test modules."""
from __future__ import annotations

import math

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
