"""The folder both grading test files grade."""

from __future__ import annotations

import shutil

import pytest

from scripts.grading.maps import MapOptions


@pytest.fixture()
def folder(real_data, tmp_path):
    """Two DRIVE test ground truths as the maps to grade, one broken map, one link out of the folder;
    the photographs and masks where the dataset keeps them."""
    root = real_data / "DRIVE_AV" / "test"
    maps = tmp_path / "maps"
    maps.mkdir()
    for key in ("01_test", "02_test"):
        shutil.copy(root / "1st_manual" / f"{key}.png", maps / f"{key}.png")
    (maps / "03_test.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    outside = tmp_path / "secret.png"
    shutil.copy(root / "1st_manual" / "04_test.png", outside)
    (maps / "04_test.png").symlink_to(outside)
    return maps, MapOptions(photos=root / "images", masks=root / "mask")
