"""Tiny multi-task detection + segmentation models.

Each model has a few thousand to ~200k parameters and runs in a few milliseconds on a CPU. Every factory returns
``(model, example_inputs)`` with seeded weights, randomised BatchNorm and the model in eval mode. The models built
from more exotic blocks (concat/split, grouped conv, attention, transposed conv) live in ``tiny_blocks.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = [
    "AttributionNet",
    "DrivingOutput",
    "PlainDetSegNet",
    "TinyDrivingNet",
    "YoloSegNet",
    "attribution_net",
    "plain_det_seg",
    "tiny_driving",
    "yolo_seg",
]


class YoloSegNet(nn.Module):
    """Detection with a YOLO-style anchor reshape plus a segmentation head; returns ``(det, seg)``.

    ``det`` is ``[B, A, H/4, W/4, 5 + nc]``: the head conv's output goes through ``view`` and ``permute``, so its
    channels are (anchor, field) pairs. ``seg`` is ``[B, seg_classes, H, W]`` after a nearest upsample.
    Covers: view/permute after a conv, residual add, nearest ``F.interpolate``, tuple output.
    """

    def __init__(self, num_classes: int = 3, num_anchors: int = 3, seg_classes: int = 2) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_fields = 5 + num_classes
        self.stem = conv_bn_act(3, 16, stride=2)
        self.stage = conv_bn_act(16, 32, stride=2)
        self.residual = conv_bn_act(32, 32)
        self.det_head = nn.Conv2d(32, num_anchors * self.num_fields, 1)
        self.seg_neck = conv_bn_act(32, 16)
        self.seg_head = nn.Conv2d(16, seg_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        features = self.stage(self.stem(x))
        features = features + self.residual(features)
        b, _, h, w = features.shape
        det = self.det_head(features).view(b, self.num_anchors, self.num_fields, h, w)
        det = det.permute(0, 1, 3, 4, 2).contiguous()
        seg = F.interpolate(self.seg_neck(features), size=size, mode="nearest")
        return det, self.seg_head(seg)


class PlainDetSegNet(nn.Module):
    """A plain 4-D detection head (no reshape after its conv) plus a segmentation head; returns ``(det, seg)``.

    ``det_head`` emits ``[B, A * (5 + nc), H/4, W/4]`` and nothing consumes it: torch-pruning alone sees an
    ordinary conv and happily prunes its output channels, which silently changes the detection format. This is
    the case that taskprune must protect. Covers: unreshaped conv output, bilinear ``F.interpolate``.
    """

    def __init__(self, num_classes: int = 3, num_anchors: int = 3, seg_classes: int = 2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(conv_bn_act(3, 16, stride=2), conv_bn_act(16, 32, stride=2))
        self.det_head = nn.Conv2d(32, num_anchors * (5 + num_classes), 1)
        self.seg_head = nn.Sequential(conv_bn_act(32, 16), nn.Conv2d(16, seg_classes, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        seg = F.interpolate(self.seg_head(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.det_head(features), seg


class DrivingOutput(NamedTuple):
    """Output of :class:`TinyDrivingNet`: detection, drivable-area and lane-line maps."""

    det: torch.Tensor
    drivable: torch.Tensor
    lane: torch.Tensor


class TinyDrivingNet(nn.Module):
    """A tiny driving network: shared backbone + neck, one detection and two segmentation heads.

    Returns a :class:`DrivingOutput` namedtuple. ``det`` is ``[B, A, H/8, W/8, 5 + nc]`` (YOLO reshape),
    ``drivable`` and ``lane`` are ``[B, 2, H, W]``. The neck upsamples the stride-8 features and concatenates
    them with the stride-4 ones (a one-level FPN). Covers: namedtuple output, three tasks, concat, residual add.
    """

    def __init__(self, num_classes: int = 1, num_anchors: int = 3) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_fields = 5 + num_classes
        self.stem = conv_bn_act(3, 16, stride=2)
        self.stage2 = conv_bn_act(16, 32, stride=2)
        self.stage3 = conv_bn_act(32, 48, stride=2)
        self.stage3_residual = conv_bn_act(48, 48)
        self.lateral = conv_bn_act(48, 32, kernel_size=1)
        self.fuse = conv_bn_act(64, 32)
        self.det_head = nn.Conv2d(48, num_anchors * self.num_fields, 1)
        self.drivable_head = nn.Sequential(conv_bn_act(32, 16), nn.Conv2d(16, 2, 1))
        self.lane_head = nn.Sequential(conv_bn_act(32, 16), nn.Conv2d(16, 2, 1))

    def forward(self, x: torch.Tensor) -> DrivingOutput:
        size = x.shape[-2:]
        c2 = self.stage2(self.stem(x))
        c3 = self.stage3(c2)
        c3 = c3 + self.stage3_residual(c3)
        top_down = F.interpolate(self.lateral(c3), scale_factor=2.0, mode="nearest")
        neck = self.fuse(torch.cat([top_down, c2], dim=1))
        b, _, h, w = c3.shape
        det = self.det_head(c3).view(b, self.num_anchors, self.num_fields, h, w).permute(0, 1, 3, 4, 2)
        drivable = F.interpolate(self.drivable_head(neck), size=size, mode="bilinear", align_corners=False)
        lane = F.interpolate(self.lane_head(neck), size=size, mode="bilinear", align_corners=False)
        return DrivingOutput(det.contiguous(), drivable, lane)


class AttributionNet(nn.Module):
    """Hand-built two-task model whose task attribution is known; returns ``{"a": ..., "b": ...}``.

    Data flow (conv qualified names; BN/ReLU follow each conv except the heads)::

        x -> trunk.0 -> trunk.3 -> neck -+-> only_a -> head_a(cat[only_a, neck])  -> "a"
                                         +-> only_b -> head_b(cat[only_b, neck])  -> "b"

    ``trunk.0``, ``trunk.3`` and ``neck`` serve both tasks (each head reads the neck directly, by concatenation,
    as well as through its task-only conv); ``only_a`` and ``head_a`` serve task ``a`` only; ``only_b`` and
    ``head_b`` serve task ``b`` only. tests/test_tiny_models.py holds this mapping as its answer key.
    Concatenation, unlike a
    residual add, does not couple ``only_a``'s channels with the neck's, so each conv is the root of its own
    group.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        )
        self.neck = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.neck_bn = nn.BatchNorm2d(16)
        self.only_a = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.only_a_bn = nn.BatchNorm2d(16)
        self.only_b = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.only_b_bn = nn.BatchNorm2d(16)
        self.head_a = nn.Conv2d(32, 4, 1)
        self.head_b = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        neck = F.relu(self.neck_bn(self.neck(self.trunk(x))))
        feature_a = F.relu(self.only_a_bn(self.only_a(neck)))
        feature_b = F.relu(self.only_b_bn(self.only_b(neck)))
        return {
            "a": self.head_a(torch.cat([feature_a, neck], dim=1)),
            "b": self.head_b(torch.cat([feature_b, neck], dim=1)),
        }


@register_test_model("tiny")
def yolo_seg() -> tuple[nn.Module, torch.Tensor]:
    """:class:`YoloSegNet` on a ``[1, 3, 32, 32]`` input."""
    return YoloSegNet(), torch.randn(1, 3, 32, 32)


@register_test_model("tiny")
def plain_det_seg() -> tuple[nn.Module, torch.Tensor]:
    """:class:`PlainDetSegNet` on a ``[1, 3, 32, 32]`` input."""
    return PlainDetSegNet(), torch.randn(1, 3, 32, 32)


@register_test_model("tiny")
def tiny_driving() -> tuple[nn.Module, torch.Tensor]:
    """:class:`TinyDrivingNet` on a ``[1, 3, 64, 64]`` input."""
    return TinyDrivingNet(), torch.randn(1, 3, 64, 64)


@register_test_model("tiny")
def attribution_net() -> tuple[nn.Module, torch.Tensor]:
    """:class:`AttributionNet` on a ``[1, 3, 32, 32]`` input."""
    return AttributionNet(), torch.randn(1, 3, 32, 32)
