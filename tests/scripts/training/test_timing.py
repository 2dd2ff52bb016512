"""The run timer: per-step time without warm-up, excluded validation time, one early prediction."""

from __future__ import annotations

import time

from scripts.training.timing import RunTimer


def test_prediction_once_after_the_given_steps_and_validation_excluded(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    timer = RunTimer(total_steps=100, validations_left=2, skip=2, predict_at=6)
    messages = []
    for i in range(10):
        clock[0] += 5.0 if i < 2 else 1.0  # slow warm-up steps, then 1 s each
        if i == 3:
            clock[0] += 30.0  # a validation of 30 s
            timer.validation += 30.0
            timer.validations += 1
        messages.append(timer.step_done())
    said = [m for m in messages if m]
    assert len(said) == 1 and "1000 ms per step" in said[0]
    assert timer.per_step() == 1.0
    # at step 6: 44 s elapsed + 94 steps x 1 s + 1 validation left x 30 s
    assert timer.predicted_total == 44.0 + 94.0 + 30.0
    summary = timer.summary()
    assert summary["steps"] == 10 and summary["validation_s"] == 30.0 and summary["ms_per_step"] == 1000.0
