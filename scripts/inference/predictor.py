"""Running the generators, in either variant, on photographs and datasets.

:class:`Predictor` is the one place that knows how a variant turns a photograph into maps:
the 2021 paper networks (sigmoid probabilities, bicubic resize of the probabilities, threshold 0.5;
SPEC 6) and the authors' 2023 release (softmax logits resized bicubic with ``align_corners=True``,
argmax; SPEC 9.3-9.4). Both give their results in this project's convention: a (3, H, W)
probability map with channels (artery, uncertain, vein) and a (3, H, W) bool channel map whose
decoded classes (``scripts.data.labels.decode_classes``) are the prediction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from scripts.core.distributed import Context
from scripts.data.augment import init_worker, normalise
from scripts.data.dataset import AVDataset, eval_collate

RELEASE_TO_CHANNELS = [1, 3, 2]  # softmax classes (bg, A, V, U) -> our channels (artery, uncertain, vein)


@torch.no_grad()
def predict_probs(nets: dict[str, nn.Module], x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
    """2021 networks: (B, 3, H, W) normalised images -> (B, 3, H, W) fused probabilities (G_A, G_V, then G)."""

    def run(inp: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(nets["G_A"](inp))
        v = torch.sigmoid(nets["G_V"](inp))
        return torch.sigmoid(nets["G"](inp, a, v)[0])

    prob = run(x)
    if flip_tta:
        prob = (prob + run(x.flip(-1)).flip(-1)) / 2
    return prob


@torch.no_grad()
def release_logits(nets: dict[str, nn.Module], x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
    """2023 networks: (B, 3, H, W) images -> (B, 4, H, W) logits of G fed with the branches' features."""

    def run(inp: torch.Tensor) -> torch.Tensor:
        _, f_a = nets["G_A"](inp)
        _, f_v = nets["G_V"](inp)
        return nets["G"](inp, f_a, f_v)[0]

    logits = run(x)
    if flip_tta:  # not in the authors' code: the mean of the logits of the image and its mirror
        logits = (logits + run(x.flip(-1)).flip(-1)) / 2
    return logits


def release_channels(class_index: torch.Tensor) -> torch.Tensor:
    """(H, W) class indices (0 bg, 1 A, 2 V, 3 U) -> (3, H, W) bool channel map (artery, uncertain, vein)."""
    return torch.stack([class_index == 1, class_index == 3, class_index == 2])


@dataclass
class Predictor:
    """Generators of one variant at one model size (W, H), ready to predict."""

    nets: dict[str, nn.Module]
    variant: str
    model_size: tuple[int, int]
    files: tuple[Path, ...] = ()  # the weight files it was loaded from (recorded with results)

    def __post_init__(self) -> None:
        for net in self.nets.values():
            net.eval()

    def normalise(self, image: np.ndarray) -> np.ndarray:
        """A model-size (H, W, 3) uint8 image -> the network input (3, H, W) float32."""
        return normalise(image, multiply_std=self.variant == "v2023")

    def forward(self, x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
        """Model-size outputs: 2021 probabilities (B, 3, h, w), 2023 logits (B, 4, h, w)."""
        if self.variant == "v2023":
            return release_logits(self.nets, x, flip_tta)
        return predict_probs(self.nets, x, flip_tta)

    def small_prob(self, out: torch.Tensor) -> torch.Tensor:
        """Model-size (3, h, w) probabilities (artery, uncertain, vein) of one forward output."""
        if self.variant == "v2023":
            return torch.softmax(out, dim=0)[RELEASE_TO_CHANNELS]
        return out

    def raw(self, out: torch.Tensor, raw_hw: tuple[int, int], fov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward output at the raw size: (probabilities (3, H, W), bool channel map (3, H, W)),
        both zero outside the (H, W) bool FOV."""
        if self.variant == "v2023":
            logits = out[None].float()
            if tuple(logits.shape[-2:]) != tuple(raw_hw):
                logits = F.interpolate(logits, size=tuple(raw_hw), mode="bicubic", align_corners=True)
            soft = torch.softmax(logits[0], dim=0)
            prob = soft[RELEASE_TO_CHANNELS] * fov
            return prob, release_channels(soft.argmax(dim=0)) & fov
        prob = resize_prob(out, raw_hw) * fov
        return prob, prob > 0.5


def iterate_predictions(
    predictor: Predictor, dataset: AVDataset, device: torch.device, batch_size: int = 1, workers: int = 0
) -> Iterator[dict]:
    """For each image of an evaluation dataset: id, model-size probabilities, raw-size probabilities
    and binary channel map (zero outside the FOV), label and mask, all on ``device``."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=eval_collate,
        worker_init_fn=init_worker,
    )
    for batch in loader:
        outs = predictor.forward(batch["image"].to(device))
        for i, image_id in enumerate(batch["id"]):
            mask = batch["mask"][i].to(device)
            prob, binary = predictor.raw(outs[i], batch["raw_size"][i], mask)
            yield {
                "id": image_id,
                "small": predictor.small_prob(outs[i]),
                "raw": prob,
                "binary": binary,
                "label": batch["label"][i].to(device),
                "mask": mask,
            }


def iterate_shard(
    predictor: Predictor, dataset: AVDataset, device: torch.device, ctx: Context
) -> Iterator[tuple[int, dict]]:
    """(dataset index, prediction) for this process's share of ``dataset``: every image alone, or
    every world-th image under torchrun (``ctx``)."""
    mine = ctx.shard(len(dataset))
    return zip(mine, iterate_predictions(predictor, Subset(dataset, mine), device))


def gather_in_order(ctx: Context, rows: list[tuple]) -> list:
    """Every process's ``(index, *values)`` rows, in dataset order, index dropped (one value: the value
    itself). The sort is stable, so several rows of one image keep their order."""
    ordered = sorted(ctx.gather(rows), key=lambda row: row[0])
    return [row[1:] if len(row) > 2 else row[1] for row in ordered]


def resize_prob(prob: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a (3, h, w) or (B, 3, h, w) probability map to (H, W), clamped to [0, 1]."""
    batched = prob.dim() == 4
    x = prob if batched else prob[None]
    if tuple(x.shape[-2:]) != tuple(size_hw):
        x = F.interpolate(x.float(), size=tuple(size_hw), mode="bicubic", align_corners=False).clamp_(0, 1)
    return x if batched else x[0]
