"""The job folder: its path is made in one place and cannot point outside the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.io.job import JobFolderError, job_folder, runs_folder, snapshot_epoch, snapshot_path


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
