"""U-Net discriminator: per-pixel, per-channel real/fake logits for (image, segmentation) pairs."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Encoder, PlainUp


class Discriminator(nn.Module):
    """Input concat[image (3), map (3)]; output (B, 3, H, W) raw logits (no sigmoid)."""

    def __init__(self, n_filters: int = 32, in_channels: int = 6, out_channels: int = 3) -> None:
        super().__init__()
        n = n_filters
        self.n_filters = n
        self.encoder = Encoder(in_channels, n)
        self.up1 = PlainUp(16 * n, 8 * n)
        self.up2 = PlainUp(8 * n, 4 * n)
        self.up3 = PlainUp(4 * n, 2 * n)
        self.up4 = PlainUp(2 * n, n)
        self.head = nn.Conv2d(n, out_channels, kernel_size=1)

    def forward(self, image: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(torch.cat([image, seg], dim=1))
        x = feats[4]
        for up, skip in zip((self.up1, self.up2, self.up3, self.up4), reversed(feats[:4])):
            x = up(x, skip)
        return self.head(x)
