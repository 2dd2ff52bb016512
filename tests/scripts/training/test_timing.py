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


def test_a_slow_run_gets_its_prediction_within_the_first_minute(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    timer = RunTimer(total_steps=1000, skip=10, predict_at=200, within_s=50.0)
    said = []
    for step in range(1, 40):
        clock[0] += 3.0  # 3 s per step: 200 steps would take 10 minutes
        message = timer.step_done()
        if message:
            said.append((step, message))
    assert len(said) == 1 and said[0][0] == 20  # the first step at least 10 past the warm-up, after 50 s
    assert timer.predicted_at == 20 and timer.summary()["predicted_after_steps"] == 20
    assert timer.predicted_total == 60.0 + 3.0 * 980
