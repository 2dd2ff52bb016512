"""The first steps of a run, recovered from running out of device memory.

The memory plan (``scripts.training.memory``) picks a configuration that should fit; another process
may still take memory, or the plan may be off. If one of the first steps runs out of device memory,
:class:`RecoveringStep` puts every state tensor back as it was before that step (nothing is left
half-updated: D may already have been updated when a generator update fails), frees what the failed
step held, moves to the next leaner allowed exact configuration (``memory.leaner``), says so naming
both, and runs the same batch again: every batch is trained exactly once.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator

import torch

from scripts.core.errors import UsageError
from scripts.training.memory import StepConfig

log = logging.getLogger("avseg")
Step = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


class RecoveringStep:
    """``step(x, y) -> losses``; the first ``guarded`` steps recover from out-of-memory (module docstring).

    ``make_step()`` builds the step callable for the trainer's current configuration (a fresh CUDA
    graph after a change); ``leaner``: the configurations to fall back to, in order."""

    def __init__(
        self,
        trainer,
        make_step: Callable[[], Step],
        config: StepConfig,
        leaner: Iterator[StepConfig],
        guarded: int = 10,
    ) -> None:
        self.trainer, self.make_step, self.config, self.leaner = trainer, make_step, config, leaner
        self.guarded, self.calls = guarded, 0
        self.step = make_step()
        self.changes: list[dict] = []  # each recovery: from, to, at which step (timing.json)

    def __getattr__(self, name: str):  # the wrapped step's status (CUDA graph) etc.
        return getattr(self.__dict__["step"], name)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls > self.guarded:
            return self.step(x, y)
        while True:
            before = self.trainer.snapshot()
            failure = None
            try:
                return self.step(x, y)
            except torch.OutOfMemoryError as err:
                failure = str(err).splitlines()[0] if str(err) else "out of memory"
            # outside the except block: the traceback, and the failed step's tensors with it, are gone
            self._recover(before, failure)

    def _recover(self, before, failure: str) -> None:
        nxt = next(self.leaner, None)
        self.trainer.restore(before)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if nxt is None:
            raise UsageError(
                f"out of device memory in step {self.calls} with the {self.config.label} step, and no leaner exact "
                f"configuration is left ({failure}). Free device memory, or use a smaller --image-size or "
                "--batch-size, or --amp bf16 (not exact: docs/training_step.md#precision)"
            )
        log.warning(
            "out of device memory in step %d with the %s step (%s); the step was undone and runs again with the %s "
            "step",
            self.calls,
            self.config.label,
            failure,
            nxt.label,
        )
        self.changes.append({"step": self.calls, "from": self.config.label, "to": nxt.label})
        self.config = nxt
        self.trainer.reconfigure(nxt.mode, nxt.checkpointing)
        self.step = self.make_step()
