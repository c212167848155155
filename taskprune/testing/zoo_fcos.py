"""An FCOS detector on a ResNet-50 FPN, written after torchvision's ``fcos_resnet50_fpn`` (Tian et al. 2019).

The structure follows torchvision's: a ResNet-50 body whose norms are ``FrozenBatchNorm2d`` (statistics and affine
terms held as buffers, not parameters), an FPN over C3-C5 with 1x1 inner and 3x3 layer convs and extra P6/P7
levels (``LastLevelP6P7`` on P5), and one FCOS head applied to every level: a classification and a regression
tower of four conv3x3 + GroupNorm(32) + ReLU, ``cls_logits``, ``bbox_reg`` and ``bbox_ctrness`` convs, each
output ``view``-ed to ``[N, A, K, H, W]``, permuted, reshaped to ``[N, HWA, K]`` and concatenated over levels.
``width`` scales every channel count (1.0 is the published model); forward takes a batch tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_test_model

__all__ = ["FCOSResNetFPN", "FrozenBatchNorm2d", "fcos_like", "fcos_resnet50_fpn"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine terms, all buffers (torchvision.ops.FrozenBatchNorm2d)."""

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.empty(channels).uniform_(0.5, 1.5))
        self.register_buffer("bias", torch.empty(channels).normal_(0.0, 0.1))
        self.register_buffer("running_mean", torch.empty(channels).normal_(0.0, 0.1))
        self.register_buffer("running_var", torch.empty(channels).uniform_(0.5, 1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class _Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), FrozenBatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), FrozenBatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), FrozenBatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), FrozenBatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _layer(c_in: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_Bottleneck(c_in, width, stride), *(_Bottleneck(4 * width, width) for _ in range(blocks - 1)))


class _Tower(nn.Sequential):
    def __init__(self, channels: int, groups: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(groups, channels), nn.ReLU()]
        super().__init__(*layers)


def _flatten_level(x: torch.Tensor, per_anchor: int) -> torch.Tensor:
    # torchvision's head: [N, A*K, H, W] -> [N, A, K, H, W] -> [N, H, W, A, K] -> [N, HWA, K]
    n, _, h, w = x.shape
    return x.view(n, -1, per_anchor, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, per_anchor)


class FCOSResNetFPN(nn.Module):
    """ResNet-50 (frozen norms) + FPN P3-P7 + a shared FCOS head. Returns a dict of ``cls_logits [N, HWA, nc]``,
    ``bbox_regression [N, HWA, 4]`` and ``bbox_ctrness [N, HWA, 1]`` over all levels."""

    def __init__(self, num_classes: int = 91, width: float = 1.0, fpn_channels: int = 256, gn_groups: int = 32,
                 num_anchors: int = 1) -> None:
        super().__init__()
        self.num_classes, self.num_anchors = num_classes, num_anchors
        widths = [max(8, int(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = FrozenBatchNorm2d(widths[0])
        self.layer1 = _layer(widths[0], widths[0], 3, 1)
        self.layer2 = _layer(4 * widths[0], widths[1], 4, 2)
        self.layer3 = _layer(4 * widths[1], widths[2], 6, 2)
        self.layer4 = _layer(4 * widths[2], widths[3], 3, 2)
        self.inner_blocks = nn.ModuleList(nn.Conv2d(4 * c, fpn_channels, 1) for c in widths[1:])
        self.layer_blocks = nn.ModuleList(nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1) for _ in widths[1:])
        self.p6 = nn.Conv2d(fpn_channels, fpn_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(fpn_channels, fpn_channels, 3, 2, 1)
        self.cls_tower = _Tower(fpn_channels, gn_groups)
        self.cls_logits = nn.Conv2d(fpn_channels, num_anchors * num_classes, 3, padding=1)
        self.reg_tower = _Tower(fpn_channels, gn_groups)
        self.bbox_reg = nn.Conv2d(fpn_channels, num_anchors * 4, 3, padding=1)
        self.bbox_ctrness = nn.Conv2d(fpn_channels, num_anchors, 3, padding=1)

    def _fpn(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        last = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[i](features[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[i](last))
        p6 = self.p6(results[-1])  # LastLevelP6P7 reads P5 when its channels equal the FPN's
        return [*results, p6, self.p7(F.relu(p6))]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(images))), 3, 2, 1)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        cls, reg, ctr = [], [], []
        for level in self._fpn([c3, c4, c5]):
            cls.append(_flatten_level(self.cls_logits(self.cls_tower(level)), self.num_classes))
            box_features = self.reg_tower(level)
            reg.append(_flatten_level(F.relu(self.bbox_reg(box_features)), 4))
            ctr.append(_flatten_level(self.bbox_ctrness(box_features), 1))
        return {"cls_logits": torch.cat(cls, 1), "bbox_regression": torch.cat(reg, 1),
                "bbox_ctrness": torch.cat(ctr, 1)}


@register_test_model("large")
def fcos_resnet50_fpn() -> tuple[nn.Module, torch.Tensor]:
    """:class:`FCOSResNetFPN` at the published size (about 32M parameters) on ``[1, 3, 320, 320]``."""
    return FCOSResNetFPN(), torch.randn(1, 3, 320, 320)


@register_test_model("zoo")
def fcos_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`FCOSResNetFPN` with an eighth of the widths (FPN 64 channels, GroupNorm(32)) on ``[1, 3, 64, 64]``."""
    return FCOSResNetFPN(num_classes=5, width=0.125, fpn_channels=64), torch.randn(1, 3, 64, 64)
