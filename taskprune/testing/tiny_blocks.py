"""Tiny two-task models built from the blocks that make channel coupling hard.

Concat and split, depthwise and grouped conv, transposed conv with per-channel PReLU, and spatial self-attention
with ``torch.bmm``. Each factory returns ``(model, example_inputs)``, seeded, with randomised BatchNorm, in eval
mode. Output containers vary on purpose: dict, dataclass, tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = [
    "ConcatDictNet",
    "DetSegOutput",
    "GroupedSplitNet",
    "SpatialAttentionNet",
    "TransposedDecoderNet",
    "concat_dict",
    "grouped_split_dataclass",
    "spatial_attention",
    "transposed_decoder",
]


class ConcatDictNet(nn.Module):
    """Two parallel branches concatenated, then a 4-D detection head and a segmentation head.

    Returns ``{"det": [B, 18, H/4, W/4], "seg": [B, 2, H, W]}``. Covers: dict output, ``torch.cat`` of branches
    of different widths (12 + 20 channels), a plain 4-D head.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_act(3, 16, stride=2)
        self.branch3x3 = conv_bn_act(16, 12, stride=2)
        self.branch5x5 = conv_bn_act(16, 20, kernel_size=5, stride=2)
        self.fuse = conv_bn_act(32, 32, kernel_size=1)
        self.det = nn.Conv2d(32, 18, 1)
        self.seg = nn.Sequential(conv_bn_act(32, 16), nn.Conv2d(16, 2, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = self.stem(x)
        features = self.fuse(torch.cat([self.branch3x3(stem), self.branch5x5(stem)], dim=1))
        seg = F.interpolate(self.seg(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"det": self.det(features), "seg": seg}


@dataclass
class DetSegOutput:
    """Output of :class:`GroupedSplitNet`."""

    boxes: torch.Tensor
    mask: torch.Tensor


class GroupedSplitNet(nn.Module):
    """Split a tensor into halves, process them with depthwise and grouped convs, concatenate, add a residual.

    ``torch.split`` feeds one half to a depthwise 3x3 (groups = channels) + pointwise conv and the other half to
    a grouped 3x3 conv (groups=4 on 16 channels); later ``chunk`` splits the features between the box head and
    the mask head (a grouped conv, groups=8). Returns :class:`DetSegOutput`.
    Covers: dataclass output, split and chunk, depthwise and grouped conv, residual add.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_act(3, 32, stride=2)
        self.depthwise = conv_bn_act(16, 16, groups=16)
        self.pointwise = conv_bn_act(16, 16, kernel_size=1)
        self.grouped = conv_bn_act(16, 16, groups=4)
        self.down = conv_bn_act(32, 48, stride=2)
        self.boxes = nn.Conv2d(24, 12, 1)
        self.mask = nn.Sequential(conv_bn_act(24, 16, groups=8), nn.Conv2d(16, 1, 1))

    def forward(self, x: torch.Tensor) -> DetSegOutput:
        stem = self.stem(x)
        left, right = torch.split(stem, 16, dim=1)
        merged = torch.cat([self.pointwise(self.depthwise(left)), self.grouped(right)], dim=1) + stem
        box_features, mask_features = self.down(merged).chunk(2, dim=1)
        mask = F.interpolate(self.mask(mask_features), scale_factor=4.0, mode="nearest")
        return DetSegOutput(boxes=self.boxes(box_features), mask=mask)


class TransposedDecoderNet(nn.Module):
    """Encoder with per-channel PReLU, then two transposed-conv decoders; returns ``(seg, depth)``.

    Covers: ``nn.PReLU(num_parameters=C)``, ``nn.ConvTranspose2d`` upsampling, bilinear upsample, tuple output.
    """

    def __init__(self, seg_classes: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            conv_bn_act(3, 16, stride=2, act=None), nn.PReLU(16),
            conv_bn_act(16, 32, stride=2, act=None), nn.PReLU(32),
            conv_bn_act(32, 48, stride=2, act=None), nn.PReLU(48),
        )
        self.seg_decoder = nn.Sequential(
            nn.ConvTranspose2d(48, 24, 2, stride=2, bias=False), nn.BatchNorm2d(24), nn.PReLU(24),
            nn.ConvTranspose2d(24, 16, 2, stride=2, bias=False), nn.BatchNorm2d(16), nn.PReLU(16),
            nn.Conv2d(16, seg_classes, 1),
        )
        self.depth_decoder = nn.Sequential(
            nn.ConvTranspose2d(48, 16, 4, stride=4), nn.PReLU(16), nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        size = x.shape[-2:]
        seg = F.interpolate(self.seg_decoder(features), size=size, mode="bilinear", align_corners=False)
        depth = F.interpolate(self.depth_decoder(features), size=size, mode="bilinear", align_corners=False)
        return seg, depth


class SpatialAttentionNet(nn.Module):
    """Self-attention over spatial positions with ``torch.bmm``, then a classifier and a segmentation head.

    Query/key/value are 1x1 convs; ``softmax(Q^T K)`` over the H*W positions weights V with a second ``bmm``,
    and a learnt scalar scales the result before a residual add. Query and key channels are contracted by the
    first ``bmm``, so they must be pruned together. Returns ``(logits [B, 5], seg [B, 2, H, W])``.
    """

    def __init__(self, channels: int = 32, key_channels: int = 8) -> None:
        super().__init__()
        self.backbone = nn.Sequential(conv_bn_act(3, 16, stride=2), conv_bn_act(16, channels, stride=2))
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(0.5))
        self.classifier = nn.Linear(channels, 5)
        self.seg = nn.Sequential(conv_bn_act(channels, 16), nn.Conv2d(16, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        b, c, h, w = features.shape
        query = self.query(features).view(b, -1, h * w).permute(0, 2, 1)
        key = self.key(features).view(b, -1, h * w)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)
        value = self.value(features).view(b, c, h * w)
        attended = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        features = features + self.gamma * attended
        logits = self.classifier(features.mean(dim=(2, 3)))
        seg = F.interpolate(self.seg(features), size=x.shape[-2:], mode="nearest")
        return logits, seg


@register_test_model("tiny")
def concat_dict() -> tuple[nn.Module, torch.Tensor]:
    """:class:`ConcatDictNet` on a ``[1, 3, 32, 32]`` input."""
    return ConcatDictNet(), torch.randn(1, 3, 32, 32)


@register_test_model("tiny")
def grouped_split_dataclass() -> tuple[nn.Module, torch.Tensor]:
    """:class:`GroupedSplitNet` on a ``[1, 3, 32, 32]`` input."""
    return GroupedSplitNet(), torch.randn(1, 3, 32, 32)


@register_test_model("tiny")
def transposed_decoder() -> tuple[nn.Module, torch.Tensor]:
    """:class:`TransposedDecoderNet` on a ``[1, 3, 32, 32]`` input."""
    return TransposedDecoderNet(), torch.randn(1, 3, 32, 32)


@register_test_model("tiny")
def spatial_attention() -> tuple[nn.Module, torch.Tensor]:
    """:class:`SpatialAttentionNet` on a ``[1, 3, 32, 32]`` input."""
    return SpatialAttentionNet(), torch.randn(1, 3, 32, 32)
