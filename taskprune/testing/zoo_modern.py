"""Width-reduced ConvNeXt and ViT lookalikes (Liu et al. 2022; Dosovitskiy et al. 2021).

Both hold per-channel ``nn.Parameter`` tensors outside any conv or linear layer (layer scale, class token,
position embedding), which a pruner must slice along with the channels they scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_test_model

__all__ = ["vit_like", "convnext_like", "Attention", "ConvNeXtBlock", "ConvNeXtLike", "LayerNorm2d", "ViTLike"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor, by permuting to NHWC and back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm (NHWC), Linear 4x expand, GELU, Linear project, layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.rand(dim) + layer_scale / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtLike(nn.Module):
    """Patchify stem (4x4, stride 4) + LayerNorm, three stages with 2x2 downsampling, pooled LayerNorm head."""

    def __init__(
        self, classes: int = 10, dims: tuple[int, ...] = (24, 48, 96), depths: tuple[int, ...] = (1, 1, 2)
    ):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        stages: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            if i > 0:
                stages += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            stages += [ConvNeXtBlock(dim) for _ in range(depth)]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stages(self.stem(x)).mean(dim=(2, 3))))


class Attention(nn.Module):
    """Hand-written multi-head self-attention: one qkv Linear, reshaped to heads, scaled dot product, proj."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attention = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, -1))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _ViTTrunk(nn.Module):
    """Patch-embedding conv, class token and position embedding parameters, pre-norm blocks and a final norm:
    `features` gives the normed tokens, the class token first."""

    def __init__(self, image_size: int, patch: int, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, (image_size // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*(_Block(dim, num_heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.norm(self.blocks(tokens))


class ViTLike(_ViTTrunk):
    """Patch-embedding conv, class token and position embedding parameters, pre-norm blocks, linear head."""

    def __init__(
        self,
        image_size: int = 64,
        patch: int = 8,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        classes: int = 10,
    ) -> None:
        super().__init__(image_size, patch, dim, depth, num_heads)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[:, 0])


@register_test_model("zoo")
def convnext_like() -> tuple[nn.Module, torch.Tensor]:
    """`ConvNeXtLike` on ``[1, 3, 64, 64]``."""
    return ConvNeXtLike(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def vit_like() -> tuple[nn.Module, torch.Tensor]:
    """`ViTLike` on ``[1, 3, 64, 64]`` (8x8 patches)."""
    return ViTLike(), torch.randn(1, 3, 64, 64)
