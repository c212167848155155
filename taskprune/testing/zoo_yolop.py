"""A width-reduced YOLOP lookalike (Wu et al. 2022, "YOLOP: You Only Look Once for Panoptic Driving Perception").

Written from the paper's description: a Focus stem, BottleneckCSP stages and SPP in the backbone, an FPN+PAN neck,
an anchor-based Detect head that reshapes to ``[B, A, H, W, 5 + nc]`` and decodes boxes with ``anchors`` and
``stride`` buffers in eval mode, and two segmentation decoders (drivable area, lane line) upsampling to the input.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = ["yolop_like", "SPP", "BottleneckCSP", "Detect", "Focus", "YOLOPLike"]

YOLOP_ANCHORS = ((3, 9, 5, 11, 4, 20), (7, 18, 6, 39, 12, 31), (19, 50, 38, 81, 68, 157))


def _conv(c_in: int, c_out: int, k: int = 1, s: int = 1) -> nn.Sequential:
    return conv_bn_act(c_in, c_out, k, s, act=nn.Hardswish)


class Focus(nn.Module):
    """Space-to-depth: the four pixel phases of each 2x2 cell stacked on channels, then a conv."""

    def __init__(self, c_in: int, c_out: int, k: int = 3) -> None:
        super().__init__()
        self.conv = _conv(c_in * 4, c_out, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]]
        return self.conv(torch.cat(phases, dim=1))


class _Bottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = _conv(c_in, c_out, 1)
        self.cv2 = _conv(c_out, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class BottleneckCSP(nn.Module):
    """Cross-stage partial block: a bottleneck path and a plain 1x1 path, concatenated, BN + LeakyReLU, fused."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.cv1 = _conv(c_in, hidden, 1)
        self.cv2 = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.cv3 = nn.Conv2d(hidden, hidden, 1, bias=False)
        self.cv4 = _conv(2 * hidden, c_out, 1)
        self.bn = nn.BatchNorm2d(2 * hidden)
        self.act = nn.LeakyReLU(0.1)
        self.m = nn.Sequential(*(_Bottleneck(hidden, hidden, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = self.cv3(self.m(self.cv1(x)))
        return self.cv4(self.act(self.bn(torch.cat([y1, self.cv2(x)], dim=1))))


class SPP(nn.Module):
    """Spatial pyramid pooling: max pools of several sizes (stride 1) concatenated with their input."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = _conv(c_in, hidden, 1)
        self.cv2 = _conv(hidden * (len(kernels) + 1), c_out, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class Detect(nn.Module):
    """Anchor-based detection head; eval returns ``(decoded [B, N, 5 + nc], per-level [B, A, H, W, 5 + nc])``.

    The per-level conv's channels are (anchor, field) pairs, so pruning any of them corrupts the layout. The
    anchors and strides are buffers, not parameters.
    """

    anchors: torch.Tensor
    stride: torch.Tensor

    def __init__(self, num_classes: int, channels: tuple[int, ...], strides: tuple[int, ...]) -> None:
        super().__init__()
        self.num_levels = len(channels)
        self.num_anchors = len(YOLOP_ANCHORS[0]) // 2
        self.num_outputs = num_classes + 5
        anchors = torch.tensor(YOLOP_ANCHORS, dtype=torch.float32).view(self.num_levels, -1, 2)
        self.register_buffer("anchors", anchors)
        self.register_buffer("stride", torch.tensor(strides, dtype=torch.float32))
        self.m = nn.ModuleList(nn.Conv2d(c, self.num_outputs * self.num_anchors, 1) for c in channels)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        decoded, raw = [], []
        for level, (conv, x) in enumerate(zip(self.m, features, strict=True)):
            b, _, h, w = x.shape
            y = conv(x).view(b, self.num_anchors, self.num_outputs, h, w).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(y)
            grid_y, grid_x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack((grid_x, grid_y), dim=2).view(1, 1, h, w, 2).float()
            s = y.sigmoid()
            xy = (s[..., 0:2] * 2.0 - 0.5 + grid) * self.stride[level]
            wh = (s[..., 2:4] * 2) ** 2 * self.anchors[level].view(1, self.num_anchors, 1, 1, 2)
            decoded.append(torch.cat([xy, wh, s[..., 4:]], dim=-1).view(b, -1, self.num_outputs))
        return torch.cat(decoded, dim=1), raw


def _seg_decoder(c_in: int, classes: int = 2) -> nn.Sequential:
    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        _conv(c_in, 32, 3),
        up,
        BottleneckCSP(32, 16, 1, False),
        _conv(16, 8, 3),
        up,
        _conv(8, 8, 3),
        up,
        nn.Conv2d(8, classes, 3, padding=1),
    )


class YOLOPLike(nn.Module):
    """Width-reduced YOLOP: returns ``((decoded, per-level raw), drivable [B, 2, H, W], lane [B, 2, H, W])``."""

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        self.focus = Focus(3, 16)
        self.stage2 = nn.Sequential(_conv(16, 32, 3, 2), BottleneckCSP(32, 32))
        self.stage3 = nn.Sequential(_conv(32, 48, 3, 2), BottleneckCSP(48, 48))
        self.stage4 = nn.Sequential(_conv(48, 64, 3, 2), BottleneckCSP(64, 64))
        self.stage5 = nn.Sequential(_conv(64, 96, 3, 2), SPP(96, 96), BottleneckCSP(96, 96, shortcut=False))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral5 = _conv(96, 64)
        self.top_down4 = BottleneckCSP(128, 64, shortcut=False)
        self.lateral4 = _conv(64, 48)
        self.top_down3 = BottleneckCSP(96, 48, shortcut=False)
        self.down3 = _conv(48, 48, 3, 2)
        self.bottom_up4 = BottleneckCSP(96, 64, shortcut=False)
        self.down4 = _conv(64, 64, 3, 2)
        self.bottom_up5 = BottleneckCSP(128, 96, shortcut=False)
        self.detect = Detect(num_classes, (48, 64, 96), (8, 16, 32))
        self.drivable = _seg_decoder(48)
        self.lane = _seg_decoder(48)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, list[torch.Tensor]], torch.Tensor, torch.Tensor]:
        c3 = self.stage3(self.stage2(self.focus(x)))
        c4 = self.stage4(c3)
        h5 = self.lateral5(self.stage5(c4))
        h4 = self.lateral4(self.top_down4(torch.cat([self.up(h5), c4], dim=1)))
        p3 = self.top_down3(torch.cat([self.up(h4), c3], dim=1))
        p4 = self.bottom_up4(torch.cat([self.down3(p3), h4], dim=1))
        p5 = self.bottom_up5(torch.cat([self.down4(p4), h5], dim=1))
        return self.detect([p3, p4, p5]), self.drivable(p3), self.lane(p3)


@register_test_model("zoo")
def yolop_like() -> tuple[nn.Module, torch.Tensor]:
    """`YOLOPLike` (detection + drivable + lane) on ``[1, 3, 64, 64]``."""
    return YOLOPLike(), torch.randn(1, 3, 64, 64)
