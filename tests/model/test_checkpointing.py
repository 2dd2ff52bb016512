"""Activation checkpointing changes no number: three training steps with it leave every weight,
buffer and optimiser state bit-identical to three steps without it, in each exact step mode."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from model import build_networks
from model.batchnorm import BatchNorm2d, recomputing
from model.checkpointing import is_checkpointing, set_checkpointing, stages
from scripts.core.seeding import seed_everything
from scripts.training import GANTrainer


def _batches(k: int = 3, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [
        (torch.randn(2, 3, size, size, generator=g), (torch.rand(2, 3, size, size, generator=g) > 0.8).float())
        for _ in range(k)
    ]


def _state(trainer: GANTrainer) -> list[torch.Tensor]:
    return [t.detach().clone() for t in trainer.state_tensors()]


@pytest.mark.parametrize("mode", ["literal", "reuse", "batched"])
def test_three_steps_with_checkpointing_are_bit_identical(mode):
    seed_everything(0)
    nets = build_networks(4, with_discriminator=True)
    plain = GANTrainer(copy.deepcopy(nets), mode=mode, fused_adam=mode != "literal")
    checkpointed = GANTrainer(nets, mode=mode, fused_adam=mode != "literal", checkpointing=True)
    assert all(is_checkpointing(n) for n in checkpointed.nets.values())
    for x, y in _batches():
        a, b = plain.step(x, y), checkpointed.step(x, y)
        assert all(torch.equal(a[k], b[k]) for k in a), mode
    got, expected = _state(checkpointed), _state(plain)
    assert len(got) == len(expected) > 0
    different = [i for i, (p, q) in enumerate(zip(expected, got)) if not torch.equal(p, q)]
    assert different == [], f"{mode}: {len(different)} state tensors differ"
    buffers = [b for n in checkpointed.nets.values() for b in n.buffers()]
    assert any(b.dtype == torch.int64 and int(b) > 0 for b in buffers)  # num_batches_tracked did move (once)


def test_checkpointing_really_recomputes_and_saves_memory():
    """Not a no-op: the backward pass of a checkpointed network runs its convolutions again."""

    class Count(TorchDispatchMode):
        convolutions = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution.default:
                Count.convolutions += 1
            return func(*args, **(kwargs or {}))

    net = build_networks(4)["G_A"]
    x = torch.randn(1, 3, 32, 32)

    def convolutions(on: bool) -> int:
        set_checkpointing(net, on)
        Count.convolutions = 0
        with Count():
            net(x).sum().backward()
        return Count.convolutions

    plain, again = convolutions(False), convolutions(True)
    assert again > plain  # forward convolutions run a second time in the backward pass
    assert len(stages(net)) == 9  # inc, down1-4, up1-4


def test_recomputing_leaves_running_statistics_alone_and_normalises_the_same():
    bn = BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5)
    first = bn(x)
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    with recomputing():
        again = bn(x)
    assert torch.equal(first, again)
    assert all(torch.equal(a, b) for a, b in zip(stats, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    bn.groups = 2  # ghost batches too
    with recomputing():
        bn(x)
    assert torch.equal(bn.num_batches_tracked, stats[2])


def test_the_networks_draw_no_random_numbers():
    """What lets a CUDA-graph capture recompute without restoring the RNG state."""
    nets = build_networks(4, with_discriminator=True)
    for net in nets.values():
        set_checkpointing(net, True)
    before = torch.get_rng_state()
    x = torch.ones(2, 3, 32, 32)
    outs = nets["G"](x, x, x)
    (sum(o.sum() for o in outs) + nets["D"](x, x).sum() + nets["G_A"](x).sum()).backward()
    assert torch.equal(before, torch.get_rng_state())


def test_inference_is_not_checkpointed():
    net = build_networks(4)["G_V"].eval()
    set_checkpointing(net, True)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32))
    assert out.grad_fn is None
    set_checkpointing(net, False)
    assert not is_checkpointing(net)
