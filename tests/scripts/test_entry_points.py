"""Every command-line entry point runs both as a module and as a file (torchrun takes a file path)."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

ENTRY_POINTS = ("train", "test", "evaluate", "predict", "biomarkers", "export", "synthetic", "benchmark")


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_runs_as_a_file_from_any_folder(name, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_runs_as_a_module(name):
    done = subprocess.run([sys.executable, "-m", f"scripts.{name}", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_entry_point_is_listed_and_none_imports_another():
    found = {p.stem for p in (REPO / "scripts").glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}
    assert found == set(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        tree = ast.parse((REPO / "scripts" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {f"scripts.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.module == "scripts" for a in node.names}
        assert not {f"scripts.{other}" for other in ENTRY_POINTS} & imported, name
