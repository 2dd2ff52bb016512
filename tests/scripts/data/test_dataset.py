"""Dataset loading: real data, label encodings, mask formats, augmentation alignment, bad input."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.core.config import DATASETS
from scripts.data.augment import augment, normalise
from scripts.data.dataset import AVDataset, EpochSampler, split_ids
from scripts.data.images import DataError, load_label, load_mask
from scripts.data.labels import LabelError, class_indices


@pytest.mark.slow
@pytest.mark.parametrize("name", ["DRIVE_AV", "LES-AV", "HRF-AV"])
def test_every_real_image_loads_with_sane_targets(real_data, name, caplog):
    caplog.set_level(logging.INFO, logger="avseg")
    splits = [s for s in ("training", "test") if (real_data / name / s).is_dir()]
    start = time.perf_counter()
    for split in splits:
        ds = AVDataset(name, split, real_data, train=True)
        assert "label encoding: {'rgb'" in caplog.text
        for i in range(len(ds)):
            item = ds[(i, i)]
            w, h = DATASETS[name].model_size
            assert item["image"].shape == (3, h, w) and item["target"].shape == (3, h, w)
            assert torch.isfinite(item["image"]).all()
            vessel = item["target"].amax(0).mean().item()
            assert 0.03 < vessel < 0.25, f"{ds.items[i].id}: vessel fraction {vessel:.3f}"
            assert set(item["target"].unique().tolist()) <= {0.0, 1.0}
            assert 0.4 < item["mask"].mean().item() < 0.95
    print(f"{name}: loaded {splits} in {time.perf_counter() - start:.1f} s")


def test_eval_items_keep_raw_size(synthetic_root):
    ds = AVDataset("SYNTHETIC", "test", synthetic_root, train=False, image_size=(32, 48))
    item = ds[0]
    assert item["image"].shape == (3, 48, 32)
    assert item["label"].shape == (3, 64, 64) and item["mask"].shape == (64, 64)
    assert item["raw_size"] == (64, 64) and item["id"] == "01_test"


def test_augmentation_keeps_image_label_mask_aligned():
    rng = np.random.default_rng(0)
    label = np.zeros((96, 96, 3), bool)
    label[20:30, 10:80, 0] = True  # artery bar
    label[50:70, 40:50, 2] = True  # vein block
    mask = np.zeros((96, 96), bool)
    mask[5:90, 5:90] = True
    image = (label * 220 + 20).astype(np.uint8) * mask[..., None]
    for seed in range(10):
        img, lab, msk = augment(image, label, mask, np.random.default_rng(seed))
        assert lab.dtype == bool and msk.dtype == bool
        bright = img > 128
        agree = (bright == lab).mean()
        assert agree > 0.98, (seed, agree)
        assert ((img.max(axis=2) > 10) == msk).mean() > 0.98
    assert rng is not None


def test_v2023_training_items_are_class_indices_of_the_label_flipped_and_turned(synthetic_root):
    """The 2023 variant's item: the label's class indices at the model size under one of the 8 flips and
    quarter turns, the image normalised as (x - mean) * std (its std is then far from 1), and --uniform
    meaning 720 x 720 (2021: 912 x 912)."""
    ds = AVDataset("SYNTHETIC", "training", synthetic_root, train=True, variant="v2023")
    _, label, _ = ds._load(0)
    classes = class_indices(label)
    for seed in range(4):
        item = ds[(0, seed)]
        target = item["target"].numpy()
        assert item["target"].dtype == torch.int64 and target.shape == classes.shape
        dihedral = [np.rot90(c, k) for c in (classes, classes[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(target, d) for d in dihedral), seed
        assert set(np.unique(target)) <= {0, 1, 2, 3} and (target > 0).any()
        assert float(item["image"].std()) > 5  # multiplied by std (~30-60 on 8-bit values), not divided
    assert AVDataset("SYNTHETIC", "training", synthetic_root, uniform=True, variant="v2023").model_size == (720, 720)
    assert AVDataset("SYNTHETIC", "training", synthetic_root, uniform=True).model_size == (912, 912)


def test_augmentation_reproducible_from_seed(synthetic_root):
    ds = AVDataset("SYNTHETIC", "training", synthetic_root, train=True)
    a, b, c = ds[(0, 7)], ds[(0, 7)], ds[(0, 8)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    assert not torch.equal(a["image"], c["image"])


def test_sampler_depends_only_on_seed_and_epoch():
    s1, s2 = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    s1.set_epoch(4)
    s2.set_epoch(4)
    assert list(s1) == list(s2)
    s2.set_epoch(5)
    assert list(s1) != list(s2)


def test_split_is_seeded_and_disjoint():
    tr, va = split_ids(20, 10, seed=42)
    assert split_ids(20, 10, seed=42) == (tr, va)
    assert len(va) == 2 and not set(tr) & set(va) and sorted(tr + va) == list(range(20))


def test_normalise_uses_pixels_with_red_above_zero():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = [100, 50, 10]
    img[2:3] = [200, 150, 30]
    x = normalise(img)
    inside = x[:, :3]
    assert np.allclose(inside.reshape(3, -1).mean(axis=1), 0, atol=1e-5)
    assert np.allclose(inside.reshape(3, -1).std(axis=1), 1, atol=1e-4)


@pytest.fixture
def copy_dataset(synthetic_root, tmp_path):
    def make() -> Path:
        shutil.copytree(synthetic_root / "SYNTHETIC", tmp_path / "SYNTHETIC")
        return tmp_path

    return make


def test_index_map_labels_are_accepted_and_logged(copy_dataset, caplog):
    root = copy_dataset()
    lab_dir = root / "SYNTHETIC" / "training" / "1st_manual"
    for f in lab_dir.glob("*.png"):
        rgb = np.asarray(Image.open(f)) > 127
        idx = np.zeros(rgb.shape[:2], np.uint8)
        idx[rgb[..., 0]] = 1
        idx[rgb[..., 2]] = 2
        idx[rgb.all(axis=2)] = 3
        Image.fromarray(idx, mode="L").save(f)
    caplog.set_level(logging.INFO, logger="avseg")
    ds = AVDataset("SYNTHETIC", "training", root, train=False)
    assert "'index': 6" in caplog.text
    assert ds[0]["label"].sum() > 0


@pytest.mark.parametrize("fmt", ["L255", "P01", "RGB"])
def test_mask_formats(copy_dataset, fmt):
    root = copy_dataset()
    mask_dir = root / "SYNTHETIC" / "test" / "mask"
    ref = AVDataset("SYNTHETIC", "test", root)[0]["mask"]
    f = mask_dir / "01_test_mask.gif"
    m = load_mask(f)
    f.unlink()
    if fmt == "L255":
        Image.fromarray(m.astype(np.uint8) * 255).save(mask_dir / "01_test_mask.png")
    elif fmt == "P01":
        p = Image.fromarray(m.astype(np.uint8), mode="P")
        p.putpalette([0, 0, 0, 255, 255, 255])
        p.save(mask_dir / "01_test_mask.gif")
    else:
        Image.fromarray(np.repeat(m[..., None].astype(np.uint8) * 255, 3, 2)).save(mask_dir / "01_test_mask.tif")
    assert torch.equal(AVDataset("SYNTHETIC", "test", root)[0]["mask"], ref)


def test_missing_mask_derives_fov_with_warning(copy_dataset):
    root = copy_dataset()
    f = root / "SYNTHETIC" / "test" / "mask" / "01_test_mask.gif"
    truth = load_mask(f)
    f.unlink()
    ds = AVDataset("SYNTHETIC", "test", root)
    with pytest.warns(UserWarning, match="no FOV mask"):
        derived = ds[0]["mask"].numpy()
    assert (derived == truth).mean() > 0.95


def _bad(root: Path, split: str = "training") -> Path:
    return root / "SYNTHETIC" / split


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset name 'NOPE'.*DRIVE_AV"):
        AVDataset("NOPE", "training", tmp_path)


def test_missing_known_dataset_folder_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=f"dataset folder not found: {tmp_path}/DRIVE_AV.*sh train.sh demo"):
        AVDataset("DRIVE_AV", "training", tmp_path)


def test_empty_image_folder(copy_dataset):
    root = copy_dataset()
    for f in (_bad(root) / "images").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no images in"):
        AVDataset("SYNTHETIC", "training", root)


def test_image_without_label(copy_dataset):
    root = copy_dataset()
    (_bad(root) / "1st_manual" / "02_training.png").unlink()
    with pytest.raises(DataError, match="02_training.png: no label found"):
        AVDataset("SYNTHETIC", "training", root)


def test_a_few_off_colour_label_pixels_are_thresholded_with_a_count(copy_dataset):
    """Anti-aliased pixels (here 30 of 4096, 0.7 %) are thresholded at 0.5 per channel, with a warning."""
    root = copy_dataset()
    f = _bad(root) / "1st_manual" / "03_training.png"
    arr = np.asarray(Image.open(f).convert("RGB")).copy()
    arr[0, :20] = (60, 60, 140)  # dark blue-grey: vein after thresholding
    arr[1, :10] = (200, 30, 100)  # artery
    Image.fromarray(arr).save(f)
    with pytest.warns(UserWarning, match=r"03_training.png: 30 pixel\(s\) with off-label colours.*\(60, 60, 140\)"):
        channels, encoding = load_label(f)
    assert encoding == "rgb"
    assert channels[0, :20].tolist() == [[False, False, True]] * 20
    assert channels[1, :10].tolist() == [[True, False, False]] * 10


@pytest.mark.parametrize("kind", ["photograph", "jpeg"])
def test_files_that_are_not_label_maps_are_refused(copy_dataset, kind):
    root = copy_dataset()
    label = _bad(root) / "1st_manual" / "03_training.png"
    if kind == "photograph":
        Image.open(_bad(root) / "images" / "03_training.png").convert("RGB").save(label)
    else:  # a label once saved as JPEG, then as PNG again
        Image.open(label).convert("RGB").save(label.with_suffix(".jpg"), quality=75)
        Image.open(label.with_suffix(".jpg")).save(label)
    with pytest.raises(LabelError, match=r"03_training.png: .* % of the pixels .*not an A/V label map"):
        load_label(label)


def test_index_label_with_unknown_values(copy_dataset):
    root = copy_dataset()
    f = _bad(root) / "1st_manual" / "01_training.png"
    Image.fromarray(np.full((64, 64), 7, np.uint8), mode="L").save(f)
    with pytest.raises(LabelError, match=r"01_training.png.*values \[7\]"):
        AVDataset("SYNTHETIC", "training", root)[0]


@pytest.mark.parametrize("kind", ["1st_manual", "mask"])
def test_label_or_mask_size_mismatch(copy_dataset, kind):
    root = copy_dataset()
    name = "01_training.png" if kind == "1st_manual" else "01_training_mask.gif"
    f = _bad(root) / kind / name
    Image.open(f).resize((50, 64)).save(f)
    with pytest.raises(DataError, match=f"{name}.*size 50x64 differs"):
        AVDataset("SYNTHETIC", "training", root)


def test_unreadable_image(copy_dataset):
    root = copy_dataset()
    (_bad(root) / "images" / "01_training.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="01_training.png: cannot be read"):
        AVDataset("SYNTHETIC", "training", root)


def test_truncated_image(copy_dataset):
    root = copy_dataset()
    f = _bad(root) / "images" / "01_training.png"
    f.write_bytes(f.read_bytes()[:200])
    ds = AVDataset("SYNTHETIC", "training", root)
    with pytest.raises(DataError, match="01_training.png: the image data is corrupt"):
        ds[0]


def test_non_image_file_is_reported_not_silent(copy_dataset, caplog):
    root = copy_dataset()
    (_bad(root) / "images" / "notes.txt").write_text("hello")
    caplog.set_level(logging.WARNING, logger="avseg")
    ds = AVDataset("SYNTHETIC", "training", root)
    assert len(ds) == 6 and "notes.txt" in caplog.text


def test_image_size_must_be_divisible_by_16(synthetic_root):
    from scripts.core.errors import UsageError

    with pytest.raises(UsageError, match="multiples of 16"):  # a user's setting: a message, not a traceback
        AVDataset("SYNTHETIC", "training", synthetic_root, image_size=(60, 64))


def test_label_extension_in_any_capitalisation(copy_dataset):
    root = copy_dataset()
    label = _bad(root) / "1st_manual" / "02_training.png"
    label.rename(label.with_suffix(".Png"))
    ds = AVDataset("SYNTHETIC", "training", root)
    assert ds.items[1].label.name == "02_training.Png"


def test_every_bad_file_is_reported_at_once_before_training(copy_dataset):
    root = copy_dataset()
    manual = _bad(root) / "1st_manual"
    Image.fromarray(np.full((64, 64), 7, np.uint8), mode="L").save(manual / "01_training.png")
    Image.open(_bad(root) / "images" / "04_training.png").convert("RGB").save(manual / "04_training.png")  # a photo
    ds = AVDataset("SYNTHETIC", "training", root)
    with pytest.raises(DataError) as info:
        ds.preload()
    message = str(info.value)
    assert "2 files have problems" in message and "01_training.png" in message and "04_training.png" in message


def test_size_mismatches_and_unreadable_files_are_reported_together(copy_dataset):
    root = copy_dataset()
    for name in ("01_training.png", "02_training.png"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(_bad(root) / "1st_manual" / name)
    (_bad(root) / "1st_manual" / "04_training.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    with pytest.raises(DataError, match=r"3 files have problems(.|\n)*01_training(.|\n)*02_training(.|\n)*04_training"):
        AVDataset("SYNTHETIC", "training", root)


def test_importing_the_pipeline_leaves_opencv_threads_alone():
    """OpenCV runs single-threaded only inside DataLoader workers (worker_init_fn), not in every
    process that imports the data code (test, predict and biomarkers use OpenCV's threads)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import cv2; before = cv2.getNumThreads(); import scripts.data.dataset, scripts.inference.predictor, scripts.data.augment; "
        "from scripts.data.augment import init_worker; after = cv2.getNumThreads(); init_worker(0); "
        "print(before, after, cv2.getNumThreads())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    before, after, worker = map(int, done.stdout.split())
    assert after == before and worker == 1


def test_an_all_black_label_is_accepted_with_a_warning_naming_it(tmp_path):
    path = tmp_path / "01_manual1.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    with pytest.warns(UserWarning, match=f"{path}: the label is all background"):
        channels, encoding = load_label(path)
    assert encoding == "rgb" and channels.shape == (8, 8, 3) and not channels.any()
