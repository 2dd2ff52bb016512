"""The memory plan: the peak device memory of one training step (and of inference), predicted on the CPU.

The real step runs on tensors without data: ``GANTrainer.step`` on fake tensors (``FakeTensorMode``:
shapes, dtypes and strides, no storage), so the forward passes, autograd's saved tensors, the
backward passes, autocast, activation checkpointing and the optimisers' state are those of a real
run. A dispatch hook follows every storage from the operator that creates it to the moment Python
frees it, each rounded up to 512 bytes as the CUDA caching allocator rounds blocks; the peak of the
live total is what ``torch.cuda.max_memory_allocated`` reports for the same step.

Three things of a CUDA run are stood in for, each named where it is done:

- Adam's update (``_AdamState``): only its state is created (two moments the size of the weights and
  a step count, as fused Adam allocates them); fused Adam updates in place and allocates nothing else.
- CUDA autocast's casting policy: the fake tensors are CPU tensors, so CPU autocast casts them; where
  CUDA's policy differs for an operator the step uses (``F.interpolate``'s nearest upsampling and
  ``sum`` run in float32 on CUDA), ``_cuda_autocast`` casts as CUDA does. fp16 is planned as bf16
  (same sizes; its loss scaler adds a few bytes).
- cuDNN workspaces are not part of the plan: they come from the caching allocator during a
  convolution and are released after it. They and allocator fragmentation are what
  :data:`MARGIN` covers.

Checked against the three peaks measured on an H200 (592 x 592, batch 2, n = 32; docs/memory.md):
literal 12,643 MiB measured / 12,554 planned, batched 15,159 / 15,077, bf16 9,346 / 9,262, i.e. the
plan was 0.5-0.9 % (82-89 MiB) low every time.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from model import blocks, build_networks
from scripts.training.objective import example_targets
from scripts.training.step import STEP_MODES, GANTrainer

MiB = 2**20
BLOCK = 512  # the CUDA caching allocator's rounding of every block
UPDATES = ("forwards + D (artery map)", "D (vein map)", "D (fusion map)", "G_A", "G_V", "G")
CATEGORIES = ("weights", "optimizer", "gradients", "batch", "activations")


@dataclass(frozen=True)
class Margin:
    """What a planned peak needs on top on a real GPU: ``factor`` for the plan's error and allocator
    fragmentation (reserved over allocated memory), ``workspace`` for cuDNN's convolution workspaces
    (``cudnn.benchmark`` tries algorithms that ask for more)."""

    factor: float = 1.10
    workspace: int = 512 * MiB

    def needed(self, planned: int) -> int:
        return math.ceil(planned * self.factor) + self.workspace


# the plan was at most 0.9 % low against three H200 peaks (cudnn.benchmark off, no fragmentation
# counted: max allocated); 10 % covers that and the caching allocator's split blocks, 512 MiB the
# workspaces cudnn.benchmark may try (the default now)
MARGIN = Margin()


@dataclass(frozen=True)
class StepConfig:
    """What decides a training step's memory."""

    mode: str = "batched"
    checkpointing: bool = False
    amp: str | None = None  # None (float32), "bf16" or "fp16"
    channels_last: bool = True
    n_filters: int = 32
    batch_size: int = 2
    width: int = 592
    height: int = 592
    variant: str = "v2021"

    @property
    def label(self) -> str:
        parts = [self.mode, "+ checkpointing" if self.checkpointing else "", f"({self.amp})" if self.amp else ""]
        return " ".join(p for p in parts if p)

    @property
    def exact(self) -> bool:
        """float32: the same numbers as the original step (amp is not)."""
        return self.amp is None


@dataclass
class StepPlan:
    """The planned memory of one step, in bytes: the peak, what is live at it, and each update's own peak."""

    config: StepConfig
    peak: int
    at_peak: dict[str, int]
    updates: dict[str, int]
    between_steps: int  # weights, buffers, optimiser state and the batch

    @property
    def needed(self) -> int:
        return MARGIN.needed(self.peak)


