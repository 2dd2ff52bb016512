"""One dataset class for DRIVE_AV, LES-AV, HRF-AV and any folder in the same layout (SPEC 2-3).

Layout: ``<data_root>/<name>/<split>/{images,1st_manual,mask}/``. Decoded and resized arrays are
cached per process, so each file is read once per run and augmentation works from memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from scripts.core.config import DATA_HELP, DATASETS, RELEASE_SIZE, UNIFORM_SIZE, dataset_info, decide_model_size
from scripts.core.distributed import Context
from scripts.data.augment import augment, augment_v2023, normalise, resize_image, resize_nearest
from scripts.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    derive_fov,
    find_file,
    find_mask,
    image_size,
    load_label,
    load_mask,
    load_photo,
    open_image,
)
from scripts.data.labels import LabelError, class_indices

log = logging.getLogger("avseg")


@dataclass(frozen=True)
class Item:
    """Files of one image id."""

    id: str
    image: Path
    label: Path
    mask: Path | None


def find_items(split_dir: Path, label_suffixes: Sequence[str]) -> list[Item]:
    """List image ids (sorted) with their label and mask files; raise on anything missing."""
    images_dir = split_dir / "images"
    if not images_dir.is_dir():
        raise DataError(f"image folder not found: {images_dir}. {DATA_HELP}")
    files = sorted(p for p in images_dir.iterdir() if not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if others:
        log.warning("%s: ignoring %d non-image file(s): %s", images_dir, len(others), ", ".join(others[:5]))
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise DataError(f"no images in {images_dir} (expected .tif/.png/.jpg files). {DATA_HELP}")
    items = []
    for img in images:
        stem = img.stem
        label = next(
            (p for s in label_suffixes if (p := find_file(split_dir / "1st_manual", stem + s, (".png",)))), None
        )
        if label is None:
            tried = ", ".join(str(split_dir / "1st_manual" / f"{stem}{s}.png") for s in label_suffixes)
            raise DataError(f"{img}: no label found (looked for {tried}); add the label or remove the image")
        mask = find_mask(split_dir / "mask", stem)
        items.append(Item(stem, img, label, mask))
    return items


def _size_problem(item: Item) -> str | None:
    try:
        size = image_size(item.image)
        for kind, path in (("label", item.label), ("mask", item.mask)):
            if path is not None and (other := image_size(path)) != size:
                return (
                    f"{path}: {kind} size {other[0]}x{other[1]} differs from image {item.image} size "
                    f"{size[0]}x{size[1]}"
                )
    except DataError as err:
        return str(err)
    return None


def _raise_all(problems: list[str | None], what: str) -> None:
    """One DataError listing every problem found (so a user fixes them all in one go)."""
    problems = [p for p in problems if p]
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        raise DataError(f"{what}: {len(problems)} files have problems:\n  " + "\n  ".join(problems))


def split_ids(n: int, val_percent: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/validation split of indices 0..n-1 (``random_split`` on sorted ids).

    At least one validation image when ``val_percent`` > 0 and n >= 2.
    """
    n_val = int(n * val_percent / 100)
    if val_percent > 0 and n >= 2:
        n_val = max(n_val, 1)
    train, val = torch.utils.data.random_split(
        range(n), [n - n_val, n_val], generator=torch.Generator().manual_seed(seed)
    )
    return list(train.indices), list(val.indices)


