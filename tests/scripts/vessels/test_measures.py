"""Vascular biomarkers on synthetic maps whose answers are known by construction."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from scripts.vessels.disc import Disc, locate_disc
from scripts.vessels.graph import build_graph
from scripts.vessels.measures import (
    channels_of,
    fractal_dimension,
    measure,
    pixel_widths,
    tortuosity,
)
from scripts.vessels.zone_b import circle_crossings, knudtson

ARTERY, VEIN = 0, 1  # rows of the decoded classes (artery, vein, uncertain)


def band(shape, centre, angle_deg, width, length, cls=ARTERY):
    """A straight vessel of ``width`` px through ``centre`` at ``angle_deg``, ``length`` px long."""
    classes = np.zeros((3, *shape), bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    a = math.radians(angle_deg)
    along = (xx - centre[0]) * math.cos(a) + (yy - centre[1]) * math.sin(a)
    across = -(xx - centre[0]) * math.sin(a) + (yy - centre[1]) * math.cos(a)
    classes[cls] = (across >= -width / 2) & (across < width / 2) & (np.abs(along) <= length / 2)
    return classes


@pytest.mark.parametrize("angle", [0, 90, 30, 60])
@pytest.mark.parametrize("width", [2, 3, 5, 8, 12])
def test_calibre_of_straight_vessels_within_half_a_pixel(width, angle):
    classes = band((120, 120), (60, 60), angle, width, 90)
    graph = build_graph(channels_of(classes))
    assert graph.scored().sum() == 1  # (blunt oblique ends may leave a pixel or two between branch pixels)
    widths = pixel_widths(graph, classes.any(axis=0))
    assert abs(np.nanmedian(widths) - width) <= 0.5
    assert abs(measure(classes, None).values["artery_calibre_px"] - width) <= 0.5


def test_knudtson_pairing_by_hand():
    # round 1 pairs (10, 5), (9, 6), (8, 7); round 2 pairs the largest and smallest, the middle is carried
    r1 = [0.88 * math.hypot(10, 5), 0.88 * math.hypot(9, 6), 0.88 * math.hypot(8, 7)]
    r2 = [0.88 * math.hypot(max(r1), min(r1)), sorted(r1)[1]]
    assert knudtson([5, 6, 7, 8, 9, 10, 1, 2], 0.88) == pytest.approx(0.88 * math.hypot(*r2))  # six largest only
    assert knudtson([4.0], 0.95) == 4.0 and math.isnan(knudtson([], 0.88))


def radial_map(artery_widths, vein_widths, size=400, radius=30):
    """Straight vessels leaving a disc at the centre, alternating artery and vein, evenly spread."""
    classes = np.zeros((3, size, size), bool)
    c = size / 2
    widths = [(ARTERY, w) for w in artery_widths] + [(VEIN, w) for w in vein_widths]
    order = [widths[i // 2 + (len(widths) // 2 if i % 2 else 0)] for i in range(len(widths))]
    for k, (cls, w) in enumerate(order):
        angle = 360 * k / len(order) + 7
        a = math.radians(angle)
        mid = (c + 3.5 * radius * math.cos(a), c + 3.5 * radius * math.sin(a))
        classes[cls] |= band((size, size), mid, angle, w, 3.6 * radius)[ARTERY]
    return classes, Disc(c, c, radius)


def test_crae_crve_and_avr_equal_the_formula_on_the_known_widths():
    arteries, veins = [9, 8, 7, 6, 5, 4], [12, 11, 10, 9, 8, 7]
    classes, disc = radial_map(arteries, veins)
    m = measure(classes, disc).values
    assert m["artery_zone_b_vessels"] == 6 and m["vein_zone_b_vessels"] == 6
    crae, crve = knudtson(arteries, 0.88), knudtson(veins, 0.95)
    assert m["crae_px"] == pytest.approx(crae, abs=0.5) and m["crve_px"] == pytest.approx(crve, abs=0.5)
    assert m["avr"] == pytest.approx(crae / crve, abs=0.03)
    um = measure(classes, disc, pixel_um=12.5).values
    assert um["crae_um"] == pytest.approx(12.5 * m["crae_px"]) and um["artery_calibre_um"] == pytest.approx(
        12.5 * m["artery_calibre_px"]
    )
    assert um["pixel_um"] == 12.5 and um["pixel_um_estimated"] == 0
    # unknown scale: the disc is taken as 1,800 um wide, and the numbers say they are estimated
    assert m["pixel_um_estimated"] == 1 and m["pixel_um"] == pytest.approx(1800 / (2 * disc.radius))
    assert m["crve_um"] == pytest.approx(m["crve_px"] * 1800 / (2 * disc.radius))


def _segment(shape, start, end, width, cls=ARTERY):
    """A straight vessel from ``start`` to ``end`` (x, y), ``width`` px wide."""
    (x0, y0), (x1, y1) = start, end
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    return band(shape, ((x0 + x1) / 2, (y0 + y1) / 2), angle, width, math.hypot(x1 - x0, y1 - y0), cls)


def _zone_b(classes, disc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the class not drawn has no CRxE
        return measure(classes, disc).values


DISC = Disc(100, 100, 20)  # zone B: 40-60 px from (100, 100); its middle circle at 50 px


def test_circle_crossings_finds_each_run_once_also_where_the_walk_starts():
    mask = np.zeros((200, 200), bool)
    mask[96:104, 140:160] = True  # across the circle at angle 0, where the walk around it starts
    mask[140:160, 97:103] = True  # ... and at 90 degrees (x 100, y 150), 6 px wide
    runs = sorted(circle_crossings(mask, DISC, 50), key=lambda r: r[1])
    assert len(runs) == 2
    (x0, y0, len0), (x1, y1, len1) = runs
    assert (x0, y0) == (pytest.approx(150, abs=0.5), pytest.approx(100, abs=0.5)) and len0 == pytest.approx(8, abs=1)
    assert (x1, y1) == (pytest.approx(100, abs=0.5), pytest.approx(150, abs=0.5)) and len1 == pytest.approx(6, abs=1)
    assert circle_crossings(np.zeros((200, 200), bool), DISC, 50) == []


def test_a_vessel_branching_exactly_on_the_circle_is_measured_as_its_parent():
    shape = (200, 200)
    classes = _segment(shape, (125, 100), (150, 100), 8)  # the parent ends on the circle ...
    for end in ((190, 75), (190, 125)):  # ... where two narrower children leave it
        classes |= _segment(shape, (150, 100), end, 4)
    m = _zone_b(classes, DISC)
    assert m["artery_zone_b_vessels"] == 1 and m["crae_px"] == pytest.approx(8, abs=1)


def test_a_vessel_cut_by_a_crossing_on_the_circle_is_measured():
    shape = (200, 200)
    artery = _segment(shape, (125, 100), (190, 100), 6)[ARTERY]
    vein = _segment(shape, (115, 65), (185, 135), 8)[ARTERY]  # crosses the artery at (150, 100), 45 degrees
    classes = np.stack([artery & ~vein, vein & ~artery, artery & vein])  # the crossing is its own class
    m = _zone_b(classes, DISC)
    assert m["artery_zone_b_vessels"] == 1 and m["crae_px"] == pytest.approx(6, abs=1)
    assert m["vein_zone_b_vessels"] == 1 and m["crve_px"] == pytest.approx(8, abs=1)


def test_a_vein_whose_run_an_artery_cuts_on_the_circle_keeps_its_width():
    shape = (200, 200)
    vein = _segment(shape, (125, 100), (190, 100), 8)[ARTERY]  # 8 px, square across the circle at (150, 100)
    artery = _segment(shape, (120, 70), (180, 130), 3)[ARTERY]  # lies across it there, on top
    classes = np.stack([artery, vein & ~artery, np.zeros(shape, bool)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = measure(classes, DISC)
    # the vein's own runs on the circle are two pieces of about 2 px; the vessel run holding them is 8 px,
    # and its width (shortened near the crossing, about 4.5 px) is within that run's bound
    [vein] = [v for v in found.vessels if v.cls == "vein"]
    assert vein.chord_px == pytest.approx(8, abs=1) and vein.flag == "" and 3 < vein.width_px <= 8
    assert found.values["vein_zone_b_vessels"] == 1


def test_a_vessel_crossing_the_circle_twice_counts_once():
    shape = (200, 200)
    classes = np.zeros((3, *shape), bool)
    for start, end in (((130, 88), (172, 88)), ((170, 88), (170, 112)), ((172, 112), (130, 112))):  # a hairpin
        classes |= _segment(shape, start, end, 5)
    m = _zone_b(classes, DISC)
    assert m["artery_zone_b_vessels"] == 1 and m["crae_px"] == pytest.approx(5, abs=1)


def _vessels_with_width(classes, width, disc=DISC, neighbours=None):
    """The zone-B vessels of ``classes``' arteries when every artery segment's zone-B width is ``width``
    (or ``width(graph, mine)``), and the widths of the vessels each meets ``neighbours(graph, mine)``."""
    from scripts.vessels.graph import ARTERY as ARTERY_ID
    from scripts.vessels.zone_b import zone_b_vessels

    graph = build_graph(channels_of(classes))
    mine = graph.truth == ARTERY_ID
    zone_width = width(graph, mine) if callable(width) else np.where(mine, float(width), np.nan)
    seg_width = np.full(graph.n_segments, np.nan) if neighbours is None else neighbours(graph, mine)
    return zone_b_vessels(graph, "artery", mine, classes[ARTERY], zone_width, seg_width, disc)


def test_a_width_wider_than_its_crossing_is_not_used_and_is_flagged():
    classes = _segment((200, 200), (125, 100), (190, 100), 6)  # crosses the 50-px circle square on: chord 6
    [v] = _vessels_with_width(classes, 6.0)
    assert v.width_px == 6.0 and v.flag == "" and v.angle_deg == pytest.approx(90, abs=1)
    assert v.chord_px == pytest.approx(6, abs=1) and (v.x, v.y) == (
        pytest.approx(150, abs=1),
        pytest.approx(100, abs=1),
    )
    [v] = _vessels_with_width(classes, 8.4)  # within the chord plus the tolerances (10 %, and 2 px)
    assert v.width_px == 8.4 and v.flag == ""
    [v] = _vessels_with_width(classes, 9.5)  # wider than any vessel that leaves a 6.5-px run on the circle
    assert math.isnan(v.width_px) and "its crossing allows" in v.flag


def test_an_oblique_vessel_is_bounded_by_its_chord_times_the_sine_of_its_angle():
    # 4 px wide, cut by the circle at 30 degrees: a run of 4 / sin 30 = 8 px along the circle
    theta, a = math.radians(-20), math.radians(30)
    p = (100 + 50 * math.cos(theta), 100 + 50 * math.sin(theta))
    d = (
        -math.sin(theta) * math.cos(a) + math.cos(theta) * math.sin(a),
        math.cos(theta) * math.cos(a) + math.sin(theta) * math.sin(a),
    )
    classes = _segment((200, 200), (p[0] - 40 * d[0], p[1] - 40 * d[1]), (p[0] + 40 * d[0], p[1] + 40 * d[1]), 4)
    [v] = _vessels_with_width(classes, 4.0)
    assert v.width_px == 4.0 and 20 <= v.angle_deg <= 45 and v.chord_px >= 6.5
    # 8.6 px fits the chord (>= 6.5 px, + 10 % + 2) but not chord x sin(angle + 10) x 1.1 + 2
    [v] = _vessels_with_width(classes, 8.6)
    assert math.isnan(v.width_px) and "its crossing allows" in v.flag


def test_a_short_piece_twice_as_wide_as_the_vessels_it_meets_is_not_used():
    shape = (200, 200)

    def parent_8_children_3(graph, mine):  # the shortest segment is the parent
        parent = np.flatnonzero(mine)[np.argmin(graph.length[mine])]
        return np.where(mine, 3.0, np.nan) + np.where(np.arange(graph.n_segments) == parent, 5.0, 0.0)

    def children_2px(graph, mine):
        return np.where(mine, 2.0, np.nan)  # every segment it meets 2 px wide: 8 > 2 x 2 + 2

    def children_4px(graph, mine):
        return np.where(mine, 4.0, np.nan)  # 8 <= 2 x 4 + 2

    classes = _segment(shape, (135, 100), (150, 100), 8)  # a short (< 3 widths) parent ends on the circle ...
    for end in ((190, 75), (190, 125)):  # ... where two narrower children leave it
        classes |= _segment(shape, (150, 100), end, 4)
    [v] = _vessels_with_width(classes, parent_8_children_3, neighbours=children_2px)
    assert v.width_px == 3.0 and "width 8.0 px > 2 x 2.0 px of the vessels it meets" in v.flag
    [v] = _vessels_with_width(classes, parent_8_children_3, neighbours=children_4px)
    assert v.width_px == 8.0 and v.flag == ""
    # a long segment (its width measured across it) is not checked against side branches
    classes = _segment(shape, (110, 100), (150, 100), 8)
    for end in ((190, 75), (190, 125)):
        classes |= _segment(shape, (150, 100), end, 4)
    [v] = _vessels_with_width(classes, parent_8_children_3, neighbours=children_2px)
    assert v.width_px == 8.0 and v.flag == ""


def test_grader_edits_flip_and_exclude_vessels_and_a_stray_edit_is_returned():
    from scripts.vessels.zone_b import VesselEdit

    arteries, veins = [9, 8, 7, 6, 5], [12, 11, 10, 9, 8]
    classes, disc = radial_map(arteries, veins)
    plain = measure(classes, disc)
    assert [v.number for v in plain.vessels] == list(range(1, 11)) and all(v.used for v in plain.vessels)
    widest_artery = max((v for v in plain.vessels if v.cls == "artery"), key=lambda v: v.width_px)
    narrowest_vein = min((v for v in plain.vessels if v.cls == "vein"), key=lambda v: v.width_px)
    edits = [
        VesselEdit(widest_artery.x + 2, widest_artery.y, "exclude"),
        VesselEdit(narrowest_vein.x, narrowest_vein.y - 1, "flip"),
        VesselEdit(5, 5, "flip"),  # no vessel there
    ]
    edited = measure(classes, disc, edits=edits)
    a = sorted(v.width_px for v in edited.vessels if v.cls == "artery" and v.edit != "excluded")
    assert a == pytest.approx(sorted([8, 7, 6, 5, 8]), abs=0.6)  # the 9 left out, the 8-px vein counted as an artery
    assert edited.values["crae_px"] == pytest.approx(knudtson(a, 0.88))
    assert edited.values["artery_zone_b_vessels"] == 5 and edited.values["vein_zone_b_vessels"] == 4
    assert edited.unmatched_edits == [edits[2]]
    by_number = {v.number: v for v in edited.vessels}
    assert by_number[widest_artery.number].edit == "excluded" and not by_number[widest_artery.number].used
    assert by_number[narrowest_vein.number].edit == "flipped" and by_number[narrowest_vein.number].edits == [1]
    # the edits follow their vessels when the disc moves a little (the crossings move with it)
    moved = measure(classes, Disc(disc.x + 3, disc.y - 2, disc.radius + 1), edits=edits)
    assert sorted(v.edit for v in moved.vessels if v.edit) == ["excluded", "flipped"]
    assert moved.values["artery_zone_b_vessels"] == 5 and moved.unmatched_edits == [edits[2]]


def test_plausibility_flags_name_what_to_look_at():
    classes, disc = radial_map([9, 8, 7], [6, 5, 4, 3])  # arteries wider than veins: AVR > 1, 3 arteries
    flags = measure(classes, disc).flags
    assert any(f.startswith("AVR ") and "outside 0.4-1" in f for f in flags)
    assert "3 artery width(s) in zone B (fewer than 4)" in flags
    assert not any(f.startswith("4 vein") for f in flags)


def test_measure_reports_a_vessel_whose_widths_do_not_fit_its_crossing(monkeypatch):
    import scripts.vessels.measures as measures

    classes = _segment((200, 200), (125, 100), (190, 100), 6)
    monkeypatch.setattr(measures, "pixel_widths", lambda graph, vessel: np.full(len(graph.pixels), 20.0))
    with pytest.warns(UserWarning, match="1 artery\\(s\\) crossing zone B \\(vessel 1\\) had no width that fits"):
        m = measure(classes, DISC).values
    assert m["artery_zone_b_unfit"] == 1 and m["artery_zone_b_vessels"] == 0 and math.isnan(m["crae_px"])


def test_no_vessel_in_zone_b_is_defined_with_a_warning():
    classes = band((200, 200), (100, 20), 0, 4, 150)  # far from the disc
    with pytest.warns(UserWarning, match="no artery crosses zone B"):
        m = measure(classes, Disc(100, 150, 10)).values
    assert math.isnan(m["crae_px"]) and math.isnan(m["avr"]) and m["artery_zone_b_vessels"] == 0
    assert m["artery_calibre_px"] == pytest.approx(4, abs=0.5)


def test_empty_map_is_defined():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = measure(np.zeros((3, 64, 64), bool), Disc(32, 32, 5)).values
    assert m["artery_segments"] == 0 and math.isnan(m["artery_calibre_px"]) and m["vessel_density_fov"] == 0.0


@pytest.mark.parametrize("amplitude, wavelength", [(4, 80), (10, 60), (15, 90)])
@pytest.mark.parametrize("width", [1, 5])
def test_tortuosity_of_sine_vessels_within_two_percent(amplitude, wavelength, width):
    h, w = 120, 320
    yy, xx = np.mgrid[:h, :w]
    centre = 60 + amplitude * np.sin(2 * np.pi * (xx - 20) / wavelength)
    classes = np.zeros((3, h, w), bool)
    if width == 1:
        t = np.linspace(20, 300, 40000)
        classes[
            VEIN,
            np.round(60 + amplitude * np.sin(2 * np.pi * (t - 20) / wavelength)).astype(int),
            np.round(t).astype(int),
        ] = True
    else:
        classes[VEIN] = (np.abs(yy - centre) <= width / 2) & (xx >= 20) & (xx <= 300)
    t = np.linspace(20, 300, 200001)
    y = 60 + amplitude * np.sin(2 * np.pi * (t - 20) / wavelength)
    true_ratio = np.hypot(np.diff(t), np.diff(y)).sum() / math.hypot(t[-1] - t[0], y[-1] - y[0])
    graph = build_graph(channels_of(classes))
    assert graph.n_segments == 1
    distance_factor, curvature = tortuosity(graph)
    assert distance_factor[0] == pytest.approx(true_ratio, rel=0.02)
    assert curvature[0] > 0.05


def test_straight_vessel_is_not_tortuous():
    graph = build_graph(channels_of(band((100, 200), (100, 50), 20, 3, 150)))
    distance_factor, curvature = tortuosity(graph)
    scored = graph.scored()
    assert distance_factor[scored][0] == pytest.approx(1.0, abs=0.005) and curvature[scored][0] < 0.02


def test_curvature_grows_with_bending():
    h, w = 120, 320
    yy, xx = np.mgrid[:h, :w]
    values = []
    for amplitude in (0, 4, 10):
        classes = np.zeros((3, h, w), bool)
        classes[VEIN] = (
            (np.abs(yy - 60 - amplitude * np.sin(2 * np.pi * (xx - 20) / 60)) <= 2.5) & (xx >= 20) & (xx <= 300)
        )
        graph = build_graph(channels_of(classes))
        values.append(tortuosity(graph)[1][graph.scored()][0])
    # analytic integrals of squared curvature: 0, 0.24, 1.05 /px; the smoothing leaves about 0.01 on a straight line
    assert values[0] < 0.02 and 0.15 < values[1] < 0.35 and 0.8 < values[2] < 1.3


def test_fractal_dimension_of_a_line_and_of_a_filled_region():
    line = np.zeros((512, 512), bool)
    line[256, 20:500] = True
    filled = np.zeros((512, 512), bool)
    filled[20:500, 20:500] = True
    assert fractal_dimension(line) == pytest.approx(1.0, abs=0.05)
    assert fractal_dimension(filled) == pytest.approx(2.0, abs=0.1)
    assert math.isnan(fractal_dimension(np.zeros((64, 64), bool)))


def test_density_per_zone():
    classes = np.zeros((3, 100, 100), bool)
    classes[ARTERY, :, :10] = True
    m = measure(classes, Disc(50, 50, 5)).values
    assert m["artery_density_fov"] == pytest.approx(0.1) and m["vein_density_fov"] == 0.0
    assert m["artery_density_zone_b"] == 0.0  # zone B (10-15 px from the centre) holds none of it


@pytest.mark.parametrize("seed", range(12))
def test_disc_located_in_synthetic_photographs(seed):
    from scripts.data.synthetic import disc_of, make_sample

    photo, _, fov = make_sample(seed, 256)
    x, y, radius = disc_of(seed, 256)
    with pytest.warns(UserWarning, match="located automatically"):
        disc = locate_disc(photo, fov)
    assert math.hypot(disc.x - x, disc.y - y) < radius / 2
    assert 0 < disc.confidence <= 1 and disc.source == "located"
