"""A width-reduced RetinaNet-style FPN detector whose ONE head module is applied to every pyramid level.

Written from Lin et al. 2017 ("Focal Loss for Dense Object Detection"): FPN laterals and top-down adds, and a
classification and a box tower shared across levels. Because the same convs read every level, the FPN output
convs of all levels are coupled through the head's input channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = ["fpn_shared_head", "FPNSharedHeadDetector", "SharedHead"]


class SharedHead(nn.Module):
    """Classification and box towers (conv + GroupNorm + ReLU) ending in 4-D output convs."""

    def __init__(self, channels: int, num_anchors: int = 3, num_classes: int = 4) -> None:
        super().__init__()

        def tower() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.GroupNorm(4, channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.GroupNorm(4, channels),
                nn.ReLU(),
            )

        self.cls_tower = tower()
        self.box_tower = tower()
        self.cls_out = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_out(self.cls_tower(x)), self.box_out(self.box_tower(x))


class FPNSharedHeadDetector(nn.Module):
    """Backbone (strides 8, 16, 32), FPN with 3x3 output convs, one :class:`SharedHead` for all levels.

    Returns ``(cls_per_level, box_per_level)``, two lists of 4-D tensors ``[B, A * nc, H_l, W_l]`` and
    ``[B, A * 4, H_l, W_l]``.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.c3 = nn.Sequential(
            conv_bn_act(3, 16, stride=2), conv_bn_act(16, 24, stride=2), conv_bn_act(24, 32, stride=2)
        )
        self.c4 = conv_bn_act(32, 48, stride=2)
        self.c5 = conv_bn_act(48, 64, stride=2)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in (32, 48, 64))
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3))
        self.head = SharedHead(channels)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        levels = [conv(p) for conv, p in zip(self.output, (p3, p4, p5), strict=True)]
        outputs = [self.head(level) for level in levels]
        return [cls for cls, _ in outputs], [box for _, box in outputs]


@register_test_model("zoo")
def fpn_shared_head() -> tuple[nn.Module, torch.Tensor]:
    """`FPNSharedHeadDetector` on ``[1, 3, 64, 64]``."""
    return FPNSharedHeadDetector(), torch.randn(1, 3, 64, 64)
