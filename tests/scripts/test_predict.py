"""Prediction on arbitrary photographs: sizes, modes, bad files, both checkpoint origins."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_networks
from scripts.data.synthetic import make_sample
from scripts.io.checkpoint import generators_state, save_atomic
from scripts.predict import main
from scripts.vessels.zone_b import VESSEL_FIELDS
from tests.helpers import png_header


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
    Image.fromarray(img[..., 1].astype(np.uint16) * 257).save(folder / "deep16.png")
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
        assert 0 <= float(r["vessel_fraction"]) <= 1


def test_masks_folder_is_used(photos, checkpoint, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.zeros((733, 1000), np.uint8) + 255).save(masks / "odd_mask.png")
    out = tmp_path / "out"
    assert (
        main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(out), "--masks", str(masks)]) == 0
    )
    rows = _rows(out)
    assert len(rows) == 1
    # predictions.csv reads back as what the maps show (the FOV is the whole image here)
    vessel = np.asarray(Image.open(out / "odd_vessel.png")) > 0
    assert float(rows[0]["vessel_fraction"]) == pytest.approx(vessel.mean(), abs=1e-5)
    assert (int(rows[0]["width"]), int(rows[0]["height"])) == (1000, 733)


def test_text_and_corrupt_files(photos, checkpoint, tmp_path, capsys):
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="notes.txt: not an image file"):
        rc = main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 photograph(s) failed" in err and err.count("broken.png") == 1
    assert {r["id"] for r in _rows(out)} == {"odd", "grey", "rgba", "deep16"}


def test_unwritable_output_is_reported_before_work(photos, checkpoint, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"--out {blocker}" in err and "a file of that name is in the way" in err


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


def test_same_stem_inputs_keep_their_own_outputs(photos, checkpoint, tmp_path, capsys):
    """01.png next to 01.jpg and another 01.png in a second folder: three sets of outputs, three rows."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    grey = Image.open(photos / "grey.png")
    grey.save(a / "01.png"), grey.convert("RGB").save(a / "01.jpg"), grey.save(b / "01.png")
    out = tmp_path / "out"
    assert main([str(a), str(b), str(a / "01.png"), "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    rows = _rows(out)
    assert sorted((r["id"], Path(r["file"]).relative_to(tmp_path).as_posix()) for r in rows) == [
        ("a__01_jpg", "a/01.jpg"),
        ("a__01_png", "a/01.png"),
        ("b__01_png", "b/01.png"),
    ]
    for name in ("a__01_jpg", "a__01_png", "b__01_png"):
        assert (out / f"{name}_av.png").is_file() and (out / f"{name}_prob.png").is_file()


def test_batch_size_zero_is_refused_by_name(photos, checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(photos), "--checkpoint", str(checkpoint), "--batch-size", "0"])
    assert stop.value.code == 2 and "argument --batch-size: must be at least 1, got 0" in capsys.readouterr().err


def test_biomarkers_in_predictions_csv(photos, checkpoint, tmp_path):
    out = tmp_path / "out"
    assert main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(out), "--pixel-um", "5"]) == 0
    row = _rows(out)[0]
    for k in (
        "disc_x",
        "crae_px",
        "crve_px",
        "avr",
        "artery_calibre_um",
        "vessel_fractal_dimension",
        "vein_density_fov",
    ):
        assert k in row
    assert 0 <= float(row["vein_density_fov"]) <= 1
    assert "flags" in row and (out / "odd_zone_b.png").is_file()  # what was measured, drawn
    with open(out / "vessels.csv", newline="") as f:
        assert csv.DictReader(f).fieldnames == list(VESSEL_FIELDS)
    out2 = tmp_path / "out2"
    assert main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(out2), "--no-biomarkers"]) == 0
    assert "crae_px" not in _rows(out2)[0]
    assert not (out2 / "vessels.csv").exists() and not (out2 / "odd_zone_b.png").exists()


def test_a_decompression_bomb_is_one_failed_file_and_the_others_run(photos, checkpoint, tmp_path, capsys):
    png_header(photos / "huge.png", 20000, 20000)
    out = tmp_path / "out"
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers"]) == 1
    err = capsys.readouterr().err
    assert "1 photograph(s) failed" in err and "huge.png: 400000000 pixels, more than the" in err
    assert "Traceback" not in err
    assert {r["id"] for r in _rows(out)} == {"odd", "grey", "rgba", "deep16"}


