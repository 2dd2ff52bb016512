"""Paper metrics: the original's fixture, hand-computed tiny cases, sklearn cross-checks, edge cases."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from scripts.data.labels import decode_classes
from scripts.evaluation.metrics import class_counts, image_metrics, mean_metrics, metrics_from_counts

FIXTURE_NAMES = {"acc": "accuracy", "G": "g_mean", "F1": "f1", "auc_roc": "roc", "auc_pr": "pr"}


def test_reproduces_original_evaluation_fixture(reference_dir):
    data = np.load(reference_dir / "paper_metrics_drive01.npz")
    expected = json.loads((reference_dir / "paper_metrics_drive01.json").read_text())
    result = image_metrics(np.moveaxis(data["prob_u8"], -1, 0) / 255.0, np.moveaxis(data["label"], -1, 0), data["mask"])
    for cls, values in expected.items():
        for key, value in values.items():
            assert abs(result[cls][FIXTURE_NAMES.get(key, key)] - value) < 1e-9, (cls, key)


def test_decoding_follows_the_paper_protocol():
    # colours: black, red, green, blue, white, yellow, magenta, cyan
    colours = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    got = decode_classes(colours.T.bool()[:, None, :])[:, 0, :].T.int().tolist()
    # [artery, vein, uncertain]
    assert got == [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 1]]


def _classes(*rows):
    return torch.tensor(rows, dtype=torch.bool)[:, None, :]  # (3, 1, W)


def test_hand_computed_counts_and_metrics():
    pred = _classes([1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1])
    gt = _classes([1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1])
    counts = class_counts(pred, gt, torch.ones(1, 4, dtype=torch.bool)).tolist()
    # classes in CLASSES order (artery, vein, uncertain); rows + vessel; columns tp, fp, fn, tn
    assert counts == [[1, 1, 1, 1], [0, 0, 0, 4], [1, 1, 1, 1], [4, 0, 0, 0]]
    m = metrics_from_counts(1, 1, 1, 1)
    assert m["accuracy"] == 0.5 and m["sensitivity"] == 0.5 and m["specificity"] == 0.5
    assert m["f1"] == 0.5 and m["iou"] == pytest.approx(1 / 3) and m["mse"] == 0.5
    assert m["g_mean"] == 0.5 and m["roc"] == 0.5
    # PR curve (1, 0.5) -> (0.5, 0.5) -> (0, 1): 0.5 * 0.5 + 0.5 * 0.75
    assert m["pr"] == pytest.approx(0.625)


def test_mask_excludes_pixels():
    pred = _classes([1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0])
    gt = _classes([1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0])
    mask = torch.tensor([[1, 0, 1, 1]], dtype=torch.bool)
    assert class_counts(pred, gt, mask)[0].tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize("seed", range(40))
def test_binary_roc_and_pr_equal_sklearn(seed):
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    s = (rng.random(n) < rng.uniform(0, 1)).astype(float)
    if y.all() or not y.any():
        y[0], y[-1] = True, False
    tp, fp = int((y & (s > 0)).sum()), int((~y & (s > 0)).sum())
    fn, tn = int((y & (s == 0)).sum()), int((~y & (s == 0)).sum())
    m = metrics_from_counts(tp, fp, fn, tn)
    p, r, _ = sklearn.precision_recall_curve(y, s)
    assert m["pr"] == pytest.approx(sklearn.auc(r, p), abs=1e-12)
    assert m["roc"] == pytest.approx(sklearn.roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_threshold_free_aucs_equal_sklearn(seed):
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    label = rng.random((3, 20, 30)) < 0.3
    prob = np.clip(label * 0.3 + rng.random((3, 20, 30)) * 0.7, 0, 1)
    prob = np.round(prob * 255) / 255  # 8-bit maps: the quantisation is exact
    mask = np.ones((20, 30), bool)
    r = image_metrics(prob, label, mask)
    gt_artery = label[0] & ~label[1]
    assert r["artery"]["roc_auc_prob"] == pytest.approx(
        sklearn.roc_auc_score(gt_artery.ravel(), prob[0].ravel()), abs=1e-9
    )
    assert r["artery"]["pr_auc_prob"] == pytest.approx(
        sklearn.average_precision_score(gt_artery.ravel(), prob[0].ravel()), abs=1e-9
    )


def _image(h=8, w=8):
    label = np.zeros((3, h, w), np.uint8)
    label[0, 1, :] = 1  # artery row
    label[2, 5, :] = 1  # vein row
    return label, np.ones((h, w), bool)


def test_perfect_prediction_without_uncertain_pixels():
    label, mask = _image()
    r = image_metrics(label.astype(float), label, mask)
    for cls in ("artery", "vein", "average"):
        assert r[cls]["f1"] == 1.0 and r[cls]["accuracy"] == 1.0 and r[cls]["pr"] == 1.0
    # no uncertain pixel in ground truth or prediction: F1 undefined -> the class counts as 0
    assert all(v == 0.0 for v in r["uncertain"].values())


def test_empty_prediction_counts_undefined_ratios_as_zero_with_warning():
    label, mask = _image()
    with pytest.warns(UserWarning, match=r"image 07: artery precision undefined \(0/0\)"):  # names the image
        r = image_metrics(np.zeros(label.shape), label, mask, source="image 07")
    assert r["artery"]["precision"] == 0.0 and r["artery"]["f1"] == 0.0 and r["artery"]["sensitivity"] == 0.0
    assert r["average"]["specificity"] == 1.0
    assert not any(math.isnan(v) for c in r.values() for v in c.values())


def test_all_background_image_is_defined():
    label = np.zeros((3, 6, 6), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = image_metrics(np.zeros((3, 6, 6)), label, np.ones((6, 6), bool))
    assert r["artery"]["accuracy"] == 1.0
    assert r["average"] == dict.fromkeys(r["average"], 0.0)  # no ground-truth pixel to weight by


def test_prediction_outside_fov_is_ignored():
    label, _ = _image()
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    prob = label.astype(float)
    prob[0, :, 4:] = 1.0  # artery everywhere outside the FOV
    assert image_metrics(prob, label, mask)["artery"]["precision"] == 1.0


def test_weighted_average_uses_ground_truth_counts():
    label, mask = _image()
    label[2, 6, :] = 1  # vein now has twice the artery pixels
    prob = label.astype(float)
    prob[0] = 0  # artery missed entirely
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = image_metrics(prob, label, mask)
    assert r["average"]["sensitivity"] == pytest.approx((8 * 0 + 16 * 1) / 24)


@pytest.mark.parametrize(
    "prob_shape,label_shape,mask_shape,match",
    [
        ((8, 8), (3, 8, 8), (8, 8), r"prob must have shape \(3, H, W\)"),
        ((3, 8, 8), (3, 8, 9), (8, 8), "label shape"),
        ((3, 8, 8), (3, 8, 8), (7, 8), "mask shape"),
    ],
)
def test_bad_shapes_raise_value_error(prob_shape, label_shape, mask_shape, match):
    with pytest.raises(ValueError, match=match):
        image_metrics(np.zeros(prob_shape), np.zeros(label_shape, np.uint8), np.ones(mask_shape, bool))


def test_integer_probability_is_rejected():
    with pytest.raises(ValueError, match="dtype"):
        image_metrics(np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4), np.uint8), np.ones((4, 4), bool))


def test_mean_over_images():
    a = {"artery": {"f1": 0.2}}
    b = {"artery": {"f1": 0.4}}
    assert mean_metrics([a, b])["artery"]["f1"] == pytest.approx(0.3)


def test_vessel_level_scores_ignore_the_class():
    label, mask = _image()
    prob = np.zeros(label.shape)
    prob[2] = label[0]  # arteries predicted as veins, veins missed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = image_metrics(prob, label, mask)
    assert r["artery"]["sensitivity"] == 0.0
    assert r["vessel"]["sensitivity"] == 0.5 and r["vessel"]["precision"] == 1.0
    assert r["vessel"]["f1"] == pytest.approx(2 / 3)


AUTHOR_KEYS = ("accuracy", "sensitivity", "specificity", "precision", "g_mean", "f1", "mse", "iou")


def _index_maps(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 12 x 10 ground-truth and predicted class indices (0 bg, 1 A, 2 V, 3 U) and an FOV;
    some seeds drop a class from the prediction or the ground truth, or miss every uncertain pixel."""
    rng = np.random.default_rng(seed)
    gt = rng.choice(4, size=(12, 10), p=[0.6, 0.15, 0.15, 0.1])
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.choice(4, size=gt.shape))
    if seed % 4 == 1:
        pred[pred == 3] = 0  # no uncertain pixel predicted: its F1 is undefined in the original
    if seed % 4 == 2:
        pred[pred == 1] = 2  # no artery predicted: the original's artery ratios become NaN
    if seed % 4 == 3:
        gt[gt == 3], pred[pred == 3] = 0, 0  # no uncertain anywhere: one-cell matrix
    fov = rng.random(gt.shape) < 0.9
    return gt, pred, fov


