"""scripts/inference/batch.py: output names and the pictures and statistics of one photograph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.inference.batch import output_names
from scripts.inference.pipeline import save_outputs


@pytest.mark.parametrize(
    "files, expected",
    [
        (["a/01.jpg", "b/01.png", "c/02.tif"], ["a__01_jpg", "b__01_png", "02"]),
        (["x/01.jpg", "x/01.png"], ["01_jpg", "01_png"]),
        (["x/01.JPG", "y/01.jpg"], ["x__01_jpg", "y__01_jpg"]),
        (["p/a__01.jpg", "p/a/01.jpg", "p/b/01.jpg"], ["a__01", "a__01_jpg", "b__01_jpg"]),
    ],
)
def test_output_names_are_unique_and_predictable(tmp_path, files, expected):
    paths = [tmp_path / f for f in files]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    assert output_names(paths) == expected


def _u8(prob: torch.Tensor) -> np.ndarray:
    return (prob * 255).round().byte().permute(1, 2, 0).numpy()


def test_four_pictures_and_the_ratio_only_with_both_classes(tmp_path):
    photo = np.zeros((32, 32, 3), np.uint8)
    fov = np.ones((32, 32), bool)
    prob = torch.zeros(3, 32, 32)
    prob[2, :4] = 1.0  # vein only: rows 0-3
    stats = save_outputs(tmp_path, "x", photo, _u8(prob), (prob > 0.5).numpy(), fov)
    assert stats["artery_vein_ratio"] is None and stats["vein_fraction"] == pytest.approx(4 / 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_av.png", "x_overlay.png", "x_prob.png", "x_vessel.png"]
    av = np.asarray(Image.open(tmp_path / "x_av.png"))
    assert (av[:4] == (0, 0, 255)).all() and (av[4:] == 0).all()
    prob[0, 10:12] = 1.0  # and some artery: rows 10-11
    assert save_outputs(tmp_path, "y", photo, _u8(prob), (prob > 0.5).numpy(), fov)[
        "artery_vein_ratio"
    ] == pytest.approx(0.5)
