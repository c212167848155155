"""DrivingNet: a YOLOP-class panoptic driving network (vehicle detection, drivable area, lane lines).

Layout (YOLOP, Wu et al. 2022, with YOLOv5's C3 and SPPF blocks):

- backbone: a stride-2 stem and four stride-2 stages of C3 blocks, giving features at strides 8, 16 and 32,
  with SPPF on the last;
- neck: FPN top-down then PAN bottom-up, with nearest upsampling and concatenated skip connections;
- detection head: one 1x1 convolution per scale (strides 8, 16, 32), three anchors each, YOLOv5 box coding;
- two segmentation decoders, each from the stride-8 FPN feature, upsampling x2 three times back to input size.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
from torch import nn

from .blocks import C3, SPPF, ConvBNAct
from .nms import batched_nms

__all__ = ["DrivingNet", "DrivingOutput", "decode_raw", "postprocess", "SIZES", "ANCHORS", "STRIDES"]

# (width multiplier, depth multiplier); "m" matches YOLOP's widths and depths (about 8M parameters).
SIZES: dict[str, tuple[float, float]] = {"n": (0.25, 0.34), "s": (0.5, 0.34), "m": (1.0, 1.0)}
STRIDES: tuple[int, int, int] = (8, 16, 32)
# YOLOP's anchors for BDD100K at 640 wide, in pixels (w, h), three per scale.
ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((3, 9), (5, 11), (4, 20)),
    ((7, 18), (6, 39), (12, 31)),
    ((19, 50), (38, 81), (68, 157)),
)
_BASE_WIDTHS = (32, 64, 128, 256, 512)
_BASE_DEPTHS = (1, 3, 3, 1)


class DrivingOutput(NamedTuple):
    """What `DrivingNet.forward` returns.

    Attributes:
        det: three raw detection maps, one per stride (8, 16, 32), each [B, A*(5+nc), H/s, W/s] with A=3 anchors;
            per anchor the channels are (tx, ty, tw, th, objectness, class logits...), all before the sigmoid.
        drivable: drivable-area logits [B, 2, H, W] (class 1 = drivable).
        lane: lane-line logits [B, 2, H, W] (class 1 = lane line).
    """

    det: tuple[torch.Tensor, ...]
    drivable: torch.Tensor
    lane: torch.Tensor


def _width(channels: int, multiplier: float) -> int:
    return max(8, int(math.ceil(channels * multiplier / 8) * 8))


def _depth(blocks: int, multiplier: float) -> int:
    return max(1, round(blocks * multiplier))


class _SegDecoder(nn.Sequential):
    """Stride-8 feature -> logits at input resolution: three nearest x2 upsamplings with convs between."""

    def __init__(self, c_in: int, width: float) -> None:
        c1, c2, c3 = _width(64, width), _width(32, width), _width(16, width)
        super().__init__(
            ConvBNAct(c_in, c1, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            C3(c1, c2, 1, shortcut=False),
            ConvBNAct(c2, c3, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBNAct(c3, c3, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c3, 2, 3, padding=1),
        )


class DrivingNet(nn.Module):
    """YOLOP-class multi-task network: vehicle boxes, drivable-area mask and lane-line mask from one image.

    Args:
        size: "n", "s" or "m" (width x depth multipliers (0.25, 0.34), (0.5, 0.34), (1.0, 1.0)); "m" is YOLOP-scale.
        num_classes: detection classes (1: BDD100K's merged "vehicle").

    Input height and width must be multiples of 32.

    Example:
        >>> model = DrivingNet(size="s").eval()
        >>> out = model(torch.rand(1, 3, 192, 320))
        >>> out.drivable.shape, len(out.det)
        (torch.Size([1, 2, 192, 320]), 3)
        >>> boxes = model.decode(out)[0]   # [N, 6]: x1, y1, x2, y2, score, class
    """

    def __init__(self, size: str = "s", num_classes: int = 1) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown DrivingNet size {size!r}; available: {', '.join(SIZES)}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.size = size
        self.num_classes = num_classes
        self.num_anchors = len(ANCHORS[0])
        width, depth = SIZES[size]
        c0, c1, c2, c3, c4 = (_width(c, width) for c in _BASE_WIDTHS)
        d1, d2, d3, d4 = (_depth(d, depth) for d in _BASE_DEPTHS)

        self.stem = ConvBNAct(3, c0, 3, 2)
        self.stage1 = nn.Sequential(ConvBNAct(c0, c1, 3, 2), C3(c1, c1, d1))
        self.stage2 = nn.Sequential(ConvBNAct(c1, c2, 3, 2), C3(c2, c2, d2))  # stride 8
        self.stage3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), C3(c3, c3, d3))  # stride 16
        self.stage4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), SPPF(c4, c4), C3(c4, c4, d4, shortcut=False))

        self.reduce5 = ConvBNAct(c4, c3, 1)
        self.fpn4 = C3(2 * c3, c3, d4, shortcut=False)
        self.reduce4 = ConvBNAct(c3, c2, 1)
        self.fpn3 = C3(2 * c2, c2, d4, shortcut=False)
        self.down3 = ConvBNAct(c2, c2, 3, 2)
        self.pan4 = C3(2 * c2, c3, d4, shortcut=False)
        self.down4 = ConvBNAct(c3, c3, 3, 2)
        self.pan5 = C3(2 * c3, c4, d4, shortcut=False)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

        per_anchor = 5 + num_classes
        self.det_heads = nn.ModuleList(nn.Conv2d(c, self.num_anchors * per_anchor, 1) for c in (c2, c3, c4))
        self.drivable_head = _SegDecoder(c2, width)
        self.lane_head = _SegDecoder(c2, width)
        self.register_buffer("anchors", torch.tensor(ANCHORS, dtype=torch.float32), persistent=False)
        self._init_det_bias()

    def _init_det_bias(self) -> None:
        # YOLOv5's prior: about 8 objects per 640x640 image, so objectness starts low rather than at 0.5.
        per_anchor = 5 + self.num_classes
        for head, stride in zip(self.det_heads, STRIDES, strict=True):
            bias = cast(torch.Tensor, head.bias).detach().view(self.num_anchors, per_anchor)
            bias[:, 4] = math.log(8 / (640 / stride) ** 2)
            bias[:, 5:] = math.log(0.6 / (self.num_classes - 0.99))

    def forward(self, images: torch.Tensor) -> DrivingOutput:
        """Run all three tasks on a batch [B, 3, H, W] (H, W multiples of 32)."""
        if images.dim() != 4 or images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(f"DrivingNet expects images [B, 3, H, W] with H, W multiples of 32, "
                             f"got shape {tuple(images.shape)}")
        p3 = self.stage2(self.stage1(self.stem(images)))
        p4 = self.stage3(p3)
        p5 = self.stage4(p4)

        top5 = self.reduce5(p5)
        top4 = self.reduce4(self.fpn4(torch.cat((self.upsample(top5), p4), 1)))
        out3 = self.fpn3(torch.cat((self.upsample(top4), p3), 1))
        out4 = self.pan4(torch.cat((self.down3(out3), top4), 1))
        out5 = self.pan5(torch.cat((self.down4(out4), top5), 1))

        det = tuple(head(x) for head, x in zip(self.det_heads, (out3, out4, out5), strict=True))
        return DrivingOutput(det=det, drivable=self.drivable_head(out3), lane=self.lane_head(out3))

    def decode_raw(self, det: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """All anchors' boxes before NMS: [B, K, 5 + nc] as (x1, y1, x2, y2, objectness, class probs...)."""
        return decode_raw(det, cast(torch.Tensor, self.anchors), self.num_classes)

    @torch.no_grad()
    def decode(self, output: DrivingOutput | tuple[torch.Tensor, ...], conf_threshold: float = 0.25,
               iou_threshold: float = 0.45, max_detections: int = 300) -> list[torch.Tensor]:
        """Boxes after NMS, one [N, 6] tensor per image: x1, y1, x2, y2 (input pixels), score, class.

        Args:
            output: the model's output, or just its `det` tuple.
            conf_threshold: minimum score (objectness x class probability).
            iou_threshold: NMS overlap threshold (per class).
            max_detections: most boxes kept per image.
        """
        det = output.det if isinstance(output, DrivingOutput) else output
        return postprocess(self.decode_raw(det), conf_threshold, iou_threshold, max_detections)


def decode_raw(det: tuple[torch.Tensor, ...], anchors: torch.Tensor, num_classes: int) -> torch.Tensor:
    """YOLOv5 box coding: centre = (2 sigmoid(t) - 0.5 + cell) * stride, size = (2 sigmoid(t))^2 * anchor."""
    decoded = []
    for level, (raw, stride) in enumerate(zip(det, STRIDES, strict=True)):
        batch, _, height, width = raw.shape
        num_anchors = anchors.shape[1]
        pred = raw.view(batch, num_anchors, 5 + num_classes, height, width).permute(0, 1, 3, 4, 2).sigmoid()
        ys, xs = torch.meshgrid(torch.arange(height, device=raw.device), torch.arange(width, device=raw.device),
                                indexing="ij")
        grid = torch.stack((xs, ys), dim=-1).to(pred.dtype)
        centre = (pred[..., :2] * 2 - 0.5 + grid) * stride
        size = (pred[..., 2:4] * 2) ** 2 * anchors[level].view(1, num_anchors, 1, 1, 2)
        boxes = torch.cat((centre - size / 2, centre + size / 2), dim=-1)
        decoded.append(torch.cat((boxes, pred[..., 4:]), dim=-1).reshape(batch, -1, 5 + num_classes))
    return torch.cat(decoded, dim=1)


def postprocess(decoded: torch.Tensor, conf_threshold: float, iou_threshold: float,
                max_detections: int, max_candidates: int = 3000) -> list[torch.Tensor]:
    """Score filter, best class per box, per-class NMS; one [N, 6] tensor per image."""
    results = []
    for pred in decoded:
        scores_per_class = pred[:, 5:] * pred[:, 4:5] if pred.shape[1] > 6 else pred[:, 4:5]
        scores, classes = scores_per_class.max(dim=1)
        keep = scores > conf_threshold
        boxes, scores, classes = pred[keep, :4], scores[keep], classes[keep]
        if len(scores) > max_candidates:
            # Bounds the O(N^2) IoU matrix on an untrained model that fires everywhere.
            top = scores.topk(max_candidates).indices
            boxes, scores, classes = boxes[top], scores[top], classes[top]
        kept = batched_nms(boxes, scores, classes, iou_threshold)[:max_detections]
        results.append(torch.cat((boxes[kept], scores[kept, None], classes[kept, None].to(boxes.dtype)), dim=1))
    return results
