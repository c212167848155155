"""A width-reduced YOLOv8-seg lookalike, written from the published architecture of Ultralytics YOLOv8.

C2f blocks (``chunk`` a tensor in two, run bottlenecks on the second half, concatenate every intermediate), SPPF,
a PAN neck, a decoupled anchor-free head with box (distribution focal loss bins), class and mask-coefficient
branches, and a prototype-mask branch with a transposed-conv upsample. The DFL layer is a conv with fixed,
non-trainable weights whose input channels are the ``reg_max`` bins: pruning them breaks the box decoding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model

__all__ = ["yolov8_seg_like", "C2f", "SPPF", "YOLOv8SegLike"]


def _conv(c_in: int, c_out: int, k: int = 1, s: int = 1) -> nn.Sequential:
    return conv_bn_act(c_in, c_out, k, s, act=nn.SiLU)


class _Bottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = _conv(channels, channels, 3)
        self.cv2 = _conv(channels, channels, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """1x1 conv, ``chunk`` into two halves, bottlenecks chained on the second, concat of all, 1x1 conv.

    ``block(hidden)`` builds each inner block (default: a bottleneck); YOLO11's C3k2 passes its own.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, expansion: float = 0.5,
                 block: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        self.hidden = int(c_out * expansion)
        self.cv1 = _conv(c_in, 2 * self.hidden)
        self.cv2 = _conv((2 + n) * self.hidden, c_out)
        block = block or (lambda hidden: _Bottleneck(hidden, shortcut))
        self.m = nn.ModuleList(block(self.hidden) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Fast SPP: one 5x5 max pool applied three times in sequence, all four tensors concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = _conv(c_in, hidden)
        self.cv2 = _conv(hidden * 4, c_out)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class _DFL(nn.Module):
    # Expected value of a softmax over reg_max bins; a frozen conv, as in the reference implementation.
    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def _decode(levels: list[torch.Tensor], dfl: _DFL, num_classes: int,
            level_strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [B, 4, N] (centre and size in pixels) and class logits [B, nc, N] over the anchors of every level,
    from the per-level head outputs [B, 4 * reg_max + nc, H, W] (YOLOv8's and YOLO11's eval decoding)."""
    b = levels[0].shape[0]
    flat = torch.cat([level.view(b, 4 * dfl.reg_max + num_classes, -1) for level in levels], 2)
    box, cls = flat.split((4 * dfl.reg_max, num_classes), 1)
    anchors, strides = _anchors(levels, level_strides)
    left_top, right_bottom = dfl(box).chunk(2, 1)
    x1y1, x2y2 = anchors - left_top, anchors + right_bottom
    return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * strides, cls


def _anchors(levels: list[torch.Tensor], level_strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    points, strides = [], []
    for level, stride in zip(levels, level_strides, strict=True):
        h, w = level.shape[-2:]
        sy, sx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        points.append(torch.stack((sx, sy), 0).view(2, -1))
        strides.append(torch.full((1, h * w), float(stride)))
    return torch.cat(points, 1).unsqueeze(0), torch.cat(strides, 1).unsqueeze(0)


class _PANBody(nn.Module):
    """What YOLOv8's and YOLO11's bodies share: a backbone of stem and stages 3-5 and a top-down then bottom-up
    neck, whose outputs P3, P4, P5 feed the head."""

    stem: nn.Module
    stage3: nn.Module
    stage4: nn.Module
    stage5: nn.Module
    up: nn.Module
    top_down4: nn.Module
    top_down3: nn.Module
    down3: nn.Module
    bottom_up4: nn.Module
    down4: nn.Module
    bottom_up5: nn.Module

    def neck(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        h4 = self.top_down4(torch.cat([self.up(c5), c4], 1))
        p3 = self.top_down3(torch.cat([self.up(h4), c3], 1))
        p4 = self.bottom_up4(torch.cat([self.down3(p3), h4], 1))
        p5 = self.bottom_up5(torch.cat([self.down4(p4), c5], 1))
        return [p3, p4, p5]


class _SegmentHead(nn.Module):
    def __init__(
        self,
        num_classes: int,
        channels: tuple[int, ...],
        strides: tuple[int, ...],
        reg_max: int = 8,
        num_masks: int = 8,
        num_protos: int = 16,
    ) -> None:
        super().__init__()
        self.num_classes, self.reg_max, self.num_masks = num_classes, reg_max, num_masks
        self.strides = strides
        c_box, c_cls, c_mask = (
            max(16, channels[0] // 4, reg_max * 4),
            max(channels[0], num_classes),
            max(channels[0] // 4, num_masks),
        )
        self.box = nn.ModuleList(
            nn.Sequential(_conv(c, c_box, 3), _conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * reg_max, 1))
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(_conv(c, c_cls, 3), _conv(c_cls, c_cls, 3), nn.Conv2d(c_cls, num_classes, 1))
            for c in channels
        )
        self.mask_coefficients = nn.ModuleList(
            nn.Sequential(_conv(c, c_mask, 3), _conv(c_mask, c_mask, 3), nn.Conv2d(c_mask, num_masks, 1))
            for c in channels
        )
        self.proto = nn.Sequential(
            _conv(channels[0], num_protos, 3),
            nn.ConvTranspose2d(num_protos, num_protos, 2, 2),
            _conv(num_protos, num_protos, 3),
            _conv(num_protos, num_masks),
        )
        self.dfl = _DFL(reg_max)

    def forward(
        self, feats: list[torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]]:
        b = feats[0].shape[0]
        protos = self.proto(feats[0])
        coefficients = torch.cat(
            [m(f).view(b, self.num_masks, -1) for m, f in zip(self.mask_coefficients, feats, strict=True)], 2
        )
        levels = [torch.cat([bx(f), cl(f)], 1) for bx, cl, f in zip(self.box, self.cls, feats, strict=True)]
        boxes, cls = _decode(levels, self.dfl, self.num_classes, self.strides)
        predictions = torch.cat([boxes, cls.sigmoid(), coefficients], 1)
        return predictions, (levels, coefficients, protos)


class YOLOv8SegLike(_PANBody):
    """Backbone of C2f stages + SPPF, PAN neck, segmentation head.

    Eval output: ``(predictions [B, 4 + nc + nm, N], (per-level head outputs, mask coefficients [B, nm, N],
    prototypes [B, nm, H/4, W/4]), neck_features [P3, P4, P5])``. Returning the neck features makes the neck's
    last convs output layers too.
    """

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 16, 3, 2), _conv(16, 32, 3, 2), C2f(32, 32, 1, True))
        self.stage3 = nn.Sequential(_conv(32, 48, 3, 2), C2f(48, 48, 1, True))
        self.stage4 = nn.Sequential(_conv(48, 64, 3, 2), C2f(64, 64, 1, True))
        self.stage5 = nn.Sequential(_conv(64, 96, 3, 2), C2f(96, 96, 1, True), SPPF(96, 96))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C2f(96 + 64, 64)
        self.top_down3 = C2f(64 + 48, 48)
        self.down3 = _conv(48, 48, 3, 2)
        self.bottom_up4 = C2f(48 + 64, 64)
        self.down4 = _conv(64, 64, 3, 2)
        self.bottom_up5 = C2f(64 + 96, 96)
        self.head = _SegmentHead(num_classes, (48, 64, 96), (8, 16, 32))

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[list[torch.Tensor], torch.Tensor, torch.Tensor], list[torch.Tensor]]:
        neck = self.neck(x)
        predictions, extras = self.head(neck)
        return predictions, extras, neck


@register_test_model("zoo")
def yolov8_seg_like() -> tuple[nn.Module, torch.Tensor]:
    """`YOLOv8SegLike` on ``[1, 3, 64, 64]``."""
    return YOLOv8SegLike(), torch.randn(1, 3, 64, 64)
