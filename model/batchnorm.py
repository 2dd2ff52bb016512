"""BatchNorm that can treat one batch as several independent sub-batches ("ghost" batch norm).

The training step runs D once on a batch that stacks what the original code passed to D in
separate calls (real and fake maps; the three generators' maps). For that to stay exact, every
BatchNorm layer must normalise each original sub-batch with its own statistics and move its
running statistics once per sub-batch, in order, as the separate calls would have. Inside
``with ghost_batches(net, k):`` the BatchNorm layers of ``net`` do exactly that, by running the
ordinary batch-norm kernel on each sub-batch in turn (so each group's forward and backward are
the sequential calls' own, to the last bit); outside it, and in eval mode, they are plain
``nn.BatchNorm2d`` with the same parameters, buffers and state-dict keys.

Inside ``with recomputing():`` (activation checkpointing's second forward, ``model.checkpointing``)
training-mode layers normalise exactly as before but leave the running statistics and
``num_batches_tracked`` alone: the same kernel runs on throwaway copies of the running statistics.

``sync_across(net, group)`` makes the layers compute their batch statistics over the whole
distributed batch (all ranks of ``group``), as ``nn.SyncBatchNorm`` does but on any device
(``SyncBatchNorm`` runs on GPUs only) and group by group inside ``ghost_batches``: the per-channel
sums and sums of squares are all-reduced with a differentiable all-reduce, so the backward pass
carries every rank's part too.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

_recomputing = False  # set by recomputing(): a checkpointed stage's forward is being run again


@contextlib.contextmanager
def recomputing() -> Iterator[None]:
    """Training-mode BatchNorm layers leave their running statistics alone (module docstring)."""
    global _recomputing
    before, _recomputing = _recomputing, True
    try:
        yield
    finally:
        _recomputing = before


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with an optional number of ghost groups (see the module docstring)."""

    groups: int = 1
    sync_group = None  # a torch.distributed process group: statistics over all its ranks' batches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.groups == 1 and self.sync_group is None and not _recomputing):
            return super().forward(x)
        if x.shape[0] % self.groups:
            raise ValueError(
                f"ghost batch norm: a batch of {x.shape[0]} does not split into {self.groups} equal groups"
            )
        if self.sync_group is not None:
            one = functools.partial(self._synced, update=not _recomputing)
        else:
            one = self._again if _recomputing else super().forward
        return torch.cat([one(part) for part in x.chunk(self.groups)]) if self.groups > 1 else one(x)

    def _again(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward of ``nn.BatchNorm2d`` (same kernel, same batch statistics) with the
        running statistics left as they are: the kernel updates copies of them."""
        if self.running_mean is None or self.running_var is None:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        return F.batch_norm(
            x, self.running_mean.clone(), self.running_var.clone(), self.weight, self.bias, True, momentum, self.eps
        )

    def _synced(self, x: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Training-mode batch norm with statistics over every rank's batch (float32 or wider sums)."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        xs = x.to(dtype)
        local = torch.cat(
            [
                xs.sum(dim=(0, 2, 3)),
                (xs * xs).sum(dim=(0, 2, 3)),
                torch.full((1,), float(x.numel() // x.shape[1]), dtype=dtype, device=x.device),
            ]
        )
        total = _AllReduceSum.apply(local, self.sync_group)
        c = x.shape[1]
        count = total[2 * c]
        mean = total[:c] / count
        var = (total[c : 2 * c] / count - mean * mean).clamp_min(0)
        if update and self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = (1, c, 1, 1)
        out = (xs - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of every rank's input is the sum of all ranks'
    output gradients (each rank's loss depends on every rank's statistics)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group) -> torch.Tensor:
        import torch.distributed as dist

        ctx.group = group
        out = t.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def sync_across(net: nn.Module, group) -> int:
    """Make ``net``'s BatchNorm layers compute batch statistics over all ranks of ``group`` (None: off);
    returns the number of layers."""
    layers = [m for m in net.modules() if isinstance(m, BatchNorm2d)]
    for m in layers:
        m.sync_group = group
    return len(layers)


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
