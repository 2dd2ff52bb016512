"""Synthetic dataset: deterministic per seed, real layout, loads through the dataset class."""

from __future__ import annotations

import numpy as np

from scripts.data.dataset import AVDataset
from scripts.data.synthetic import make_sample, write_dataset


def test_deterministic_per_seed():
    a, b, c = make_sample(3, 64), make_sample(3, 64), make_sample(4, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_labels_have_all_classes_and_stay_in_fov():
    image, label, fov = make_sample(0, 256)
    colours = {tuple(c) for c in np.unique(label.reshape(-1, 3), axis=0)}
    assert {(255, 0, 0), (0, 0, 255), (0, 255, 0), (0, 0, 0)} <= colours
    assert not label[~fov].any()
    artery = (label == (255, 0, 0)).all(axis=2)
    vein = (label == (0, 0, 255)).all(axis=2)
    assert vein.sum() > artery.sum() * 0.8  # veins are wider
    assert image[vein].mean() < image[artery].mean()  # and darker
    assert image[~fov].mean() < 10 and image[fov].mean() > 60


def test_written_dataset_loads(tmp_path):
    root = write_dataset(tmp_path, n_train=2, n_test=1, size=64)
    assert sorted(p.name for p in (root / "training").iterdir()) == ["1st_manual", "images", "mask"]
    ds = AVDataset("SYNTHETIC", "training", tmp_path, train=True, image_size=(64, 64))
    item = ds[(0, 0)]
    assert item["image"].shape == (3, 64, 64) and item["target"].sum() > 0


def test_cli_refuses_bad_numbers_and_unwritable_places(tmp_path, capsys):
    import pytest

    from scripts.synthetic import main

    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path), "--train", "0"])
    assert stop.value.code == 2 and "argument --train: must be at least 1" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--out", str(blocker), "--train", "1", "--test", "0", "--size", "32"]) == 2
    assert "cannot write the synthetic set" in capsys.readouterr().err


def test_wider_vessels_cover_more_of_the_image():
    thin, wide = make_sample(5, 128)[1], make_sample(5, 128, vessel_width=1.5)[1]
    assert (wide.any(axis=2)).mean() > 1.3 * (thin.any(axis=2)).mean()


def test_a_set_of_the_same_recipe_is_kept_and_another_recipe_is_redrawn(tmp_path, capsys):
    from scripts.synthetic import main

    args = ["--out", str(tmp_path), "--train", "3", "--test", "1", "--size", "32"]
    assert main(args) == 0
    first = (tmp_path / "SYNTHETIC" / "training" / "images" / "01_training.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "of this recipe is there already" in capsys.readouterr().out
    assert (tmp_path / "SYNTHETIC" / "training" / "images" / "01_training.png").stat().st_mtime_ns == first
    assert main([*args[:3], "2", *args[4:], "--vessel-width", "1.5"]) == 0  # 2 training images, wider vessels
    assert "redrawing the synthetic set" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "SYNTHETIC" / "training" / "images").iterdir()) == [
        "01_training.png",
        "02_training.png",
    ]  # nothing of the earlier set is left


def test_a_folder_with_other_files_is_not_redrawn(tmp_path, capsys):
    from scripts.synthetic import main

    (tmp_path / "SYNTHETIC" / "training").mkdir(parents=True)
    (tmp_path / "SYNTHETIC" / "training" / "notes.txt").write_text("mine")
    assert main(["--out", str(tmp_path), "--train", "1", "--test", "0", "--size", "32"]) == 2
    assert "holds files the synthetic generator does not write (training/notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "SYNTHETIC" / "training" / "notes.txt").read_text() == "mine"
