"""Small models for exercising the pruner, in users' tests and ours: one registry of seeded factories.

Every factory returns ``(model, example_inputs)``, seeded (the caller's random state is untouched), with
randomised norms, in eval mode, and is registered under its own name with a kind:

- "tiny": tiny multi-task models (a few thousand to ~200k parameters, inputs 32x32 to 64x64), each covering one or
  more awkward graph features;
- "zoo": width-reduced lookalikes of published architectures (YOLOP, ESPNet, DeepLab, ViT, YOLOv8/YOLO11-seg,
  FCOS, ...), inputs about 64x64;
- "large": full-size models, too slow for the default test run.

Example:
    >>> from taskprune.testing import get_test_model, list_test_models
    >>> list_test_models("yolo*", kind="zoo")
    ['yolo11_seg_like', 'yolop_like', 'yolov8_seg_like']
    >>> model, example_inputs = get_test_model("yolo_seg")()
"""

from ..tasks import flatten_outputs as flatten_outputs
from ._util import randomize_norms as randomize_norms
from ._util import seeded_factory as seeded_factory
from .large import ResNet50ThreeHead as ResNet50ThreeHead
from .registry import KINDS as KINDS
from .registry import ModelFactory as ModelFactory
from .registry import RegisteredModel as RegisteredModel
from .registry import get_test_model as get_test_model
from .registry import list_test_models as list_test_models
from .registry import register_test_model as register_test_model
from .registry import registered_model as registered_model
from .tiny import AttributionNet as AttributionNet
from .tiny import DrivingOutput as DrivingOutput
from .tiny import PlainDetSegNet as PlainDetSegNet
from .tiny import TinyDrivingNet as TinyDrivingNet
from .tiny import YoloSegNet as YoloSegNet
from .tiny_blocks import ConcatDictNet as ConcatDictNet
from .tiny_blocks import DetSegOutput as DetSegOutput
from .tiny_blocks import GroupedSplitNet as GroupedSplitNet
from .tiny_blocks import SpatialAttentionNet as SpatialAttentionNet
from .tiny_blocks import TransposedDecoderNet as TransposedDecoderNet
from .zoo_budget import TwoTaskViT as TwoTaskViT
from .zoo_classic import DenseNetLike as DenseNetLike
from .zoo_classic import MobileNetV3SmallLike as MobileNetV3SmallLike
from .zoo_classic import ResNetBasicLike as ResNetBasicLike
from .zoo_espnet import ESPNetLike as ESPNetLike
from .zoo_fcos import FCOSResNetFPN as FCOSResNetFPN
from .zoo_fpn import FPNSharedHeadDetector as FPNSharedHeadDetector
from .zoo_hybrid import EfficientViTLike as EfficientViTLike
from .zoo_modern import ConvNeXtLike as ConvNeXtLike
from .zoo_modern import ViTLike as ViTLike
from .zoo_outside import DETRLike as DETRLike
from .zoo_outside import LeViTLike as LeViTLike
from .zoo_outside import RAFTLike as RAFTLike
from .zoo_outside import WSConvNet as WSConvNet
from .zoo_seg import DeepLabLike as DeepLabLike
from .zoo_seg import FCNLike as FCNLike
from .zoo_yolo11 import YOLO11SegLike as YOLO11SegLike
from .zoo_yolop import YOLOPLike as YOLOPLike
from .zoo_yolov8 import YOLOv8SegLike as YOLOv8SegLike

__all__ = [
    # the registry
    "KINDS", "ModelFactory", "RegisteredModel", "get_test_model", "list_test_models", "register_test_model",
    "registered_model",
    # helpers
    "flatten_outputs", "randomize_norms", "seeded_factory",
    # tiny models
    "AttributionNet", "ConcatDictNet", "DetSegOutput", "DrivingOutput", "GroupedSplitNet", "PlainDetSegNet",
    "SpatialAttentionNet", "TinyDrivingNet", "TransposedDecoderNet", "YoloSegNet",
    # zoo and large models
    "ConvNeXtLike", "DETRLike", "DeepLabLike", "DenseNetLike", "EfficientViTLike", "ESPNetLike", "FCNLike",
    "FCOSResNetFPN",
    "FPNSharedHeadDetector", "LeViTLike", "MobileNetV3SmallLike", "RAFTLike", "ResNet50ThreeHead", "ResNetBasicLike",
    "TwoTaskViT", "ViTLike", "WSConvNet", "YOLO11SegLike", "YOLOPLike", "YOLOv8SegLike",
]
