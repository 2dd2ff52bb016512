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
