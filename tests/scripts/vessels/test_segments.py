"""Segment-level evaluation on hand-made label/prediction pairs whose answers are known by construction."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from scripts.data.labels import decode_classes
from scripts.vessels.graph import ARTERY, UNCERTAIN, VEIN, build_graph
from scripts.vessels.segments import (
    MIXED_SHARES,
    VERDICT_COLOURS,
    pool,
    segment_counts,
    segment_metrics,
    verdict_picture,
    verdicts,
)

A, U, V = 0, 1, 2  # label channels: artery, uncertain/crossing, vein
PA, PV, PU = 0, 1, 2  # decoded prediction classes: artery, vein, uncertain


def classes_of(label: np.ndarray) -> np.ndarray:
    """A perfect prediction: the label's decoded classes."""
    return decode_classes(torch.from_numpy(label)).numpy()


def straight(width: int = 1, length: int = 50, channel: int = A, shape=(40, 70)) -> np.ndarray:
    label = np.zeros((3, *shape), bool)
    top = shape[0] // 2 - width // 2
    label[channel, top : top + width, 10 : 10 + length] = True
    return label


def score(label, pred, **kw):
    graph = build_graph(label, **kw)
    counts = segment_counts(graph, pred)
    return graph, counts, segment_metrics(counts)


@pytest.mark.parametrize("width", [1, 10])
def test_one_straight_vessel_is_one_segment_of_its_length(width):
    graph = build_graph(straight(width))
    assert graph.n_segments == 1 and graph.truth.tolist() == [ARTERY]
    assert 50 - width - 2 <= graph.length[0] <= 50  # the skeleton stops about half a width from each blunt end
    assert graph.nodes.size == 0  # the spurs a wide blunt end grows are pruned


def test_pixels_are_in_centreline_order():
    label = np.zeros((3, 40, 40), bool)
    for i in range(30):  # a diagonal staircase
        label[V, 5 + i, 5 + i] = label[V, 5 + i, 6 + i] = True
    graph = build_graph(label)
    assert graph.n_segments == 1
    y, x = np.divmod(graph.pixels, 40)
    steps = np.abs(np.diff(y)) + np.abs(np.diff(x))
    assert steps.max() <= 2 and (np.diff(y) >= 0).all() or (np.diff(y) <= 0).all()


def test_straight_artery_found_part_artery_part_vein_is_mixed_once():
    label = straight()
    pred = np.zeros_like(label)
    pred[PA, :, :40] = label[A, :, :40]  # 30 px artery
    pred[PV, :, 40:] = label[A, :, 40:]  # 20 px vein
    _, counts, m = score(label, pred)
    assert counts["segments"] == 1 and m["detection_rate"] == 1.0
    assert m["av_accuracy"] == 1.0  # most of it is artery
    assert m["mixed_rate"] == 1.0 and all(m[f"mixed_rate_{round(100 * t):02d}"] == 1.0 for t in MIXED_SHARES)
    assert m["switches_per_segment"] == 1.0


def test_mixed_share_threshold_curve():
    label = straight(length=100, shape=(40, 120))
    pred = np.zeros_like(label)
    pred[PA] = label[A]
    pred[PA, :, 10:18], pred[PV, :, 10:18] = False, label[A, :, 10:18]  # 8 % of the found pixels vein
    _, _, m = score(label, pred)
    assert (m["mixed_rate_05"], m["mixed_rate_10"], m["mixed_rate_20"]) == (1.0, 0.0, 0.0)
    assert m["av_accuracy"] == 1.0 and m["switches_per_segment"] == 1.0


def test_y_branch_gives_three_segments_and_no_crossing():
    label = np.zeros((3, 70, 70), bool)
    label[V, 35, 2:35] = True
    for i in range(30):
        label[V, 35 - i, 35 + i] = label[V, 35 + i, 35 + i] = True
    graph, counts, m = score(label, classes_of(label))
    assert graph.n_segments == 3 and (graph.truth == VEIN).all() and graph.nodes.size >= 1
    assert sorted(divmod(int(p), 70) for p in graph.ends) == [(6, 64), (35, 2), (64, 64)]
    assert not graph.near_crossing.any() and counts["crossing_segments"] == 0
    assert (m["detection_rate"], m["av_accuracy"], m["mixed_rate"]) == (1.0, 1.0, 0.0)
    assert math.isnan(m["crossing_av_accuracy"])  # nothing to count: undefined, not 0


def x_crossing() -> np.ndarray:
    """An artery (horizontal) crossing a vein (vertical), the crossing patch labelled green."""
    label = np.zeros((3, 61, 61), bool)
    label[A, 30, :] = True
    label[V, :, 30] = True
    label[:, 28:33, 28:33] = False
    label[U, 28:33, 28:33] = True
    return label


def test_x_crossing_with_the_green_label():
    label = x_crossing()
    graph = build_graph(label)
    assert graph.n_segments == 4 and sorted(graph.truth.tolist()) == [ARTERY, ARTERY, VEIN, VEIN]
    assert graph.near_crossing.all() and graph.crossings.size > 0
    pred = classes_of(label)
    pred[PA, :28, 30], pred[PV, :28, 30] = True, False  # the upper vein arm found as artery
    counts = segment_counts(graph, pred)
    m = segment_metrics(counts)
    assert counts["crossing_segments"] == 4 and m["crossing_av_accuracy"] == 0.75 and m["av_accuracy"] == 0.75
    assert m["crossing_mixed_rate"] == 0.0
    verdict = verdicts(graph, pred)
    assert sorted(verdict.tolist()) == ["correct", "correct", "correct", "wrong_class"]


