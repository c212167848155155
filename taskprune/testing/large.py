"""A ResNet-50-sized three-task model, for scale checks that are too slow for the default test run."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model
from .tiny import DrivingOutput

__all__ = ["Bottleneck", "ResNet50ThreeHead", "resnet50_three_head"]


class Bottleneck(nn.Module):
    """The standard ResNet bottleneck: 1x1 reduce, 3x3 (strided), 1x1 expand by 4, residual add."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv_bn_act(in_channels, width, kernel_size=1)
        self.conv2 = conv_bn_act(width, width, stride=stride)
        self.conv3 = conv_bn_act(width, out_channels, kernel_size=1, act=None)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = conv_bn_act(in_channels, out_channels, kernel_size=1, stride=stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


def _stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(width * Bottleneck.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50ThreeHead(nn.Module):
    """ResNet-50 backbone (stages 3-4-6-3, widths 256-512-1024-2048), an FPN-lite neck and three heads.

    The neck projects C3, C4 and C5 to ``neck_channels`` and merges them top-down (nearest upsample + add) into
    P3 at stride 8. Heads: a plain 4-D detection conv on P3 (``[B, A * (5 + nc), H/8, W/8]``, no reshape) and
    two segmentation heads upsampled bilinearly to the input size. Returns a :class:`DrivingOutput`.
    """

    def __init__(self, num_classes: int = 1, num_anchors: int = 3, neck_channels: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_act(3, 64, kernel_size=7, stride=2), nn.MaxPool2d(3, 2, 1))
        self.layer1 = _stage(64, 64, 3, 1)
        self.layer2 = _stage(256, 128, 4, 2)
        self.layer3 = _stage(512, 256, 6, 2)
        self.layer4 = _stage(1024, 512, 3, 2)
        self.lateral3 = nn.Conv2d(512, neck_channels, 1)
        self.lateral4 = nn.Conv2d(1024, neck_channels, 1)
        self.lateral5 = nn.Conv2d(2048, neck_channels, 1)
        self.smooth = conv_bn_act(neck_channels, neck_channels)
        self.det_head = nn.Sequential(
            conv_bn_act(neck_channels, neck_channels), nn.Conv2d(neck_channels, num_anchors * (5 + num_classes), 1)
        )
        self.drivable_head = nn.Sequential(conv_bn_act(neck_channels, 64), nn.Conv2d(64, 2, 1))
        self.lane_head = nn.Sequential(conv_bn_act(neck_channels, 64), nn.Conv2d(64, 2, 1))

    def backbone_parameters(self) -> int:
        """Number of parameters in the stem and the four ResNet stages."""
        parts = (self.stem, self.layer1, self.layer2, self.layer3, self.layer4)
        return sum(p.numel() for part in parts for p in part.parameters())

    def forward(self, x: torch.Tensor) -> DrivingOutput:
        c3 = self.layer2(self.layer1(self.stem(x)))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        p4 = self.lateral4(c4) + F.interpolate(self.lateral5(c5), size=c4.shape[-2:], mode="nearest")
        p3 = self.smooth(self.lateral3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest"))
        size = x.shape[-2:]
        drivable = F.interpolate(self.drivable_head(p3), size=size, mode="bilinear", align_corners=False)
        lane = F.interpolate(self.lane_head(p3), size=size, mode="bilinear", align_corners=False)
        return DrivingOutput(self.det_head(p3), drivable, lane)


@register_test_model("large")
def resnet50_three_head() -> tuple[nn.Module, torch.Tensor]:
    """:class:`ResNet50ThreeHead` on a ``[1, 3, 384, 640]`` input (about 25M parameters; slow on a CPU)."""
    return ResNet50ThreeHead(), torch.randn(1, 3, 384, 640)
