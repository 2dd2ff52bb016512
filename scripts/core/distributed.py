"""Training on several processes with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun`` starts one process per GPU (or several on a CPU) and sets RANK, WORLD_SIZE and
LOCAL_RANK; :func:`init_from_env` joins them into one process group (NCCL on GPUs, gloo on the
CPU) with a timeout, so that a rank that dies makes the others fail with a message instead of
waiting forever. Semantics (docs/multi_gpu.md): ``--batch-size`` is the global batch, split
evenly over the ranks; every rank walks the same seeded global order (:class:`DistributedEpochSampler`)
and takes its slice of each global batch (``scripts.data.dataset.DistributedEpochSampler``); the losses the plateau schedulers see are the means over
ranks, so every rank takes the same decisions.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from scripts.core.errors import UsageError

log = logging.getLogger("avseg")


@dataclass
class Context:
    """This process's place: ``rank`` of ``world`` (1 and 0 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    control: Any = None  # a gloo group for host-side agreement (stop requests)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files, logs and TensorBoard."""
        return self.rank == 0

    def shard(self, n: int) -> list[int]:
        """This rank's items of 0..n-1 (every world-th, from its rank)."""
        return list(range(self.rank, n, self.world))

    def gather(self, items: list) -> list:
        """Every rank's ``items`` (picklable), concatenated in rank order, on every rank."""
        if not self.active:
            return list(items)
        out: list = [None] * self.world
        dist.all_gather_object(out, items, group=self.control)
        return [x for part in out for x in part]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any rank (a host-side all-reduce)."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def broadcast(self, obj):
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.active:
            dist.barrier(group=self.control)

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce a device tensor to its mean over ranks, in place."""
        if self.active:
            dist.all_reduce(t)
            t.div_(self.world)
        return t

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env(device: torch.device, timeout_minutes: float = 10.0) -> tuple[Context, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (nothing to do without
    it). Returns the context and this rank's device (``cuda:LOCAL_RANK`` on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"rank {rank}: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) visible; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(minutes=timeout_minutes)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        timeout=timeout,
        **({"device_id": device} if device.type == "cuda" else {}),
    )
    control = dist.new_group(backend="gloo", timeout=timeout) if device.type == "cuda" else dist.group.WORLD
    return Context(rank, world, local_rank, control), device


def local_batch(global_batch: int, ctx: Context) -> int:
    """The per-rank batch: ``--batch-size`` is the global batch and must split evenly."""
    if global_batch % ctx.world:
        raise UsageError(
            f"--batch-size {global_batch} is the global batch and does not split over {ctx.world} "
            f"processes; use a multiple of {ctx.world} or another --nproc_per_node"
        )
    return global_batch // ctx.world


def ddp_options() -> dict:
    """DDP settings measured on an H200 (592 px, n = 32, batched step, one process; docs/multi_gpu.md):
    sending rank 0's buffers before every forward cost 4.6 % and copying gradients into the
    all-reduce buckets another 3.3 %; without both, DDP costs about 1 % over a plain process.
    Buffers (batch-norm running statistics) need no sending: with synchronised batch norm every
    rank computes the same ones; with ``--sync-bn off`` each rank keeps its own, and checkpoints hold
    rank 0's. Gradients as views of the buckets are the same numbers without the copies."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    params = inspect.signature(DDP.__init__).parameters
    no_buffers = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return {**no_buffers, "gradient_as_bucket_view": True}


def lost_contact_message(err: RuntimeError) -> str | None:
    """Under torchrun, the message for a process whose peers stopped answering (None outside torchrun:
    the error is then a bug and keeps its traceback)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (
        f"rank {os.environ.get('RANK')}: lost contact with the other processes ({first}); one of them stopped "
        "or died (see its messages above), or did not answer within --dist-timeout. Resume from last.pt with "
        "--resume."
    )