def test_x_crossing_without_green_is_found_from_the_classes():
    label = x_crossing()
    label[U] = False
    label[V, 28:33, 30] = True
    label[A, 30, 28:33] = True  # the artery drawn over the vein, no crossing label
    label[V, 30, 30] = False
    graph = build_graph(label)
    assert graph.near_crossing.all()


def test_entirely_missed_segment():
    label = straight(channel=A)
    label[V, 5, 10:60] = True  # a second, separate vessel
    pred = classes_of(label)
    pred[PV] = False  # the vein is not found at all
    graph, counts, m = score(label, pred)
    assert counts["segments"] == 2 and counts["detected"] == 1 and m["detection_rate"] == 0.5
    assert m["av_accuracy"] == 1.0  # accuracy is over detected segments
    assert sorted(verdicts(graph, pred).tolist()) == ["correct", "missed"]


def test_uncertain_segments_are_kept_apart():
    label = straight(channel=A)
    label[:, 5, 10:60] = True  # white: uncertain
    graph, counts, m = score(label, np.zeros_like(label))
    assert sorted(graph.truth.tolist()) == [ARTERY, UNCERTAIN]
    assert counts["segments"] == 1 and counts["uncertain_segments"] == 1


@pytest.mark.parametrize("shape", [(32, 32), (1, 40)])
def test_empty_ground_truth_is_defined(shape):
    label = np.zeros((3, *shape), bool)
    pred = np.ones_like(label)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph, counts, m = score(label, pred)
    assert graph.n_segments == 0 and counts["segments"] == 0
    assert all(math.isnan(v) for k, v in m.items() if k != "segments")
    assert verdict_picture(graph, verdicts(graph, pred), 3).shape == (*shape, 3)


def test_pooling_counts_each_segment_once():
    one = segment_counts(build_graph(straight()), classes_of(straight()))
    label = straight()
    label[V, 5, 10:60] = True
    two = segment_counts(build_graph(label), np.zeros_like(label))
    m = segment_metrics(pool([one, two]))
    assert m["segments"] == 3 and m["detection_rate"] == pytest.approx(1 / 3)


def test_verdict_picture_colours_the_centreline():
    label = straight()
    graph = build_graph(label)
    pic = verdict_picture(graph, verdicts(graph, classes_of(label)), thickness=3)
    assert (pic.reshape(-1, 3) == VERDICT_COLOURS["correct"]).all(axis=1).sum() >= 3 * graph.length[0]


def test_bad_label_shape_is_a_value_error():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        build_graph(np.zeros((4, 8, 8), bool))
    with pytest.raises(ValueError, match="mixed_share"):
        segment_metrics(segment_counts(build_graph(straight()), classes_of(straight())), mixed_share=0.3)


def test_ground_truth_against_itself_on_every_real_image(real_data):
    from scripts.core.config import dataset_info
    from scripts.data.dataset import find_items
    from scripts.data.images import load_label

    checked = 0
    for dataset in sorted(p.name for p in real_data.iterdir() if p.is_dir()):
        for split in ("training", "test"):
            if not (real_data / dataset / split).is_dir():
                continue
            for item in find_items(real_data / dataset / split, dataset_info(dataset).label_suffixes):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # off-colour label pixels
                    label = load_label(item.label)[0].transpose(2, 0, 1)
                graph = build_graph(label)
                m = segment_metrics(segment_counts(graph, classes_of(label)))
                assert m["segments"] > 20, item.label
                assert (m["detection_rate"], m["av_accuracy"], m["mixed_rate_05"], m["switches_per_segment"]) == (
                    1.0,
                    1.0,
                    0.0,
                    0.0,
                ), item.label
                checked += 1
    assert checked >= 40


def test_corruptions_that_pixel_metrics_cannot_tell_apart_are_told_apart(real_data):
    """Swapping A/V on half of every segment and on every other whole segment cost the same pixel
    F1; the segment metrics call the first mixed and the second wrong."""
    from scripts.data.dataset import find_items
    from scripts.data.images import load_label, load_mask
    from scripts.evaluation.metrics import image_metrics
    from tests.helpers import corrupt_ground_truth

    for item in find_items(real_data / "DRIVE_AV" / "test", ("",))[:3]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            label = load_label(item.label)[0].transpose(2, 0, 1)
        mask = load_mask(item.mask)
        graph = build_graph(label, fov=mask)
        result = {}
        for mode in ("half_of_each", "every_other"):
            cls = corrupt_ground_truth(label, graph, mode)
            binary = np.stack([cls[PA], cls[PU], cls[PV]])
            pixel = image_metrics(
                binary.astype(np.float32), label, mask, binary=torch.from_numpy(binary), with_prob_auc=False
            )
            result[mode] = (pixel["average"]["f1"], segment_metrics(segment_counts(graph, cls)))
        (f1_half, half), (f1_other, other) = result["half_of_each"], result["every_other"]
        assert abs(f1_half - f1_other) < 0.08 and 0.4 < f1_half < 0.65
        assert half["mixed_rate"] > 0.95 and other["mixed_rate"] == 0.0
        assert half["switches_per_segment"] > 0.95 and other["switches_per_segment"] == 0.0
        assert 0.4 < other["av_accuracy"] < 0.6 and half["detection_rate"] == other["detection_rate"] == 1.0