@pytest.mark.parametrize("seed", range(12))
def test_authors_policy_equals_the_original_code_on_index_maps(seed):
    from scripts.data.labels import INDEX_TO_RGB
    from tests.helpers import authors_misc_measures

    gt, pred, fov = _index_maps(seed)
    label = INDEX_TO_RGB[gt].transpose(2, 0, 1)
    binary = INDEX_TO_RGB[pred].transpose(2, 0, 1).copy()
    binary[1] &= pred == 3  # uncertain predictions as green, not white (both decode to uncertain)
    r = image_metrics(
        np.zeros(label.shape), label, fov, binary=torch.from_numpy(binary), nan_policy="authors", with_prob_auc=False
    )
    expected = {}
    for name, c in (("artery", 1), ("vein", 2), ("uncertain", 3)):
        values = authors_misc_measures((gt[fov] == c).astype(int), (pred[fov] == c).astype(int))
        if name == "uncertain" and np.isnan(values[5]):
            values = (0.0,) * 8
        expected[name] = dict(zip(AUTHOR_KEYS, values))
        np.testing.assert_allclose([r[name][k] for k in AUTHOR_KEYS], values, rtol=1e-12, atol=0, err_msg=name)
    counts = {name: (gt == c).sum() for name, c in (("artery", 1), ("vein", 2), ("uncertain", 3))}
    for k in AUTHOR_KEYS:
        want = sum(counts[n] * expected[n][k] for n in counts) / sum(counts.values())
        np.testing.assert_allclose(r["average"][k], want, rtol=1e-12, atol=0, err_msg=k)


def test_uncertain_without_a_true_positive_counts_as_zero():
    label = np.zeros((3, 4, 4), np.uint8)
    label[1, 0, :2] = 1  # two uncertain pixels in the ground truth, both missed
    label[0, 3, :] = 1
    prob = np.zeros((3, 4, 4))
    prob[1, 2, :] = 1  # four uncertain pixels predicted elsewhere
    prob[0, 3, :] = 1
    r = image_metrics(prob, label, np.ones((4, 4), bool))
    assert all(v == 0.0 for v in r["uncertain"].values())
    assert r["artery"]["f1"] == 1.0
