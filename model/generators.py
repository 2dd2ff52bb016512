"""The generators: branch generator (G_A, G_V) and fusion generator (G), in the paper's 2021 form and
the authors' 2023 release form (SPEC 9.1), which differ only in their heads and how G fuses."""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Encoder, FuseUp, SideOutput


class FuseDecoder(nn.Module):
    """Four FuseUp stages; returns the features after each stage (coarsest first)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.up1 = FuseUp(16 * n, 8 * n)
        self.up2 = FuseUp(8 * n, 4 * n)
        self.up3 = FuseUp(4 * n, 2 * n)
        self.up4 = FuseUp(2 * n, n)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x, outs = feats[4], []
        for up, skip in zip((self.up1, self.up2, self.up3, self.up4), reversed(feats[:4])):
            x = up(x, skip)
            outs.append(x)
        return outs


class BranchGenerator(nn.Module):
    """Artery or vein branch: U-Net with FuseUp decoder; returns (B, 3, H, W) logits."""

    def __init__(self, n_filters: int = 32, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.n_filters = n_filters
        self.encoder = Encoder(in_channels, n_filters)
        self.decoder = FuseDecoder(n_filters)
        self.head = nn.Conv2d(n_filters, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x))[-1])


class FeatureBranchGenerator(BranchGenerator):
    """2023 branch: the same network with 4 class logits; also returns its last decoder features.

    ``forward(x)`` returns ``(logits (B, 4, H, W), features (B, n, H, W))``: the features are what
    the head is applied to, and what the 2023 fusion generator takes instead of probabilities.
    """

    def __init__(self, n_filters: int = 32, in_channels: int = 3, out_channels: int = 4) -> None:
        super().__init__(n_filters, in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.decoder(self.encoder(x))[-1]
        return self.head(features), features


class FusionGenerator(nn.Module):
    """Binary-to-multi fusion generator with deep side outputs.

    ``forward(x, a_prob, v_prob)`` returns ``(logits, s1, s2, s3)``, all (B, 3, H, W) logits. The
    final 1x1 head sees ``concat[a_prob, decoder features, v_prob]`` (n + 6 channels).
    """

    def __init__(self, n_filters: int = 32, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        n = n_filters
        self.n_filters = n
        self.encoder = Encoder(in_channels, n)
        self.decoder = FuseDecoder(n)
        self.side1 = SideOutput(8 * n, n, out_channels)
        self.side2 = SideOutput(4 * n, n, out_channels)
        self.side3 = SideOutput(2 * n, n, out_channels)
        self.head = nn.Conv2d(self.head_inputs(n, out_channels), out_channels, kernel_size=1)

    @staticmethod
    def head_inputs(n: int, out_channels: int) -> int:
        return n + 2 * out_channels

    @staticmethod
    def fuse(a: torch.Tensor, own: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """What the head sees: the branch inputs around G's own last decoder features."""
        return torch.cat([a, own, v], dim=1)

    def forward(
        self, x: torch.Tensor, a: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        d1, d2, d3, d4 = self.decoder(self.encoder(x))
        return self.head(self.fuse(a, d4, v)), self.side1(d1), self.side2(d2), self.side3(d3)


class MeanFusionGenerator(FusionGenerator):
    """2023 fusion generator: ``forward(x, f_a, f_v)`` takes the branches' features (B, n, H, W).

    The head (1x1, n -> 4) sees the element-wise mean of [f_a, G's own features, f_v], so the
    result does not depend on the order of the branches. Side outputs as in 2021, with 4 classes.
    """

    def __init__(self, n_filters: int = 32, in_channels: int = 3, out_channels: int = 4) -> None:
        super().__init__(n_filters, in_channels, out_channels)

    @staticmethod
    def head_inputs(n: int, out_channels: int) -> int:
        return n

    @staticmethod
    def fuse(a: torch.Tensor, own: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (a + own + v) / 3
