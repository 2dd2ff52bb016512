"""The HTML reports built from hand-made result folders: cells, notices, relative links, curves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.figures import curves
from scripts.figures.html import cell_text, table
from scripts.figures.pages import predictions_page, results_page


def test_cells_round_numbers_and_keep_whole_numbers_and_text():
    assert [cell_text(v) for v in ("0.123456", "13", "-2", "abc", "nan", 0.5, 7, None, "1e-05")] == [
        "0.1235",
        "13",
        "-2",
        "abc",
        "n/a",
        "0.5000",
        "7",
        "",
        "0.0000",
    ]
    assert cell_text("0.000012", digits=None) == "0.000012"
    # a segment count that went through a float is a count, not 169.0000; a ratio of 1.0 stays a ratio
    assert [cell_text(v) for v in (169.0, "169.0", -3.0, 1.0, 2.5)] == ["169", "169", "-3", "1.0000", "2.5000"]
    html = table(("id", "f1"), [("01_test", "0.912345")])
    assert '<td class="text">01_test</td>' in html and '<td data-value="0.912345">0.9123</td>' in html


def _results(folder: Path) -> Path:
    folder.mkdir()
    (folder / "paper_row.json").write_text(
        json.dumps(
            {
                "dataset": "DRIVE_AV",
                "split": "test",
                "protocol": "SPEC 6 (paper)",
                "checkpoints": ["epoch_0001"],
                "percent": {
                    c: {"mean": 50.0 + i, "std": 0.25} for i, c in enumerate(("Sensitivity", "ROC", "F1", "PR", "MSE"))
                },
                "per_checkpoint": {"epoch_0001": {c: 50.0 for c in ("Sensitivity", "ROC", "F1", "PR", "MSE")}},
                "weights": [{"file": "job/epoch_0001.pt", "sha256": "ab" * 32}],
            }
        )
    )
    (folder / "per_image.csv").write_text(
        "checkpoint,id,class,f1\nepoch_0001,01_test,average,0.5\nepoch_0001,02_test,average,0.25\n"
    )
    (folder / "figures").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "figures" / "01_test.png")
    (folder / "figures" / "02_test.png").write_bytes(b"not a png")
    return folder


def test_missing_tables_and_unreadable_figures_show_as_notices(tmp_path):
    folder = _results(tmp_path / "res")
    page = results_page(folder, {"job": "paper", "results": "results/DRIVE_AV/paper"}, None)
    assert "50.00 ± 0.25" in page and "52.00 ± 0.25" in page  # F1 (the third column) as in paper_row.json
    assert 'href="figures/01_test.png"' in page and 'src="figures/01_test.png"' in page
    assert "02_test.png could not be read as an image" in page and 'src="figures/02_test.png"' not in page
    for missing in ("summary.csv", "segments.csv", "biomarkers.csv"):
        assert f"{missing} is missing" in page
    assert "no training run" in page
    # self-contained: no network, no absolute file links
    assert not re.search(r'(src|href)="(https?:|//|file:|/)', page) and "<link" not in page
    assert "<script src" not in page


def test_a_missing_paper_row_still_gives_a_page(tmp_path):
    folder = _results(tmp_path / "res")
    (folder / "paper_row.json").write_text("{broken")
    page = results_page(folder, {}, None)
    assert "paper_row.json could not be read" in page and "per_image.csv" in page


def test_curves_are_read_back_from_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for step, value in ((1, 0.5), (2, 0.25), (3, 0.125)):
            writer.add_scalar("loss/G", value, step)
        writer.add_scalar("val_average/f1", 0.75, 1)
    scalars = curves.read_scalars(tmp_path)
    assert scalars["loss/G"] == [(1, 0.5), (2, 0.25), (3, 0.125)] and scalars["val_average/f1"] == [(1, 0.75)]
    assert curves.curves_png(scalars).startswith(b"\x89PNG") and curves.curves_png({}) is None
    assert curves.read_scalars(tmp_path / "none") == {}


def test_predict_page_lists_every_photograph_and_the_failures(tmp_path):
    (tmp_path / "predictions.csv").write_text("id,file,vessel_fraction\na,photos/a.jpg,0.1\nb,photos/b.jpg,0.2\n")
    for name in ("a_overlay", "a_av", "b_overlay"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{name}.png")
    page = predictions_page(tmp_path, {"out": "predictions"}, [("photos/c.txt", "not an image")])
    assert 'src="a_overlay.png"' in page and 'src="b_overlay.png"' in page
    assert "b_av.png is missing" in page and "photos/c.txt" in page and "not an image" in page


def test_a_cohorts_page_shows_its_first_photographs_and_says_how_many_there_are(tmp_path, monkeypatch):
    import scripts.figures.pages as pages

    monkeypatch.setattr(pages, "PAGE_PHOTOGRAPHS", 3)
    rows = "".join(f"p{i},photos/p{i}.jpg,0.1\n" for i in range(7))
    (tmp_path / "predictions.csv").write_text("id,file,vessel_fraction\n" + rows)
    failures = [(f"photos/bad{i}.jpg", "damaged") for i in range(5)]
    page = pages.predictions_page(tmp_path, {"out": "cohort"}, failures)
    assert "the first 3 of 7 rows" in page and page.count("<h3>p") == 3 and "<h3>p3<" not in page
    assert "bad2.jpg" in page and "bad3.jpg" not in page and "and 2 more in failures.csv" in page


def test_predict_page_without_its_table(tmp_path):
    assert "predictions.csv is missing" in predictions_page(tmp_path, {}, [])


URL_NAMES = ("a#1", "b?x=2", "c%41", "d e", "e:f", "f&amp;")


def _photographs_with_url_characters(folder):
    rows = "".join(f"{n},photos/{n}.jpg,0.1\n" for n in URL_NAMES)
    (folder / "predictions.csv").write_text("id,file,vessel_fraction\n" + rows)
    for name in URL_NAMES:
        for kind in ("overlay", "av"):
            Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(folder / f"{name}_{kind}.png")
    page = folder / "report.html"
    page.write_text(predictions_page(folder, {"out": str(folder)}, []))
    return page


def test_file_names_with_url_characters_are_percent_encoded_in_links(tmp_path):
    text = _photographs_with_url_characters(tmp_path).read_text()
    assert 'src="a%231_overlay.png"' in text and 'src="b%3Fx%3D2_av.png"' in text and 'src="c%2541_av.png"' in text
    assert 'src="d%20e_av.png"' in text and 'src="e%3Af_av.png"' in text and 'src="f%26amp%3B_av.png"' in text


def test_file_names_with_url_characters_show_their_pictures_in_a_browser(tmp_path, chromium):
    from tests.browser import check_page

    found = check_page(_photographs_with_url_characters(tmp_path), chromium)
    assert found["errors"] == []
    assert len(found["images"]) == 2 * len(URL_NAMES) and all(loaded for _, loaded in found["images"])
