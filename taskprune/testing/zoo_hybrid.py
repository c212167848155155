"""A width-reduced EfficientViT (Liu et al. 2023, the MSRA one): an attention-heavy conv/attention hybrid.

Its cascaded group attention feeds each head a chunk of the channels plus the previous head's output, reshapes
one 1x1 conv + BatchNorm into q, k, v with sizes written into the code, and caches its position biases in eval
mode, as LeViT does. Every conv carries a BatchNorm, the linear layers of the attention included.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import CachedBiasAttention, conv_bn_act
from .registry import register_test_model

__all__ = ["efficientvit_like", "EfficientViTLike"]


class _CascadedGroupAttention(CachedBiasAttention):
    def __init__(self, dim: int, key_dim: int, heads: int, resolution: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.val_dim = heads, key_dim, dim // heads
        self.scale = key_dim**-0.5
        self.qkvs = nn.ModuleList(conv_bn_act(dim // heads, 2 * key_dim + self.val_dim, 1, act=None)
                                  for _ in range(heads))
        self.dws = nn.ModuleList(conv_bn_act(key_dim, key_dim, 3, groups=key_dim, act=None) for _ in range(heads))
        self.proj = nn.Sequential(nn.ReLU(), conv_bn_act(dim, dim, 1, act=None))
        self.init_position_biases(heads, resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        biases = self.position_biases(x.device)
        chunks = x.chunk(self.heads, dim=1)
        feature, outputs = chunks[0], []
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws, strict=True)):
            if i > 0:
                feature = feature + chunks[i]
            q, k, v = qkv(feature).view(b, -1, h, w).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            q, k, v = dw(q).flatten(2), k.flatten(2), v.flatten(2)
            attention = ((q.transpose(-2, -1) @ k) * self.scale + biases[i]).softmax(dim=-1)
            feature = (v @ attention.transpose(-2, -1)).view(b, self.val_dim, h, w)
            outputs.append(feature)
        return self.proj(torch.cat(outputs, dim=1))


class _Block(nn.Module):
    """Depthwise conv, FFN, cascaded group attention, depthwise conv, FFN; each with a residual."""

    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()

        def ffn() -> nn.Sequential:
            return nn.Sequential(conv_bn_act(dim, 2 * dim, 1), conv_bn_act(2 * dim, dim, 1, act=None))

        self.dw0, self.ffn0 = conv_bn_act(dim, dim, 3, groups=dim, act=None), ffn()
        self.attn = _CascadedGroupAttention(dim, key_dim=8, heads=4, resolution=resolution)
        self.dw1, self.ffn1 = conv_bn_act(dim, dim, 3, groups=dim, act=None), ffn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ffn0(x + self.dw0(x)) + x
        x = x + self.attn(x)
        return self.ffn1(x + self.dw1(x)) + x


class EfficientViTLike(nn.Module):
    """Conv stem (stride 8), two EfficientViT blocks at 8x8, a BatchNorm1d + Linear classifier and a 1x1 map head."""

    def __init__(self, dim: int = 64, classes: int = 10, resolution: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_act(3, 16, stride=2), conv_bn_act(16, 32, stride=2),
                                  conv_bn_act(32, dim, stride=2, act=None))
        self.blocks = nn.Sequential(*(_Block(dim, resolution) for _ in range(2)))
        self.head = nn.Sequential(nn.BatchNorm1d(dim), nn.Linear(dim, classes))
        self.seg = nn.Conv2d(dim, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.blocks(self.stem(x))
        return {"cls": self.head(features.mean(dim=(2, 3))), "seg": self.seg(features)}


@register_test_model("zoo")
def efficientvit_like() -> tuple[nn.Module, torch.Tensor]:
    """`EfficientViTLike` (cascaded group attention, BatchNorm everywhere, a bias cache) on ``[2, 3, 64, 64]``."""
    return EfficientViTLike(), torch.randn(2, 3, 64, 64)
