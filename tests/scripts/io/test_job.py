"""The job folder: its path is made in one place and cannot point outside the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scripts.io.checkpoint import FORMAT, save_atomic, versions
from scripts.io.job import (
    JobFolderError,
    check_free,
    job_folder,
    maps_folder,
    results_folder,
    runs_folder,
    snapshot_epoch,
    snapshot_path,
)


def test_a_job_folder_is_out_dataset_job_and_its_events_runs_job():
    assert job_folder(Path("o"), "DRIVE_AV", "paper") == Path("o/DRIVE_AV/paper")
    assert runs_folder(Path("runs"), "paper") == Path("runs/paper")


@pytest.mark.parametrize("job", ["..", ".", "", "a/b", "../x", "a\\b"])
def test_a_job_name_that_would_leave_the_output_folder_is_refused_by_name(job):
    with pytest.raises(JobFolderError, match="the job name .* must be a plain folder name"):
        job_folder(Path("o"), "DRIVE_AV", job)
    with pytest.raises(JobFolderError, match="the job name"):
        runs_folder(Path("runs"), job)


def test_a_dataset_name_that_would_leave_the_output_folder_is_refused():
    with pytest.raises(JobFolderError, match="the dataset name '..'"):
        job_folder(Path("o"), "..", "paper")


def test_snapshot_names_round_trip():
    for epoch, kind in ((7, "stop"), (1300, "protocol")):
        assert snapshot_epoch(snapshot_path(Path("j"), epoch, kind).with_suffix("")) == epoch


def _a_run(job: Path) -> None:
    """The files a training run writes (the same formats as scripts/training)."""
    job.mkdir(parents=True)
    save_atomic({"format": FORMAT, "epoch": 1, "nets": {}}, job / "epoch_0001.pt")
    save_atomic({"format": FORMAT, "trainer": {}}, job / "last.pt")
    (job / "config.json").write_text(json.dumps({"dataset": "SYNTHETIC", "versions": versions()}))
    (job / "timing.json").write_text(json.dumps({"step_mode": "batched", "steps_per_epoch": 6, "ms_per_step": 9.0}))


def test_overwrite_deletes_the_files_a_run_wrote(tmp_path):
    _a_run(tmp_path / "job")
    assert [p.name for p in check_free(tmp_path / "job", resume=False, overwrite=True)] == [
        "config.json",
        "epoch_0001.pt",
        "last.pt",
        "timing.json",
    ]


@pytest.mark.parametrize(
    "name, content",
    [
        ("config.json", b'{"lr": 0.1}'),  # a user's own config
        ("config.json", b"not json"),
        ("timing.json", b'{"lap": 3}'),
        ("best.pt", b"my model"),
        ("last.pt", None),  # a torch file that is not this project's
    ],
)
def test_overwrite_refuses_a_folder_holding_files_no_run_of_ours_wrote(tmp_path, name, content):
    _a_run(tmp_path / "job")
    if content is None:
        torch.save({"state_dict": {}}, tmp_path / "job" / name)
    else:
        (tmp_path / "job" / name).write_bytes(content)
    with pytest.raises(JobFolderError, match=f"holds {name}, which are not .* Nothing was deleted"):
        check_free(tmp_path / "job", resume=False, overwrite=True)
    assert (tmp_path / "job" / name).exists()


def test_default_results_and_maps_are_one_folder_per_run():
    assert results_folder("DRIVE_AV", "paper") == Path("results/DRIVE_AV/paper")
    assert maps_folder("DRIVE_AV", "paper") != maps_folder("DRIVE_AV", "other")
    for make in (results_folder, maps_folder):
        with pytest.raises(JobFolderError, match="plain folder name"):
            make("DRIVE_AV", "..")
