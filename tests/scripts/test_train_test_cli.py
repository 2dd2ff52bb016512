"""End to end: train on synthetic data, resume exactly, test; and the errors users meet first."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scripts import test as test_cli
from scripts import train as train_cli

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--dataset",
    "SYNTHETIC",
    "--n-filters",
    "8",
    "--image-size",
    "64",
    "64",
    "--val-every",
    "1",
    "--save-from",
    "1",
    "--save-every",
    "1",
    "--seed_num",
    "3",
]


def _train(tmp: Path, data: Path, job: str, *extra: str) -> int:
    return train_cli.main(
        [*TINY, "--data-root", str(data), "--out", str(tmp), "--runs-dir", str(tmp / "runs"), "--job_name", job, *extra]
    )


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    assert _train(tmp, synthetic_root, "e2e", "--epochs", "2") == 0
    return tmp


@pytest.mark.slow
def test_train_writes_checkpoints_config_and_tensorboard(trained):
    job = trained / "SYNTHETIC" / "e2e"
    assert sorted(p.name for p in job.iterdir() if not p.name.startswith(".")) == [
        "best.pt",
        "config.json",
        "epoch_0001.pt",
        "epoch_0002.pt",
        "last.pt",
        "timing.json",
    ]
    assert not (job / ".train.lock.owner").exists()  # the lock's owner record goes with the run
    cfg = json.loads((job / "config.json").read_text())
    assert cfg["n_filters"] == 8 and cfg["image_size"] == [64, 64] and cfg["forward_reuse"] is True
    assert cfg["versions"]["torch"] == str(torch.__version__)
    last = torch.load(job / "last.pt", weights_only=True)
    assert set(last["nets"]) == {"G_A", "G_V", "G", "D"} and last["epoch"] == 3
    assert set(last["trainer"]["opts"]) == {"G_A", "G_V", "G", "D"}
    assert any((trained / "runs" / "e2e").iterdir())


@pytest.mark.slow
def test_test_cli_writes_maps_tables_and_figures(trained, synthetic_root, tmp_path, capsys):
    rc = test_cli.main(
        [
            "--dataset",
            "SYNTHETIC",
            "--data-root",
            str(synthetic_root),
            "--out",
            str(trained),
            "--job_name",
            "e2e",
            "--maps-dir",
            str(tmp_path / "Final_pre"),
            "--results",
            str(tmp_path / "res"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "Paper table row" in out and "Threshold-free" in out
    printed_row = out.split("binary 'ROC'/'PR' as in the paper):\n", 1)[1].splitlines()[0]
    for sub, size in (("small_pre", (64, 64)), ("raw_pre", (64, 64))):
        files = sorted((tmp_path / "Final_pre" / sub).glob("*.png"))
        assert [f.name for f in files] == ["01_test.png", "02_test.png", "03_test.png"]
        assert all(Image.open(f).size == size for f in files)
    row = json.loads((tmp_path / "res" / "paper_row.json").read_text())
    assert row["checkpoints"] == ["epoch_0001", "epoch_0002"]
    for part in printed_row.split("  "):  # "F1: 12.34 +- 0.56" as printed, and in paper_row.json
        name, numbers = part.split(": ")
        mean, std = (float(v) for v in numbers.split(" +- "))
        assert (mean, std) == (
            pytest.approx(row["percent"][name]["mean"], abs=0.006),
            pytest.approx(row["percent"][name]["std"], abs=0.006),
        )
    for col in ("Sensitivity", "ROC", "F1", "PR", "MSE"):
        assert 0 <= row["percent"][col]["mean"] <= 100 and row["percent"][col]["std"] >= 0
    lines = (tmp_path / "res" / "per_image.csv").read_text().splitlines()
    assert lines[0].startswith("checkpoint,id,class,accuracy") and len(lines) == 1 + 2 * 3 * 5
    # summary.csv reads back under its own header: one row per checkpoint and class, F1 in the f1 column
    with open(tmp_path / "res" / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert [(r["checkpoint"], r["class"]) for r in summary[:2]] == [("epoch_0001", "artery"), ("epoch_0001", "vein")]
    assert {r["checkpoint"] for r in summary} == {"epoch_0001", "epoch_0002"} and "id" not in summary[0]
    averages = [r for r in summary if r["class"] == "average"]
    for r, cp in zip(averages, row["checkpoints"]):
        assert float(r["f1"]) == pytest.approx(row["per_checkpoint"][cp]["F1"] / 100, abs=1e-9)
    figures = sorted((tmp_path / "res" / "figures").glob("*_test.png"))
    assert len(figures) == 3
    assert Image.open(figures[0]).size[0] >= 900  # titled panels and legends, whatever the raw size
    # the zone-B figure of each prediction, and every zone-B vessel of the truth and the prediction listed
    # (this untrained model marks nearly every pixel a vessel: no vessel of its own crosses the circle)
    assert len(list((tmp_path / "res" / "figures").glob("*_test_zone_b.png"))) == 3
    with open(tmp_path / "res" / "vessels.csv", newline="") as f:
        vessels = list(csv.DictReader(f))
    assert {r["source"] for r in vessels} <= {"truth", "predicted"} and {r["id"] for r in vessels} == {
        "01_test",
        "02_test",
        "03_test",
    }
    bio = {(r["id"], r["measure"]): r for r in csv.DictReader(open(tmp_path / "res" / "biomarkers.csv"))}
    for image in ("01_test", "02_test", "03_test"):  # the truth's vessels are those its CRAE counted
        used = [r for r in vessels if r["source"] == "truth" and r["id"] == image and r["knudtson"] == "1"]
        arteries = sum(1 for r in used if r["class"] == "artery")
        assert arteries == min(6, float(bio[(image, "artery_zone_b_vessels")]["truth"]))
    # segments: per image and checkpoint in segments.csv, pooled per checkpoint in paper_row.json
    with open(tmp_path / "res" / "segments.csv", newline="") as f:
        seg_rows = list(csv.DictReader(f))
    assert [(r["checkpoint"], r["id"]) for r in seg_rows][:2] == [("epoch_0001", "01_test"), ("epoch_0001", "02_test")]
    assert len(seg_rows) == 2 * 3
    for cp in row["checkpoints"]:
        pooled = row["segments"]["per_checkpoint"][cp]
        mine = [r for r in seg_rows if r["checkpoint"] == cp]
        assert pooled["segments"] == sum(float(r["segments"]) for r in mine) > 0
        detected = sum(float(r["detected"]) for r in mine)
        assert pooled["detection_rate"] == pytest.approx(detected / pooled["segments"])
    assert "crossing_mixed_rate" in out and row["segments"]["settings"]["mixed_share"] == 0.1


@pytest.mark.slow
def test_resume_ends_with_the_same_weights(synthetic_root, tmp_path):
    assert _train(tmp_path, synthetic_root, "straight", "--epochs", "2") == 0
    # 5 training images, batch 2: 3 steps per epoch; stop inside epoch 2, then resume
    assert _train(tmp_path, synthetic_root, "interrupted", "--epochs", "2", "--max-steps", "4") == 0
    stopped = torch.load(tmp_path / "SYNTHETIC" / "interrupted" / "last.pt", weights_only=True)
    assert (stopped["epoch"], stopped["step_in_epoch"]) == (2, 1)
    assert _train(tmp_path, synthetic_root, "interrupted", "--epochs", "2", "--resume") == 0
    a = torch.load(tmp_path / "SYNTHETIC" / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "SYNTHETIC" / "interrupted" / "last.pt", weights_only=True)
    for net in a["nets"]:
        for key, value in a["nets"][net].items():
            assert torch.equal(value, b["nets"][net][key]), (net, key)


def test_unknown_dataset_name(tmp_path, capsys):
    assert _train(tmp_path, tmp_path, "x", "--epochs", "1", "--dataset", "DRIVE") == 2
    err = capsys.readouterr().err
    assert "unknown dataset name 'DRIVE'" in err and "DRIVE_AV" in err


def test_missing_data_folder_says_where_and_how(tmp_path, capsys):
    assert _train(tmp_path, tmp_path / "nowhere", "x", "--epochs", "1", "--dataset", "DRIVE_AV") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nowhere' / 'DRIVE_AV'}" in err and "train.sh demo" in err


def test_test_without_checkpoints(synthetic_root, tmp_path, capsys):
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(tmp_path),
                "--job_name",
                "never",
            ]
        )
        == 2
    )
    assert "no checkpoints" in capsys.readouterr().err


def test_incompatible_checkpoint(synthetic_root, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    assert test_cli.main(["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--checkpoint", str(bad)]) == 2
    assert "not a checkpoint of this project" in capsys.readouterr().err


def test_corrupt_checkpoint(synthetic_root, tmp_path, capsys):
    bad = tmp_path / "epoch_0001.pt"
    bad.write_bytes(b"\x00garbage")
    assert test_cli.main(["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--checkpoint", str(bad)]) == 2
    assert "cannot be loaded safely" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_but_absent(synthetic_root, tmp_path, capsys):
    assert _train(tmp_path, synthetic_root, "x", "--epochs", "1", "--device", "cuda") == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_cuda_graph_on_the_cpu_is_refused_by_name(synthetic_root, tmp_path, capsys):
    assert _train(tmp_path, synthetic_root, "x", "--epochs", "1", "--device", "cpu", "--cuda-graph", "on") == 2
    assert "--cuda-graph on needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "SYNTHETIC" / "x").exists()  # refused before any work


def test_train_sh_takes_any_dataset_folder_and_names_a_missing_one(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "AVSEG_DATA": str(tmp_path)}
    res = subprocess.run(["sh", str(REPO / "train.sh"), "NOPE"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "unknown dataset name 'NOPE'" in res.stderr
    res = subprocess.run(["sh", str(REPO / "train.sh"), "--epochs", "3"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "usage: sh train.sh" in res.stderr


def test_time_limit_ends_cleanly_after_an_epoch(synthetic_root, tmp_path):
    assert _train(tmp_path, synthetic_root, "timed", "--epochs", "50", "--time-limit", "0") == 0
    job = tmp_path / "SYNTHETIC" / "timed"
    assert sorted(p.name for p in job.glob("*.pt")) == ["best.pt", "epoch_0001.pt", "last.pt"]
    assert torch.load(job / "last.pt", weights_only=True)["epoch"] == 2


def test_fp16_needs_cuda(synthetic_root, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert _train(tmp_path, synthetic_root, "x", "--epochs", "1", "--amp", "fp16") == 2
    assert "--amp fp16 needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_last_pt_by_wall_clock_is_resumable_mid_epoch(synthetic_root, tmp_path):
    """With a tiny interval, last.pt is rewritten after every step (in the background), and the
    file left by a run cut short resumes to the uninterrupted run's weights."""
    assert _train(tmp_path, synthetic_root, "straight", "--epochs", "2") == 0
    assert (
        _train(tmp_path, synthetic_root, "often", "--epochs", "2", "--last-every-minutes", "1e-6", "--max-steps", "5")
        == 0
    )
    job = tmp_path / "SYNTHETIC" / "often"
    assert not list(job.glob(".*.tmp"))
    assert _train(tmp_path, synthetic_root, "often", "--epochs", "2", "--resume") == 0
    a = torch.load(tmp_path / "SYNTHETIC" / "straight" / "last.pt", weights_only=True)
    b = torch.load(job / "last.pt", weights_only=True)
    for net in a["nets"]:
        for key, value in a["nets"][net].items():
            assert torch.equal(value, b["nets"][net][key]), (net, key)
    timing = json.loads((job / "timing.json").read_text())
    assert timing["steps"] == 1 and timing["step_mode"] == "batched" and timing["checkpoint_s"] >= 0


