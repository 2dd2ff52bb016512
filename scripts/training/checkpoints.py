"""What a training run saves, when, and under which name: the one owner of the checkpoint policy.

In the job folder (``scripts.io.job``: its path, the snapshot names, which files make the paper row):

- ``epoch_XXXX.pt``: G_A, G_V and G at the protocol's epochs (every ``save_every`` from ``save_from``;
  the paper: every 10 from 1300). These, and only these, make the paper row (``test.sh``).
- ``stop_epoch_XXXX.pt``: the generators of the last epoch of a run that ends off that grid (a time
  limit, an ``--epochs`` shorter than ``--save-from``); the row takes it only with ``--snapshots all``.
- ``best.pt``: the generators with the best validation F1 so far (without a validation split: the
  final weights).
- ``last.pt``: everything ``--resume`` needs (``scripts.io.resume.last_state``), after the first epoch
  (so a run killed early loses at most an epoch), every ``last_every_minutes``, at the end of the
  schedule and when the run is stopped.

Every write goes through :class:`~scripts.training.saver.BackgroundSaver` (host copy now, atomic write
on a thread); under torchrun only rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from torch import nn

from scripts.io import checkpoint as ckpt
from scripts.io.job import snapshot_kind, snapshot_path
from scripts.training.saver import BackgroundSaver

log = logging.getLogger("avseg")


class CheckpointSaver:
    """The checkpoint policy of one run (module docstring).

    ``config()``: the run's configuration as it is now (saved in every file); ``resume_state(epoch,
    step_in_epoch)``: the ``last.pt`` content for resuming at that position; ``writes``: whether this
    process writes (rank 0)."""

    def __init__(
        self,
        job_dir: Path,
        nets: dict[str, nn.Module],
        config: Callable[[], dict],
        resume_state: Callable[[int, int], dict],
        save_from: int,
        save_every: int,
        last_every_minutes: float,
        writes: bool = True,
        timer=None,
    ) -> None:
        self.job_dir, self.nets, self.config, self.resume_state = job_dir, nets, config, resume_state
        self.save_from, self.save_every, self.last_every_s = save_from, save_every, 60 * last_every_minutes
        self.writes, self.timer = writes, timer  # timer: a RunTimer whose per-step time leaves the hand-over out
        self.writer = BackgroundSaver()
        self.best = -1.0
        self.last_written = time.monotonic()
        self.wrote_last = False

    @property
    def last_path(self) -> Path:
        return self.job_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.job_dir / "best.pt"

    def _write(self, obj: dict, path: Path, wait: bool = False) -> None:
        if not self.writes:
            return
        t = time.perf_counter()
        self.writer.submit(obj, path, wait=wait)
        if self.timer is not None:  # the hand-over is left out of the per-step time
            self.timer.checkpoint += time.perf_counter() - t

    def _generators(self, epoch: int, extra: dict | None = None) -> dict:
        return ckpt.generators_state(self.nets, self.config(), epoch, extra)

    def step_done(self, position: tuple[int, int]) -> None:
        """After a step: ``last.pt`` when ``last_every_minutes`` have passed since the last one."""
        if time.monotonic() - self.last_written > self.last_every_s:
            self._write_last(position)

    def _write_last(self, position: tuple[int, int]) -> None:
        self._write(self.resume_state(*position), self.last_path)
        self.last_written, self.wrote_last = time.monotonic(), True

    def stopped(self, position: tuple[int, int]) -> None:
        """The run was stopped (Ctrl-C, SIGTERM, --max-steps): ``last.pt`` now, waited for."""
        self._write(self.resume_state(*position), self.last_path, wait=True)

    def validated(self, epoch: int, f1: float) -> bool:
        """A validation's F1: ``best.pt`` when it is the best so far; returns whether it was."""
        if f1 <= self.best:
            return False
        self.best = f1
        self._write(self._generators(epoch, {"val_f1": f1}), self.best_path)
        return True

    def epoch_done(self, epoch: int, last_epoch: bool) -> None:
        """The epoch's snapshot (on the protocol's grid, or ``stop_`` for a last epoch off it), and
        ``last.pt`` after the run's last epoch and after this process's first."""
        kind = snapshot_kind(epoch, self.save_from, self.save_every, last_epoch)
        path = snapshot_path(self.job_dir, epoch, kind) if kind else None
        if kind == "stop" and path is not None:
            log.info(
                "epoch %d ends the run off the snapshot epochs (from %d every %d): saving it as %s, which the "
                "paper row leaves out unless test.sh gets --snapshots all",
                epoch,
                self.save_from,
                self.save_every,
                path.name,
            )
        if path is not None:
            self._write(self._generators(epoch, {"snapshot": kind}), path)
        if last_epoch or not self.wrote_last:
            self._write_last((epoch + 1, 0))

    def finished(self, epochs: int, validated: bool) -> None:
        """The schedule is done: without a validation split the final weights are ``best.pt``; every
        write is waited for (a failed one raises)."""
        if not validated:
            self._write(self._generators(epochs), self.best_path)
        self.writer.wait(strict=True)
