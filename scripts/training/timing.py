"""Where the time of a training run goes, and an early prediction of its total (within the first
minute: after ``predict_at`` steps, or sooner once ``within_s`` seconds have passed).

Steps do not synchronise with the device, so a step's cost is measured over many steps of wall
time (the host is held back by the device whenever it runs ahead); validation and checkpoint
hand-over times are measured apart and excluded from the per-step figure.
"""

from __future__ import annotations

import time


class RunTimer:
    """Counts steps, data-wait, validation and checkpoint seconds; predicts the run's total."""

    def __init__(
        self,
        total_steps: int,
        done_steps: int = 0,
        validations_left: int = 0,
        skip: int = 10,
        predict_at: int = 200,
        within_s: float = 50.0,
    ) -> None:
        self.total_steps, self.start_steps, self.validations_left = total_steps, done_steps, validations_left
        self.skip, self.predict_at, self.within_s = skip, predict_at, within_s
        self.started = time.perf_counter()
        self.steps = 0  # steps in this process
        self.data_wait = self.validation = self.checkpoint = 0.0
        self.validations = 0
        self._mark: tuple[float, float] | None = None  # (time, excluded seconds) after the skipped steps
        self.predicted_total: float | None = None
        self.predicted_at: int | None = None

    def _excluded(self) -> float:
        return self.validation + self.checkpoint

    def step_done(self) -> str | None:
        """Call after each step; returns the prediction message once (module docstring)."""
        self.steps += 1
        now = time.perf_counter()
        if self.steps == self.skip:
            self._mark = (now, self._excluded())
        due = self.steps >= self.predict_at or (self.steps >= self.skip + 10 and now - self.started >= self.within_s)
        if due and self.predicted_total is None and self._mark is not None:
            self.predicted_at = self.steps
            per_step = self.per_step(now)
            remaining = self.total_steps - self.start_steps - self.steps
            val = self.validation / self.validations if self.validations else 0.0
            val_left = max(0, self.validations_left - self.validations)
            self.predicted_total = (now - self.started) + per_step * remaining + val * val_left
            return (
                f"timing: {1000 * per_step:.0f} ms per step over steps {self.skip + 1}-{self.steps} "
                f"(data wait {100 * self.data_wait_share():.0f} %); predicted total for this run: "
                f"{self.predicted_total / 60:.1f} min ({remaining} steps to go"
                + (f", {val_left} validations of {val:.1f} s)" if self.validations else ", plus validation)")
            )
        return None

    def per_step(self, now: float | None = None) -> float:
        """Mean seconds per step after the first ``skip`` steps (warm-up, compilation)."""
        now = time.perf_counter() if now is None else now
        if self._mark is None or self.steps <= self.skip:
            return (now - self.started - self._excluded()) / max(self.steps, 1)
        t0, excl0 = self._mark
        return (now - t0 - (self._excluded() - excl0)) / (self.steps - self.skip)

    def seconds_left(self, now: float | None = None) -> float:
        """The rest of the run at the measured step and validation costs."""
        remaining = self.total_steps - self.start_steps - self.steps
        val = self.validation / self.validations if self.validations else 0.0
        return self.per_step(now) * remaining + val * max(0, self.validations_left - self.validations)

    def data_wait_share(self) -> float:
        busy = time.perf_counter() - self.started - self._excluded()
        return self.data_wait / busy if busy > 0 else 0.0

    def summary(self) -> dict:
        return {
            "steps": self.steps,
            "ms_per_step": 1000 * self.per_step(),
            "data_wait_share": self.data_wait_share(),
            "data_wait_s": self.data_wait,
            "validation_s": self.validation,
            "validations": self.validations,
            "checkpoint_s": self.checkpoint,
            "total_s": time.perf_counter() - self.started,
            "predicted_total_s": self.predicted_total,
            "predicted_after_steps": self.predicted_at,
        }
