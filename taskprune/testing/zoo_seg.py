"""Width-reduced semantic segmentation lookalikes: DeepLabv3 (ASPP + auxiliary head) and FCN-8s.

Written from the papers' descriptions (Chen et al. 2017, "Rethinking Atrous Convolution"; Long et al. 2015,
"Fully Convolutional Networks"), at a width that runs in milliseconds on a 64x64 input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = ["fcn_like", "deeplab_like", "ASPP", "DeepLabLike", "FCNLike"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1, three dilated 3x3 and an image-pooling branch, concat, project."""

    def __init__(self, c_in: int, c_out: int, rates: tuple[int, ...] = (2, 4, 6)) -> None:
        super().__init__()
        branches = [conv_bn_act(c_in, c_out, 1)]
        branches += [conv_bn_act(c_in, c_out, 3, dilation=rate) for rate in rates]
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
        )
        self.project = nn.Sequential(conv_bn_act(c_out * (len(rates) + 2), c_out, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


def _fcn_head(c_in: int, classes: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_act(c_in, c_in // 4), nn.Dropout(0.1), nn.Conv2d(c_in // 4, classes, 1))


class DeepLabLike(nn.Module):
    """DeepLabv3: a dilated backbone (output stride 8), ASPP, a classifier, an auxiliary FCN head.

    Returns ``{"out": [B, classes, H, W], "aux": [B, classes, H, W]}``; the auxiliary head reads the
    penultimate stage, so that stage serves both outputs.
    """

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_act(3, 16, stride=2), conv_bn_act(16, 24, stride=2))
        self.layer2 = nn.Sequential(conv_bn_act(24, 32, stride=2), conv_bn_act(32, 32))
        self.layer3 = nn.Sequential(conv_bn_act(32, 48, dilation=2), conv_bn_act(48, 48, dilation=2))
        self.layer4 = nn.Sequential(conv_bn_act(48, 64, dilation=4), conv_bn_act(64, 64, dilation=4))
        self.classifier = nn.Sequential(ASPP(64, 32), conv_bn_act(32, 32), nn.Conv2d(32, classes, 1))
        self.aux_classifier = _fcn_head(48, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        aux_features = self.layer3(self.layer2(self.stem(x)))
        out = self.classifier(self.layer4(aux_features))
        return {
            "out": F.interpolate(out, size=size, mode="bilinear", align_corners=False),
            "aux": F.interpolate(
                self.aux_classifier(aux_features), size=size, mode="bilinear", align_corners=False
            ),
        }


class FCNLike(nn.Module):
    """FCN-8s: class scores at strides 32, 16 and 8 fused by learnt 2x transposed-conv upsampling and adds.

    Returns a single tensor ``[B, classes, H, W]``. The score convs and the upsampling transposed convs all have
    ``classes`` output channels that are summed together, so they form one coupled group ending at the output.
    """

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.pool3 = nn.Sequential(
            conv_bn_act(3, 16),
            nn.MaxPool2d(2),
            conv_bn_act(16, 24),
            nn.MaxPool2d(2),
            conv_bn_act(24, 32),
            nn.MaxPool2d(2),
        )
        self.pool4 = nn.Sequential(conv_bn_act(32, 48), conv_bn_act(48, 48), nn.MaxPool2d(2))
        self.pool5 = nn.Sequential(conv_bn_act(48, 64), conv_bn_act(64, 64), nn.MaxPool2d(2))
        self.fc = nn.Sequential(conv_bn_act(64, 96, 1), nn.Dropout(0.1), conv_bn_act(96, 96, 1))
        self.score_fr = nn.Conv2d(96, classes, 1)
        self.score_pool4 = nn.Conv2d(48, classes, 1)
        self.score_pool3 = nn.Conv2d(32, classes, 1)
        self.upscore2 = nn.ConvTranspose2d(classes, classes, 4, 2, 1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(classes, classes, 4, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.pool3(x)
        pool4 = self.pool4(pool3)
        score = self.upscore2(self.score_fr(self.fc(self.pool5(pool4)))) + self.score_pool4(pool4)
        score = self.upscore_pool4(score) + self.score_pool3(pool3)
        return F.interpolate(score, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_test_model("zoo")
def deeplab_like() -> tuple[nn.Module, torch.Tensor]:
    """`DeepLabLike` (``{"out", "aux"}``) on ``[1, 3, 64, 64]``."""
    return DeepLabLike(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def fcn_like() -> tuple[nn.Module, torch.Tensor]:
    """`FCNLike` (one tensor) on ``[1, 3, 64, 64]``."""
    return FCNLike(), torch.randn(1, 3, 64, 64)
