"""Pictures: A/V colour maps and error-map colours on hand-made pixels."""

from __future__ import annotations

import numpy as np

from scripts.data.labels import av_colour_map
from scripts.figures.visualise import (
    AV_LEGEND,
    ERROR_COLOURS,
    PANEL_TITLES,
    comparison_figure,
    comparison_panels,
    error_map,
    overlay,
)
from scripts.vessels.segments import VERDICT_COLOURS


def _px(*channels):
    return np.array(channels, bool).reshape(3, 1, 1)


def test_av_colour_map_decodes_classes():
    label = np.concatenate([_px(1, 0, 0), _px(0, 0, 1), _px(1, 1, 1), _px(0, 1, 0), _px(0, 0, 0)], axis=2)
    assert av_colour_map(label)[0].tolist() == [[255, 0, 0], [0, 0, 255], [0, 255, 0], [0, 255, 0], [0, 0, 0]]


def test_error_map_colours():
    cases = [  # (ground truth, prediction, expected colour)
        (_px(1, 0, 0), _px(1, 0, 0), ERROR_COLOURS["artery_correct"]),
        (_px(0, 0, 1), _px(0, 0, 1), ERROR_COLOURS["vein_correct"]),
        (_px(1, 0, 0), _px(0, 0, 1), ERROR_COLOURS["av_confusion"]),
        (_px(0, 0, 1), _px(1, 0, 0), ERROR_COLOURS["av_confusion"]),
        (_px(1, 1, 1), _px(1, 0, 0), ERROR_COLOURS["uncertain_found"]),
        (_px(1, 0, 0), _px(0, 0, 0), ERROR_COLOURS["missed_vessel"]),
        (_px(0, 0, 0), _px(0, 0, 1), ERROR_COLOURS["false_vessel"]),
        (_px(0, 0, 0), _px(0, 0, 0), (0, 0, 0)),
    ]
    for gt, pred, colour in cases:
        assert tuple(error_map(pred, gt, np.ones((1, 1), bool))[0, 0]) == colour, (gt.ravel(), pred.ravel())
    assert tuple(error_map(_px(0, 0, 0), _px(1, 0, 0), np.zeros((1, 1), bool))[0, 0]) == (0, 0, 0)


def _sample(h, w):
    photo = np.full((h, w, 3), 100, np.uint8)
    prob = np.zeros((3, h, w))
    prob[0, h // 4] = 0.9
    label = np.zeros((3, h, w), bool)
    label[0, h // 4] = True
    return photo, prob, label, np.ones((h, w), bool)


def test_panels_are_titled_and_scaled_to_the_panel_height():
    thickness = []

    def segments(t):
        thickness.append(t)
        return np.zeros((2336, 3504, 3), np.uint8)

    panels = comparison_panels(*_sample(2336, 3504), segments=segments, height=480)
    assert [t for t, _ in panels] == list(PANEL_TITLES)
    assert {p.shape for _, p in panels} == {(480, 720, 3)} and thickness == [5]  # ceil(2336 / 480)
    small = comparison_panels(*_sample(20, 30))
    assert len(small) == 5 and small[0][1].shape == (480, 720, 3)  # no segment panel; enlarged to be read


def test_comparison_figure_carries_its_legends_at_any_raw_size():
    for h, w in ((40, 30), (2336, 3504)):
        fig = comparison_figure(
            *_sample(h, w), segments=lambda t, h=h, w=w: np.zeros((h, w, 3), np.uint8), title="DRIVE_AV 01_test"
        )
        assert 1200 <= fig.shape[1] <= 2400 and 1000 <= fig.shape[0] <= 1400
        band = fig[-170:].reshape(-1, 3)  # below the panels: the legends only (3 rows of 55 px)
        colours = {tuple(c) for c in np.unique(band, axis=0)}
        legend = [*AV_LEGEND.values(), *ERROR_COLOURS.values(), *VERDICT_COLOURS.values()]
        assert all(tuple(c) in colours for c in legend), [c for c in legend if tuple(c) not in colours]
    plain = comparison_figure(*_sample(40, 30))
    band = {tuple(c) for c in np.unique(plain[-170:].reshape(-1, 3), axis=0)}
    assert VERDICT_COLOURS["not_scored"] not in band  # no segment panel, no verdict legend


def test_overlay_blends_only_vessels():
    photo, prob, _, _ = _sample(20, 30)
    ov = overlay(photo, prob > 0.5)
    assert ov[5, 0].tolist() != [100, 100, 100] and ov[0, 0].tolist() == [100, 100, 100]