def test_compile_failure_falls_back_to_eager(synthetic_root, tmp_path, monkeypatch, caplog):
    def broken_compile(model, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("no C++ compiler found")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level("WARNING", logger="avseg"):
        assert _train(tmp_path, synthetic_root, "compiled", "--epochs", "1", "--compile") == 0
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    assert (tmp_path / "SYNTHETIC" / "compiled" / "epoch_0001.pt").is_file()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--epochs", "0", "argument --epochs/-e: must be at least 1, got 0"),
        ("--batch-size", "0", "argument --batch-size/-b: must be at least 1, got 0"),
        ("--log-every", "x", "argument --log-every: expected a whole number, got 'x'"),
        ("--last-every-minutes", "0", "argument --last-every-minutes: must be positive, got 0"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(synthetic_root, tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        _train(tmp_path, synthetic_root, "x", option, value)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_bad_worker_count_is_refused(synthetic_root, tmp_path, capsys):
    assert _train(tmp_path, synthetic_root, "x", "--epochs", "1", "--workers", "many") == 2
    assert "--workers" in capsys.readouterr().err


def test_a_run_shorter_than_save_from_leaves_a_stop_snapshot(synthetic_root, tmp_path):
    assert _train(tmp_path, synthetic_root, "short", "--epochs", "1", "--save-from", "1300") == 0
    assert sorted(p.name for p in (tmp_path / "SYNTHETIC" / "short").glob("*epoch_*.pt")) == ["stop_epoch_0001.pt"]


@pytest.mark.slow
def test_tensorboard_gets_interval_means_every_log_every_steps(synthetic_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _train(tmp_path, synthetic_root, "logged", "--epochs", "2", "--log-every", "2") == 0
    events = EventAccumulator(str(tmp_path / "runs" / "logged"))
    events.Reload()
    for tag in ("loss/G", "loss/D", "loss/D_A", "loss/G_V"):
        assert [e.step for e in events.Scalars(tag)] == [2, 4, 6], tag  # 3 steps per epoch, 2 epochs
        assert all(0 < e.value < 10 for e in events.Scalars(tag))
    assert [e.value for e in events.Scalars("lr/G")] == pytest.approx([8e-4] * 3)


@pytest.mark.slow
def test_resume_refuses_changed_settings_and_says_when_nothing_is_left(synthetic_root, tmp_path, capsys, caplog):
    assert _train(tmp_path, synthetic_root, "r", "--epochs", "1") == 0
    capsys.readouterr()
    assert _train(tmp_path, synthetic_root, "r", "--epochs", "2", "--resume", "--image-size", "32", "32") == 2
    err = capsys.readouterr().err
    assert "trained with image-size=[64, 64], this command asks for [32, 32]" in err
    assert _train(tmp_path, synthetic_root, "r", "--epochs", "2", "--resume", "--beta", "2.0") == 2
    assert "beta=1.1" in capsys.readouterr().err
    with caplog.at_level("WARNING", logger="avseg"):
        assert _train(tmp_path, synthetic_root, "r", "--epochs", "1", "--resume") == 0
    assert "already finished its 1 epochs: nothing was trained" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: torch.save(torch.zeros(3), p), "not a resumable last.pt"),
        (lambda p: torch.save({"format": "avseg-v1", "trainer": {}, "config": {}}, p), "lacks"),
        (None, "no checkpoint at"),
    ],
)
def test_resume_with_the_wrong_file(synthetic_root, tmp_path, capsys, content, message):
    path = tmp_path / "given.pt"
    if content is not None:
        content(path)
    assert _train(tmp_path, synthetic_root, "w", "--epochs", "1", "--resume", str(path)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "--checkpoint" not in err


def test_generator_checkpoint_missing_parts(synthetic_root, tmp_path, capsys):
    bad = tmp_path / "epoch_0001.pt"
    torch.save({"format": "avseg-v1", "config": {"n_filters": 8}, "nets": {"G_A": {}}}, bad)
    assert test_cli.main(["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--checkpoint", str(bad)]) == 2
    assert "lacks nets.G_V, nets.G" in capsys.readouterr().err


def test_project_checkpoint_given_as_original(trained, synthetic_root, capsys):
    snap = str(trained / "SYNTHETIC" / "e2e" / "epoch_0001.pt")
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--original",
                snap,
                snap,
                snap,
                "--image-size",
                "64",
                "64",
            ]
        )
        == 2
    )
    assert "checkpoint of this project" in capsys.readouterr().err


