"""scripts/biomarkers.py: reading maps of either kind, finding photographs, masks and discs, and its errors."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.biomarkers import main
from scripts.data.synthetic import disc_of, make_sample


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
        assert (
            main(
                [
                    str(maps / "maps"),
                    "--photos",
                    str(maps / "photos"),
                    "--masks",
                    str(maps / "masks"),
                    "--pixel-um",
                    "10",
                    "--csv",
                    str(out),
                ]
            )
            == 0
        )
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


def test_disc_csv_and_its_errors(maps, tmp_path, capsys):
    discs = tmp_path / "discs.csv"
    discs.write_text("id,x,y,radius\n00,70,120,14\n")
    out = tmp_path / "o.csv"
    with pytest.warns(UserWarning, match="no optic disc"):
        assert main([str(maps / "maps" / "00_AVmanual.png"), "--csv", str(out)]) == 0  # no disc at all: zones empty
    assert _rows(out)["00"].get("crae_px", "") == "" and _rows(out)["00"]["disc_source"] == ""
    # 01 has no row: it fails by its id, 00 is measured with its row
    assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(out)]) == 1
    rows = _rows(out)
    assert set(rows) == {"00"} and rows["00"]["disc_x"] == "70" and rows["00"]["disc_source"] == "given"
    assert "no row for image id '01' in --disc-csv" in capsys.readouterr().err
    discs.write_text("id,x,y\n00,70,120\n")
    assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(out)]) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,x,y,radius\n00,70,120,0\n", "line 2 (00): the radius must be > 0 pixels, got 0"),
        ("id,x,y,radius\n00,70,120,-3\n", "line 2 (00): the radius must be > 0"),
        ("id,x,y,radius\n00,nan,120,14\n", "line 2 (00): x, y and radius must be finite numbers"),
        ("id,x,y,radius\n00,70,inf,14\n", "line 2 (00): x, y and radius must be finite"),
        ("id,x,y,radius\n00,70,120,14\n01,1,1,4\n00,71,120,14\n", "line 4: id 00 is already given on line 2"),
        ("", "holds no rows; expected a header id,x,y,radius"),
        ("id,x,y,radius\n", "holds no rows"),
    ],
)
def test_bad_disc_rows_are_refused_by_line(maps, tmp_path, capsys, text, message):
    discs = tmp_path / "discs.csv"
    discs.write_text(text)
    assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(tmp_path / "o.csv")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_a_disc_csv_saved_by_a_spreadsheet_is_read(maps, tmp_path):
    discs = tmp_path / "discs.csv"
    discs.write_bytes("\ufeffid,x,y,radius\r\n00,70,120,14\r\n01,60,128,15\r\n".encode("utf-8"))  # BOM, CRLF
    out = tmp_path / "o.csv"
    assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(out)]) == 0
    assert [_rows(out)[k]["disc_x"] for k in ("00", "01")] == ["70", "60"]


def test_a_missing_photograph_or_mask_is_named_for_its_id(maps, tmp_path, capsys):
    import shutil

    for d in ("photos", "masks"):
        shutil.copytree(maps / d, tmp_path / d)
    (tmp_path / "photos" / "01.png").unlink()
    (tmp_path / "masks" / "00_mask.gif").unlink()
    out = tmp_path / "o.csv"
    assert (
        main(
            [
                str(maps / "maps"),
                "--photos",
                str(tmp_path / "photos"),
                "--masks",
                str(tmp_path / "masks"),
                "--csv",
                str(out),
            ]
        )
        == 1
    )  # each map fails by its id: neither silently loses its FOV
    err = capsys.readouterr().err
    assert f"no file for image id '01' in --photos {tmp_path / 'photos'}" in err
    assert f"no file for image id '00' in --masks {tmp_path / 'masks'}" in err
    assert "give --disc, --disc-csv or --photos" not in err


def test_predicts_own_folder_measures_the_maps_and_skips_the_rest(maps, tmp_path, capsys):
    from scripts.data.labels import av_colour_map, label_to_channels

    folder = tmp_path / "predictions"
    folder.mkdir()
    label = Image.open(maps / "maps" / "00_AVmanual.png")
    channels = label_to_channels(label, "x")[0].transpose(2, 0, 1)
    Image.fromarray(av_colour_map(channels)).save(folder / "00_av.png")
    Image.open(maps / "probs" / "00_prob.png").save(folder / "00_prob.png")
    Image.fromarray(channels.any(0).astype(np.uint8) * 255).save(folder / "00_vessel.png")
    Image.open(maps / "photos" / "00.png").save(folder / "00_overlay.png")
    (folder / "predictions.csv").write_text("id\n00\n")
    out = tmp_path / "o.csv"
    with pytest.warns(UserWarning, match="predictions.csv: not an image file"):
        assert main([str(folder), "--disc", "60", "128", "15", "--csv", str(out)]) == 0
    rows = _rows(out)
    assert set(rows) == {"00"} and rows["00"]["kind"] == "av" and rows["00"]["map"].endswith("00_av.png")
    err = capsys.readouterr().err
    assert "skipped: " in err and "00_overlay.png: an overlay picture" in err
    assert "00_vessel.png: a binary vessel map" in err
    assert "00_prob.png: image '00' is already measured from 00_av.png" in err


def test_missing_folder_and_non_map_are_named(maps, tmp_path, capsys):
    assert main([str(maps / "maps"), "--photos", str(tmp_path / "nope"), "--csv", str(tmp_path / "o.csv")]) == 2
    assert "--photos" in capsys.readouterr().err


def test_disc_rows_that_match_no_map_are_named_not_ignored(maps, tmp_path):
    discs = tmp_path / "discs.csv"
    discs.write_text("id,x,y,radius\n00,70,120,14\n01,60,128,15\n01.png,60,128,15\nimage_99,5,5,4\n")
    with pytest.warns(UserWarning) as caught:
        assert main([str(maps / "maps"), "--disc-csv", str(discs), "--csv", str(tmp_path / "o.csv")]) == 0
    (message,) = [str(w.message) for w in caught if "match no image" in str(w.message)]
    assert "2 of its 4 row(s) match no image and are not used (01.png, image_99)" in message
    assert "close: '01.png' (the image is '01')" in message


@pytest.fixture(scope="module")
def drive_discs(tmp_path_factory):
    """The annotated disc centres of DRIVE test as a --disc-csv (radius: 15 % of the FOV width / 2)."""
    from tests.conftest import REAL_DATA

    root = REAL_DATA / "DRIVE_AV" / "test"
    if not root.is_dir():
        pytest.skip(f"real datasets not found in {REAL_DATA} (set AVSEG_DATA)")
    from scripts.data.images import find_mask, load_mask
    from scripts.vessels.disc import fov_width

    path = tmp_path_factory.mktemp("discs") / "discs.csv"
    lines = ["id,x,y,radius"]
    with open(Path(__file__).parents[1] / "data" / "disc_centres.csv") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            if (r["dataset"], r["split"]) == ("DRIVE_AV", "test"):
                radius = 0.15 * fov_width(load_mask(find_mask(root / "mask", r["id"]))) / 2
                lines.append(f"{r['id']},{r['x']},{r['y']},{radius}")
    path.write_text("\n".join(lines) + "\n")
    return root, path


def _drive(root, discs, out, *more, maps=None):
    maps = maps or [str(root / "1st_manual")]
    args = [*maps, "--masks", str(root / "mask"), "--disc-csv", str(discs), "--csv", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(args + list(more))


def test_every_zone_b_vessel_is_listed_fits_its_crossing_and_gives_crae(drive_discs, tmp_path):
    from scripts.vessels.zone_b import ANGLE_TOLERANCE_DEG, CHORD_TOLERANCE_PX, CHORD_TOLERANCE_SHARE, knudtson

    root, discs = drive_discs
    out = tmp_path / "drive.csv"
    assert _drive(root, discs, out, "--photos", str(root / "images"), "--figures", str(tmp_path / "fig")) == 0
    rows = _rows(out)
    vessels = list(csv.DictReader(open(tmp_path / "drive_vessels.csv", newline="")))
    assert len(rows) == 20 and {v["id"] for v in vessels} == set(rows)
    for key, row in rows.items():
        mine = [v for v in vessels if v["id"] == key]
        assert [int(v["vessel"]) for v in mine] == list(range(1, len(mine) + 1))
        for cls, summary, constant in (("artery", "crae_px", 0.88), ("vein", "crve_px", 0.95)):
            used = [float(v["width_px"]) for v in mine if v["class"] == cls and v["knudtson"] == "1"]
            assert float(row[summary]) == pytest.approx(knudtson(used, constant), abs=1e-6)
            measured = [v for v in mine if v["class"] == cls and v["width_px"] != ""]
            assert len(measured) == float(row[f"{cls}_zone_b_vessels"]) and len(used) == min(6, len(measured))
            # the widest measured ones are the ones used
            assert min(used, default=math.inf) >= max(
                (float(v["width_px"]) for v in measured if v["knudtson"] == "0"), default=0
            )
        assert (tmp_path / "fig" / f"{key}_zone_b.png").is_file()
    for v in vessels:  # no width used exceeds what its crossing allows
        if v["width_px"]:
            angle = math.radians(min(90.0, float(v["angle_deg"] or 90) + ANGLE_TOLERANCE_DEG))
            bound = float(v["chord_px"]) * math.sin(angle) * (1 + CHORD_TOLERANCE_SHARE) + CHORD_TOLERANCE_PX
            assert float(v["width_px"]) <= bound + 1e-3, v
    assert any(v["flag"] for v in vessels)  # some widths on these ground truths are rejected, and said why


def test_corrections_change_the_tables_and_are_marked(drive_discs, tmp_path):
    from scripts.vessels.zone_b import knudtson

    root, discs = drive_discs
    first = tmp_path / "a.csv"
    three = [str(root / "1st_manual" / f"0{i}_test.png") for i in (1, 2, 3)]
    assert _drive(root, discs, first, maps=three) == 0
    vessels = [v for v in csv.DictReader(open(tmp_path / "a_vessels.csv")) if v["id"] == "01_test"]
    artery = max((v for v in vessels if v["class"] == "artery" and v["width_px"]), key=lambda v: float(v["width_px"]))
    vein = next(v for v in vessels if v["class"] == "vein" and v["knudtson"] == "1")
    folder = tmp_path / "corrections"
    folder.mkdir()
    (folder / "01_test.json").write_text(
        json.dumps(
            {
                "id": "01_test",
                "version": 1,
                "edits": [
                    {"x": float(artery["x"]), "y": float(artery["y"]), "action": "exclude"},
                    {"x": float(vein["x"]), "y": float(vein["y"]), "action": "flip"},
                ],
                "grader": "tester",
            }
        )
    )
    (folder / "02_test.json").write_text(json.dumps({"id": "02_test", "version": 1, "exclude_image": True}))
    second = tmp_path / "b.csv"
    assert _drive(root, discs, second, "--corrections", str(folder), maps=three) == 0
    before, after = _rows(first), _rows(second)
    assert after["01_test"]["graded"] == "1" and after["01_test"]["corrections"] == "1 flip; 1 exclude"
    assert after["03_test"]["graded"] == "0" and after["03_test"]["crae_px"] == before["03_test"]["crae_px"]
    edited = [v for v in csv.DictReader(open(tmp_path / "b_vessels.csv")) if v["id"] == "01_test"]
    arteries = [float(v["width_px"]) for v in edited if v["class"] == "artery" and v["knudtson"] == "1"]
    assert float(after["01_test"]["crae_px"]) == pytest.approx(knudtson(arteries, 0.88), abs=1e-6)
    assert float(vein["width_px"]) in arteries and float(artery["width_px"]) not in arteries
    assert after["01_test"]["crae_px"] != before["01_test"]["crae_px"]
    assert after["02_test"]["avr"] == "" and after["02_test"]["flags"].startswith("excluded by the grader")
    (folder / "03_test.json").write_text('{"id": "03_test", "disc": {"x": -4, "y": 10, "radius": 30}}')
    assert (
        _drive(root, discs, tmp_path / "c.csv", "--corrections", str(folder), maps=three) == 1
    )  # that map failed, by name


def test_the_report_shows_the_corrected_tables_and_figures(drive_discs, tmp_path, chromium):
    from tests.browser import check_page

    root, discs = drive_discs
    folder = tmp_path / "corrections"
    folder.mkdir()
    (folder / "02_test.json").write_text(json.dumps({"id": "02_test", "version": 1, "exclude_image": True}))
    three = [str(root / "1st_manual" / f"0{i}_test.png") for i in (1, 2, 3)]
    out = tmp_path / "graded.csv"
    assert _drive(root, discs, out, "--corrections", str(folder), "--report", maps=three) == 0
    found = check_page(tmp_path / "graded_report.html", chromium)
    assert found["errors"] == []
    assert [src for src, ok in found["images"] if ok] == [f"graded_figures/0{i}_test_zone_b.png" for i in (1, 2, 3)]
    tables = {t["file"]: t for t in found["tables"]}
    assert set(tables) == {"graded.csv", "graded_vessels.csv"}
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    shown = tables["graded.csv"]
    assert shown["header"] == rows[0] and len(shown["rows"]) == 3
    graded = rows[0].index("corrections")
    assert [r[graded][0] for r in shown["rows"]] == ["", "image excluded", ""]  # the correction, marked
