"""A synthetic artery/vein fundus dataset in the real datasets' layout and formats.

Round FOV on a dark background, orange-red retina with uneven illumination and noise, an optic
disc, and an arterial and a venous tree growing from the disc (arteries thinner and lighter, veins
wider and darker, widths tapering). Labels are RGB PNGs: red artery, blue vein, green where the
trees cross, white for a few uncertain segments; FOV masks are 0/255 GIFs. Deterministic per seed.

Written by ``python -m scripts.synthetic`` (the demo's and the tests' data).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Segment = tuple[tuple[float, float], tuple[float, float], float]  # start, end, width


def _grow_tree(
    rng: np.random.Generator,
    start: tuple[float, float],
    angle: float,
    width: float,
    length: float,
    size: int,
    depth: int = 0,
) -> list[Segment]:
    """Random-walk vessel from ``start``; branches spawn thinner children."""
    segs: list[Segment] = []
    x, y, w = start[0], start[1], width
    step = size / 40
    travelled = 0.0
    while travelled < length and w >= 0.6:
        angle += rng.normal(0, 0.18)
        nx, ny = x + step * math.cos(angle), y + step * math.sin(angle)
        segs.append(((x, y), (nx, ny), w))
        x, y, travelled = nx, ny, travelled + step
        w *= 0.965
        if depth < 3 and rng.random() < 0.12:
            side = rng.choice([-1.0, 1.0])
            segs += _grow_tree(
                rng,
                (x, y),
                angle + side * rng.uniform(0.5, 1.0),
                w * 0.7,
                (length - travelled) * rng.uniform(0.5, 0.9),
                size,
                depth + 1,
            )
    return segs


def _draw(segs: list[Segment], size: int, scale: float = 1.0) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for (x0, y0), (x1, y1), w in segs:
        draw.line([(x0, y0), (x1, y1)], fill=255, width=max(1, round(w * scale)))
    return np.asarray(img) > 0


DISC_SIGMA = 0.045  # the optic disc's brightness profile: a Gaussian of this share of the image size


def _disc_centre(rng: np.random.Generator, size: int) -> tuple[float, float]:
    c = (size - 1) / 2
    return c + rng.choice([-1, 1]) * rng.uniform(0.18, 0.26) * size, c + rng.uniform(-0.06, 0.06) * size


def disc_of(seed: int, size: int = 256) -> tuple[float, float, float]:
    """Where :func:`make_sample` puts the optic disc: centre x, y and radius (two sigmas of its profile)."""
    x, y = _disc_centre(np.random.default_rng(seed), size)
    return x, y, 2 * DISC_SIGMA * size


def make_sample(seed: int, size: int = 256, vessel_width: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic (image uint8 HxWx3, label uint8 HxWx3, mask bool HxW); ``vessel_width`` scales the
    trees' starting widths (the demo's set uses 1.5: fewer vessels thinner than a pixel at its size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    fov = (xx - c) ** 2 + (yy - c) ** 2 <= (0.46 * size) ** 2
    disc = _disc_centre(rng, size)

    trees = {}
    for kind, width, offset in (
        ("artery", 0.022 * size * vessel_width, 0.0),
        ("vein", 0.032 * size * vessel_width, 0.35),
    ):
        segs: list[Segment] = []
        for base in (-2.2, -0.9, 0.9, 2.2):
            angle = base + offset * np.sign(base) + rng.normal(0, 0.15)
            if disc[0] > c:  # trees grow towards the far side of the FOV
                angle = math.pi - angle
            start = (disc[0] + 0.035 * size * math.cos(angle), disc[1] + 0.035 * size * math.sin(angle))
            segs += _grow_tree(rng, start, angle, width * rng.uniform(0.8, 1.1), size * rng.uniform(0.5, 0.8), size)
        trees[kind] = segs
    artery, vein = _draw(trees["artery"], size) & fov, _draw(trees["vein"], size) & fov

    label = np.zeros((size, size, 3), np.uint8)
    label[artery] = (255, 0, 0)
    label[vein] = (0, 0, 255)
    label[artery & vein] = (0, 255, 0)
    for _ in range(int(rng.integers(2, 4))):  # a few uncertain segments
        seg = trees["artery"][int(rng.integers(len(trees["artery"])))]
        label[_draw([seg], size) & artery] = (255, 255, 255)

    r = np.hypot(xx - c, yy - c) / (0.46 * size)
    light = 0.75 + 0.35 * np.exp(-((xx - disc[0]) ** 2 + (yy - disc[1]) ** 2) / (2 * (0.35 * size) ** 2))
    light *= 1.0 - 0.25 * r**2 + 0.06 * np.sin(xx / size * 5 + rng.uniform(0, 6))
    base = np.stack([205 * light, 95 * light, 40 * light], axis=-1)
    od = np.exp(-((xx - disc[0]) ** 2 + (yy - disc[1]) ** 2) / (2 * (DISC_SIGMA * size) ** 2))[..., None]
    base = base * (1 - od) + np.array([250, 225, 160]) * od
    darken = np.zeros((size, size, 3), np.float32)
    darken[artery] = (0.30, 0.42, 0.38)
    darken[vein] = (0.55, 0.62, 0.55)
    img = base * (1 - darken)
    img = np.asarray(
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7)), np.float32
    )
    img = img + rng.normal(0, 4.0, img.shape)
    img[~fov] = rng.uniform(0, 6, (int((~fov).sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), label, fov


RECIPE = "recipe.json"  # what a written set was drawn with: a set with another recipe is redrawn


def recipe(n_train: int, n_test: int, size: int, seed: int, vessel_width: float) -> dict:
    return {"train": n_train, "test": n_test, "size": size, "seed": seed, "vessel_width": vessel_width}


def written_recipe(root: Path) -> dict | None:
    """The recipe of the set in ``root``, or None (no set, or one written before recipes were kept)."""
    try:
        found = json.loads((Path(root) / RECIPE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def write_dataset(
    out: Path | str,
    name: str = "SYNTHETIC",
    n_train: int = 12,
    n_test: int = 6,
    size: int = 256,
    seed: int = 0,
    vessel_width: float = 1.0,
) -> Path:
    """Write ``<out>/<name>/{training,test}/{images,1st_manual,mask}`` and its ``recipe.json``; returns the
    dataset folder. Files of an earlier set there are replaced (see ``scripts/synthetic.py``, which
    refuses a folder holding anything else)."""
    root = Path(out) / name
    for split, n, offset in (("training", n_train, 0), ("test", n_test, 10_000)):
        dirs = {d: root / split / d for d in ("images", "1st_manual", "mask")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, label, fov = make_sample(seed * 100_000 + offset + i, size, vessel_width)
            stem = f"{i + 1:02d}_{split}"
            Image.fromarray(image).save(dirs["images"] / f"{stem}.png")
            Image.fromarray(label).save(dirs["1st_manual"] / f"{stem}.png")
            Image.fromarray(fov.astype(np.uint8) * 255).save(dirs["mask"] / f"{stem}_mask.gif")
    (root / RECIPE).write_text(json.dumps(recipe(n_train, n_test, size, seed, vessel_width), indent=1) + "\n")
    return root


def is_generated(path: Path) -> bool:
    """Whether ``path`` (inside a set's folder) is a file this generator writes."""
    return path.name == RECIPE or bool(re.fullmatch(r"\d+_(training|test)(_mask\.gif|\.png)", path.name))
