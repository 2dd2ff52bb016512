"""Shared fixtures: paths to ../shared (skipped with a reason when absent) and synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVSEG_SHARED", REPO.parent / "shared"))
REAL_DATA = Path(os.environ.get("AVSEG_DATA", SHARED / "data"))
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "miccai2021_reference.pt").is_file():
        pytest.skip(f"reference fixtures not found in {REFERENCE} (set AVSEG_SHARED)")
    return REFERENCE


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "DRIVE_AV").is_dir():
        pytest.skip(f"real datasets not found in {REAL_DATA} (set AVSEG_DATA)")
    return REAL_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset (6 training, 3 test images at 64 px) shared by the session."""
    from scripts.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("data")
    write_dataset(root, "SYNTHETIC", n_train=6, n_test=3, size=64, seed=1)
    return root


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium for the page checks (tests/browser.py)."""
    from tests.browser import find_chromium

    found = find_chromium()
    if found is None:
        pytest.skip(
            "Chromium is not installed, so report.html is not checked in a browser here "
            "(Debian: apt-get install chromium, which .ci/run does where it runs as root; or set AVSEG_CHROMIUM)"
        )
    return found
