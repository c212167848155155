"""Small lookalikes of published architectures (issue 6, part 1), and their factories.

The architectures are written from their published descriptions, width-reduced so that each runs in well under
100 ms on a ``[1, 3, 64, 64]`` input. They are the hostile cases a pruner must handle or refuse clearly: anchor
reshapes and buffers, attention with ``bmm``, concatenations of growing width, layer-scale parameters, heads
shared across levels, frozen layers. Each factory returns ``(model, example_inputs)``, seeded, with randomised
norms, in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import seeded_factory
from .zoo_classic import DenseNetLike, MobileNetV3SmallLike, ResNetBasicLike
from .zoo_espnet import ESPNetLike
from .zoo_fpn import FPNSharedHeadDetector
from .zoo_modern import ConvNeXtLike, ViTLike
from .zoo_seg import DeepLabLike, FCNLike
from .zoo_yolop import YOLOPLike
from .zoo_yolov8 import YOLOv8SegLike

__all__ = [
    "ConvNeXtLike",
    "DeepLabLike",
    "DenseNetLike",
    "ESPNetLike",
    "FCNLike",
    "FPNSharedHeadDetector",
    "MobileNetV3SmallLike",
    "ResNetBasicLike",
    "ViTLike",
    "YOLOPLike",
    "YOLOv8SegLike",
    "convnext_like",
    "deeplab_like",
    "densenet_like",
    "espnet_like",
    "fcn_like",
    "fpn_shared_head",
    "mobilenetv3_small_like",
    "resnet_basic_like",
    "vit_like",
    "yolop_like",
    "yolov8_seg_like",
]


def _image() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64)


@seeded_factory
def yolop_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_yolop.YOLOPLike` (detection + drivable + lane) on ``[1, 3, 64, 64]``."""
    return YOLOPLike(), _image()


@seeded_factory
def espnet_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_espnet.ESPNetLike` (drivable + lane) on ``[1, 3, 64, 64]``."""
    return ESPNetLike(), _image()


@seeded_factory
def deeplab_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_seg.DeepLabLike` (``{"out", "aux"}``) on ``[1, 3, 64, 64]``."""
    return DeepLabLike(), _image()


@seeded_factory
def fcn_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_seg.FCNLike` (one tensor) on ``[1, 3, 64, 64]``."""
    return FCNLike(), _image()


@seeded_factory
def resnet_basic_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_classic.ResNetBasicLike` on ``[1, 3, 64, 64]``."""
    return ResNetBasicLike(), _image()


@seeded_factory
def mobilenetv3_small_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_classic.MobileNetV3SmallLike` on ``[1, 3, 64, 64]``."""
    return MobileNetV3SmallLike(), _image()


@seeded_factory
def densenet_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_classic.DenseNetLike` on ``[1, 3, 64, 64]``."""
    return DenseNetLike(), _image()


@seeded_factory
def convnext_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_modern.ConvNeXtLike` on ``[1, 3, 64, 64]``."""
    return ConvNeXtLike(), _image()


@seeded_factory
def vit_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_modern.ViTLike` on ``[1, 3, 64, 64]`` (8x8 patches)."""
    return ViTLike(), _image()


@seeded_factory
def fpn_shared_head() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_fpn.FPNSharedHeadDetector` on ``[1, 3, 64, 64]``."""
    return FPNSharedHeadDetector(), _image()


@seeded_factory
def yolov8_seg_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`~taskprune.testing.zoo_yolov8.YOLOv8SegLike` on ``[1, 3, 64, 64]``."""
    return YOLOv8SegLike(), _image()
