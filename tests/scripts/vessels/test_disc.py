"""The optic disc locator: a lesion brighter than the disc, and 75 real photographs annotated by eye."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from scripts.core.errors import UsageError
from scripts.vessels.disc import LOW_CONFIDENCE, Disc, locate_disc

CENTRES = Path(__file__).resolve().parents[2] / "data" / "disc_centres.csv"
# Misses by more than half a disc radius, looked at on the pictures: the centre found is on the disc
# rim (08_test), or beside the disc on the atrophic region of a myopic eye (34_training).
KNOWN_MISSES = {"08_test", "34_training"}


def _photo_with_a_bright_lesion():
    """A disc where four wide vessels meet (left), a brighter lesion with none (right)."""
    h, w = 200, 300
    yy, xx = np.mgrid[:h, :w]
    fov = np.hypot(xx - 150, yy - 100) < 140
    photo = np.full((h, w, 3), 90, np.uint8)
    photo[np.hypot(xx - 80, yy - 100) < 14] = 190  # the disc
    photo[np.hypot(xx - 220, yy - 100) < 14] = 230  # a lesion, brighter
    vessels = np.zeros((h, w), bool)
    for angle in (30, 150, 210, 330):
        a = math.radians(angle)
        t = np.arange(12, 70)  # from the disc's rim outwards
        ys, xs = np.round(100 + t * math.sin(a)).astype(int), np.round(80 + t * math.cos(a)).astype(int)
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        for d in range(-3, 4):
            vessels[np.clip(ys[keep] + d, 0, h - 1), xs[keep]] = True
    vessels[100, 150:300] = True  # a thin vessel past the lesion
    photo[vessels] = 60
    return photo, fov, vessels


def test_the_vessel_map_finds_the_disc_where_brightness_finds_a_lesion():
    photo, fov, vessels = _photo_with_a_bright_lesion()
    with pytest.warns(UserWarning, match="located automatically"):
        by_brightness = locate_disc(photo, fov)
    assert math.hypot(by_brightness.x - 220, by_brightness.y - 100) < 10  # the lesion: the old failure
    with pytest.warns(UserWarning, match="image 7: optic disc located"):
        disc = locate_disc(photo, fov, "image 7", vessels=vessels)
    assert math.hypot(disc.x - 80, disc.y - 100) < disc.radius / 2 and disc.confidence > LOW_CONFIDENCE


def test_a_vessel_map_that_found_almost_nothing_is_not_used():
    photo, fov, vessels = _photo_with_a_bright_lesion()
    sparse = np.zeros_like(vessels)
    sparse[60:70, 60:100] = True  # 0.7 % of the FOV, beside the disc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert locate_disc(photo, fov, vessels=sparse) == locate_disc(photo, fov)


def test_an_undecidable_photograph_gets_a_low_confidence_named_in_the_warning():
    h, w = 200, 300
    photo = np.full((h, w, 3), 90, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for x in (70, 230):  # two identical discs
        photo[np.hypot(xx - x, yy - 100) < 12] = 200
    with pytest.warns(UserWarning, match=r"twins\.png: .*LOW confidence 0\.\d\d: probably wrong"):
        disc = locate_disc(photo, np.ones((h, w), bool), "twins.png")
    assert disc.confidence < LOW_CONFIDENCE


@pytest.mark.slow
def test_the_disc_of_every_annotated_photograph(real_data):
    from scripts.data.dataset import AVDataset
    from scripts.data.images import load_photo

    rows = list(csv.DictReader(line for line in open(CENTRES) if not line.startswith("#")))
    assert len(rows) == 75
    found = {}
    for name, split in sorted({(r["dataset"], r["split"]) for r in rows}):
        ds = AVDataset(name, split, real_data, train=False, image_size=(64, 64))
        for i, item in enumerate(ds.items):
            label, fov = ds.ground_truth(i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found[item.id] = locate_disc(load_photo(item.image), fov, vessels=label.any(axis=2))
    misses = {}
    for r in rows:
        disc = found[r["id"]]
        off = math.hypot(disc.x - float(r["x"]), disc.y - float(r["y"])) / disc.radius
        if off > 0.5:
            misses[r["id"]] = round(off, 2)
    assert set(misses) <= KNOWN_MISSES, misses
    assert all(off < 1 for off in misses.values()), misses  # still on or at the disc


@pytest.mark.parametrize("disc", [Disc(10, 10, 1e9), Disc(-5, 10, 8), Disc(10, 500, 8), Disc(10, 10, 0)])
def test_a_given_disc_that_cannot_fit_the_image_is_a_message_not_a_memory_error(disc):
    from scripts.vessels.measures import measure

    classes = np.zeros((3, 64, 80), bool)
    classes[0, 30, 10:70] = True
    with pytest.raises(UsageError, match="does not fit the 80 x 64 image"):
        measure(classes, disc, source="image 07")