def test_a_bad_validation_label_stops_the_run_before_training(synthetic_root, tmp_path, capsys):
    import shutil

    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(synthetic_root / "SYNTHETIC", data / "SYNTHETIC")
    for f in sorted(
        (data / "SYNTHETIC" / "training" / "1st_manual").glob("*.png")
    ):  # every label, the validation one too
        Image.fromarray(np.full((64, 64), 9, np.uint8), mode="L").save(f)
    assert _train(tmp_path, data, "bad", "--epochs", "3") == 2
    err = capsys.readouterr().err
    assert (
        "6 files have problems" not in err and "files have problems" in err
    )  # train and validation split, each at once
    assert not (tmp_path / "SYNTHETIC" / "bad").exists()  # nothing trained, nothing written


def test_output_folders_that_cannot_be_made_are_named(synthetic_root, trained, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert train_cli.main([*TINY, "--data-root", str(synthetic_root), "--out", str(blocker), "--epochs", "1"]) == 2
    assert f"--out {blocker / 'SYNTHETIC'}" in capsys.readouterr().err
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(trained),
                "--job_name",
                "e2e",
                "--results",
                str(blocker),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"--results {blocker}" in err and "a file of that name is in the way" in err


def test_test_cli_writes_biomarkers_side_by_side(trained, synthetic_root, tmp_path):
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(trained),
                "--job_name",
                "e2e",
                "--maps-dir",
                str(tmp_path / "m"),
                "--results",
                str(tmp_path / "res"),
            ]
        )
        == 0
    )
    with open(tmp_path / "res" / "biomarkers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows} == {"01_test", "02_test", "03_test"}
    by = {(r["id"], r["measure"]): r for r in rows}
    for key in ("avr", "crae_px", "artery_calibre_px", "vein_tortuosity_distance", "vessel_fractal_dimension"):
        r = by[("01_test", key)]
        if r["truth"] not in ("", "nan") and r["predicted"] not in ("", "nan"):
            assert float(r["difference"]) == pytest.approx(float(r["predicted"]) - float(r["truth"]), abs=1e-6)
    assert float(by[("01_test", "vessel_density_fov")]["truth"]) > 0
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(trained),
                "--job_name",
                "e2e",
                "--maps-dir",
                str(tmp_path / "m2"),
                "--results",
                str(tmp_path / "r2"),
                "--no-biomarkers",
            ]
        )
        == 0
    )
    assert not (tmp_path / "r2" / "biomarkers.csv").exists()


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.mark.slow
def test_a_job_folder_holds_one_run(synthetic_root, tmp_path, capsys):
    job = tmp_path / "SYNTHETIC" / "one"
    assert _train(tmp_path, synthetic_root, "one", "--epochs", "2") == 0
    before = _digest(job)
    capsys.readouterr()
    # another seed into the same folder: refused, nothing touched
    assert _train(tmp_path, synthetic_root, "one", "--epochs", "1", "--seed_num", "4") == 2
    err = capsys.readouterr().err
    assert f"{job} already holds a training run" in err
    assert "--resume" in err and "--job_name" in err and "--overwrite" in err
    assert _digest(job) == before
    assert _train(tmp_path, synthetic_root, "one", "--epochs", "1", "--resume", "--overwrite") == 2
    assert "give one of them" in capsys.readouterr().err
    # --overwrite: the old run's files and TensorBoard events are gone, the new run's are there
    old_events = sorted((tmp_path / "runs" / "one").glob("events.out.tfevents.*"))
    assert _train(tmp_path, synthetic_root, "one", "--epochs", "1", "--seed_num", "4", "--overwrite") == 0
    assert sorted(p.name for p in job.glob("*.pt")) == ["best.pt", "epoch_0001.pt", "last.pt"]  # no epoch_0002.pt
    assert json.loads((job / "config.json").read_text())["seed"] == 4
    assert not set(old_events) & set((tmp_path / "runs" / "one").glob("events.out.tfevents.*"))


