"""Small models for exercising the pruner, in users' tests and ours.

Three registries map a name to a factory ``() -> (model, example_inputs)``; every factory is seeded (the
caller's RNG state is left untouched), randomises BatchNorm statistics and returns the model in eval mode.

- :data:`TINY_MODELS`: tiny multi-task models, each covering one or more awkward graph features.
- :data:`ZOO_MODELS`: width-reduced lookalikes of published architectures (YOLOP, ESPNet, DeepLab, ViT, ...).
- :data:`LARGE_MODELS`: full-size models, too slow for the default test run.

Example:
    >>> from taskprune.testing import get_tiny_model, list_tiny_models
    >>> "yolo_seg" in list_tiny_models("yolo*")
    True
    >>> model, example_inputs = get_tiny_model("yolo_seg")()
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from ._util import flatten_outputs as flatten_outputs
from ._util import randomize_norms as randomize_norms
from .large import ResNet50ThreeHead as ResNet50ThreeHead
from .large import resnet50_three_head as resnet50_three_head
from .tiny import ATTRIBUTION_ANSWER as ATTRIBUTION_ANSWER
from .tiny import AttributionNet as AttributionNet
from .tiny import DrivingOutput as DrivingOutput
from .tiny import PlainDetSegNet as PlainDetSegNet
from .tiny import TinyDrivingNet as TinyDrivingNet
from .tiny import YoloSegNet as YoloSegNet
from .tiny import attribution_net, plain_det_seg, tiny_driving, yolo_seg
from .tiny_blocks import ConcatDictNet as ConcatDictNet
from .tiny_blocks import DetSegOutput as DetSegOutput
from .tiny_blocks import GroupedSplitNet as GroupedSplitNet
from .tiny_blocks import SpatialAttentionNet as SpatialAttentionNet
from .tiny_blocks import TransposedDecoderNet as TransposedDecoderNet
from .tiny_blocks import concat_dict, grouped_split_dataclass, spatial_attention, transposed_decoder
from .zoo import ConvNeXtLike as ConvNeXtLike
from .zoo import DeepLabLike as DeepLabLike
from .zoo import DenseNetLike as DenseNetLike
from .zoo import ESPNetLike as ESPNetLike
from .zoo import FCNLike as FCNLike
from .zoo import FPNSharedHeadDetector as FPNSharedHeadDetector
from .zoo import MobileNetV3SmallLike as MobileNetV3SmallLike
from .zoo import ResNetBasicLike as ResNetBasicLike
from .zoo import ViTLike as ViTLike
from .zoo import YOLOPLike as YOLOPLike
from .zoo import YOLOv8SegLike as YOLOv8SegLike
from .zoo import (
    convnext_like,
    deeplab_like,
    densenet_like,
    espnet_like,
    fcn_like,
    fpn_shared_head,
    mobilenetv3_small_like,
    resnet_basic_like,
    vit_like,
    yolop_like,
    yolov8_seg_like,
)
from .zoo_fcos import FCOSResNetFPN as FCOSResNetFPN
from .zoo_fcos import fcos_like, fcos_resnet50_fpn
from .zoo_yolo11 import YOLO11SegLike as YOLO11SegLike
from .zoo_yolo11 import yolo11_seg_like, yolo11n_seg

__all__ = [
    # registries
    "LARGE_MODELS",
    "TINY_MODELS",
    "ZOO_MODELS",
    "ModelFactory",
    "get_large_model",
    "get_tiny_model",
    "get_zoo_model",
    "list_large_models",
    "list_tiny_models",
    "list_zoo_models",
    # helpers
    "flatten_outputs",
    "randomize_norms",
    # tiny models
    "ATTRIBUTION_ANSWER",
    "AttributionNet",
    "ConcatDictNet",
    "DetSegOutput",
    "DrivingOutput",
    "GroupedSplitNet",
    "PlainDetSegNet",
    "SpatialAttentionNet",
    "TinyDrivingNet",
    "TransposedDecoderNet",
    "YoloSegNet",
    # zoo models
    "ConvNeXtLike",
    "DeepLabLike",
    "DenseNetLike",
    "ESPNetLike",
    "FCOSResNetFPN",
    "FCNLike",
    "FPNSharedHeadDetector",
    "MobileNetV3SmallLike",
    "ResNetBasicLike",
    "ViTLike",
    "YOLOPLike",
    "YOLOv8SegLike",
    "YOLO11SegLike",
    # large models
    "ResNet50ThreeHead",
    "resnet50_three_head",
]

ModelFactory = Callable[[], tuple[nn.Module, Any]]
"""A zero-argument callable returning ``(model, example_inputs)``."""

TINY_MODELS: dict[str, ModelFactory] = {
    "yolo_seg": yolo_seg,
    "plain_det_seg": plain_det_seg,
    "tiny_driving": tiny_driving,
    "attribution": attribution_net,
    "concat_dict": concat_dict,
    "grouped_split_dataclass": grouped_split_dataclass,
    "transposed_decoder": transposed_decoder,
    "spatial_attention": spatial_attention,
}
"""Tiny multi-task models (a few thousand to ~200k parameters, inputs 32x32 to 64x64)."""

ZOO_MODELS: dict[str, ModelFactory] = {
    "yolop_like": yolop_like,
    "espnet_like": espnet_like,
    "deeplab_like": deeplab_like,
    "fcn_like": fcn_like,
    "resnet_basic_like": resnet_basic_like,
    "mobilenetv3_small_like": mobilenetv3_small_like,
    "densenet_like": densenet_like,
    "convnext_like": convnext_like,
    "vit_like": vit_like,
    "fpn_shared_head": fpn_shared_head,
    "yolov8_seg_like": yolov8_seg_like,
    "yolo11_seg_like": yolo11_seg_like,
    "fcos_like": fcos_like,
}
"""Small lookalikes of published architectures (inputs about 64x64)."""

LARGE_MODELS: dict[str, ModelFactory] = {
    "resnet50_three_head": resnet50_three_head,
    "fcos_resnet50_fpn": fcos_resnet50_fpn,
    "yolo11n_seg": yolo11n_seg,
}
"""Full-size models (tens of millions of parameters); kept out of the default test run."""


def _list(registry: dict[str, ModelFactory], pattern: str) -> list[str]:
    return sorted(name for name in registry if fnmatch.fnmatchcase(name, pattern))


def _get(registry: dict[str, ModelFactory], name: str, kind: str) -> ModelFactory:
    if name not in registry:
        raise ValueError(f"Unknown {kind} model {name!r}; available: {', '.join(sorted(registry))}")
    return registry[name]


def list_tiny_models(pattern: str = "*") -> list[str]:
    """Sorted names in :data:`TINY_MODELS` matching the fnmatch ``pattern``."""
    return _list(TINY_MODELS, pattern)


def get_tiny_model(name: str) -> ModelFactory:
    """The factory registered in :data:`TINY_MODELS` as ``name``; raises ``ValueError`` listing valid names."""
    return _get(TINY_MODELS, name, "tiny")


def list_zoo_models(pattern: str = "*") -> list[str]:
    """Sorted names in :data:`ZOO_MODELS` matching the fnmatch ``pattern``."""
    return _list(ZOO_MODELS, pattern)


def get_zoo_model(name: str) -> ModelFactory:
    """The factory registered in :data:`ZOO_MODELS` as ``name``; raises ``ValueError`` listing valid names."""
    return _get(ZOO_MODELS, name, "zoo")


def list_large_models(pattern: str = "*") -> list[str]:
    """Sorted names in :data:`LARGE_MODELS` matching the fnmatch ``pattern``."""
    return _list(LARGE_MODELS, pattern)


def get_large_model(name: str) -> ModelFactory:
    """The factory registered in :data:`LARGE_MODELS` as ``name``; raises ``ValueError`` listing valid names."""
    return _get(LARGE_MODELS, name, "large")
