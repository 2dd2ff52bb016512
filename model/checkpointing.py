"""Activation checkpointing of the networks' stages, exact to the last bit.

With checkpointing on, each stage of a network (the first DoubleConv, every Down, FuseUp and PlainUp,
every deep-side-output branch) keeps only its inputs for the backward pass; the backward pass runs
the stage's forward again to get the activations it needs (``torch.utils.checkpoint``, non-reentrant:
the autograd graph is the ordinary one, only its saved tensors are recomputed). What makes the
recomputation change no number:

- BatchNorm: the recomputed forward normalises with the batch's own statistics, as the first forward
  did (in the same ghost batches, ``model.batchnorm``), by the same kernel with throwaway copies of
  the running statistics, so the running mean, variance and ``num_batches_tracked`` move once per
  forward, not twice;
- random numbers: the networks draw none (a test checks it); where the global RNG is not being
  captured in a CUDA graph, ``torch.utils.checkpoint`` also restores the RNG state for the
  recomputation, so a random operation added later would draw the same numbers again.

The state-dict keys do not change: the wrapping is an instance attribute, not a new module.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.batchnorm import BatchNorm2d, recomputing
from model.blocks import DoubleConv, Down, FuseUp, PlainUp, SideOutput

STAGES = (DoubleConv, Down, FuseUp, PlainUp, SideOutput)


@contextlib.contextmanager
def _as_in_forward(layers: list[tuple[BatchNorm2d, int]]) -> Iterator[None]:
    """The recomputation: running statistics left alone, and each BatchNorm layer split into the ghost
    batches it had in the first forward (the backward pass runs after ``ghost_batches`` has ended)."""
    before = [(layer, layer.groups) for layer, _ in layers]
    for layer, groups in layers:
        layer.groups = groups
    try:
        with recomputing():
            yield
    finally:
        for layer, groups in before:
            layer.groups = groups


def _checkpointed(unit: nn.Module, forward: Callable, *args: torch.Tensor) -> torch.Tensor:
    if not torch.is_grad_enabled():  # inference and validation: nothing is saved anyway
        return forward(*args)
    layers = [(m, m.groups) for m in unit.modules() if isinstance(m, BatchNorm2d)]
    capturing = torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
    return checkpoint(
        forward,
        *args,
        use_reentrant=False,
        preserve_rng_state=not capturing,  # reading the RNG state cannot be captured in a CUDA graph
        context_fn=lambda: (contextlib.nullcontext(), _as_in_forward(layers)),
    )


def stages(net: nn.Module) -> list[nn.Module]:
    """The outermost stage modules of ``net`` (a stage inside a stage is covered by the outer one)."""
    found: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, STAGES):
                found.append(child)
            else:
                walk(child)

    walk(net)
    return found


def set_checkpointing(net: nn.Module, on: bool) -> int:
    """Checkpoint ``net``'s stages (``on``) or run them plainly again; returns the number of stages."""
    units = stages(net)
    for unit in units:
        if on:
            unit.forward = functools.partial(_checkpointed, unit, type(unit).forward.__get__(unit))
        else:
            unit.__dict__.pop("forward", None)
    return len(units)


def is_checkpointing(net: nn.Module) -> bool:
    return any("forward" in unit.__dict__ for unit in stages(net))