def test_a_live_run_on_the_job_folder_blocks_a_second_start(synthetic_root, tmp_path, capsys):
    from scripts.io.job import LOCK_NAME
    from scripts.io.lock import FolderLock

    job = tmp_path / "SYNTHETIC" / "busy"
    with FolderLock(job / LOCK_NAME, f"the job folder {job}"):  # as a training process holds it
        assert _train(tmp_path, synthetic_root, "busy", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert f"the job folder {job} is in use by another process (pid {os.getpid()}" in err
    assert not list(job.glob("*.pt"))


@pytest.mark.slow
def test_resume_refuses_a_data_set_whose_files_changed(synthetic_root, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic_root / "SYNTHETIC", data / "SYNTHETIC")
    assert _train(tmp_path, data, "d", "--epochs", "2", "--max-steps", "1") == 0
    split = data / "SYNTHETIC" / "training"
    shutil.copy(split / "images" / "01_training.png", split / "images" / "99_training.png")
    shutil.copy(split / "1st_manual" / "01_training.png", split / "1st_manual" / "99_training.png")
    capsys.readouterr()
    assert _train(tmp_path, data, "d", "--epochs", "2", "--resume") == 2
    err = capsys.readouterr().err
    assert "the run was trained on 6 images" in err and "now holds 7; added: 99_training.png" in err
    assert "split would change" in err


@pytest.mark.slow
def test_the_paper_row_leaves_out_where_a_stopped_run_paused(synthetic_root, tmp_path, capsys):
    job = tmp_path / "SYNTHETIC" / "paused"
    # stopped by the time limit after epoch 1 (before --save-from 3), then resumed to the end
    assert _train(tmp_path, synthetic_root, "paused", "--epochs", "4", "--save-from", "3", "--time-limit", "0") == 0
    assert sorted(p.name for p in job.glob("*epoch_*.pt")) == ["stop_epoch_0001.pt"]
    assert _train(tmp_path, synthetic_root, "paused", "--epochs", "4", "--save-from", "3", "--resume") == 0
    capsys.readouterr()
    common = [
        "--dataset",
        "SYNTHETIC",
        "--data-root",
        str(synthetic_root),
        "--out",
        str(tmp_path),
        "--job_name",
        "paused",
        "--maps-dir",
        str(tmp_path / "maps"),
        "--no-biomarkers",
    ]
    assert test_cli.main([*common, "--results", str(tmp_path / "res")]) == 0
    assert "3 images, 2 checkpoint(s): epochs 3, 4 (protocol)" in capsys.readouterr().out
    row = json.loads((tmp_path / "res" / "paper_row.json").read_text())
    assert row["checkpoints"] == ["epoch_0003", "epoch_0004"]
    assert row["snapshots"] == {"rule": "protocol", "epochs": [3, 4]}
    import hashlib

    assert [w["sha256"] for w in row["weights"]] == [
        hashlib.sha256((job / f"epoch_000{e}.pt").read_bytes()).hexdigest() for e in (3, 4)
    ]
    assert test_cli.main([*common, "--results", str(tmp_path / "all"), "--snapshots", "all"]) == 0
    assert json.loads((tmp_path / "all" / "paper_row.json").read_text())["snapshots"]["epochs"] == [1, 3, 4]


@pytest.mark.slow
def test_test_outputs_are_complete_or_absent(trained, synthetic_root, tmp_path, monkeypatch):
    from scripts.evaluation import protocol

    common = [
        "--dataset",
        "SYNTHETIC",
        "--data-root",
        str(synthetic_root),
        "--out",
        str(trained),
        "--job_name",
        "e2e",
        "--maps-dir",
        str(tmp_path / "maps"),
        "--results",
        str(tmp_path / "res"),
    ]
    assert test_cli.main(common) == 0
    results, maps = _digest(tmp_path / "res"), _digest(tmp_path / "maps" / "raw_pre")
    assert "biomarkers.csv" in results and len(maps) == 3
    calls = {"n": 0}
    save = protocol.save_prob_png

    def dies_on_the_fourth_map(path, prob):  # as a kill in the middle of writing the maps
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        save(path, prob)

    monkeypatch.setattr(protocol, "save_prob_png", dies_on_the_fourth_map)
    with pytest.raises(KeyboardInterrupt):
        test_cli.main([*common, "--split", "training", "--snapshots", "all"])
    monkeypatch.undo()
    assert _digest(tmp_path / "res") == results and _digest(tmp_path / "maps" / "raw_pre") == maps  # the old run, whole
    # a finished run replaces every file: nothing of the earlier run survives next to the new one
    assert test_cli.main([*common, "--split", "training", "--no-biomarkers"]) == 0
    assert "biomarkers.csv" not in _digest(tmp_path / "res")
    assert sorted(_digest(tmp_path / "maps" / "raw_pre")) == sorted(
        p.name for p in (synthetic_root / "SYNTHETIC" / "training" / "images").glob("*.png")
    )
    assert sorted(p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name) == []


def test_a_checkpoint_path_that_is_a_pipe_or_a_device_says_so(synthetic_root, tmp_path, capsys):
    fifo = tmp_path / "best.pt"
    os.mkfifo(fifo)
    common = [
        "--dataset",
        "SYNTHETIC",
        "--data-root",
        str(synthetic_root),
        "--maps-dir",
        str(tmp_path / "m"),
        "--results",
        str(tmp_path / "r"),
    ]
    assert test_cli.main([*common, "--checkpoint", str(fifo)]) == 2
    assert f"{fifo}: is a named pipe (FIFO), not a checkpoint file" in capsys.readouterr().err
    assert test_cli.main([*common, "--checkpoint", "/dev/null"]) == 2
    assert "/dev/null: is a device, not a checkpoint file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_test_cli_prints_and_writes_both_protocols(trained, synthetic_root, tmp_path, capsys):
    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(trained),
                "--job_name",
                "e2e",
                "--maps-dir",
                str(tmp_path / "m"),
                "--results",
                str(tmp_path / "res"),
                "--no-biomarkers",
                "--protocol",
                "all",
                "--topo-paths",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.index("Paper table row") < out.index("RRWNet protocol") and "Topology artery" in out
    row = json.loads((tmp_path / "res" / "paper_row.json").read_text())
    assert row["rrwnet"]["settings"] == {"seed": 3, "topo_paths": 20}
    assert set(row["rrwnet"]["per_checkpoint"]) == {"epoch_0001", "epoch_0002"}
    with open(tmp_path / "res" / "rrwnet.csv", newline="") as f:
        per_checkpoint = list(csv.DictReader(f))
    assert [r["checkpoint"] for r in per_checkpoint] == ["epoch_0001", "epoch_0002"]
    mean = np.mean([float(r["rrwnet_av_all_accuracy"]) for r in per_checkpoint])
    assert row["rrwnet"]["mean"]["rrwnet_av_all_accuracy"] == pytest.approx(mean)
    with open(tmp_path / "res" / "rrwnet_per_image.csv", newline="") as f:
        per_image = list(csv.DictReader(f))
    assert [r["id"] for r in per_image] == ["01_test", "02_test", "03_test"] * 2  # the ids of per_image.csv
    # the same maps scored by evaluate.py give the same RRWNet numbers (the maps hold what test.py scored)
    from scripts import evaluate as evaluate_cli

    assert (
        evaluate_cli.main(
            [
                "--pred",
                str(tmp_path / "m" / "raw_pre"),
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--protocol",
                "rrwnet",
                "--topo-paths",
                "20",
                "--seed",
                "3",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    scored = json.loads((tmp_path / "e.json").read_text())["rrwnet"]
    last = {k: v for k, v in row["rrwnet"]["per_checkpoint"]["epoch_0002"].items()}
    assert scored["av_all"]["accuracy"] == pytest.approx(last["rrwnet_av_all_accuracy"], abs=1e-12)
    assert scored["topology"]["tree"]["cor_mean"] == pytest.approx(last["rrwnet_topology_tree_cor_mean"], abs=1e-12)


def assert_tables_show_their_files(found: dict, folder: Path) -> None:
    """Every CSV table on the page holds its file's header and values (rounded to 4 decimals)."""
    assert found["tables"], "no CSV table on the page"
    for shown in found["tables"]:
        with open(folder / shown["file"], newline="") as f:
            header, *rows = list(csv.reader(f))
        assert shown["header"] == header and len(shown["rows"]) == len(rows), shown["file"]
        for cells, row in zip(shown["rows"], rows):
            for (text, exact), value in zip(cells, row):
                try:
                    number = float(value)
                except ValueError:
                    assert text == value and exact is None
                    continue
                assert exact == value, (shown["file"], value, exact)
                if not np.isnan(number):
                    assert float(text) == pytest.approx(number, abs=5.1e-5), (shown["file"], value, text)


@pytest.mark.slow
def test_report_page_shows_the_results_in_a_browser(trained, synthetic_root, tmp_path, chromium):
    import shutil

    from tests.browser import check_page, sort_by

    assert (
        test_cli.main(
            [
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--out",
                str(trained),
                "--job_name",
                "e2e",
                "--maps-dir",
                str(tmp_path / "m"),
                "--results",
                str(tmp_path / "res"),
                "--runs-dir",
                str(trained / "runs"),
                "--protocol",
                "all",
                "--topo-paths",
                "20",
            ]
        )
        == 0
    )
    copy = tmp_path / "elsewhere" / "res"  # relative links: the copied folder's page works on its own
    shutil.copytree(tmp_path / "res", copy)
    shutil.rmtree(tmp_path / "res")
    found = check_page(copy / "report.html", chromium)
    assert found["errors"] == []
    assert [ok for _, ok in found["images"]] == [True] * 7  # three figures, three zone-B figures, the curves
    assert [src for src, _ in found["images"]][:3] == [f"figures/0{i}_test.png" for i in (1, 2, 3)]
    row = json.loads((copy / "paper_row.json").read_text())
    for col, v in row["percent"].items():
        assert f"{v['mean']:.2f} ± {v['std']:.2f}" in found["text"], col
    assert {t["file"] for t in found["tables"]} == {
        "summary.csv",
        "per_image.csv",
        "segments.csv",
        "biomarkers.csv",
        "vessels.csv",
        "rrwnet.csv",
        "rrwnet_per_image.csv",
    }
    assert_tables_show_their_files(found, copy)
    assert "no TensorBoard events" not in found["text"] and "SYNTHETIC test: e2e" in found["text"]
    up = [float(v) for v in sort_by(copy / "report.html", chromium, "per_image.csv", "f1", 1)]
    down = [float(v) for v in sort_by(copy / "report.html", chromium, "per_image.csv", "f1", 2)]
    assert up == sorted(up) and down == sorted(up, reverse=True) and len(up) == 2 * 3 * 5


def test_activation_checkpointing_trains_to_the_same_checkpoint(synthetic_root, tmp_path):
    """--activation-checkpointing on: the same run, bit for bit (the CPU is deterministic), recorded in
    config.json and timing.json."""
    for name, extra in (("plain", "off"), ("ckpt", "on")):
        assert _train(tmp_path, synthetic_root, name, "--epochs", "1", "--activation-checkpointing", extra) == 0
    a, b = (torch.load(tmp_path / "SYNTHETIC" / j / "last.pt", weights_only=True) for j in ("plain", "ckpt"))
    for net in a["nets"]:
        assert all(torch.equal(a["nets"][net][k], b["nets"][net][k]) for k in a["nets"][net]), net
    config = json.loads((tmp_path / "SYNTHETIC" / "ckpt" / "config.json").read_text())
    timing = json.loads((tmp_path / "SYNTHETIC" / "ckpt" / "timing.json").read_text())
    assert config["activation_checkpointing"] == "on" and timing["activation_checkpointing"] is True
    assert timing["memory_plan"] is None  # planned on CUDA only


def test_given_checkpoints_are_scored_once_each_and_best_records_its_epoch(trained, synthetic_root, tmp_path, capsys):
    job = trained / "SYNTHETIC" / "e2e"
    common = [
        "--dataset",
        "SYNTHETIC",
        "--data-root",
        str(synthetic_root),
        "--maps-dir",
        str(tmp_path / "m"),
        "--no-biomarkers",
    ]
    twice = ["--checkpoint", str(job / "epoch_0001.pt"), "--checkpoint", str(job / "epoch_0001.pt")]
    assert test_cli.main([*common, *twice, "--results", str(tmp_path / "r1")]) == 2
    assert "is the same file as --checkpoint" in capsys.readouterr().err
    one = ["--checkpoint", str(job / "epoch_0001.pt")]
    assert test_cli.main([*common, *one, "--snapshots", "all", "--results", str(tmp_path / "r2")]) == 2
    assert "--snapshots all chooses among the job's snapshots" in capsys.readouterr().err
    best = ["--out", str(trained), "--job_name", "e2e", "--snapshots", "best", "--results", str(tmp_path / "r3")]
    assert test_cli.main([*common, *best]) == 0
    saved = torch.load(job / "best.pt", weights_only=True)["epoch"]
    assert json.loads((tmp_path / "r3" / "paper_row.json").read_text())["snapshots"] == {
        "rule": "best",
        "epochs": [saved],
    }


def test_output_to_a_file_gets_progress_lines_with_step_losses_speed_and_time_left(synthetic_root, tmp_path, caplog):
    with caplog.at_level("INFO", logger="avseg"):
        assert (
            _train(tmp_path, synthetic_root, "quiet", "--epochs", "2", "--log-every", "2", "--progress-every", "1e-6")
            == 0
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{i}/6" for i in range(1, 7)]  # 3 steps per epoch
    assert "(epoch 2/2)" in lines[-1] and "steps/s" in lines[-1] and "min left" in lines[-1]
    assert "losses D_A " not in lines[0] and "losses D_A " in lines[1]  # means read every --log-every steps


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_with_or_without_resume(synthetic_root, tmp_path, caplog):
    assert _train(tmp_path, synthetic_root, "killed", "--epochs", "1") == 0
    job = tmp_path / "SYNTHETIC" / "killed"
    for path in job.glob("*.pt"):  # what a kill -9 in the first epoch leaves: config.json and timing.json
        path.unlink()
    with caplog.at_level("INFO", logger="avseg"):
        assert _train(tmp_path, synthetic_root, "killed", "--epochs", "1", "--resume") == 0
    assert "stopped before it saved its first last.pt" in caplog.text and (job / "last.pt").is_file()
    for path in job.glob("*.pt"):
        path.unlink()
    caplog.clear()
    with caplog.at_level("INFO", logger="avseg"):
        assert _train(tmp_path, synthetic_root, "killed", "--epochs", "1") == 0
    assert "stopped before it saved a checkpoint; starting again" in caplog.text


@pytest.mark.slow
def test_a_full_disk_while_testing_is_a_message_and_maps_default_to_a_folder_per_job(
    trained, synthetic_root, tmp_path, monkeypatch, capsys
):
    import errno

    from scripts.evaluation import protocol

    monkeypatch.chdir(tmp_path)
    common = ["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--out", str(trained)]
    assert test_cli.main([*common, "--job_name", "e2e", "--no-biomarkers"]) == 0
    maps = tmp_path / "Final_pre" / "SYNTHETIC" / "e2e"
    before = _digest(maps / "raw_pre")
    assert len(before) == 3 and (tmp_path / "results" / "SYNTHETIC" / "e2e" / "paper_row.json").is_file()
    capsys.readouterr()

    def full(path, prob):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(protocol, "save_prob_png", full)
    assert test_cli.main([*common, "--job_name", "e2e", "--no-biomarkers"]) == 2
    err = capsys.readouterr().err
    assert f"could not write the outputs of --maps-dir {maps.resolve()}: no space left on the disk" in err
    assert "Traceback" not in err and _digest(maps / "raw_pre") == before


@pytest.mark.slow
def test_the_demo_commands_draw_their_set_train_and_test(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "AVSEG_DATA": str(tmp_path / "data")}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", *argv], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    train = run(str(REPO / "train.sh"), "demo", "--epochs", "1")
    assert train.returncode == 0, train.stderr
    recipe = json.loads((tmp_path / "data" / "SYNTHETIC" / "recipe.json").read_text())
    assert recipe == {"train": 24, "test": 12, "size": 128, "seed": 0, "vessel_width": 1.5}
    assert (tmp_path / "SYNTHETIC" / "demo" / "stop_epoch_0001.pt").is_file()
    test = run(str(REPO / "test.sh"), "demo", "--snapshots", "all", "--no-biomarkers")
    assert test.returncode == 0, test.stderr
    assert (tmp_path / "results" / "SYNTHETIC" / "demo" / "paper_row.json").is_file()
    assert (tmp_path / "Final_pre" / "SYNTHETIC" / "demo" / "raw_pre" / "01_test.png").is_file()
    again = run(str(REPO / "train.sh"), "demo", "--epochs", "1", "--overwrite")
    assert again.returncode == 0 and "of this recipe is there already" in again.stdout


@pytest.mark.slow
def test_a_run_records_its_variant_and_resume_refuses_another(synthetic_root, tmp_path, capsys):
    assert _train(tmp_path, synthetic_root, "var", "--epochs", "1") == 0
    job = tmp_path / "SYNTHETIC" / "var"
    assert json.loads((job / "config.json").read_text())["variant"] == "v2021"
    last = torch.load(job / "last.pt", weights_only=True)
    assert last["config"]["variant"] == "v2021"
    assert torch.load(job / "best.pt", weights_only=True)["config"]["variant"] == "v2021"
    last["config"]["variant"] = "v2023"
    torch.save(last, job / "last.pt")
    capsys.readouterr()
    assert _train(tmp_path, synthetic_root, "var", "--epochs", "2", "--resume") == 2
    assert "this run trains the v2023 variant" in capsys.readouterr().err
    del last["config"]["variant"]  # written before checkpoints recorded it: the 2021 method
    torch.save(last, job / "last.pt")
    assert _train(tmp_path, synthetic_root, "var", "--epochs", "2", "--resume") == 0


@pytest.mark.slow
def test_v2023_trains_resumes_and_is_tested_with_its_own_protocol(synthetic_root, tmp_path, capsys):
    """--variant v2023 end to end: its networks and objective, its variant in config.json and every
    checkpoint, --resume as itself only, schedulers stepped once per epoch, and test.py scoring best.pt
    (its code's checkpoint) with SPEC 9.4's protocol unless told otherwise."""
    assert _train(tmp_path, synthetic_root, "v23", "--variant", "v2023", "--epochs", "2") == 0
    job = tmp_path / "SYNTHETIC" / "v23"
    assert json.loads((job / "config.json").read_text())["variant"] == "v2023"
    last = torch.load(job / "last.pt", weights_only=True)
    assert last["config"]["variant"] == "v2023"
    assert last["nets"]["G"]["head.weight"].shape[0] == 4  # four classes, softmax
    assert all(int(s["last_epoch"]) == 2 for s in last["trainer"]["scheds"].values())  # once per epoch, not per step
    capsys.readouterr()
    assert _train(tmp_path, synthetic_root, "v23", "--epochs", "3", "--resume") == 2
    assert "trains the v2023 variant and cannot be continued as v2021" in capsys.readouterr().err
    assert _train(tmp_path, synthetic_root, "v23", "--variant", "v2023", "--epochs", "3", "--resume") == 0
    assert (
        int(next(iter(torch.load(job / "last.pt", weights_only=True)["trainer"]["scheds"].values()))["last_epoch"]) == 3
    )

    common = ["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--out", str(tmp_path)]
    common += ["--job_name", "v23", "--no-biomarkers", "--maps-dir", str(tmp_path / "maps")]
    assert test_cli.main([*common, "--results", str(tmp_path / "res")]) == 0
    row = json.loads((tmp_path / "res" / "paper_row.json").read_text())
    assert row["variant"] == "v2023" and row["protocol"].startswith("SPEC 9.4")
    assert row["checkpoints"] == ["best"] and row["snapshots"]["rule"] == "best"
    assert "n/a" in (tmp_path / "res" / "report.html").read_text() or row["percent"]["F1"]["mean"] is not None
    assert test_cli.main([*common, "--results", str(tmp_path / "all"), "--snapshots", "protocol"]) == 0
    assert json.loads((tmp_path / "all" / "paper_row.json").read_text())["checkpoints"] == [
        "epoch_0001",
        "epoch_0002",
        "epoch_0003",
    ]
    capsys.readouterr()
    assert test_cli.main([*common, "--results", str(tmp_path / "r2"), "--variant", "v2021"]) == 2
    assert "holds the v2023 variant" in capsys.readouterr().err

    # the same weights as the authors' release files go through the same scoring path, to the same numbers
    release = tmp_path / "release"
    release.mkdir()
    best = torch.load(job / "best.pt", weights_only=True)
    for name, file in {"G": "CP_best_F1_all.pth", "G_A": "CP_best_F1_A.pth", "G_V": "CP_best_F1_V.pth"}.items():
        torch.save(best["nets"][name], release / file)
    as_release = ["--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--no-biomarkers"]
    as_release += ["--release", str(release), "--image-size", "64", "64", "--maps-dir", str(tmp_path / "maps_r")]
    assert test_cli.main([*as_release, "--results", str(tmp_path / "res_r")]) == 0
    released = json.loads((tmp_path / "res_r" / "paper_row.json").read_text())
    assert released["protocol"] == row["protocol"]
    assert released["per_checkpoint"]["release"] == row["per_checkpoint"]["best"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["v2021", "v2023"])
def test_a_stop_after_an_epochs_last_step_still_ends_that_epoch(synthetic_root, tmp_path, variant):
    """Stopped right after the last step of an epoch (3 steps per epoch here), the run first ends the
    epoch as a run going on would: its validation, its snapshot and (v2023) its scheduler step; the
    resumed run then ends with the files and bits of an uninterrupted one."""
    v = ["--variant", variant]
    assert _train(tmp_path, synthetic_root, "whole", *v, "--epochs", "2") == 0
    assert _train(tmp_path, synthetic_root, "split", *v, "--epochs", "2", "--max-steps", "3") == 0
    split = tmp_path / "SYNTHETIC" / "split"
    assert (split / "epoch_0001.pt").is_file() and (split / "best.pt").is_file()
    state = torch.load(split / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (2, 0)
    assert int(state["trainer"]["scheds"]["G"]["last_epoch"]) == (1 if variant == "v2023" else 3)
    assert _train(tmp_path, synthetic_root, "split", *v, "--epochs", "2", "--resume") == 0
    whole = tmp_path / "SYNTHETIC" / "whole"
    names = sorted(p.name for p in whole.iterdir() if p.suffix == ".pt")
    assert names == sorted(p.name for p in split.iterdir() if p.suffix == ".pt")
    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (whole, split))
    for net in a["nets"]:
        for key, value in a["nets"][net].items():
            assert torch.equal(value, b["nets"][net][key]), (net, key)
    for name, sched in a["trainer"]["scheds"].items():
        for key, value in sched.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["trainer"]["scheds"][name][key])), (name, key)
