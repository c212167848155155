"""Width-reduced classification lookalikes: ResNet (basic blocks), MobileNetV3-small and DenseNet.

Written from the papers' descriptions (He et al. 2016; Howard et al. 2019; Huang et al. 2017). Each returns
logits ``[B, classes]`` for an input of about 64x64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = ["densenet_like", "mobilenetv3_small_like", "resnet_basic_like", "BasicBlock", "DenseNetLike",
           "InvertedResidual", "MobileNetV3SmallLike", "ResNetBasicLike"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual add; a 1x1 strided projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(c_in, c_out, stride=stride)
        self.conv2 = conv_bn_act(c_out, c_out, act=None)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = conv_bn_act(c_in, c_out, 1, stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetBasicLike(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks) at widths 16-32-64-128, global pool, linear classifier."""

    def __init__(self, classes: int = 10, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.stem = conv_bn_act(3, widths[0])
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            blocks += [BasicBlock(c_in, width, 1 if i == 0 else 2), BasicBlock(width, width)]
            c_in = width
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1x1 expand, depthwise kxk, optional squeeze-excitation, 1x1 project, residual."""

    def __init__(
        self, c_in: int, expanded: int, c_out: int, kernel: int, stride: int, se: bool, act: type[nn.Module]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_bn_act(c_in, expanded, 1, act=act))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(_SqueezeExcite(expanded, max(expanded // 4, 8)))
        layers.append(conv_bn_act(expanded, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


# (in, expanded, out, kernel, stride, squeeze-excite, activation): the first rows of MobileNetV3-small, halved.
_MOBILENET_V3_SMALL = (
    (8, 8, 8, 3, 2, True, nn.ReLU),
    (8, 36, 12, 3, 2, False, nn.ReLU),
    (12, 44, 12, 3, 1, False, nn.ReLU),
    (12, 48, 20, 5, 2, True, nn.Hardswish),
    (20, 120, 20, 5, 1, True, nn.Hardswish),
    (20, 60, 24, 5, 1, True, nn.Hardswish),
)


class MobileNetV3SmallLike(nn.Module):
    """MobileNetV3-small at half width: hardswish stem, inverted residuals with SE, 1x1 conv, MLP classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn_act(3, 8, stride=2, act=nn.Hardswish)
        self.blocks = nn.Sequential(*(InvertedResidual(*row) for row in _MOBILENET_V3_SMALL))
        self.last_conv = conv_bn_act(24, 144, 1, act=nn.Hardswish)
        self.classifier = nn.Sequential(
            nn.Linear(144, 256), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(256, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.last_conv(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


class _DenseLayer(nn.Module):
    # Pre-activation (BN-ReLU-conv): the BN reads the whole concatenation, so it spans every earlier layer.
    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))
        return torch.cat([x, new], dim=1)


def _transition(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2)
    )


class DenseNetLike(nn.Module):
    """Two dense blocks (each layer concatenates ``growth`` new channels onto its input) with a transition."""

    def __init__(self, classes: int = 10, growth: int = 8, layers: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        width = 16
        block1 = []
        for _ in range(layers):
            block1.append(_DenseLayer(width, growth))
            width += growth
        self.block1 = nn.Sequential(*block1)
        self.transition = _transition(width, width // 2)
        width //= 2
        block2 = []
        for _ in range(layers):
            block2.append(_DenseLayer(width, growth))
            width += growth
        self.block2 = nn.Sequential(*block2)
        self.norm = nn.BatchNorm2d(width)
        self.classifier = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.norm(self.block2(self.transition(self.block1(self.stem(x))))))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


@register_test_model("zoo")
def resnet_basic_like() -> tuple[nn.Module, torch.Tensor]:
    """`ResNetBasicLike` on ``[1, 3, 64, 64]``."""
    return ResNetBasicLike(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def mobilenetv3_small_like() -> tuple[nn.Module, torch.Tensor]:
    """`MobileNetV3SmallLike` on ``[1, 3, 64, 64]``."""
    return MobileNetV3SmallLike(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def densenet_like() -> tuple[nn.Module, torch.Tensor]:
    """`DenseNetLike` on ``[1, 3, 64, 64]``."""
    return DenseNetLike(), torch.randn(1, 3, 64, 64)
