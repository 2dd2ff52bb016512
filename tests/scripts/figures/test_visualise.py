"""Pictures: A/V colour maps and error-map colours on hand-made pixels."""
from __future__ import annotations

import numpy as np

from scripts.data.labels import av_colour_map
from scripts.figures.visualise import ERROR_COLOURS, comparison_figure, error_map, overlay


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


def test_comparison_figure_and_overlay_shapes():
    photo = np.full((20, 30, 3), 100, np.uint8)
    prob = np.zeros((3, 20, 30))
    prob[0, 5] = 0.9
    label = np.zeros((3, 20, 30), bool)
    label[0, 5] = True
    fig = comparison_figure(photo, prob, label, np.ones((20, 30), bool))
    assert fig.shape == (20, 5 * 30 + 4 * 4, 3)
    ov = overlay(photo, prob > 0.5)
    assert ov[5, 0].tolist() != [100, 100, 100] and ov[0, 0].tolist() == [100, 100, 100]
