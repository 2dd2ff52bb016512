"""DDP throughput: a plain process against DDP with one and with N processes."""

from __future__ import annotations

import statistics
import time

import torch

from scripts.benchmarks.steps import cpu_description, synchronize


def _ddp_rank(
    rank: int,
    world: int,
    port: int,
    size: int,
    n_filters: int,
    batch: int,
    device_name: str,
    reps: int,
    warmup: int,
    use_ddp: bool,
    out: dict,
) -> None:
    """One process of the DDP benchmark: ``batch`` is the global batch, split over the ranks."""
    import torch.distributed as dist

    from model import build_networks
    from scripts.core.distributed import Context
    from scripts.training import GANTrainer

    device = torch.device(device_name if device_name == "cpu" else f"cuda:{rank}")
    if use_ddp:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world,
        )
    try:
        if device.type == "cpu":
            torch.set_num_threads(max(1, (torch.get_num_threads() or 1) // world))
        torch.manual_seed(0)
        nets = {k: v.to(device) for k, v in build_networks(n_filters, with_discriminator=True).items()}
        trainer = GANTrainer(nets, mode="batched", fused_adam=True, channels_last=device.type == "cuda")
        if use_ddp:
            trainer.distribute(
                Context(rank, world), device_ids=[device.index] if device.type == "cuda" else None, sync_bn=world > 1
            )
        per = batch // world
        x = torch.randn(per, 3, size, size, device=device)
        y = (torch.rand(per, 3, size, size, device=device) > 0.8).float()
        times = []
        for i in range(warmup + reps):
            synchronize(device)
            t = time.perf_counter()
            trainer.step(x, y)
            synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        if rank == 0:
            out["ms"] = 1000 * statistics.median(times)
    finally:
        if use_ddp:
            dist.destroy_process_group()


def ddp_benchmark(nproc: int, size: int, n_filters: int, batch: int, device_name: str, reps: int, warmup: int) -> str:
    """Training images/s: one plain process, DDP with one process, DDP with ``nproc`` (global batch fixed)."""
    import socket

    import torch.multiprocessing as mp

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    rows = []
    runs = [("plain, 1 process", 1, False), ("DDP, 1 process", 1, True)]
    runs += [(f"DDP, {nproc} processes", nproc, True)] if nproc > 1 else []
    for label, world, use_ddp in runs:
        if batch % world:
            rows.append((label, None))
            continue
        with mp.Manager() as manager:
            out = manager.dict()
            mp.spawn(
                _ddp_rank,
                args=(world, port(), size, n_filters, batch, device_name, reps, warmup, use_ddp, out),
                nprocs=world,
                join=True,
            )
            rows.append((label, out["ms"]))
    plain = rows[0][1]
    lines = [
        f"DDP training step, global batch {batch}, {size} px, n={n_filters}, {device_name} "
        f"({cpu_description() if device_name == 'cpu' else torch.cuda.get_device_name()})",
        f"{'run':<22}{'ms/step':>10}{'images/s':>10}{'vs plain':>10}",
    ]
    for label, ms in rows:
        lines.append(
            f"{label:<22}"
            + ("  batch does not split" if ms is None else f"{ms:>10.0f}{1000 * batch / ms:>10.2f}{plain / ms:>10.3f}")
        )
    if device_name == "cpu":
        lines.append("(CPU processes share this machine's cores: these rows show that DDP runs, not how it scales)")
    return "\n".join(lines)
