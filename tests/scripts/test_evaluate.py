"""Command-line scoring of a prediction folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from scripts.evaluate import main


def _write_predictions(root, out, size=None):
    out.mkdir()
    for f in sorted((root / "SYNTHETIC" / "test" / "1st_manual").glob("*.png")):
        img = Image.open(f)
        (img.resize(size, Image.BICUBIC) if size else img).save(out / f.name)


def test_ground_truth_as_prediction_scores_perfectly(synthetic_root, tmp_path, capsys):
    _write_predictions(synthetic_root, tmp_path / "pred")
    rc = main(
        [
            "--pred",
            str(tmp_path / "pred"),
            "--dataset",
            "SYNTHETIC",
            "--data-root",
            str(synthetic_root),
            "--json",
            str(tmp_path / "s.json"),
            "--csv",
            str(tmp_path / "s.csv"),
            "--segments-csv",
            str(tmp_path / "seg.csv"),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert list(summary) == ["artery", "vein", "uncertain", "average", "segments"]
    segments = summary["segments"]
    assert segments["segments"] > 0 and segments["av_accuracy"] == 1.0 and segments["mixed_rate"] == 0.0
    seg_rows = (tmp_path / "seg.csv").read_text().splitlines()
    assert len(seg_rows) == 1 + 3 and seg_rows[0].startswith("id,segments,")
    assert summary["artery"]["f1"] == 1.0 and summary["vein"]["sensitivity"] == 1.0
    assert {"accuracy", "sensitivity", "specificity", "precision", "g_mean", "f1", "iou", "mse", "roc", "pr"} <= set(
        summary["average"]
    )
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 5
    out = capsys.readouterr().out
    assert "paper protocol" in out and "mixed_rate" in out


def test_model_size_predictions_are_resized(synthetic_root, tmp_path):
    (tmp_path / "pred").mkdir()
    for i in (1, 2, 3):  # all-artery maps at the model size 32x32
        Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "pred" / f"0{i}_test.png")
    rc = main(
        [
            "--pred",
            str(tmp_path / "pred"),
            "--dataset",
            "SYNTHETIC",
            "--data-root",
            str(synthetic_root),
            "--image-size",
            "32",
            "32",
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["artery"]["sensitivity"] == 1.0 and summary["vein"]["sensitivity"] == 0.0


@pytest.mark.parametrize(
    "problem,message", [("missing", "02_test.*missing"), ("size", "02_test.*is 10x10"), ("grey", "02_test.*mode L")]
)
def test_bad_prediction_names_the_image(synthetic_root, tmp_path, capsys, problem, message):
    _write_predictions(synthetic_root, tmp_path / "pred")
    f = tmp_path / "pred" / "02_test.png"
    if problem == "missing":
        f.unlink()
    elif problem == "size":
        Image.new("RGB", (10, 10)).save(f)
    else:
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(f)
    rc = main(["--pred", str(tmp_path / "pred"), "--dataset", "SYNTHETIC", "--data-root", str(synthetic_root)])
    assert rc == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_truncated_prediction_and_folder_outputs_are_named(tmp_path, capsys):
    from scripts.data.synthetic import write_dataset

    root = tmp_path / "data"
    write_dataset(root, "SYNTHETIC", n_train=1, n_test=1, size=32, seed=0)
    pred = tmp_path / "pred"
    pred.mkdir()
    good = pred / "01_test.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # truncated
    args = ["--pred", str(pred), "--dataset", "SYNTHETIC", "--data-root", str(root)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "01_test.png: the image data is corrupt or truncated" in err and "Traceback" not in err
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    (tmp_path / "a_folder").mkdir()
    assert main([*args, "--csv", str(tmp_path / "a_folder")]) == 2
    assert "could not write" in capsys.readouterr().err


def test_tables_read_back_as_printed(synthetic_root, tmp_path, capsys):
    """The CSV and JSON hold the numbers the command printed (read with the standard readers)."""
    import csv

    (tmp_path / "pred").mkdir()
    for i, colour in ((1, (255, 0, 0)), (2, (0, 0, 255)), (3, (255, 0, 255))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / "pred" / f"0{i}_test.png")
    assert (
        main(
            [
                "--pred",
                str(tmp_path / "pred"),
                "--dataset",
                "SYNTHETIC",
                "--data-root",
                str(synthetic_root),
                "--json",
                str(tmp_path / "s.json"),
                "--csv",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    printed = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines() if line[:1].isalpha()}
    header = printed["class"]
    summary = json.loads((tmp_path / "s.json").read_text())
    for cls in ("artery", "vein", "uncertain", "average"):
        for name, text in zip(header, printed[cls]):
            assert float(text) == pytest.approx(100 * summary[cls][name], abs=0.006), (cls, name)
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    per_image_f1 = [float(r["f1"]) for r in rows if r["class"] == "average"]
    assert [r["id"] for r in rows if r["class"] == "average"] == ["01_test", "02_test", "03_test"]
    assert sum(per_image_f1) / 3 == pytest.approx(summary["average"]["f1"], abs=1e-9)


def test_both_protocols_at_once_equal_each_alone(synthetic_root, tmp_path):
    """``all`` shares the truth's tree skeleton between the two protocols: the numbers must not move."""
    from scipy import ndimage

    out = tmp_path / "pred"
    out.mkdir()
    for f in sorted((synthetic_root / "SYNTHETIC" / "test" / "1st_manual").glob("*.png")):
        damaged = np.asarray(Image.open(f).convert("RGB")).copy()
        damaged[:, 20:23] = 0  # a cut across the vessels, and a class swap on the right half
        damaged[:, 40:] = damaged[:, 40:, ::-1]
        Image.fromarray(ndimage.uniform_filter(damaged, (3, 3, 1))).save(out / f.name)
    common = ["--pred", str(out), "--dataset", "SYNTHETIC", "--data-root", str(synthetic_root), "--topo-paths", "50"]
    got = {}
    for protocol in ("paper", "rrwnet", "all"):
        assert main(common + ["--protocol", protocol, "--json", str(tmp_path / f"{protocol}.json")]) == 0
        got[protocol] = json.loads((tmp_path / f"{protocol}.json").read_text())
    alone = {**got["paper"], **got["rrwnet"]}
    assert set(got["all"]) == set(alone) and got["all"] == alone
    assert got["all"]["segments"]["av_accuracy"] < 1 and got["all"]["rrwnet"]["topology"]


@pytest.mark.parametrize("folder", ["images", "1st_manual"])
def test_the_datasets_own_folders_are_not_taken_for_predictions(synthetic_root, capsys, folder):
    pred = synthetic_root / "SYNTHETIC" / "test" / folder
    assert main(["--pred", str(pred), "--dataset", "SYNTHETIC", "--data-root", str(synthetic_root)]) == 2
    assert f"this is the dataset's own {folder} folder, not predicted maps" in capsys.readouterr().err
