"""A Predictor's predictions scored with the metrics of its variant, one image or a whole dataset
(sharded over torchrun's processes)."""

from __future__ import annotations

import torch

from scripts.core.distributed import Context
from scripts.data.dataset import AVDataset
from scripts.evaluation.metrics import image_metrics
from scripts.inference.predictor import Predictor, gather_in_order, iterate_shard


def score_prediction(
    predictor: Predictor, pred: dict, with_prob_auc: bool = True, nan_policy: str | None = None
) -> dict:
    """Metrics of one prediction of :func:`iterate_predictions`: the paper protocol (SPEC 6) for
    2021 networks, the release's protocol (SPEC 9.4, with the authors' NaN rules) for 2023 ones.
    ``nan_policy`` overrides the variant's NaN rule (training's validation counts 0/0 as 0 for both,
    so that an epoch without a predicted artery still has a score)."""
    return image_metrics(
        pred["raw"],
        pred["label"],
        pred["mask"],
        with_prob_auc=with_prob_auc,
        binary=pred["binary"],
        nan_policy=nan_policy or ("authors" if predictor.variant == "v2023" else "zero"),
        source=f"image {pred['id']}",
    )


def score_sharded(
    predictor: Predictor,
    dataset: AVDataset,
    device: torch.device,
    ctx: Context,
    with_prob_auc: bool = True,
    nan_policy: str | None = None,
) -> list[tuple[str, dict]]:
    """[(id, metrics)] over the dataset in its order; under torchrun each process scores its share and
    every process gets all (the single-process numbers)."""
    rows = [
        (j, pred["id"], score_prediction(predictor, pred, with_prob_auc, nan_policy))
        for j, pred in iterate_shard(predictor, dataset, device, ctx)
    ]
    return gather_in_order(ctx, rows)
