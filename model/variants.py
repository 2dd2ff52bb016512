"""The two variants of the method, in one place: which networks each uses, and how to tell them apart.

``v2021``: the MICCAI 2021 paper (SPEC 4): sigmoid outputs, channels (artery, uncertain, vein); G
fuses the branches' probabilities. ``v2023``: the authors' released checkpoints (SPEC 9): softmax
over (background, artery, vein, uncertain); G fuses the branches' last decoder features by their mean.
Both have the same blocks, module names and state-dict keys; only head shapes differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from model.discriminator import Discriminator
from model.generators import BranchGenerator, FeatureBranchGenerator, FusionGenerator, MeanFusionGenerator

VARIANTS = ("v2021", "v2023")
OUT_CHANNELS = {"v2021": 3, "v2023": 4}
_BRANCH = {"v2021": BranchGenerator, "v2023": FeatureBranchGenerator}
_FUSION = {"v2021": FusionGenerator, "v2023": MeanFusionGenerator}
SIDE_KEY = "side1.head.weight"  # only the fusion generator has side outputs


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown network variant '{variant}'; expected one of {', '.join(VARIANTS)}")
    return variant


def build_generators(variant: str = "v2021", n_filters: int = 32) -> dict[str, nn.Module]:
    """G_A, G_V and G of a variant (fresh weights)."""
    check_variant(variant)
    return {"G_A": _BRANCH[variant](n_filters), "G_V": _BRANCH[variant](n_filters), "G": _FUSION[variant](n_filters)}


def build_discriminator(variant: str = "v2021", n_filters: int = 32) -> Discriminator:
    """D: image (3) + segmentation map (3 or 4 channels) in, one logit map per class out."""
    c = OUT_CHANNELS[check_variant(variant)]
    return Discriminator(n_filters, in_channels=3 + c, out_channels=c)


def build_networks(n_filters: int, with_discriminator: bool = False, variant: str = "v2021") -> dict[str, nn.Module]:
    """G_A, G_V and G (and D) of a variant at base width ``n_filters`` (fresh weights)."""
    nets = build_generators(variant, n_filters)
    if with_discriminator:
        nets["D"] = build_discriminator(variant, n_filters)
    return nets


def describe_state(state: Mapping[str, torch.Tensor]) -> tuple[str, str, int] | None:
    """(variant, role, width) of a generator state dict with this project's key names, or None.

    The role is "fusion" when the state has side outputs, else "branch". The variant comes from the
    head's shape (SPEC 9.1): 2021 heads give 3 outputs (branch input n, fusion input n + 6),
    2023 heads give 4 (input n).
    """
    head, inc = state.get("head.weight"), state.get("encoder.inc.conv1.0.weight")
    if not isinstance(head, torch.Tensor) or not isinstance(inc, torch.Tensor) or head.dim() != 4:
        return None
    n = int(inc.shape[0])
    role = "fusion" if SIDE_KEY in state else "branch"
    out, into = int(head.shape[0]), int(head.shape[1])
    if out == 3 and into == (n + 6 if role == "fusion" else n):
        return "v2021", role, n
    if out == 4 and into == n:
        return "v2023", role, n
    return None
