"""predict.py --cohort as a cohort study runs it: a generated cohort of small photographs with broken
ones among them, killed with SIGKILL and resumed, split over torchrun processes (one killed), a disk
that fills up, changed settings and inputs. "Equal" means byte for byte: tables and every picture."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_networks
from scripts.data.synthetic import make_sample
from scripts.io.checkpoint import generators_state, save_atomic
from scripts.predict import main
from tests.conftest import REPO
from tests.helpers import png_header

SIZE = 32
BAD = {  # name -> what the failures table must say about it
    "zz_corrupt.jpg": "cannot be read as an image",
    "zz_truncated.png": "corrupt or truncated",
    "zz_empty.png": "cannot be read as an image",
    "zz_huge.png": "pixels, more than the",
}


def make_cohort(folder: Path, n: int) -> None:
    """``n`` distinct small photographs (four synthetic eyes, each at many brightness offsets), a grey
    one, a copy of the second under another name, and the broken files of ``BAD``."""
    folder.mkdir(parents=True)
    eyes = [np.asarray(Image.fromarray(make_sample(s, 96)[0]).resize((SIZE, SIZE))).astype(np.int16) for s in range(4)]
    for i in range(n):
        Image.fromarray(np.clip(eyes[i % 4] + i // 4 % 60, 0, 255).astype(np.uint8)).save(folder / f"p{i:05d}.png")
    Image.fromarray(eyes[0].astype(np.uint8)).convert("L").save(folder / "zz_grey.png")
    shutil.copy(folder / "p00001.png", folder / "zz_twin.png")
    (folder / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    (folder / "zz_truncated.png").write_bytes((folder / "p00002.png").read_bytes()[:150])
    (folder / "zz_empty.png").write_bytes(b"")
    png_header(folder / "zz_huge.png", 20000, 20000)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_atomic(generators_state(build_networks(4), {"n_filters": 4, "image_size": [SIZE, SIZE]}, epoch=1), path)
    return path


def _command(photos: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--cohort", *extra]


def _sh(args: list[str], nproc: int = 1, threads: int = 1) -> subprocess.Popen:
    """predict.sh in its own process group, as a user starts it."""
    env = {**os.environ, "PYTHON": sys.executable, "NPROC": str(nproc), "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        ["sh", str(REPO / "predict.sh"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _records(out: Path) -> int:
    return len(list((out / "records").glob("*.json"))) if (out / "records").is_dir() else 0


def _kill_when(proc: subprocess.Popen, out: Path, records: int, pid: int | None = None) -> None:
    """SIGKILL (the whole process group, or ``pid`` alone) once ``records`` photographs are finished."""
    deadline = time.monotonic() + 240
    while _records(out) < records:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL) if pid else os.killpg(proc.pid, signal.SIGKILL)


def _outputs(out: Path) -> dict[str, bytes]:
    """Every table and picture (not the records, which hold timings, nor the page, which names the run)."""
    return {
        p.name: p.read_bytes()
        for p in out.iterdir()
        if p.is_file() and p.name not in ("report.html", "run.json") and not p.name.startswith(".")
    }


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_cohort_killed_twice_and_resumed_equals_an_uninterrupted_run(checkpoint, tmp_path):
    photos = tmp_path / "cohort"
    make_cohort(photos, 1500)
    common = ["--no-biomarkers", "--batch-size", "16"]
    rc, _, err = _finish(_sh(_command(photos, checkpoint, tmp_path / "whole", *common)))
    assert rc == 1, err  # some photographs failed: the exit status says so
    whole = _outputs(tmp_path / "whole")

    out = tmp_path / "killed"
    overlapped = [*common, "--decode-workers", "1", "--finish-workers", "1"]
    _kill_when(_sh(_command(photos, checkpoint, out, *overlapped)), out, 300)
    _kill_when(_sh(_command(photos, checkpoint, out, *overlapped)), out, 900)  # killed again, resumed further
    started = _records(out)
    rc, stdout, err = _finish(_sh(_command(photos, checkpoint, out, *overlapped)))
    assert rc == 1, err
    assert f"{1506 - started} photograph(s) processed now, {started} already finished" in stdout
    assert "holds 1502 finished and 4 failed" in stdout
    assert _outputs(out) == whole  # tables and every map, byte for byte

    failures = {Path(r["file"]).name: r for r in _rows(out / "failures.csv")}
    assert set(failures) == set(BAD)
    for name, reason in BAD.items():
        assert reason in failures[name]["reason"] and failures[name]["stage"] == "decode"
        assert failures[name]["traceback"] == ""  # a bad input, not a bug
    rows = {r["id"]: r for r in _rows(out / "predictions.csv")}
    assert len(rows) == 1502 and rows["zz_twin"]["duplicate_of"] == "p00001" and rows["p00001"]["duplicate_of"] == ""
    assert (rows["zz_grey"]["width"], rows["zz_grey"]["height"]) == (str(SIZE), str(SIZE))


def _worker_pid(launcher: int, out: Path) -> int | None:
    """A torchrun worker of ``launcher`` (a process whose command line names scripts/predict.py and ``out``)."""
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = stat.read_bytes().decode(errors="replace")
            ppid = int((stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == launcher and "predict.py" in cmd and str(out) in cmd:
            return int(stat.parent.name)
    return None


def test_torchrun_two_processes_equal_one_and_a_killed_process_loses_nothing(checkpoint, tmp_path):
    photos = tmp_path / "cohort"
    make_cohort(photos, 240)
    common = ["--no-biomarkers", "--batch-size", "16"]
    rc, _, err = _finish(_sh(_command(photos, checkpoint, tmp_path / "one", *common)))
    assert rc == 1, err
    one = _outputs(tmp_path / "one")

    rc, stdout, err = _finish(_sh(_command(photos, checkpoint, tmp_path / "two", *common), nproc=2))
    assert rc == 1, err
    assert "process 0 of 2" in stdout and "process 1 of 2" in stdout
    assert _outputs(tmp_path / "two") == one

    out = tmp_path / "dies"
    proc = _sh(_command(photos, checkpoint, out, *common), nproc=2)
    deadline = time.monotonic() + 120
    while (worker := _worker_pid(proc.pid, out)) is None or _records(out) < 60:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    _kill_when(proc, out, 60, pid=worker)
    rc, _, _ = _finish(proc)
    assert rc != 0  # torchrun stops the other process too
    kept = _records(out)
    assert kept >= 60
    rc, stdout, err = _finish(_sh(_command(photos, checkpoint, out, *common)))  # resumed by one process
    assert rc == 1, err
    assert f"{kept} already finished" in stdout
    assert _outputs(out) == one


def _small(tmp_path: Path, n: int = 12) -> Path:
    photos = tmp_path / "small"
    photos.mkdir()
    for i in range(n):
        img = make_sample(i, 64)[0]
        Image.fromarray(img).save(photos / f"s{i:02d}.png")
    return photos


def test_a_full_disk_stops_the_run_keeps_what_was_finished_and_a_resume_completes(
    checkpoint, tmp_path, monkeypatch, capsys
):
    photos = _small(tmp_path)
    assert main(_command(photos, checkpoint, tmp_path / "whole")) == 0
    whole = _outputs(tmp_path / "whole")
    capsys.readouterr()

    out = tmp_path / "out"
    save, calls = Image.Image.save, {"n": 0}
    pictures = Counter(
        p.name.rsplit("_", 2 if p.name.endswith("_zone_b.png") else 1)[0] for p in (tmp_path / "whole").glob("*.png")
    )
    five_and_a_half = sum(pictures[name] for name in sorted(pictures)[:5]) + 2

    def fills_up(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > five_and_a_half:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(self, *a, **k)

    monkeypatch.setattr(Image.Image, "save", fills_up)
    assert main(_command(photos, checkpoint, out)) == 2
    err = capsys.readouterr().err
    assert "no space left on the disk" in err and f"the photographs finished in {out} are kept" in err
    assert "Traceback" not in err
    assert _records(out) == 5
    monkeypatch.undo()
    assert main(_command(photos, checkpoint, out)) == 0
    assert "7 photograph(s) processed now, 5 already finished" in capsys.readouterr().out
    assert _outputs(out) == whole


def test_other_settings_are_refused_unless_overwrite_and_a_changed_photograph_is_redone(checkpoint, tmp_path, capsys):
    photos = _small(tmp_path, 4)
    out = tmp_path / "out"
    assert main(_command(photos, checkpoint, out, "--no-biomarkers")) == 0
    assert main(_command(photos, checkpoint, out, "--no-biomarkers", "--tta")) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds a run made with other settings (tta: False then, True now)" in err
    assert _records(out) == 4
    Image.fromarray(make_sample(9, 64)[0]).save(photos / "s01.png")  # new content under an old name
    assert main(_command(photos, checkpoint, out, "--no-biomarkers")) == 0
    assert "1 photograph(s) processed now, 3 already finished" in capsys.readouterr().out
    assert main(_command(photos, checkpoint, out, "--no-biomarkers", "--tta", "--overwrite")) == 0
    assert "4 photograph(s) processed now, 0 already finished" in capsys.readouterr().out
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "holds no prediction run to resume" in capsys.readouterr().err


def test_a_bug_in_one_photograph_is_a_failure_with_its_traceback_and_the_others_finish(
    checkpoint, tmp_path, monkeypatch, capsys
):
    import scripts.inference.pipeline as pipeline

    photos = _small(tmp_path, 4)
    measure = pipeline.measure

    def broken_for_s02(classes, disc, fov, pixel_um, source):
        if source.endswith("s02.png"):
            raise ZeroDivisionError("a bug")
        return measure(classes, disc, fov, pixel_um, source=source)

    monkeypatch.setattr(pipeline, "measure", broken_for_s02)
    out = tmp_path / "out"
    assert main(_command(photos, checkpoint, out)) == 1
    captured = capsys.readouterr()
    assert "Traceback" in captured.out and "ZeroDivisionError: a bug" in captured.out  # in the log
    [failed] = _rows(out / "failures.csv")
    assert failed["id"] == "s02" and failed["stage"] == "finish"
    assert "ZeroDivisionError: a bug" in failed["reason"] and "broken_for_s02" in failed["traceback"]
    assert [r["id"] for r in _rows(out / "predictions.csv")] == ["s00", "s01", "s03"]
    monkeypatch.undo()
    assert main(_command(photos, checkpoint, out, "--retry-failed")) == 0
    assert [r["id"] for r in _rows(out / "predictions.csv")] == ["s00", "s01", "s02", "s03"]
    assert _rows(out / "failures.csv") == []


def test_a_dark_photograph_is_rejected_without_biomarkers_and_a_blank_picture_fails(checkpoint, tmp_path, capsys):
    photos = _small(tmp_path, 3)
    dark = (np.asarray(Image.open(photos / "s00.png")) * 0.08).astype(np.uint8)
    Image.fromarray(dark).save(photos / "dark.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photos / "blank.png")
    out = tmp_path / "out"
    assert main(_command(photos, checkpoint, out)) == 1
    [failed] = _rows(out / "failures.csv")
    assert failed["id"] == "blank" and "not a fundus photograph: it is one colour throughout" in failed["reason"]
    rows = {r["id"]: r for r in _rows(out / "predictions.csv")}
    assert rows["dark"]["quality"] == "reject" and "too dark (brightness" in rows["dark"]["quality_reason"]
    for r in rows.values():  # biomarkers exactly where the photograph was not rejected
        assert (r["quality"] == "reject") == (r["disc_x"] == ""), r
    assert {r["quality"] for r in rows.values()} > {"reject"}


def test_a_second_command_on_the_same_folder_is_refused_while_the_first_runs(checkpoint, tmp_path, capsys):
    photos = tmp_path / "cohort"
    make_cohort(photos, 400)
    out = tmp_path / "out"
    first = _sh(_command(photos, checkpoint, out, "--no-biomarkers"))
    deadline = time.monotonic() + 120
    while _records(out) < 1:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    assert main(_command(photos, checkpoint, out, "--no-biomarkers")) == 2
    assert f"--out {out} is in use by another process (pid {first.pid}" in capsys.readouterr().err
    rc, _, err = _finish(first)
    assert rc == 1, err  # the first one finished its run (with the broken files failed)
