"""Prediction on arbitrary photographs: sizes, modes, bad files, both checkpoint origins."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.checkpoint import build_networks, generators_state, save_atomic
from scripts.predict import main
from scripts.synthetic import make_sample


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_atomic(generators_state(build_networks(8), {"n_filters": 8, "image_size": [64, 48]}, epoch=1), path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    img, _, _ = make_sample(0, 256)
    Image.fromarray(img).resize((1000, 733)).save(folder / "odd.jpg")
    Image.fromarray(img).convert("L").save(folder / "grey.png")
    Image.fromarray(img).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray((img[..., 1].astype(np.uint16) * 257)).save(folder / "deep16.png")
    return folder


def _rows(out):
    with open(out / "predictions.csv") as f:
        return list(csv.DictReader(f))


def test_any_size_and_mode(photos, checkpoint, tmp_path):
    out = tmp_path / "out"
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--tta", "--batch-size", "2"]) == 0
    rows = {r["id"]: r for r in _rows(out)}
    assert set(rows) == {"odd", "grey", "rgba", "deep16"}
    assert (rows["odd"]["width"], rows["odd"]["height"]) == ("1000", "733")
    for stem in rows:
        for kind in ("av", "prob", "vessel", "overlay"):
            assert (out / f"{stem}_{kind}.png").is_file()
    assert Image.open(out / "odd_av.png").size == (1000, 733)
    assert Image.open(out / "odd_prob.png").mode == "RGB"
    assert set(np.unique(np.asarray(Image.open(out / "odd_vessel.png")))) <= {0, 255}
    for r in rows.values():
        assert 0 <= float(r["vessel_fraction"]) <= 1 and float(r["seconds"]) > 0


def test_masks_folder_is_used(photos, checkpoint, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.zeros((733, 1000), np.uint8) + 255).save(masks / "odd_mask.png")
    out = tmp_path / "out"
    assert main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(out), "--masks", str(masks)]) == 0
    assert len(_rows(out)) == 1


def test_text_and_corrupt_files(photos, checkpoint, tmp_path, capsys):
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="notes.txt: not an image file"):
        rc = main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 image(s) failed" in err and "broken.png" in err
    assert {r["id"] for r in _rows(out)} == {"odd", "grey", "rgba", "deep16"}


def test_unwritable_output_is_reported_before_work(photos, checkpoint, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(blocker / "sub")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_missing_input(checkpoint, tmp_path, capsys):
    assert main([str(tmp_path / "nope*.jpg"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_original_code_checkpoints(photos, tmp_path, reference_dir):
    from tests.model.test_networks import reference_weights

    ref = torch.load(reference_dir / "miccai2021_reference.pt", weights_only=True)
    paths = []
    for net in ("branch_a", "branch_v", "main"):
        paths.append(tmp_path / f"CP_{net}.pth")
        torch.save({f"module.{k}": v for k, v in reference_weights(ref, net).items()}, paths[-1])
    out = tmp_path / "out"
    rc = main([str(photos / "grey.png"), "--original", *map(str, paths), "--image-size", "64", "64", "--out", str(out)])
    assert rc == 0 and len(_rows(out)) == 1


def test_original_needs_image_size(photos, tmp_path, capsys):
    files = []
    for name in ("a", "v", "g"):
        files.append(tmp_path / f"{name}.pth")
        torch.save({}, files[-1])
    assert main([str(photos), "--original", *map(str, files), "--out", str(tmp_path / "o")]) == 2
    assert "expected a state dict" in capsys.readouterr().err
