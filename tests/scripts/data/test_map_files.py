"""scripts/data/map_files.py: what kind a map file is, its image id, and its decoded classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.data.images import DataError
from scripts.data.map_files import Skipped, classify, image_id, read_map
from scripts.data.synthetic import make_sample

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_every_kind_is_told_from_the_values_or_refused_by_name():
    photo, label, _ = make_sample(0, 128)
    assert classify(Image.fromarray(label), "a") == "av"
    assert classify(Image.fromarray(np.where(label > 0, 200, 30).astype(np.uint8)), "p") == "prob"
    assert classify(Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8)), "i") == "index"
    assert classify(Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)), "v") == "vessel"
    with pytest.raises(DataError, match=r"odd.png: a one-channel image with values \[0, 7\]"):
        classify(Image.fromarray(np.array([[0, 7]], np.uint8)), "odd.png")
    with pytest.raises(DataError, match="photo.png: looks like a photograph"):
        classify(Image.fromarray(photo), "photo.png")


def test_the_three_kinds_of_one_map_decode_to_the_same_classes(tmp_path):
    """A 1 x 4 map: background, artery, vein, uncertain; as colours, as an index map, as probabilities."""
    colours = np.array([[(0, 0, 0), RED, BLUE, GREEN]], np.uint8)
    Image.fromarray(colours).save(tmp_path / "c_av.png")
    Image.fromarray(np.array([[0, 1, 2, 3]], np.uint8)).save(tmp_path / "i.png")
    prob = np.array([[(10, 20, 30), (240, 10, 20), (20, 10, 240), (200, 220, 10)]], np.uint8)  # x 255; RGB = A, U, V
    Image.fromarray(prob).save(tmp_path / "p_prob.png")
    expected = np.array([[[0, 1, 0, 0]], [[0, 0, 1, 0]], [[0, 0, 0, 1]]], bool)  # artery, vein, uncertain
    for name, kind in (("c_av.png", "av"), ("i.png", "index"), ("p_prob.png", "prob")):
        classes, found = read_map(tmp_path / name, "prob" if kind == "prob" else "auto")
        assert found == kind and classes.dtype == bool
        np.testing.assert_array_equal(classes, expected, err_msg=name)


def test_a_vessel_map_is_skipped_and_noise_is_refused_by_name(tmp_path):
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "v.png")
    with pytest.raises(Skipped, match="v.png: a binary vessel map"):
        read_map(tmp_path / "v.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(DataError, match="x.png"):
        read_map(tmp_path / "x.png", "av")


def test_image_id_strips_known_suffixes():
    assert [image_id(Path(p)) for p in ("01_av.png", "01_prob.png", "01_dr_AVmanual.png", "_av.png", "a.png")] == [
        "01",
        "01",
        "01_dr",
        "_av",
        "a",
    ]
