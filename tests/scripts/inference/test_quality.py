"""The quality measures on pictures whose answers are known, and the rule's thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scripts.data.synthetic import make_sample
from scripts.inference.quality import DEGRADATIONS, RULE, grade, not_a_fundus_photograph, photo_measures


def _disc_field(size: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (xx - 99.5) ** 2 + (yy - 99.5) ** 2 <= 90**2


def test_measures_of_a_flat_picture_are_what_hand_computation_gives():
    fov = _disc_field()
    photo = np.zeros((200, 200, 3), np.uint8)
    photo[fov] = (100, 50, 20)  # luminance 0.299*100 + 0.587*50 + 0.114*20 = 61.53
    m = photo_measures(photo, fov)
    assert m["fov_fraction"] == pytest.approx(fov.mean())
    assert m["fov_offset"] == pytest.approx(0.0, abs=1e-3) and m["fov_cut"] == 0.0
    assert m["brightness"] == pytest.approx(61.53, abs=0.01)
    assert m["contrast"] == pytest.approx(0.0, abs=1e-4) and m["sharpness"] == pytest.approx(0.0, abs=1e-4)
    assert not_a_fundus_photograph(m) == "not a fundus photograph: it is one colour throughout"


def test_a_field_cut_at_the_side_and_blur_are_measured():
    photo, _, fov = make_sample(3, 256)
    whole = photo_measures(photo, fov)
    left, lfov = DEGRADATIONS["left third only"](photo, fov)
    cut = photo_measures(left, lfov)
    assert whole["fov_cut"] == 0.0 and cut["fov_cut"] > 0.5
    blurred = photo_measures(*DEGRADATIONS["blurred, sigma 2"](photo, fov))
    assert blurred["sharpness"] < whole["sharpness"] / 3
    dark = photo_measures(*DEGRADATIONS["a quarter as bright"](photo, fov))
    assert dark["brightness"] == pytest.approx(whole["brightness"] / 4, rel=0.02)


def test_the_rule_flags_by_the_worst_limit_and_skips_what_is_not_measured():
    good = {"fov_fraction": 0.7, "fov_cut": 0.0, "fov_offset": 0.01, "brightness": 100.0, "illumination_cv": 0.2,
            "contrast": 15.0, "sharpness": 0.1, "vessel_fraction": 0.1, "disc_confidence": 0.9}  # fmt: skip
    assert grade(good) == ("good", "")
    assert grade({**good, "sharpness": 0.008}) == ("usable", "blurred (sharpness 0.008)")
    flag, why = grade({**good, "sharpness": 0.001, "brightness": 10.0, "disc_confidence": 0.1})
    assert flag == "reject" and why == "too dark (brightness 10); out of focus (sharpness 0.001)"
    assert grade({**good, "vessel_fraction": math.nan, "disc_confidence": math.nan}) == ("good", "")
    assert {limit.measure for limit in RULE} == set(good)  # every measure is judged by some limit


def test_a_picture_with_almost_no_field_is_not_a_fundus_photograph():
    fov = np.zeros((100, 100), bool)
    fov[:5, :5] = True
    photo = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    reason = not_a_fundus_photograph(photo_measures(photo, fov))
    assert reason == "not a fundus photograph: the field of view covers 0.2% of it"
