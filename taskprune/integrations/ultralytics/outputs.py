"""An Ultralytics model seen as its head's raw prediction maps, and one task's share of them.

Ultralytics' detection heads return the neck's feature maps beside their predictions (`preds["feats"]`), and in
eval mode a decoded tensor as well. `prune` protects every output, so handing it the model as it is would keep
the neck whole; `HeadOutputs` returns only the maps the head predicts (boxes, scores, mask coefficients and
prototypes, keypoints, angles; both branches of an end-to-end head). Its output layers are then exactly the
head's last convolutions and the prototype layer, and the distribution-focal layer, which only decodes, is never
a channel `prune` may touch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["HeadOutputs", "TaskView", "YoloNet", "head_maps", "network", "with_feature_shapes"]

_NECK = "feats"

# An Ultralytics DetectionModel (or its segmentation, pose or OBB subclass): an nn.Module whose own attributes
# (model, args, stride, criterion, init_criterion) Ultralytics sets at run time, so they are typed as Any.
YoloNet = Any


def network(model: Any) -> YoloNet:
    """The network of an `ultralytics.YOLO` (its `.model`), or `model` itself when it is the network.

    Raises:
        TypeError: neither, or a network whose last layer is not a detection-family head.
    """
    from ultralytics.engine.model import Model
    from ultralytics.nn.modules.head import Detect

    net: YoloNet = model.model if isinstance(model, Model) else model
    layers = getattr(net, "model", None)
    if not isinstance(net, nn.Module) or not isinstance(layers, nn.Sequential):
        raise TypeError(f"expected an ultralytics YOLO or its .model (a DetectionModel), got {type(model).__name__}")
    if not isinstance(layers[-1], Detect):
        raise TypeError(f"the last layer of this model is {type(layers[-1]).__name__}; taskprune's Ultralytics "
                        "integration handles detection, segmentation, pose and oriented-box heads (Detect and its "
                        "subclasses)")
    return net


def head_maps(preds: Any) -> dict[str, Any]:
    """The raw prediction dict of an Ultralytics detection-family model's output, without the neck features.

    Eval mode gives `(decoded, raw)` (segmentation: `((decoded, proto), raw)`), training mode `raw` alone.
    """
    raw = preds[1] if isinstance(preds, tuple) else preds
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected the raw prediction dict of an Ultralytics detection-family head, got "
                        f"{type(raw).__name__}; classification models have no such head")
    return {key: head_maps(value) if isinstance(value, Mapping) else value
            for key, value in raw.items() if key != _NECK}


class HeadOutputs(nn.Module):
    """`model(images)` as its head's raw prediction maps (a dict, nested for end-to-end heads).

    Args:
        model: an Ultralytics `DetectionModel` (or its segmentation, pose or OBB subclass). It is held as the
            submodule `model`, so a layer `model.10.conv` of the Ultralytics model is `model.model.10.conv` here.
    """

    def __init__(self, model: YoloNet) -> None:
        super().__init__()
        self.model: YoloNet = model

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        return head_maps(self.model(images))


def with_feature_shapes(preds: Mapping[str, Any], images: torch.Tensor, strides: torch.Tensor) -> dict[str, Any]:
    """`preds` with `"feats"` put back as empty tensors of the neck's shapes, which is all Ultralytics' losses
    read of them (anchor points and the image size)."""
    out = {key: with_feature_shapes(value, images, strides) if isinstance(value, Mapping) else value
           for key, value in preds.items()}
    tensors = [v for v in preds.values() if isinstance(v, torch.Tensor)]
    if tensors:  # a branch of predictions (an end-to-end head nests two)
        n, _, height, width = images.shape
        out[_NECK] = [tensors[0].new_empty((n, 0, -(-height // int(s)), -(-width // int(s))))
                      for s in strides.tolist()]
    return out


class TaskView(Mapping):
    """One task's share of the prediction dict: iterating gives only `keys` (what the task's loss gradient flows
    through, which `prune` attributes to the task), indexing reaches every entry (what the loss reads)."""

    def __init__(self, full: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        self.full, self.keys_ = full, keys

    def __getitem__(self, key: str) -> Any:
        value = self.full[key]
        return TaskView(value, self.keys_) if isinstance(value, Mapping) else value

    def __iter__(self) -> Iterator[str]:
        return (k for k in self.full if k in self.keys_ or isinstance(self.full[k], Mapping))

    def __len__(self) -> int:
        return sum(1 for _ in self)