class _Allocations(TorchDispatchMode):
    """Follows every storage an operator creates until it is freed (module docstring)."""

    def __init__(self, snapshot_at: int | None = None, roles: Callable[[], dict[int, str]] | None = None) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = self.peak_op = self.ops = 0
        self.phase_peak = 0
        self.snapshot_at, self.roles = snapshot_at, roles
        self.snapshot: dict[str, int] = {}

    def track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)
        if key in self.live:
            return
        size = -(-storage.nbytes() // BLOCK) * BLOCK
        self.live[key] = size
        self.current += size
        weakref.finalize(storage, self._free, key)
        if self.current > self.peak:
            self.peak, self.peak_op = self.current, self.ops
        self.phase_peak = max(self.phase_peak, self.current)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        if self.ops == self.snapshot_at and self.roles is not None:  # what is live here, by category
            roles = self.roles()
            self.snapshot = dict.fromkeys(CATEGORIES, 0)
            for key, size in self.live.items():
                self.snapshot[roles.get(key, "activations")] += size
        return out


def _in_float32(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def wrapped(x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu") and x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return fn(x)

    return wrapped


@contextlib.contextmanager
def _cuda_autocast() -> Iterator[None]:
    """CUDA autocast's float32 policy for the two operators of the networks where CPU autocast's
    differs: nearest upsampling and ``sum`` (the FuseUp channel-pair sums) run in float32 on CUDA, in
    the low precision on the CPU. The networks call them through these two helpers, also when
    activation checkpointing recomputes a stage."""
    saved = blocks._upsample2, blocks._pair_sum
    blocks._upsample2, blocks._pair_sum = _in_float32(saved[0]), _in_float32(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        blocks._upsample2, blocks._pair_sum = saved


class _AdamState:
    """Stands in for an optimiser's step: creates fused Adam's state, as the first real step does."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, on_step: Callable[[str], None]) -> None:
        self.optimizer, self.name, self.on_step = optimizer, name, on_step

    def __call__(self, closure=None) -> None:
        for p in self.optimizer.param_groups[0]["params"]:
            state = self.optimizer.state[p]
            if p.grad is not None and not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.on_step(self.name)


def _fake_trainer(config: StepConfig) -> GANTrainer:
    """The trainer of ``config`` on fake tensors (call inside a FakeTensorMode)."""
    nets = build_networks(config.n_filters, with_discriminator=True, variant=config.variant)
    if config.channels_last:  # converted here: .to() cannot swap fake parameters
        for net in nets.values():
            for p in net.parameters():
                if p.dim() == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
    amp = torch.bfloat16 if config.amp else None
    trainer = GANTrainer(
        nets,
        mode=config.mode,
        amp_dtype=amp,
        channels_last=config.channels_last,
        checkpointing=config.checkpointing,
        variant=config.variant,
    )
    return trainer


def _run_step(config: StepConfig, snapshot_at: int | None = None) -> tuple[_Allocations, dict[str, int], int]:
    """One steady-state step (after a first step that creates the optimiser state) under the tracker;
    returns it, each update's peak and what is live between steps."""
    with FakeTensorMode(), _cuda_autocast():
        trainer = _fake_trainer(config)
        x = torch.empty(config.batch_size, 3, config.height, config.width)
        y = example_targets(config.variant, config.batch_size, config.height, config.width)
        tracker = _Allocations(snapshot_at, lambda: _roles(trainer, (x, y)))
        updates: dict[str, int] = {}
        tracking = False

        def stepped(name: str) -> None:  # an optimiser step ends an update
            if tracking:
                updates[UPDATES[min(len(updates), len(UPDATES) - 1)]] = tracker.phase_peak
                tracker.phase_peak = tracker.current

        for name, opt in trainer.opts.items():
            opt.step = _AdamState(opt, name, stepped)  # type: ignore[method-assign]
        with tracker:
            for t in (*trainer.state_tensors(), x, y):
                tracker.track(t)
            trainer.step(x, y)  # the first step creates Adam's state
            tracking = True
            tracker.peak = tracker.phase_peak = tracker.current
            tracker.peak_op = tracker.ops = 0
            between = tracker.current
            trainer.step(x, y)
    return tracker, updates, between


def _roles(trainer: GANTrainer, batch: tuple[torch.Tensor, ...]) -> dict[int, str]:
    """Storage id -> category, for what is not an activation."""
    roles: dict[int, str] = {}
    for net in trainer.nets.values():
        for t in (*net.parameters(), *net.buffers()):
            roles[id(t.untyped_storage())] = "weights"
        for p in net.parameters():
            if p.grad is not None:
                roles[id(p.grad.untyped_storage())] = "gradients"
    for opt in trainer.opts.values():
        for state in opt.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor):
                    roles[id(v.untyped_storage())] = "optimizer"
        roles[id(opt.param_groups[0]["lr"].untyped_storage())] = "optimizer"
    for t in batch:
        roles[id(t.untyped_storage())] = "batch"
    return roles


def plan_step(config: StepConfig, breakdown: bool = True) -> StepPlan:
    """The memory plan of one training step of ``config`` (module docstring); ``breakdown``: also what
    is live at the peak, by category (a second run of the step)."""
    if config.mode not in STEP_MODES:
        raise ValueError(f"step mode must be one of {STEP_MODES}, got {config.mode!r}")
    tracker, updates, between = _run_step(config)
    if not breakdown:
        return StepPlan(config, tracker.peak, {}, updates, between)
    # the same step again, looking at what is live at the peak's operator
    again, _, _ = _run_step(config, snapshot_at=tracker.peak_op)
    if sum(again.snapshot.values()) != tracker.peak:
        raise RuntimeError(f"memory plan: the two runs of the step differ ({again.snapshot} vs {tracker.peak})")
    return StepPlan(config, tracker.peak, again.snapshot, updates, between)


def plan_inference(n_filters: int, width: int, height: int, amp: str | None = None, batch: int = 1) -> int:
    """Peak bytes of one forward of G_A, G_V and G at test/predict time (no gradients)."""
    from scripts.inference.predictor import predict_probs

    with FakeTensorMode(), _cuda_autocast():
        nets = {k: v.eval() for k, v in build_networks(n_filters).items()}
        tracker = _Allocations()
        x = torch.empty(batch, 3, height, width)
        with tracker, torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp is not None):
            for net in nets.values():
                for t in (*net.parameters(), *net.buffers()):
                    tracker.track(t)
            tracker.track(x)
            predict_probs(nets, x)
    return tracker.peak


# -- the default: the fastest exact configuration that fits ------------------------------------------

# fastest first on a GPU (an H200: batched 173 ms, literal 315 ms per step; reuse in between; activation
# checkpointing adds about one forward pass per network, so batched or reuse with it still beats literal)
EXACT_ORDER = (
    ("batched", False),
    ("reuse", False),
    ("batched", True),
    ("reuse", True),
    ("literal", False),
    ("literal", True),
)


@dataclass
class Choice:
    """What ``--step auto`` / ``--activation-checkpointing auto`` chose on a GPU, and why."""

    plan: StepPlan | None
    free: int
    total: int = 0  # the device's memory
    left_out: list[StepPlan] = field(default_factory=list)  # faster configurations that do not fit
    tried: list[StepPlan] = field(default_factory=list)

    def describe(self) -> str:
        gib = 2**30
        if self.plan is None:
            return "nothing fits"
        text = (
            f"memory plan: {self.plan.config.label} step, planned peak {self.plan.peak / gib:.1f} GiB, "
            f"needs {self.plan.needed / gib:.1f} GiB with the margin; {self.free / gib:.1f} GiB free"
        )
        if self.left_out:
            text += "; faster, left out (do not fit): " + ", ".join(
                f"{p.config.label} ({p.needed / gib:.1f} GiB)" for p in self.left_out
            )
        return text


def candidates(step_mode: str, checkpointing: str) -> list[tuple[str, bool]]:
    """The exact configurations ``--step`` and ``--activation-checkpointing`` allow, fastest first."""
    return [
        (mode, ckpt)
        for mode, ckpt in EXACT_ORDER
        if step_mode in ("auto", mode) and (checkpointing == "auto" or ckpt == (checkpointing == "on"))
    ]


def choose(
    base: StepConfig,
    step_mode: str,
    checkpointing: str,
    free: int,
    plan: Callable[[StepConfig], StepPlan] | None = None,
) -> Choice:
    """The fastest allowed exact configuration whose planned peak with the margin fits in ``free`` bytes
    (``plan``: how a configuration is planned; default :func:`plan_step` without the breakdown)."""
    plan = plan or functools.partial(plan_step, breakdown=False)
    choice = Choice(None, free)
    for mode, ckpt in candidates(step_mode, checkpointing):
        p = plan(replace(base, mode=mode, checkpointing=ckpt))
        choice.tried.append(p)
        if p.needed <= free:
            choice.plan = p
            return choice
        choice.left_out.append(p)
    return choice


def leaner(current: StepConfig, step_mode: str, checkpointing: str) -> Iterator[StepConfig]:
    """The allowed exact configurations after ``current`` in speed order (what an out-of-memory step
    falls back to), leanest last."""
    order = candidates(step_mode, checkpointing)
    key = (current.mode, current.checkpointing)
    after = order[order.index(key) + 1 :] if key in order else order
    for mode, ckpt in after:
        yield replace(current, mode=mode, checkpointing=ckpt)
