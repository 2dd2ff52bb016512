"""BatchNorm that can treat one batch as several independent sub-batches ("ghost" batch norm).

The training step runs D once on a batch that stacks what the original code passed to D in
separate calls (real and fake maps; the three generators' maps). For that to stay exact, every
BatchNorm layer must normalise each original sub-batch with its own statistics and move its
running statistics once per sub-batch, in order, as the separate calls would have. Inside
``with ghost_batches(net, k):`` the BatchNorm layers of ``net`` do exactly that, by running the
ordinary batch-norm kernel on each sub-batch in turn (so each group's forward and backward are
the sequential calls' own, to the last bit); outside it, and in eval mode, they are plain
``nn.BatchNorm2d`` with the same parameters, buffers and state-dict keys.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with an optional number of ghost groups (see the module docstring)."""

    groups: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1 or not self.training:
            return super().forward(x)
        if x.shape[0] % self.groups:
            raise ValueError(f"ghost batch norm: a batch of {x.shape[0]} does not split into {self.groups} equal groups")
        return torch.cat([super(BatchNorm2d, self).forward(part) for part in x.chunk(self.groups)])


@contextlib.contextmanager
def ghost_batches(net: nn.Module, groups: int) -> Iterator[None]:
    """Within the block, ``net``'s BatchNorm layers normalise ``groups`` equal sub-batches separately."""
    layers = [m for m in net.modules() if isinstance(m, BatchNorm2d)]
    for m in layers:
        m.groups = groups
    try:
        yield
    finally:
        for m in layers:
            m.groups = 1