def test_predictions_are_complete_or_absent(photos, checkpoint, tmp_path, monkeypatch):
    import scripts.inference.pipeline as pipeline

    out = tmp_path / "out"
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(before) == 4 * 4 + 3  # four maps per photograph, predictions.csv, failures.csv, report.html
    calls = {"n": 0}
    save = pipeline.save_outputs

    def killed_at_the_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return save(*a, **k)

    monkeypatch.setattr(pipeline, "save_outputs", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers", "--tta"])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier run, whole
    # a finished run with fewer inputs leaves nothing of the earlier one
    assert main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["failures.csv", "predictions.csv", "report.html"]
        + [f"odd{s}" for s in ("_av.png", "_prob.png", "_vessel.png", "_overlay.png")]
    )
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name] == []


def test_an_out_folder_with_other_files_is_refused(photos, checkpoint, capsys):
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(photos)]) == 2
    err = capsys.readouterr().err
    assert f"--out {photos} holds files that are not this command's outputs (deep16.png, grey.png" in err
    assert sorted(p.name for p in photos.iterdir()) == ["deep16.png", "grey.png", "odd.jpg", "rgba.png"]


def test_known_discs_are_read_and_the_warning_names_predicts_own_option(photos, checkpoint, tmp_path):
    discs = tmp_path / "discs.csv"
    discs.write_text("id,x,y,radius\nodd,400,300,60\n")
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        assert (
            main(
                [
                    str(photos / "odd.jpg"),
                    str(photos / "grey.png"),
                    "--checkpoint",
                    str(checkpoint),
                    "--out",
                    str(out),
                    "--disc-csv",
                    str(discs),
                ]
            )
            == 0
        )
    rows = {r["id"]: r for r in _rows(out)}
    assert (rows["odd"]["disc_x"], rows["odd"]["disc_radius"]) == ("400", "60")
    assert (rows["odd"]["disc_source"], rows["grey"]["disc_source"]) == ("given", "located")
    assert not [w for w in caught if "match no image" in str(w.message)]
    located = [str(w.message) for w in caught if "located automatically" in str(w.message)]
    assert len(located) == 1 and "grey.png" in located[0] and "give its disc in a --disc-csv row" in located[0]
    assert "--disc X Y R" not in located[0]


def test_predictions_page_shows_every_photograph_in_a_browser(photos, checkpoint, tmp_path, chromium):
    from tests.browser import check_page

    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out"
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1  # one input failed
    found = check_page(out / "report.html", chromium)
    assert found["errors"] == []
    names = [r["id"] for r in _rows(out)]
    expected = sorted(f"{n}_{kind}.png" for n in names for kind in ("overlay", "av", "zone_b"))
    assert sorted(src for src, _ in found["images"]) == expected  # the zone-B figure of every photograph measured
    assert all(ok for _, ok in found["images"])
    shown, vessels = found["tables"]
    assert shown["file"] == "predictions.csv" and len(shown["rows"]) == len(names) == 4
    assert vessels["file"] == "vessels.csv" and vessels["header"][:3] == ["id", "vessel", "class"]
    assert "broken.png" in found["text"] and "Failed inputs" in found["text"]


def test_a_full_disk_is_a_message_and_the_earlier_outputs_stay(photos, checkpoint, tmp_path, monkeypatch, capsys):
    import errno
    import os

    out = tmp_path / "out"
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    assert main([str(photos), "--checkpoint", str(checkpoint), "--out", str(out), "--no-biomarkers"]) == 2
    err = capsys.readouterr().err
    assert f"could not write the outputs of --out {out}: no space left on the disk" in err
    assert "the previous outputs there are unchanged" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_disc_rows_that_match_no_photograph_are_named(photos, checkpoint, tmp_path):
    discs = tmp_path / "discs.csv"
    discs.write_text("id,x,y,radius\nodd,400,300,60\nODD.jpg,400,300,60\n")
    with pytest.warns(UserWarning) as caught:
        assert main([str(photos / "odd.jpg"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 0
        assert (
            main(
                [
                    str(photos / "odd.jpg"),
                    "--checkpoint",
                    str(checkpoint),
                    "--out",
                    str(tmp_path / "o"),
                    "--disc-csv",
                    str(discs),
                ]
            )
            == 0
        )
    (message,) = [str(w.message) for w in caught if "match no image" in str(w.message)]
    assert "1 of its 2 row(s) match no image and are not used (ODD.jpg)" in message and "the image is 'odd'" in message
