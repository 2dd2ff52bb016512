"""Every command-line entry point runs both as a module and as a file (torchrun takes a file path)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ENTRY_POINTS = (
    "train",
    "test",
    "evaluate",
    "predict",
    "biomarkers",
    "grade",
    "quality",
    "export",
    "synthetic",
    "benchmark",
    "launch",
)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_runs_as_a_file_from_any_folder(name, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_runs_as_a_module(name, capsys):
    """In-process (the file form above is the one that needs a fresh interpreter)."""
    import importlib

    with pytest.raises(SystemExit) as done:
        importlib.import_module(f"scripts.{name}").main(["--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


def test_runs_with_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "scripts.evaluate", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_every_entry_point_is_listed_and_none_imports_another():
    found = {p.stem for p in (REPO / "scripts").glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}
    assert found == set(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        tree = ast.parse((REPO / "scripts" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {
            f"scripts.{a.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "scripts"
            for a in node.names
        }
        assert not {f"scripts.{other}" for other in ENTRY_POINTS} & imported, name


# --- a user's mistake is a message (exit 2); a bug is a traceback (exit 1) --------------------

RUNNERS = {
    "train": "run",
    "test": "run",
    "predict": "run",
    "biomarkers": "measure_maps",
    "evaluate": "score_folder",
    "export": "export_checkpoint",
}


def _args(name: str, tmp_path) -> list[str]:
    return {
        "train": ["--dataset", "SYNTHETIC", "--data-root", str(tmp_path)],
        "test": ["--dataset", "SYNTHETIC", "--data-root", str(tmp_path)],
        "predict": [str(tmp_path), "--checkpoint", str(tmp_path / "c.pt")],
        "biomarkers": [str(tmp_path), "--csv", str(tmp_path / "b.csv")],
        "evaluate": ["--pred", str(tmp_path), "--dataset", "SYNTHETIC"],
        "export": ["--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "m.onnx")],
    }[name]


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_user_errors_exit_2_with_the_message_and_bugs_keep_their_traceback(name, tmp_path, monkeypatch, capsys):
    import importlib

    from scripts.core.errors import UserError

    module = importlib.import_module(f"scripts.{name}")

    def mistake(*args, **kwargs):
        raise UserError("the user's mistake, explained")

    def bug(*args, **kwargs):
        raise ValueError("an internal shape mismatch")  # what a numpy bug raises

    monkeypatch.setattr(module, RUNNERS[name], mistake)
    assert module.main(_args(name, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "error: the user's mistake, explained" in err and "Traceback" not in err
    monkeypatch.setattr(module, RUNNERS[name], bug)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        module.main(_args(name, tmp_path))


def test_every_project_error_is_a_user_error_and_none_is_a_value_error():
    from scripts.core.errors import UsageError, UserError
    from scripts.data.images import DataError
    from scripts.data.labels import LabelError
    from scripts.io.atomic import WriteError
    from scripts.io.checkpoint import CheckpointError
    from scripts.io.job import JobFolderError
    from scripts.io.lock import BusyError
    from scripts.io.staging import OutputFolderError

    for cls in (
        WriteError,
        CheckpointError,
        DataError,
        LabelError,
        UsageError,
        JobFolderError,
        BusyError,
        OutputFolderError,
    ):
        assert issubclass(cls, UserError) and not issubclass(cls, ValueError), cls
    assert issubclass(WriteError, OSError)  # callers that catch OSError around writes still do


def test_a_bug_in_a_command_exits_1_with_a_traceback(tmp_path):
    code = (
        "import sys; import scripts.evaluate as e\n"
        "def bug(*a, **k): raise IndexError('bug inside the library')\n"
        "e.score_folder = bug\n"
        f"sys.exit(e.main(['--pred', {str(tmp_path)!r}, '--dataset', 'SYNTHETIC']))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "IndexError: bug inside the library" in done.stderr


@pytest.mark.parametrize(
    ("args", "job", "preset"),
    [
        (["DRIVE_AV"], "paper", "--epochs 1500"),
        (["DRIVE_AV", "--variant", "v2023"], "paper_v2023", "--epochs 500"),
        (["LES-AV", "--variant=v2023", "--device", "cpu"], "paper_v2023", "--uniform --val-every 1"),
        (["demo", "--variant", "v2023"], "demo_v2023", "--epochs 55"),
    ],
)
def test_train_and_test_scripts_name_a_job_by_variant_and_use_its_settings(args, job, preset, tmp_path):
    """train.sh DATASET --variant v2023 runs the 2023 README's command into job paper_v2023 (demo:
    demo_v2023), and test.sh finds that job; what they run is printed by a stand-in interpreter."""
    env = {**os.environ, "PYTHON": "echo", "AVSEG_DATA": str(tmp_path)}  # (the demo's data step is echoed too)
    train = subprocess.run(["sh", str(REPO / "train.sh"), *args], capture_output=True, text=True, env=env)
    assert train.returncode == 0, train.stderr
    command = train.stdout.strip().splitlines()[-1]
    assert f"--job_name {job} " in command and preset in command
    assert command.endswith(" ".join(args[1:]))  # the user's options come last, so they win
    test = subprocess.run(["sh", str(REPO / "test.sh"), *args], capture_output=True, text=True, env=env)
    assert test.returncode == 0 and f"--job_name {job} " in test.stdout.strip() + " "
