"""The training run's policies, called directly: snapshots, stopping, loss means, resume checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from scripts.core.distributed import Context
from scripts.core.errors import UsageError
from scripts.io.checkpoint import CheckpointError
from scripts.io.job import snapshot_kind, snapshot_path
from scripts.io.resume import RESUME_LOCKED, load_resume
from scripts.training.loop import LossMeans, StopFlag, TrainingRun, resolve
from scripts.training.options import TrainOptions
from tests.helpers import fake_plan_step


def _snapshots(total: int, save_from: int, save_every: int, stop_at: int | None = None) -> list[tuple[int, str]]:
    last = stop_at or total
    return [(e, kind) for e in range(1, last + 1) if (kind := snapshot_kind(e, save_from, save_every, e == last))]


def test_snapshots_follow_the_paper_and_a_run_ending_off_the_grid_gets_a_stop_snapshot():
    assert _snapshots(1500, 1300, 10) == [(e, "protocol") for e in range(1300, 1501, 10)]  # 21, as the paper
    assert _snapshots(100, 94, 3) == [(94, "protocol"), (97, "protocol"), (100, "protocol")]  # the demo
    assert _snapshots(1500, 1300, 10, stop_at=734) == [(734, "stop")]  # a time-limited run: its last epoch
    assert _snapshots(1500, 1300, 10, stop_at=1305) == [(1300, "protocol"), (1305, "stop")]
    assert _snapshots(1500, 1300, 10, stop_at=1310)[-1] == (1310, "protocol")  # on the grid: one file
    assert snapshot_path(Path("j"), 7, "stop").name == "stop_epoch_0007.pt"
    assert snapshot_path(Path("j"), 1300, "protocol").name == "epoch_1300.pt"


def test_stop_flag_ignores_signals_in_dataloader_workers():
    flag = StopFlag()
    flag._pid = os.getpid() + 1  # as seen from a forked worker
    flag._handle(2, None)
    assert flag.set is False
    flag._pid = os.getpid()
    flag._handle(2, None)
    assert flag.set is True


def test_loss_means_are_interval_means_and_start_again_after_each_read():
    means = LossMeans()
    for a, b in ((1.0, 4.0), (3.0, 8.0)):
        means.add({"G": torch.tensor(a), "D": torch.tensor(b)})
    shown, rates = means.read({"G": torch.tensor(1e-3, dtype=torch.float64)})
    assert shown == {"G": 2.0, "D": 6.0} and rates == {"G": pytest.approx(1e-3)}
    means.add({"G": torch.tensor(10.0), "D": torch.tensor(0.0)})
    assert means.read({})[0] == {"G": 10.0, "D": 0.0}


def _run(**overrides) -> TrainingRun:
    opts = TrainOptions(out=Path("/nonexistent"), dataset="X", job_name="j", epochs=10, **overrides)
    return TrainingRun(opts, Context(), torch.device("cpu"))


def test_the_last_epoch_is_the_schedules_or_the_first_past_the_time_limit(monkeypatch):
    run = _run(time_limit=1.0)
    run.started = 0.0
    monkeypatch.setattr("time.perf_counter", lambda: 59.0)
    assert not run.is_last_epoch(3) and run.is_last_epoch(10)
    monkeypatch.setattr("time.perf_counter", lambda: 61.0)
    assert run.is_last_epoch(3)


def test_max_steps_and_a_stop_request_stop_after_the_current_step():
    run = _run(max_steps=5)
    flag = StopFlag()
    run.global_step = 4
    assert not run.should_stop(flag)
    run.global_step = 5
    assert run.should_stop(flag)
    run = _run()
    assert not run.should_stop(flag)
    flag.set = True
    assert run.should_stop(flag)


def test_resume_refuses_a_changed_locked_setting_naming_both_values(tmp_path):
    from scripts.io.checkpoint import FORMAT, save_atomic

    saved = {
        "variant": "v2021",
        "dataset": "X",
        "n_filters": 8,
        "seed": 3,
        "batch_size": 2,
        "image_size": [64, 64],
        "uniform": False,
        "validation": 10.0,
        "learning_rate": 8e-4,
        "alpha": 0.5,
        "beta": 1.1,
        "gamma": 0.08,
        "adv_double_sigmoid": False,
    }
    state = {
        "format": FORMAT,
        "config": saved,
        "nets": {k: {} for k in ("G_A", "G_V", "G", "D")},
        "trainer": {"opts": {}, "scheds": {"G": {"lr": torch.tensor(1.0)}}},
        "rng": {},
        "epoch": 2,
    }
    save_atomic(state, tmp_path / "last.pt")
    asked = dict(saved, image_size=None)  # no --image-size: the saved one
    assert load_resume(tmp_path / "last.pt", asked, torch.device("cpu"))["epoch"] == 2
    assert set(asked) == set(RESUME_LOCKED)
    with pytest.raises(CheckpointError, match=r"seed=3, this command asks for 4"):
        load_resume(tmp_path / "last.pt", dict(asked, seed=4), torch.device("cpu"))


def test_resolving_auto_settings_returns_new_options_and_leaves_the_given_ones_alone():
    asked = TrainOptions(step_mode="auto", amp="off", n_filters=32)
    resolved = resolve(asked, torch.device("cpu"))
    assert (resolved.step_mode, resolved.amp) == ("reuse", None)  # the CPU's fastest exact step at n = 32
    assert (asked.step_mode, asked.amp) == ("auto", "off")
    assert resolve(TrainOptions(n_filters=8), torch.device("cpu")).step_mode == "batched"
    with pytest.raises(UsageError, match="--cuda-graph on needs a CUDA device"):
        resolve(TrainOptions(cuda_graph="on"), torch.device("cpu"))


def test_the_parser_and_the_options_share_their_defaults():
    from scripts.train import build_parser, options

    assert options(build_parser().parse_args([])) == TrainOptions()
    assert options(build_parser().parse_args(["--image-size", "64", "32"])).image_size == (64, 32)


def _gpu_run(monkeypatch, free_gib: float, **opts) -> TrainingRun:
    """A run on a (pretended) 16 GiB CUDA device with ``free_gib`` free, whose memory plan is made up:
    batched 15, reuse 11, with checkpointing 4.8 / 2.6, literal 12.5 / 2.7 GiB of planned peak."""
    from scripts.training import memory

    monkeypatch.setattr(memory, "plan_step", fake_plan_step())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free_gib * 2**30), 16 * 2**30))
    run = TrainingRun(TrainOptions(dataset="DRIVE_AV", **opts), Context(), torch.device("cuda"))
    run.model_size, run.per_rank = (592, 592), 2
    return run


def test_on_cuda_the_default_is_the_fastest_exact_step_that_fits_and_the_log_says_why(monkeypatch, caplog):
    import logging

    run = _gpu_run(monkeypatch, free_gib=15.0)
    with caplog.at_level(logging.INFO, logger="avseg"):
        run.fit_memory()
    assert (run.opts.step_mode, run.opts.activation_checkpointing) == ("reuse", "off")
    said = next(r.message for r in caplog.records if "memory plan" in r.message)
    assert "reuse step, planned peak 11.0 GiB" in said and "15.0 GiB free" in said and "batched (17.0 GiB)" in said
    run = _gpu_run(monkeypatch, free_gib=6.0)
    run.fit_memory()
    assert (run.opts.step_mode, run.opts.activation_checkpointing) == ("batched", "on")


def test_on_cuda_a_batch_that_fits_in_no_way_stops_before_training_with_what_to_change(monkeypatch):
    run = _gpu_run(monkeypatch, free_gib=2.0)
    with pytest.raises(UsageError) as err:
        run.fit_memory()
    message = str(err.value)
    for part in (
        "does not fit this GPU",
        "reuse + checkpointing",
        "3.4 GiB",
        "2.0 GiB of 16.0 GiB are free",
        "--image-size",
        "--batch-size 1",
        "--amp bf16",
        "not exact",
    ):
        assert part in message, part


def test_on_cuda_explicit_settings_that_may_not_fit_are_kept_with_a_warning(monkeypatch, caplog):
    import logging

    run = _gpu_run(monkeypatch, free_gib=2.0, step_mode="batched", activation_checkpointing="off")
    with caplog.at_level(logging.WARNING, logger="avseg"):
        run.fit_memory()
    assert (run.opts.step_mode, run.opts.activation_checkpointing) == ("batched", "off")
    assert any("going on as asked" in r.message for r in caplog.records)


def test_within_the_first_minute_the_log_timing_json_and_tensorboard_say_what_the_run_costs(tmp_path, caplog):
    import json
    import logging

    from model import build_networks
    from scripts.core.seeding import seed_everything
    from scripts.training import GANTrainer
    from scripts.training.timing import RunTimer

    seed_everything(0)

    run = TrainingRun(TrainOptions(out=tmp_path, dataset="X", job_name="j"), Context(), torch.device("cpu"))
    run.job_dir.mkdir(parents=True)
    run.trainer = GANTrainer(build_networks(4, with_discriminator=True), mode="reuse", checkpointing=True)
    run.step, run.workers, run.steps_per_epoch = run.trainer.step, 0, 5
    run.timer = RunTimer(total_steps=100, skip=1, predict_at=3)
    scalars = []
    run.writer = type("W", (), {"add_scalar": lambda self, *a: scalars.append(a)})()
    message = None
    while message is None:
        message = run.timer.step_done()
    with caplog.at_level(logging.INFO, logger="avseg"):
        run.first_report(message)
    first = json.loads((run.job_dir / "timing.json").read_text())["first_minute"]
    assert first["configuration"] == "reuse + checkpointing" and first["after_steps"] == 3
    assert first["peak_mb"] > 0 and first["device_total_mb"] > first["peak_mb"]
    assert set(first) >= {"ms_per_step", "data_wait_share", "projected_total_min", "memory_measured"}
    assert scalars and scalars[0][0] == "memory/peak_mb"
    said = next(r.message for r in caplog.records if r.message.startswith("timing:"))
    assert "reuse + checkpointing step; peak process memory" in said
