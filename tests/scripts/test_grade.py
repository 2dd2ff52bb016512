"""sh grade.sh: starts the page's server on 127.0.0.1, says where, stops on Ctrl+C; mistakes are messages."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["sh", str(REPO / "grade.sh"), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_grade_sh_serves_the_folder_and_stops_on_ctrl_c(real_data, tmp_path):
    root = real_data / "DRIVE_AV" / "test"
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(root / "1st_manual" / "01_test.png", maps)
    server = _start(["maps", "--photos", str(root / "images"), "--corrections", "graded", "--port", "0"], cwd=tmp_path)
    try:
        lines = [server.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("grading 1 photograph(s) of ")
        address = lines[1].split()[1]
        assert address.startswith("http://127.0.0.1:") and str(tmp_path / "graded") in lines[1]
        with urllib.request.urlopen(address + "api/photos", timeout=30) as answer:
            assert [p["id"] for p in json.load(answer)["photos"]] == ["01_test"]
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "every correction is saved" in out and "Traceback" not in err


def test_mistakes_are_messages(tmp_path):
    done = subprocess.run(["sh", str(REPO / "grade.sh"), "nowhere"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "nowhere: folder not found" in done.stderr
    (tmp_path / "empty").mkdir()
    done = subprocess.run(["sh", str(REPO / "grade.sh"), "empty"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "no image files in" in done.stderr and "empty" in done.stderr
