"""Distributed training on the CPU (gloo, 2 processes): the step, synchronised batch norm, the
sampler, validation and the torchrun entry point."""
from __future__ import annotations

import copy
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scripts.checkpoint import build_networks
from scripts.dataset import EpochSampler
from scripts.seeding import seed_everything
from scripts.training import GANTrainer
from scripts.training.distributed import Context, DistributedEpochSampler, local_batch
from scripts.runtime import UsageError

STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batches():
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64),
             (torch.rand(2, 3, 32, 32, generator=g) > 0.8).double()) for _ in range(STEPS)]


def _nets():
    seed_everything(0)
    return {k: v.double() for k, v in build_networks(4, with_discriminator=True).items()}


def _rank_main(rank: int, world: int, port: int, mode: str, sync_bn: bool, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        trainer = GANTrainer(_nets(), mode=mode)
        trainer.distribute(Context(rank, world), sync_bn=sync_bn)
        per = 2 // world
        for x, y in _batches():
            trainer.step(x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per])
        params = {n: torch.cat([p.detach().flatten() for p in net.parameters()]) for n, net in trainer.nets.items()}
        gathered = [None] * world
        dist.all_gather_object(gathered, params)
        if rank == 0:
            out.update(ranks=gathered, buffers={n: {k: b.clone() for k, b in net.named_buffers()}
                                                for n, net in trainer.nets.items()})
    finally:
        dist.destroy_process_group()


def _run_ranks(world: int, mode: str, sync_bn: bool) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank_main, args=(world, _free_port(), mode, sync_bn, out), nprocs=world, join=True)
        return dict(out)


def _single(mode: str) -> dict[str, torch.Tensor]:
    trainer = GANTrainer(_nets(), mode=mode)
    for x, y in _batches():
        trainer.step(x, y)
    return {n: torch.cat([p.detach().flatten() for p in net.parameters()]) for n, net in trainer.nets.items()}


@pytest.mark.parametrize("mode", ["batched", "literal"])
def test_ranks_hold_identical_weights_after_steps(mode):
    out = _run_ranks(2, mode, sync_bn=False)
    first, second = out["ranks"]
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("mode", ["batched", "reuse"])
def test_two_ranks_of_one_image_with_sync_bn_match_one_process_of_two(mode):
    """float64, 3 steps: every network's weights within 1e-7 relative of the single-process run."""
    out = _run_ranks(2, mode, sync_bn=True)
    single = _single(mode)
    for name, ref in single.items():
        got = out["ranks"][0][name]
        assert (got - ref).abs().max() <= 1e-7 * ref.abs().max(), name
    # and without synchronised statistics they differ (batch norm over one image instead of two)
    plain = _run_ranks(2, mode, sync_bn=False)["ranks"][0]
    assert (plain["G"] - single["G"]).abs().max() > 1e-4 * single["G"].abs().max()


def test_distributed_sampler_is_the_single_process_order_cut_into_slices():
    for n, batch, world in ((9, 2, 2), (18, 2, 2), (10, 4, 2), (12, 3, 3)):
        single = EpochSampler(n, 42)
        single.set_epoch(7)
        order = list(single)
        parts = []
        for rank in range(world):
            s = DistributedEpochSampler(n, 42, batch, Context(rank, world))
            s.set_epoch(7)
            parts.append(list(s))
        assert len({len(p) for p in parts}) == 1  # every rank takes the same number of steps
        per = batch // world
        full = n // batch  # whole global batches: rank slices side by side give the global order
        rebuilt = [x for step in range(full) for p in parts for x in p[step * per:(step + 1) * per]]
        assert rebuilt == order[:full * batch]
        tail = [x for p in parts for x in p[full * per:]]  # an uneven tail: its items, topped up from the start
        assert set(order[full * batch:]) <= set(tail) and set(tail) <= set(order)
        # resuming mid-epoch skips whole global batches
        s = DistributedEpochSampler(n, 42, batch, Context(world - 1, world))
        s.set_epoch(7, start=batch)
        assert list(s) == parts[world - 1][per:]


def test_global_batch_must_split_over_ranks():
    assert local_batch(4, Context(0, 2)) == 2
    with pytest.raises(UsageError, match="--batch-size 3 is the global batch"):
        local_batch(3, Context(0, 2))
