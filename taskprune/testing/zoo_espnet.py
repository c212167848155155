"""A width-reduced ESPNet-style two-headed segmentation network.

Written from the published descriptions of ESPNet (Mehta et al. 2018: efficient spatial pyramid blocks of dilated
parallel branches merged hierarchically, PReLU, the downsampled input re-injected by concatenation) and DANet
(Fu et al. 2019: position and channel attention computed with ``bmm``), with two transposed-conv decoders as in
lightweight driving segmentation networks (drivable area and lane line).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_test_model

__all__ = ["espnet_like", "ChannelAttention", "DilatedParallelBlock", "ESPNetLike", "PositionAttention"]


class _ConvBNPReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.PReLU(c_out)
        )


class DilatedParallelBlock(nn.Module):
    """ESP block: 1x1 reduce, five parallel 3x3 branches (dilation 1-16), hierarchical sums, concat, residual.

    The branch widths are uneven (``c_out - 4 * (c_out // 5)`` then ``c_out // 5`` four times), and the dilated
    branches are summed pairwise before the concat, which couples their channels.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        n = c_out // 5
        first = c_out - 4 * n
        self.reduce = nn.Conv2d(c_in, n, 3 if stride == 2 else 1, stride, 1 if stride == 2 else 0, bias=False)
        self.d1 = nn.Conv2d(n, first, 3, 1, 1, bias=False)
        self.dilated = nn.ModuleList(nn.Conv2d(n, n, 3, 1, d, dilation=d, bias=False) for d in (2, 4, 8, 16))
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.PReLU(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        branches = [self.d1(reduced)]
        running = None
        for conv in self.dilated:
            out = conv(reduced)
            running = out if running is None else running + out
            branches.append(running)
        combined = torch.cat(branches, dim=1)
        if self.residual:
            combined = combined + x
        return self.act(self.bn(combined))


class PositionAttention(nn.Module):
    """DANet position attention: ``softmax(Q^T K)`` over H*W positions applied to V with ``bmm``, scaled residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.key = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).view(b, -1, h * w).permute(0, 2, 1)
        attention = torch.softmax(torch.bmm(query, self.key(x).view(b, -1, h * w)), dim=-1)
        out = torch.bmm(self.value(x).view(b, c, h * w), attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """DANet channel attention: a C x C affinity from ``bmm`` of the features with themselves, scaled residual.

    No convs: the attention mixes every channel with every other, so pruning the input changes the mixing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.view(b, c, -1)
        energy = torch.bmm(flat, flat.permute(0, 2, 1))
        # DANet subtracts from the row max so that the softmax favours dissimilar channels.
        energy = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        out = torch.bmm(torch.softmax(energy, dim=-1), flat).view(b, c, h, w)
        return self.gamma * out + x


def _decoder(c_in: int, classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, 16, 2, 2, bias=False),
        nn.BatchNorm2d(16),
        nn.PReLU(16),
        nn.ConvTranspose2d(16, 8, 2, 2, bias=False),
        nn.BatchNorm2d(8),
        nn.PReLU(8),
        nn.ConvTranspose2d(8, classes, 2, 2),
    )


class ESPNetLike(nn.Module):
    """Encoder of ESP blocks with the input re-injected, PAM + CAM attention, two decoders.

    Returns ``(drivable [B, 2, H, W], lane [B, 2, H, W])`` for an input whose sides are multiples of 8.
    """

    def __init__(self) -> None:
        super().__init__()
        self.level1 = _ConvBNPReLU(3, 16, stride=2)
        self.pool = nn.AvgPool2d(3, 2, 1)
        self.level2_down = DilatedParallelBlock(16 + 3, 32, stride=2)
        self.level2 = nn.Sequential(DilatedParallelBlock(32, 32), DilatedParallelBlock(32, 32))
        self.level2_merge = nn.Sequential(nn.BatchNorm2d(32 + 32 + 3), nn.PReLU(32 + 32 + 3))
        self.level3_down = DilatedParallelBlock(32 + 32 + 3, 64, stride=2)
        self.level3 = nn.Sequential(DilatedParallelBlock(64, 64), DilatedParallelBlock(64, 64))
        self.position_attention = PositionAttention(64)
        self.channel_attention = ChannelAttention()
        self.project = _ConvBNPReLU(64, 32, k=1)
        self.drivable = _decoder(32, 2)
        self.lane = _decoder(32, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        input_half = self.pool(x)
        input_quarter = self.pool(input_half)
        l1 = torch.cat([self.level1(x), input_half], dim=1)
        l2_down = self.level2_down(l1)
        l2 = self.level2_merge(torch.cat([l2_down, self.level2(l2_down), input_quarter], dim=1))
        l3_down = self.level3_down(l2)
        l3 = self.level3(l3_down) + l3_down
        features = self.project(self.position_attention(l3) + self.channel_attention(l3))
        return self.drivable(features), self.lane(features)


@register_test_model("zoo")
def espnet_like() -> tuple[nn.Module, torch.Tensor]:
    """`ESPNetLike` (drivable + lane) on ``[1, 3, 64, 64]``."""
    return ESPNetLike(), torch.randn(1, 3, 64, 64)
