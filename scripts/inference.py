"""Running the three generators, and scoring them on a dataset with the paper protocol."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from scripts.dataset import AVDataset, eval_collate
from scripts.metrics import image_metrics, resize_prob


@torch.no_grad()
def predict_probs(nets: dict[str, nn.Module], x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
    """(B, 3, H, W) normalised images -> (B, 3, H, W) fused probabilities (G_A, G_V, then G)."""
    def run(inp: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(nets["G_A"](inp))
        v = torch.sigmoid(nets["G_V"](inp))
        return torch.sigmoid(nets["G"](inp, a, v)[0])

    prob = run(x)
    if flip_tta:
        prob = (prob + run(x.flip(-1)).flip(-1)) / 2
    return prob


def iterate_predictions(nets: dict[str, nn.Module], dataset: AVDataset, device: torch.device, batch_size: int = 1,
                        workers: int = 0) -> Iterator[dict]:
    """For each image of an evaluation dataset: id, model-size probs, raw-size probs (zero outside
    the FOV), label and mask, all on ``device``."""
    for net in nets.values():
        net.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=eval_collate)
    for batch in loader:
        probs = predict_probs(nets, batch["image"].to(device))
        for i, image_id in enumerate(batch["id"]):
            mask = batch["mask"][i].to(device)
            raw = resize_prob(probs[i], batch["raw_size"][i]) * mask
            yield {"id": image_id, "small": probs[i], "raw": raw, "label": batch["label"][i].to(device), "mask": mask}


def evaluate(nets: dict[str, nn.Module], dataset: AVDataset, device: torch.device, with_prob_auc: bool = True) -> list:
    """[(id, paper metrics)] over the dataset."""
    return [(p["id"], image_metrics(p["raw"], p["label"], p["mask"], with_prob_auc=with_prob_auc))
            for p in iterate_predictions(nets, dataset, device)]
