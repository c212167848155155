"""A YOLO11-seg lookalike, written from the published architecture of Ultralytics YOLO11 (``yolo11-seg.yaml``).

C3k2 blocks (a C2f whose inner blocks are bottlenecks or, deeper in, C3k blocks), SPPF, and a C2PSA block: a 1x1
conv whose output is ``split`` in two, position-sensitive attention on the second half (a 1x1 qkv conv, ``view``
to heads over flattened positions, ``split`` into q, k and v, ``transpose``, matmul, softmax, a depthwise
positional conv on v reshaped back to an image, a 1x1 projection), a residual and a conv feed-forward, then a
concatenation with the first half. An FPN/PAN neck feeds a segmentation head: box (distribution focal loss bins),
class (depthwise-separable, as in YOLO11) and mask-coefficient branches per level, and a prototype branch.

``width`` scales the channels as Ultralytics' width multiple does (0.25 is the "n" model); the attention uses
``max(1, channels // 64)`` heads, as the reference does, unless ``num_heads`` is given.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import conv_bn_act
from .registry import register_test_model
from .zoo_yolov8 import _DFL, SPPF, C2f, _decode, _PANBody

__all__ = ["C2PSA", "C3k2", "PSAAttention", "YOLO11SegLike", "yolo11_seg_like", "yolo11n_seg"]


def _conv(c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    return conv_bn_act(c_in, c_out, k, s, groups=groups, act=nn.SiLU if act else None)


class _Bottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, expansion: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * expansion)
        self.cv1 = _conv(c_in, hidden, 3)
        self.cv2 = _conv(hidden, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class _C3k(nn.Module):
    """CSP block: two 1x1 branches, bottlenecks on one, concatenated and fused by a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, n: int = 2, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.cv1 = _conv(c_in, hidden)
        self.cv2 = _conv(c_in, hidden)
        self.cv3 = _conv(2 * hidden, c_out)
        self.m = nn.Sequential(*(_Bottleneck(hidden, hidden, shortcut, expansion=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(C2f):
    """C2f with ``chunk`` in two; its inner blocks are bottlenecks, or C3k blocks when ``c3k``."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, c3k: bool = False, expansion: float = 0.5,
                 shortcut: bool = True) -> None:
        super().__init__(c_in, c_out, n, shortcut, expansion,
                         block=lambda hidden: _C3k(hidden, hidden, 2, shortcut) if c3k
                         else _Bottleneck(hidden, hidden, shortcut))


class PSAAttention(nn.Module):
    """Multi-head self-attention over the flattened positions of an image, with a depthwise positional conv."""

    def __init__(self, dim: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = _conv(dim, dim + 2 * self.key_dim * num_heads, act=False)
        self.proj = _conv(dim, dim, act=False)
        self.pe = _conv(dim, dim, 3, groups=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x)
        q, k, v = qkv.view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attention = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        x = (v @ attention.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class _PSABlock(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = PSAAttention(dim, num_heads)
        self.ffn = nn.Sequential(_conv(dim, 2 * dim), _conv(2 * dim, dim, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """1x1 conv, ``split`` in two halves, attention blocks on the second, concatenation, 1x1 conv."""

    def __init__(self, channels: int, n: int = 1, num_heads: int | None = None) -> None:
        super().__init__()
        self.hidden = channels // 2
        heads = num_heads or max(1, self.hidden // 64)
        self.cv1 = _conv(channels, 2 * self.hidden)
        self.cv2 = _conv(2 * self.hidden, channels)
        self.m = nn.Sequential(*(_PSABlock(self.hidden, heads) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.hidden, self.hidden), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class _Proto(nn.Module):
    def __init__(self, c_in: int, hidden: int, num_masks: int) -> None:
        super().__init__()
        self.cv1 = _conv(c_in, hidden, 3)
        self.upsample = nn.ConvTranspose2d(hidden, hidden, 2, 2)
        self.cv2 = _conv(hidden, hidden, 3)
        self.cv3 = _conv(hidden, num_masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class _SegmentHead(nn.Module):
    """YOLO11's Segment head: per level box and class branches (eval decoding with DFL) and mask coefficients."""

    def __init__(self, num_classes: int, channels: tuple[int, ...], strides: tuple[int, ...], reg_max: int,
                 num_masks: int, num_protos: int) -> None:
        super().__init__()
        self.num_classes, self.reg_max, self.num_masks, self.strides = num_classes, reg_max, num_masks, strides
        c_box = max(16, channels[0] // 4, 4 * reg_max)
        c_cls = max(channels[0], min(num_classes, 100))
        c_mask = max(channels[0] // 4, num_masks)
        self.box = nn.ModuleList(
            nn.Sequential(_conv(c, c_box, 3), _conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * reg_max, 1))
            for c in channels)
        self.cls = nn.ModuleList(
            nn.Sequential(_conv(c, c, 3, groups=c), _conv(c, c_cls), _conv(c_cls, c_cls, 3, groups=c_cls),
                          _conv(c_cls, c_cls), nn.Conv2d(c_cls, num_classes, 1))
            for c in channels)
        self.mask = nn.ModuleList(
            nn.Sequential(_conv(c, c_mask, 3), _conv(c_mask, c_mask, 3), nn.Conv2d(c_mask, num_masks, 1))
            for c in channels)
        self.proto = _Proto(channels[0], num_protos, num_masks)
        self.dfl = _DFL(reg_max)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = feats[0].shape[0]
        protos = self.proto(feats[0])
        coefficients = torch.cat([m(f).view(b, self.num_masks, -1) for m, f in zip(self.mask, feats, strict=True)],
                                 2)
        levels = [torch.cat([bx(f), cl(f)], 1) for bx, cl, f in zip(self.box, self.cls, feats, strict=True)]
        boxes, cls = _decode(levels, self.dfl, self.num_classes, self.strides)
        return torch.cat([boxes, cls.sigmoid()], 1), coefficients, protos


class YOLO11SegLike(_PANBody):
    """YOLO11-seg: backbone of C3k2 stages, SPPF and C2PSA; FPN/PAN neck of C3k2; a Segment head.

    Eval output: ``(detections [B, 4 + nc, N], mask coefficients [B, nm, N], prototypes [B, nm, H/4, W/4])``.

    Args:
        width: channel multiple (0.25: YOLO11n; the layer widths of the yaml are 64 ... 1024 before it).
        depth: block-count multiple (0.5: YOLO11n).
        num_classes, num_masks, num_protos, reg_max: head sizes (the reference: 80, 32, 256, 16).
        num_heads: attention heads in C2PSA (default: one per 64 channels, as in the reference).
    """

    def __init__(self, width: float = 0.25, depth: float = 0.5, num_classes: int = 80, num_masks: int = 32,
                 num_protos: int = 256, reg_max: int = 16, num_heads: int | None = None) -> None:
        super().__init__()

        def w(channels: int) -> int:
            return max(8, int(channels * width) // 8 * 8)

        def n(blocks: int) -> int:
            return max(1, round(blocks * depth))

        self.stem = nn.Sequential(_conv(3, w(64), 3, 2), _conv(w(64), w(128), 3, 2),
                                  C3k2(w(128), w(256), n(2), expansion=0.25))
        self.stage3 = nn.Sequential(_conv(w(256), w(256), 3, 2), C3k2(w(256), w(512), n(2), expansion=0.25))
        self.stage4 = nn.Sequential(_conv(w(512), w(512), 3, 2), C3k2(w(512), w(512), n(2), c3k=True))
        self.stage5 = nn.Sequential(_conv(w(512), w(1024), 3, 2), C3k2(w(1024), w(1024), n(2), c3k=True),
                                    SPPF(w(1024), w(1024)), C2PSA(w(1024), n(2), num_heads))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C3k2(w(1024) + w(512), w(512), n(2))
        self.top_down3 = C3k2(w(512) + w(512), w(256), n(2))
        self.down3 = _conv(w(256), w(256), 3, 2)
        self.bottom_up4 = C3k2(w(256) + w(512), w(512), n(2))
        self.down4 = _conv(w(512), w(512), 3, 2)
        self.bottom_up5 = C3k2(w(512) + w(1024), w(1024), n(2), c3k=True)
        self.head = _SegmentHead(num_classes, (w(256), w(512), w(1024)), (8, 16, 32), reg_max, num_masks,
                                 w(num_protos))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.neck(x))


@register_test_model("large")
def yolo11n_seg() -> tuple[nn.Module, torch.Tensor]:
    """:class:`YOLO11SegLike` at YOLO11n-seg's size (about 2.9M parameters) on ``[1, 3, 384, 640]``."""
    return YOLO11SegLike(), torch.randn(1, 3, 384, 640)


@register_test_model("zoo")
def yolo11_seg_like() -> tuple[nn.Module, torch.Tensor]:
    """:class:`YOLO11SegLike` at half YOLO11n's widths with two attention heads, on ``[1, 3, 64, 64]``."""
    model = YOLO11SegLike(width=0.125, num_classes=3, num_masks=8, num_protos=128, reg_max=8, num_heads=2)
    return model, torch.randn(1, 3, 64, 64)
