"""The authors' 2023 release: finding and loading its files, and scoring it as their test code does."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import serialization

from model import build_generators, map_original_state_dict
from scripts.io.checkpoint import CheckpointError
from scripts.io.release import RELEASE_FILES, find_release, load_release
from tests.helpers import authors_misc_measures, reference_weights

ROLES = {"G_A": "branch_a", "G_V": "branch_v", "G": "main"}
AUTHOR_KEYS = ("accuracy", "sensitivity", "specificity", "precision", "g_mean", "f1", "mse", "iou")


@pytest.fixture(scope="module")
def release_states(reference_dir):
    """Original-code state dicts of the 2023 networks, weights by the SPEC section 8 rule."""
    ref = torch.load(reference_dir / "v2023_reference.pt", weights_only=True)
    return {name: reference_weights(ref, net) for name, net in ROLES.items()}


@pytest.fixture(scope="module")
def states_2021(reference_dir):
    ref = torch.load(reference_dir / "miccai2021_reference.pt", weights_only=True)
    return {name: reference_weights(ref, net) for name, net in ROLES.items()}


def write_release(folder, states, files=RELEASE_FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for name, file in files.items():
        torch.save(states[name], folder / file)
    return folder


@pytest.fixture(scope="module")
def release_root(tmp_path_factory, release_states):
    root = tmp_path_factory.mktemp("release")
    for dataset in ("DRIVE_AV", "TINY"):
        write_release(root / dataset / f"{dataset}_randomseed_42" / "Discriminator_unet", release_states)
    return root


def test_release_folder_loads_as_the_2023_networks(release_root, release_states):
    nets = load_release(release_root / "TINY" / "TINY_randomseed_42" / "Discriminator_unet")
    expected = build_generators("v2023")
    for name, net in nets.items():
        expected[name].load_state_dict(map_original_state_dict(release_states[name]))
        assert type(net) is type(expected[name]) and not net.training
        for key, value in expected[name].state_dict().items():
            assert torch.equal(net.state_dict()[key], value), (name, key)


def test_unzipped_root_and_dataset_name_find_the_folder(release_root):
    assert find_release(release_root, "TINY") == release_root / "TINY" / "TINY_randomseed_42" / "Discriminator_unet"
    with pytest.raises(CheckpointError, match="several release folders") as err:
        find_release(release_root)
    assert "--dataset" in str(err.value)
    with pytest.raises(CheckpointError, match="no CP_best_F1_A.pth"):
        find_release(release_root, "HRF-AV")


def test_missing_file_is_named(tmp_path, release_states):
    folder = write_release(tmp_path / "rel", release_states, {k: v for k, v in RELEASE_FILES.items() if k != "G_V"})
    with pytest.raises(CheckpointError, match=r"missing CP_best_F1_V.pth \(G_V\)"):
        load_release(folder)


def test_2021_files_given_as_a_release_are_refused(tmp_path, states_2021):
    folder = write_release(tmp_path / "rel", states_2021)
    with pytest.raises(CheckpointError, match="2021 paper variant.*--original"):
        load_release(folder)


def test_mixed_files_name_the_wrong_one(tmp_path, release_states, states_2021):
    swapped = dict(release_states, G_A=release_states["G"])
    with pytest.raises(CheckpointError, match=r"CP_best_F1_A.pth: holds a fusion generator.*artery branch"):
        load_release(write_release(tmp_path / "a", swapped))
    mixed = dict(release_states, G_V=states_2021["G_V"])
    with pytest.raises(CheckpointError, match="do not belong together.*CP_best_F1_V.pth: v2021"):
        load_release(write_release(tmp_path / "b", mixed))


def test_dataparallel_prefix_and_cuda_saved_tensors_load_on_the_cpu(tmp_path, release_states):
    """Files saved from a GPU (storages tagged cuda:0) load on a machine without one."""
    saving_as_cuda = {"on": False}

    def tag_as_cuda(storage):
        return "cuda:0" if saving_as_cuda["on"] and storage.device.type == "cpu" else None

    serialization.register_package(1, tag_as_cuda, lambda storage, location: None)
    saving_as_cuda["on"] = True
    try:
        folder = write_release(
            tmp_path / "gpu", {k: {f"module.{n}": t for n, t in v.items()} for k, v in release_states.items()}
        )
    finally:
        saving_as_cuda["on"] = False
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(folder / RELEASE_FILES["G"], weights_only=True)  # what the authors' test code hits
    nets = load_release(folder)
    assert all(p.device.type == "cpu" for net in nets.values() for p in net.parameters())


# ---- scoring: our test.py against an independent implementation of the authors' test code ----

LABEL_COLOURS = [
    (0, 0, 0),
    (255, 0, 0),
    (0, 0, 255),
    (0, 255, 0),
    (255, 255, 255),
    (255, 0, 255),
    (0, 255, 255),
    (200, 30, 30),
]  # the last: an off-colour pixel, background for the 2023 code


def write_tiny_dataset(root, n=3):
    rng = np.random.default_rng(7)
    split = root / "TINY" / "test"
    for sub in ("images", "1st_manual", "mask"):
        (split / sub).mkdir(parents=True)
    for i in range(n):
        h, w = 60 + 4 * i, 70 - 2 * i
        yy, xx = np.mgrid[:h, :w]
        photo = np.stack(
            [120 + 80 * np.sin(xx / (5 + i)), 60 + 40 * np.cos(yy / 7), 30 + 20 * np.sin((xx + yy) / 9)], -1
        )
        photo = np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
        disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 2.1) ** 2
        photo[~disc] = 0
        Image.fromarray(photo).save(split / "images" / f"{i:02d}.png")
        index = rng.choice(len(LABEL_COLOURS), size=(h, w), p=[0.55, 0.12, 0.12, 0.05, 0.05, 0.04, 0.04, 0.03])
        Image.fromarray(np.array(LABEL_COLOURS, np.uint8)[index]).save(split / "1st_manual" / f"{i:02d}.png")
        if i == 2:  # a 0/1 palette mask, as LES-AV has
            m = Image.fromarray(disc.astype(np.uint8), mode="L").convert("P")
            m.save(split / "mask" / f"{i:02d}_mask.png")
        else:
            Image.fromarray(disc.astype(np.uint8) * 255).save(split / "mask" / f"{i:02d}_mask.gif")
    return split


def authors_numbers(split, states, size):
    """SPEC 9.3-9.4 written out directly: per-class means and the weighted average over images."""
    nets = build_generators("v2023")
    for name, net in nets.items():
        net.load_state_dict(map_original_state_dict(states[name]))
        net.eval()
    colour_index = {
        (0, 0, 0): 0,
        (255, 0, 0): 1,
        (0, 0, 255): 2,
        (0, 255, 0): 3,
        (255, 255, 255): 3,
        (0, 255, 255): 3,
        (255, 0, 255): 1,
    }
    per_class, average = {c: [] for c in ("artery", "vein", "uncertain")}, []
    for image_file in sorted((split / "images").iterdir()):
        img = np.array(Image.open(image_file).convert("RGB").resize(size, Image.BICUBIC)).astype(np.float64)
        inside = img[img[..., 0] > 0]
        x = (img - inside.mean(axis=0)) * inside.std(axis=0)
        x = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
        rgb = np.array(Image.open(split / "1st_manual" / image_file.name).convert("RGB"))
        label = np.array([[colour_index.get(tuple(int(v) for v in px), 0) for px in row] for row in rgb])
        mask = np.array(Image.open(next((split / "mask").glob(image_file.stem + "_mask.*"))))
        mask = mask[..., 0] if mask.ndim == 3 else mask
        fov = (mask / 255 if mask.max() > 1 else mask) > 0.5
        with torch.no_grad():
            _, fa = nets["G_A"](x)
            _, fv = nets["G_V"](x)
            logits = nets["G"](x, fa, fv)[0]
        logits = F.interpolate(logits, size=label.shape, mode="bicubic", align_corners=True)
        pred = torch.softmax(logits, dim=1).argmax(dim=1)[0].numpy()
        values, counts = {}, {}
        for name, c in (("artery", 1), ("vein", 2), ("uncertain", 3)):
            v = authors_misc_measures((label[fov] == c).astype(int), (pred[fov] == c).astype(int))
            values[name] = (0.0,) * 8 if name == "uncertain" and np.isnan(v[5]) else v
            counts[name] = (label == c).sum()
            per_class[name].append(values[name])
        average.append(np.sum([counts[k] * np.array(values[k]) for k in counts], axis=0) / sum(counts.values()))
    result = {k: dict(zip(AUTHOR_KEYS, np.mean(v, axis=0))) for k, v in per_class.items()}
    result["average"] = dict(zip(AUTHOR_KEYS, np.mean(average, axis=0)))
    return result


def test_test_cli_on_a_release_prints_the_authors_numbers(tmp_path, release_root, release_states, capsys):
    from scripts.test import main

    write_tiny_dataset(tmp_path / "data")
    results = tmp_path / "results"
    code = main(
        [
            "--dataset",
            "TINY",
            "--data-root",
            str(tmp_path / "data"),
            "--release",
            str(release_root),
            "--image-size",
            "64",
            "64",
            "--results",
            str(results),
            "--maps-dir",
            str(tmp_path / "Final_pre"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "1 checkpoint, so no std" in out and "2023 release" in out
    want = authors_numbers(tmp_path / "data" / "TINY" / "test", release_states, (64, 64))
    with open(results / "summary.csv") as f:
        got = {r["class"]: r for r in csv.DictReader(f)}
    for cls, metrics in want.items():
        for k, v in metrics.items():
            assert float(got[cls][k]) == pytest.approx(v, rel=1e-8, abs=1e-12, nan_ok=True), (cls, k)
    preds = {tuple(r.values()) for r in want.values()}
    assert len(preds) > 1 and 0 < want["artery"]["sensitivity"] < 1  # a prediction with several classes
    row = json.loads((results / "paper_row.json").read_text())
    assert row["variant"] == "v2023" and row["model_size"] == [64, 64] and row["checkpoints"] == ["release"]
    import hashlib

    where = release_root / "TINY" / "TINY_randomseed_42" / "Discriminator_unet"
    assert [(Path(w["file"]).name, w["sha256"]) for w in row["weights"]] == [
        (f, hashlib.sha256((where / f).read_bytes()).hexdigest()) for f in RELEASE_FILES.values()
    ]
    assert row["snapshots"]["rule"] == "release"
    assert row["percent"]["F1"]["mean"] == pytest.approx(100 * want["average"]["f1"], rel=1e-8)
    assert row["percent"]["F1"]["std"] == 0.0
    for i in range(3):
        small = Image.open(tmp_path / "Final_pre" / "small_pre" / f"{i:02d}.png")
        raw = Image.open(tmp_path / "Final_pre" / "raw_pre" / f"{i:02d}.png")
        assert (
            small.size == (64, 64) and raw.size == Image.open(tmp_path / "data/TINY/test/images" / f"{i:02d}.png").size
        )
        assert (results / "figures" / f"{i:02d}.png").is_file()


def test_release_default_size_is_720(tmp_path, release_root, monkeypatch):
    from scripts import test as test_cli
    from scripts.evaluation.options import TestOptions

    seen = {}
    monkeypatch.setattr(
        "scripts.evaluation.protocol.iterate_shard",
        lambda predictor, dataset, device, ctx: seen.update(size=dataset.model_size) or iter(()),
    )
    write_tiny_dataset(tmp_path / "data", n=1)
    opts = TestOptions(
        dataset="TINY",
        data_root=tmp_path / "data",
        release=release_root,
        results=tmp_path / "r",
        maps_dir=tmp_path / "m",
        device="cpu",
    )
    with pytest.raises(ValueError):  # no image scored: nothing to average
        test_cli.run(opts)
    assert seen["size"] == (720, 720)


def test_predict_cli_on_a_release_writes_our_convention(tmp_path, release_root, release_states):
    from scripts.predict import main

    split = write_tiny_dataset(tmp_path / "data", n=1)
    out = tmp_path / "pred"
    assert (
        main(
            [
                str(split / "images"),
                "--release",
                str(release_root),
                "--dataset",
                "TINY",
                "--image-size",
                "64",
                "64",
                "--masks",
                str(split / "mask"),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    av = np.asarray(Image.open(out / "00_av.png"))
    prob = np.asarray(Image.open(out / "00_prob.png")).astype(np.float64) / 255
    colours = {tuple(c) for c in av.reshape(-1, 3)}
    assert colours <= {(0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0)}
    # each coloured pixel is the class with the largest softmax among artery / uncertain / vein and background
    fov = np.asarray(Image.open(split / "mask" / "00_mask.gif")) > 0
    best = prob.argmax(axis=2)
    background = prob.sum(axis=2) < 1 - prob.max(axis=2) - 2 / 255  # background probability is the largest
    for channel, colour in ((0, (255, 0, 0)), (1, (0, 255, 0)), (2, (0, 0, 255))):
        is_colour = (av == colour).all(axis=2)
        assert not (is_colour & ~fov).any()
        assert (best[is_colour] == channel).mean() > 0.95
        assert not (is_colour & background).any()


def test_a_release_of_another_dataset_is_refused_naming_both(tmp_path, release_root, capsys):
    from scripts.test import main

    with pytest.raises(CheckpointError, match="these are the DRIVE_AV weights .* and this command scores HRF-AV"):
        find_release(release_root / "DRIVE_AV" / "DRIVE_AV_randomseed_42" / "Discriminator_unet", "HRF-AV")
    with pytest.raises(CheckpointError, match="these are the DRIVE_AV weights"):
        find_release(release_root / "DRIVE_AV", "hrf-av")  # the only folder below it
    assert find_release(release_root / "DRIVE_AV", "drive-av").name == "Discriminator_unet"  # spelled either way
    write_tiny_dataset(tmp_path / "data", n=1)
    assert (
        main(
            [
                "--dataset",
                "TINY",
                "--data-root",
                str(tmp_path / "data"),
                "--release",
                str(release_root / "DRIVE_AV"),
                "--results",
                str(tmp_path / "r"),
                "--maps-dir",
                str(tmp_path / "m"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "these are the DRIVE_AV weights" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()


def test_a_release_folder_naming_no_dataset_is_used_with_a_warning(tmp_path, release_states, caplog):
    folder = write_release(tmp_path / "my_weights", release_states)
    with caplog.at_level("WARNING", logger="avseg"):
        assert find_release(folder, "HRF-AV") == folder
    assert "names no dataset" in caplog.text and "HRF-AV" in caplog.text


def test_a_zipped_release_says_unzip_it_first(tmp_path, release_root):
    archive = shutil.make_archive(str(tmp_path / "weights"), "zip", release_root / "TINY")
    with pytest.raises(CheckpointError, match="this is a zip archive; unzip it first"):
        find_release(Path(archive), "TINY")


def test_a_file_missing_a_key_names_the_key(tmp_path, release_states):
    from model import map_original_state_dict

    keys = list(release_states["G_A"])
    gone = keys[len(keys) // 2]  # a layer in the middle: the file still looks like a generator
    (lost,) = map_original_state_dict({gone: release_states["G_A"][gone]})
    damaged = {k: v for k, v in release_states["G_A"].items() if k != gone}
    folder = write_release(tmp_path / "TINY_randomseed_42", dict(release_states, G_A=damaged))
    with pytest.raises(
        CheckpointError,
        match=r"CP_best_F1_A.pth \[G_A\]: the weights do not fit the network: "
        rf"missing key\(s\) {re.escape(lost)}\. .*damaged or incomplete",
    ) as err:
        load_release(folder, "TINY")
    assert "--n-filters" not in str(err.value)
