"""Network building blocks shared by the generators and the discriminator (SPEC section 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.batchnorm import BatchNorm2d

DIVISOR = 16  # four 2x poolings


def check_input_size(x: torch.Tensor) -> None:
    """Raise a ValueError unless ``x`` is (B, C, H, W) with H and W divisible by 16."""
    if x.dim() != 4:
        raise ValueError(f"expected a (batch, channels, height, width) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % DIVISOR or w % DIVISOR:
        raise ValueError(
            f"input height and width must be divisible by {DIVISOR}, got {h} x {w}; "
            f"resize the image to e.g. {round(h / DIVISOR) * DIVISOR or DIVISOR} x "
            f"{round(w / DIVISOR) * DIVISOR or DIVISOR} first"
        )


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (with bias), BatchNorm, ReLU. The original's ``BottomConv``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
            BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Module):
    """Two ConvBNReLU layers."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_ch, out_ch)
        self.conv2 = ConvBNReLU(out_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Down(nn.Module):
    """2x2 max-pool, then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.max_pool2d(x, 2))


class Encoder(nn.Module):
    """U-Net encoder: inc + four Down stages; returns the five feature maps, finest first."""

    def __init__(self, in_ch: int, n: int) -> None:
        super().__init__()
        self.inc = DoubleConv(in_ch, n)
        self.down1 = Down(n, 2 * n)
        self.down2 = Down(2 * n, 4 * n)
        self.down3 = Down(4 * n, 8 * n)
        self.down4 = Down(8 * n, 16 * n)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input_size(x)
        feats = [self.inc(x)]
        for down in (self.down1, self.down2, self.down3, self.down4):
            feats.append(down(feats[-1]))
        return feats


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _pair_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum adjacent channel pairs: (B, C, H, W) -> (B, C/2, H, W)."""
    b, c, h, w = x.shape
    return x.reshape(b, c // 2, 2, h, w).sum(dim=2)


class FuseUp(nn.Module):
    """Decoder stage of the generators (the original's ``Up_new``).

    ``u`` = 2x nearest upsampling of ConvBNReLU(x1). Path 1 halves the channels of ``u`` and of the
    skip ``x2`` by summing channel pairs and passes both through one shared BN+ReLU; path 2 is a
    DoubleConv on ``concat[u, x2]``. The output is the sum of the two paths.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.bottom = ConvBNReLU(in_ch, out_ch)
        self.pair_act = nn.Sequential(BatchNorm2d(out_ch // 2), nn.ReLU(inplace=True))
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        u = _upsample2(self.bottom(x1))
        pairs = torch.cat([self.pair_act(_pair_sum(u)), self.pair_act(_pair_sum(x2))], dim=1)
        return pairs + self.conv(torch.cat([u, x2], dim=1))


class PlainUp(nn.Module):
    """Decoder stage of the discriminator: upsample ConvBNReLU(x1), pad, DoubleConv(concat[x2, u])."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.bottom = ConvBNReLU(in_ch, out_ch)
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        u = _upsample2(self.bottom(x1))
        dy, dx = x2.shape[-2] - u.shape[-2], x2.shape[-1] - u.shape[-1]
        if dy or dx:
            u = F.pad(u, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, u], dim=1))


class SideBlock(nn.Module):
    """2x nearest upsampling, 3x3 conv, BN, ReLU (one step of a deep side output)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.bn = BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(_upsample2(x))), inplace=True)


class SideOutput(nn.Module):
    """Deep side output: SideBlocks halving the channels down to ``n``, then a 1x1 head to 3 logits."""

    def __init__(self, in_ch: int, n: int, out_ch: int = 3) -> None:
        super().__init__()
        blocks, ch = [], in_ch
        while ch > n:
            blocks.append(SideBlock(ch, ch // 2))
            ch //= 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(n, out_ch, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))
