"""Out of memory in one of the first steps is recovered: the step is undone, the next leaner exact
configuration runs the same batch, and the result is that of an uninterrupted run that made the same
change (bit for bit, on the CPU, with the error injected at an operator of each update)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from model import build_networks
from scripts.core.errors import UsageError
from scripts.core.seeding import seed_everything
from scripts.training import GANTrainer
from scripts.training.memory import StepConfig, leaner
from scripts.training.oom import RecoveringStep


class OomAt(TorchDispatchMode):
    """Raises CUDA's out-of-memory error at the ``at``-th operator after it is entered, once."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.ops, self.fired = at, 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if self.ops == self.at and not self.fired:
            self.fired = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return func(*args, **(kwargs or {}))


def _batches(k: int = 3):
    g = torch.Generator().manual_seed(7)
    return [
        (torch.randn(2, 3, 32, 32, generator=g), (torch.rand(2, 3, 32, 32, generator=g) > 0.8).float())
        for _ in range(k)
    ]


def _trainer(mode: str = "batched") -> GANTrainer:
    seed_everything(0)
    return GANTrainer(build_networks(4, with_discriminator=True), mode=mode, fused_adam=True)


def _guarded(trainer: GANTrainer, config: StepConfig, step_mode: str = "auto", checkpointing: str = "auto"):
    return RecoveringStep(trainer, lambda: trainer.step, config, leaner(config, step_mode, checkpointing))


def _snapshot_ops() -> int:
    trainer = _trainer()
    trainer.step(*_batches(1)[0])
    with OomAt(at=-1) as counter:
        trainer.snapshot()
    return counter.ops


SNAPSHOT_OPS = _snapshot_ops()  # a guarded step copies the state first: the step's operators come after


def _update_ends(mode: str) -> list[int]:
    """The operator count, within a guarded steady-state step (its snapshot included), at which each of
    the six optimiser steps begins."""
    trainer = _trainer(mode)
    step = _guarded(trainer, StepConfig(mode=mode))
    x, y = _batches(1)[0]
    step(x, y)  # Adam's state exists from here on, as in the guarded steps after the first
    counter = OomAt(at=-1)
    ends: list[int] = []
    for opt in trainer.opts.values():
        opt.register_step_pre_hook(lambda *_: ends.append(counter.ops))
    with counter:
        step(x, y)
    return sorted(ends)


ENDS = _update_ends("batched")
# one operator inside each update: the first D update (with the forwards), the second and third D
# updates, the generators' shared backward, and inside the optimiser steps of G_V and G
POINTS = [
    (SNAPSHOT_OPS + ENDS[0]) // 2,
    (ENDS[0] + ENDS[1]) // 2,
    (ENDS[1] + ENDS[2]) // 2,
    (ENDS[2] + ENDS[3]) // 2,
    ENDS[4] + 1,
    ENDS[5] + 1,
]


@pytest.mark.parametrize("at", POINTS)
def test_an_injected_out_of_memory_is_undone_and_the_batch_runs_once_with_the_next_configuration(at, caplog):
    batches = _batches()
    reference = _trainer()
    expected = [reference.step(*batches[0]), reference.step(*batches[1])]
    reference.reconfigure("reuse", False)
    expected.append(reference.step(*batches[2]))

    trainer = _trainer()
    step = _guarded(trainer, StepConfig(mode="batched"))
    got = [step(*batches[0]), step(*batches[1])]
    with caplog.at_level(logging.WARNING, logger="avseg"), OomAt(at) as injected:
        got.append(step(*batches[2]))
    assert injected.fired
    assert [{k: float(v) for k, v in d.items()} for d in got] == [{k: float(v) for k, v in d.items()} for d in expected]
    assert all(torch.equal(a, b) for a, b in zip(trainer.state_tensors(), reference.state_tensors()))
    assert len(trainer.state_tensors()) == len(reference.state_tensors())
    assert (trainer.mode, trainer.checkpointing) == ("reuse", False)
    assert step.changes == [{"step": 3, "from": "batched", "to": "reuse"}]
    message = next(r.message for r in caplog.records if "out of device memory" in r.message)
    assert "with the batched step" in message and "runs again with the reuse step" in message


def test_out_of_memory_in_the_first_step_drops_the_adam_state_it_created():
    """In the very first step Adam's state does not exist yet; a step undone there must not leave any."""
    batches = _batches(1)
    reference = _trainer()
    reference.reconfigure("reuse", False)
    reference.step(*batches[0])
    probe = _guarded(_trainer(), StepConfig(mode="batched"))
    with OomAt(at=10**9) as counter:  # count the operators of a guarded first step without firing
        probe(*batches[0])
    trainer = _trainer()
    step = _guarded(trainer, StepConfig(mode="batched"))
    with OomAt(at=counter.ops - 5) as injected:  # in the schedulers: every update and Adam step is done
        step(*batches[0])
    assert injected.fired
    assert all(torch.equal(a, b) for a, b in zip(trainer.state_tensors(), reference.state_tensors()))
    assert sum(len(o.state) for o in trainer.opts.values()) == sum(len(o.state) for o in reference.opts.values())


def test_no_leaner_configuration_left_is_a_message_not_a_traceback():
    trainer = _trainer("literal")
    step = _guarded(trainer, StepConfig(mode="literal", checkpointing=True), "literal", "on")
    before = [t.clone() for t in trainer.state_tensors()]
    with (
        pytest.raises(UsageError, match="no leaner exact configuration is left.*--image-size"),
        OomAt(at=SNAPSHOT_OPS + 50),
    ):
        step(*_batches(1)[0])
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.state_tensors()))


def test_after_the_guarded_steps_an_out_of_memory_error_is_not_caught():
    trainer = _trainer()
    config = StepConfig(mode="batched")
    step = RecoveringStep(trainer, lambda: trainer.step, config, leaner(config, "auto", "auto"), guarded=1)
    assert step.guarded == 1
    x, y = _batches(1)[0]
    step(x, y)
    with pytest.raises(torch.OutOfMemoryError), OomAt(at=20):
        step(x, y)