class AVDataset(Dataset):
    """Artery/vein dataset.

    ``train=True`` items: ``image`` (3, H, W) float normalised, ``target`` (3, H, W) float 0/1 and
    ``mask`` (1, H, W), augmented at the model size. ``train=False`` items: ``image`` at the model
    size, ``label`` (3, Hr, Wr) uint8 0/1 and ``mask`` (Hr, Wr) bool at the raw size, ``raw_size``
    (Hr, Wr) and ``id``. ``variant="v2023"`` reads images, labels and masks as the authors' 2023
    code does (SPEC 9.3: normalisation multiplied by std, exact-colour labels; ``--uniform`` is 720 x
    720); its training items are ``image`` and ``target`` (H, W) int64 class indices, augmented as
    that code did (:func:`~scripts.data.augment.augment_v2023`). Indexing with ``(index, seed)`` (see
    :class:`EpochSampler`) makes the augmentation reproducible whatever the number of DataLoader workers.
    """

    def __init__(
        self,
        name: str,
        split: str = "training",
        data_root: Path | str = "data",
        train: bool = False,
        image_size: Sequence[int] | None = None,
        uniform: bool = False,
        indices: Sequence[int] | None = None,
        variant: str = "v2021",
    ) -> None:
        self.name, self.split, self.train, self.variant = name, split, train, variant
        info = dataset_info(name)
        root = Path(data_root) / name
        if not root.is_dir():
            if name not in DATASETS:
                raise DataError(
                    f"unknown dataset name '{name}' (known: {', '.join(DATASETS)}) and no folder "
                    f"{root.resolve()}; to use your own data, put it there in the same layout. {DATA_HELP}"
                )
            raise DataError(f"dataset folder not found: {root.resolve()}. {DATA_HELP}")
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(
                f"split folder not found: {split_dir.resolve()}; this copy of {name} has no '{split}' split"
            )
        uniform_size = RELEASE_SIZE if variant == "v2023" else UNIFORM_SIZE
        self.model_size = decide_model_size(image_size, dataset=name, uniform=uniform, uniform_size=uniform_size)
        all_items = find_items(split_dir, info.label_suffixes)
        self.items = [all_items[i] for i in indices] if indices is not None else all_items
        _raise_all([_size_problem(item) for item in self.items], f"{name}/{split}")
        modes = Counter("index" if open_image(it.label).mode in ("L", "I", "I;16", "1") else "rgb" for it in self.items)
        log.info("%s/%s: %d images; label encoding: %s", name, split, len(self.items), dict(modes))
        missing = [it.id for it in self.items if it.mask is None]
        if missing:
            log.warning("%s/%s: no FOV mask for %s; deriving the FOV from the image", name, split, missing[:5])
        self._cache: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self.items)

    def preload(self) -> None:
        """Decode every image, label and mask now (they stay cached for the run), and report every
        unreadable or invalid file at once, before any training or testing starts."""
        problems = []
        for index in range(len(self.items)):
            try:
                self._load(index)
            except (DataError, LabelError) as err:
                problems.append(str(err))
        _raise_all(problems, f"{self.name}/{self.split}")

    def _load(self, index: int) -> tuple:
        """Decoded arrays: (model-size image, model-size label, model-size mask, raw label, raw mask)."""
        if index not in self._cache:
            item = self.items[index]
            photo = load_photo(item.image)
            label, _ = load_label(item.label, self.variant)
            mask = load_mask(item.mask, self.variant) if item.mask is not None else derive_fov(photo, item.image)
            small = resize_image(photo, self.model_size)
            if self.train:
                self._cache[index] = (
                    small,
                    resize_nearest(label, self.model_size),
                    resize_nearest(mask, self.model_size),
                )
            else:
                self._cache[index] = (small, label, mask)
        return self._cache[index]

    def ground_truth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw-size (H, W, 3) bool label channels and (H, W) bool FOV of an evaluation item."""
        if self.train:
            raise ValueError("ground_truth() is for evaluation datasets (train=False): training items are resized")
        _, label, mask = self._load(index)
        return label, mask

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, key)
        if self.train:
            image, label, mask = self._load(index)
            if self.variant == "v2023":
                image, classes = augment_v2023(image, class_indices(label), np.random.default_rng(seed))
                return {
                    "image": torch.from_numpy(normalise(image, multiply_std=True)),
                    "target": torch.from_numpy(classes).long(),
                }
            image, label, mask = augment(image, label, mask, np.random.default_rng(seed))
            return {
                "image": torch.from_numpy(normalise(image)),
                "target": torch.from_numpy(np.ascontiguousarray(label.transpose(2, 0, 1))).float(),
                "mask": torch.from_numpy(mask[None]).float(),
            }
        image, label, mask = self._load(index)
        return {
            "image": torch.from_numpy(normalise(image, multiply_std=self.variant == "v2023")),
            "label": torch.from_numpy(np.ascontiguousarray(label.transpose(2, 0, 1))).to(torch.uint8),
            "mask": torch.from_numpy(mask),
            "raw_size": tuple(mask.shape),
            "id": self.items[index].id,
        }


class EpochSampler(Sampler):
    """Yields ``(index, augmentation seed)``; order and seeds depend only on (seed, epoch).

    Call :meth:`set_epoch` before each epoch; a resumed run then sees the same data.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch, self.start = n, seed, shuffle, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; ``start`` skips that many items (resuming inside an epoch)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        return iter(list(zip(order.tolist(), seeds.tolist()))[self.start :])


class DistributedEpochSampler(EpochSampler):
    """The single-process epoch order (same seed, same order, same augmentation seeds), cut into
    global batches of ``global_batch``; this rank yields its contiguous slice of each. A last global
    batch with fewer items than ranks is filled up with the epoch's first items, so that every rank
    takes the same number of steps."""

    def __init__(self, n: int, seed: int, global_batch: int, ctx: Context, shuffle: bool = True) -> None:
        super().__init__(n, seed, shuffle)
        self.global_batch, self.ctx = global_batch, ctx

    def __len__(self) -> int:
        return len(self._mine())

    def _mine(self) -> list[tuple[int, int]]:
        start, self.start = self.start, 0
        items = list(super().__iter__())  # the whole epoch, in the single-process order
        self.start = start
        b, world, rank = self.global_batch, self.ctx.world, self.ctx.rank
        mine = []
        for first in range(start, len(items), b):
            batch = items[first : first + b]
            if len(batch) < world:
                batch = batch + items[: world - len(batch)]
            per = -(-len(batch) // world)
            mine += batch[rank * per : (rank + 1) * per]
        return mine

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._mine())


def eval_collate(batch: list[dict]) -> dict:
    """Collate evaluation items (raw sizes differ): stack images, keep the rest as lists."""
    return {
        "image": torch.stack([b["image"] for b in batch]),
        **{k: [b[k] for b in batch] for k in ("label", "mask", "raw_size", "id")},
    }
