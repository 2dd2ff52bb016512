"""scripts/biomarkers.py: reading maps of either kind, finding photographs, masks and discs, and its errors."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from scripts.biomarkers import image_id, main, read_map
from scripts.synthetic import disc_of, make_sample


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Label-coloured maps, their photographs and masks, and a probability map of the same image."""
    root = tmp_path_factory.mktemp("bio")
    for d in ("maps", "photos", "masks", "probs"):
        (root / d).mkdir()
    for i in range(2):
        photo, label, fov = make_sample(i, 256)
        Image.fromarray(label).save(root / "maps" / f"{i:02d}_AVmanual.png")
        Image.fromarray(photo).save(root / "photos" / f"{i:02d}.png")
        Image.fromarray(fov.astype(np.uint8) * 255).save(root / "masks" / f"{i:02d}_mask.gif")
        prob = np.where(label > 0, 200, 30).astype(np.uint8)  # probabilities 0.78 / 0.12
        Image.fromarray(prob).save(root / "probs" / f"{i:02d}_prob.png")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_label_maps_with_photos_and_masks(maps, tmp_path):
    out = tmp_path / "b.csv"
    with pytest.warns(UserWarning, match="located automatically"):
        assert main([str(maps / "maps"), "--photos", str(maps / "photos"), "--masks", str(maps / "masks"),
                     "--pixel-um", "10", "--csv", str(out)]) == 0
    rows = _rows(out)
    assert set(rows) == {"00", "01"}
    for key, r in rows.items():
        x, y, radius = disc_of(int(key), 256)
        assert math.hypot(float(r["disc_x"]) - x, float(r["disc_y"]) - y) < radius / 2
        assert r["kind"] == "av" and r["disc_source"] == "located"
        assert float(r["crae_um"]) == pytest.approx(10 * float(r["crae_px"]), rel=1e-4)
        assert 0 < float(r["vessel_density_fov"]) < 0.5 and 1 < float(r["vessel_fractal_dimension"]) < 2


def test_probability_maps_give_the_same_numbers(maps, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main([str(maps / "maps"), "--disc", "60", "128", "15", "--csv", str(a)]) == 0
    assert main([str(maps / "probs"), "--disc", "60", "128", "15", "--csv", str(b)]) == 0
    ra, rb = _rows(a), _rows(b)
    assert rb["00"]["kind"] == "prob" and ra["00"]["disc_source"] == "given"
    for k in ("artery_calibre_px", "vein_density_fov", "vessel_fractal_dimension", "crae_px"):
        assert ra["00"][k] == rb["00"][k]


def test_disc_csv_and_its_errors(maps, tmp_path):
    discs = tmp_path / "discs.csv"
    discs.write_text("id,x,y,radius\n00,70,120,14\n")
    out = tmp_path / "o.csv"
    with pytest.warns(UserWarning, match="no optic disc"):  # 01 has neither a row nor a photograph
        assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(out)]) == 0
    rows = _rows(out)
    assert rows["00"]["disc_x"] == "70" and rows["01"]["crae_px"] == "" and rows["01"]["disc_source"] == ""
    discs.write_text("id,x,y\n00,70,120\n")
    assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(out)]) == 2


def test_missing_folder_and_non_map_are_named(maps, tmp_path, capsys):
    assert main([str(maps / "maps"), "--photos", str(tmp_path / "nope"), "--csv", str(tmp_path / "o.csv")]) == 2
    assert "--photos" in capsys.readouterr().err
    noise = tmp_path / "noise"
    noise.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noise / "x.png")
    with pytest.raises(Exception, match="x.png"):
        read_map(noise / "x.png", "av")


def test_image_id_strips_known_suffixes():
    from pathlib import Path

    assert [image_id(Path(p)) for p in ("01_av.png", "01_prob.png", "01_dr_AVmanual.png", "_av.png", "a.png")] == \
        ["01", "01", "01_dr", "_av", "a"]
