"""Lookalikes of third-party models that first failed to prune with no ignore list (issue 27, item 7).

Each keeps the one feature that broke: a DETR encoder layer calling its attention with ``value=`` as a keyword,
a LeViT attention that caches its position bias in eval mode, a weight-standardised convolution with a gain of
its own, and a RAFT-style recurrent flow model (a correlation volume sampled with ``grid_sample``, a ConvGRU).
Written from the papers' and the public code's descriptions (Carion et al. 2020; Graham et al. 2021;
Brock et al. 2021; Teed and Deng 2020), width-reduced for a CPU at 64x64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._util import CachedBiasAttention, conv_bn_act
from .registry import register_test_model

__all__ = ["detr_like", "levit_like", "raft_like", "ws_conv_like", "DETREncoderLayer", "DETRLike", "LeViTLike",
           "RAFTLike", "StdConv2d", "WSConvNet"]


class DETREncoderLayer(nn.TransformerEncoderLayer):
    """DETR's post-norm encoder layer: the position embedding is added to queries and keys, not to values,
    so the attention is called as ``self_attn(q, k, value=src)``."""

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        q = k = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, value=src, need_weights=False)[0]))
        return self.norm2(src + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(src))))))


class DETRLike(nn.Module):
    """Conv backbone (stride 8), 1x1 input projection, two encoder layers over the flattened positions with a
    learned position embedding, and per-position class logits and sigmoid boxes."""

    def __init__(self, dim: int = 32, heads: int = 2, classes: int = 5, positions: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(conv_bn_act(3, 16, stride=2), conv_bn_act(16, 32, stride=2),
                                      conv_bn_act(32, 48, stride=2))
        self.input_proj = nn.Conv2d(48, dim, 1)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, positions, dim))
        self.encoder = nn.ModuleList(DETREncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
                                     for _ in range(2))
        self.class_embed = nn.Linear(dim, classes + 1)
        self.bbox_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory = self.input_proj(self.backbone(x)).flatten(2).transpose(1, 2)
        for layer in self.encoder:
            memory = layer(memory, self.pos_embed)
        return self.class_embed(memory), self.bbox_embed(memory).sigmoid()


class _LinearNorm(nn.Module):
    """LeViT's Linear + BatchNorm1d over the flattened tokens."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=False)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class _LeViTAttention(CachedBiasAttention):
    """LeViT attention: heads reshaped from one qkv projection, a learned bias per relative offset, gathered
    into an [heads, N, N] table that eval mode computes once and caches (timm's ``attention_bias_cache``)."""

    def __init__(self, dim: int, key_dim: int, heads: int, attn_ratio: int, resolution: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.val_dim = heads, key_dim, attn_ratio * key_dim
        self.scale = key_dim**-0.5
        self.qkv = _LinearNorm(dim, heads * (2 * key_dim + self.val_dim))
        self.proj = nn.Sequential(nn.Hardswish(), _LinearNorm(heads * self.val_dim, dim))
        self.init_position_biases(heads, resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, self.heads, -1).split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attention = (q @ k.transpose(-2, -1)) * self.scale + self.position_biases(x.device)
        x = (attention.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, self.heads * self.val_dim)
        return self.proj(x)


class _LeViTBlock(nn.Module):
    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.attn = _LeViTAttention(dim, key_dim=8, heads=4, attn_ratio=2, resolution=resolution)
        self.mlp = nn.Sequential(_LinearNorm(dim, 2 * dim), nn.Hardswish(), _LinearNorm(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class LeViTLike(nn.Module):
    """Conv stem (stride 8), two LeViT blocks on the 8x8 tokens, BatchNorm + Linear classifier on the mean."""

    def __init__(self, dim: int = 64, classes: int = 10, resolution: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_act(3, 16, stride=2, act=nn.Hardswish),
                                  conv_bn_act(16, 32, stride=2, act=nn.Hardswish), conv_bn_act(32, dim, stride=2))
        self.blocks = nn.Sequential(*(_LeViTBlock(dim, resolution) for _ in range(2)))
        self.head = nn.Sequential(nn.BatchNorm1d(dim), nn.Linear(dim, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(tokens.mean(1))


class StdConv2d(nn.Conv2d):
    """Weight-standardised convolution with a learnable gain per output channel (NFNet's ScaledStdConv2d)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, stride, padding=kernel_size // 2)
        self.gain = nn.Parameter(torch.ones(c_out, 1, 1, 1) + 0.1 * torch.randn(c_out, 1, 1, 1))
        self.scale = (c_in * kernel_size * kernel_size) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.weight.mean(dim=(1, 2, 3), keepdim=True)
        var = self.weight.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        weight = (self.weight - mean) * torch.rsqrt(var + 1e-5) * self.gain * self.scale
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


class WSConvNet(nn.Module):
    """Four standardised 3x3 convs with GELU (no norm layers), a residual stage, a classifier and a 1x1 map head."""

    def __init__(self, classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(StdConv2d(3, width // 2, 3, 2), nn.GELU(), StdConv2d(width // 2, width, 3, 2))
        self.block = nn.Sequential(nn.GELU(), StdConv2d(width, width, 3), nn.GELU(), StdConv2d(width, width, 3))
        self.fc = nn.Linear(width, classes)
        self.seg = nn.Conv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.stem(x)
        features = features + self.block(features)
        return {"cls": self.fc(features.mean(dim=(2, 3))), "seg": self.seg(features)}


class _ConvGRU(nn.Module):
    def __init__(self, hidden: int, inputs: int) -> None:
        super().__init__()
        self.convz = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convr = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convq = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RAFTLike(nn.Module):
    """RAFT at 1/8 resolution: a shared feature encoder, a context encoder split into GRU state and context, an
    all-pairs correlation volume with a two-level pyramid sampled around the current flow (radius 1), a motion
    encoder, a ConvGRU and a flow head, three iterations, and the flow upsampled to the input size."""

    def __init__(self, feature: int = 32, hidden: int = 24, context: int = 16, iterations: int = 3) -> None:
        super().__init__()
        self.hidden, self.context, self.iterations = hidden, context, iterations

        def encoder(c_out: int) -> nn.Sequential:
            return nn.Sequential(conv_bn_act(3, 16, 5, 2), conv_bn_act(16, 24, stride=2), conv_bn_act(24, 32, stride=2),
                                 nn.Conv2d(32, c_out, 1))

        self.fnet = encoder(feature)
        self.cnet = encoder(hidden + context)
        corr_channels = 2 * 9
        self.convc = nn.Conv2d(corr_channels, 32, 1)
        self.convf = nn.Conv2d(2, 16, 7, padding=3)
        self.motion = nn.Conv2d(48, 30, 3, padding=1)
        self.gru = _ConvGRU(hidden, context + 32)
        self.flow_head = nn.Sequential(nn.Conv2d(hidden, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 2, 3, padding=1))

    def _lookup(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = coords.shape
        delta = torch.stack(torch.meshgrid(torch.arange(-1, 2.0), torch.arange(-1, 2.0), indexing="ij"), -1)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        sampled = []
        for level, volume in enumerate(pyramid):
            points = centre / 2**level + delta.view(1, 3, 3, 2)
            size = torch.tensor([volume.shape[-1] - 1, volume.shape[-2] - 1], dtype=points.dtype)
            grid = 2 * points / size - 1
            sampled.append(F.grid_sample(volume, grid, align_corners=True).view(b, h, w, 9))
        return torch.cat(sampled, dim=-1).permute(0, 3, 1, 2)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        f1, f2 = self.fnet(image1), self.fnet(image2)
        b, c, h, w = f1.shape
        volume = torch.matmul(f1.flatten(2).transpose(1, 2), f2.flatten(2)) / c**0.5
        volume = volume.reshape(b * h * w, 1, h, w)
        pyramid = [volume, F.avg_pool2d(volume, 2, 2)]
        net, inp = torch.split(self.cnet(image1), [self.hidden, self.context], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=f1.dtype), torch.arange(w, dtype=f1.dtype), indexing="ij")
        coords0 = torch.stack([xs, ys]).unsqueeze(0).expand(b, -1, -1, -1)
        flow = torch.zeros_like(coords0)
        for _ in range(self.iterations):
            corr = self._lookup(pyramid, coords0 + flow)
            motion = F.relu(self.motion(torch.cat([F.relu(self.convc(corr)), F.relu(self.convf(flow))], dim=1)))
            net = self.gru(net, torch.cat([inp, motion, flow], dim=1))
            flow = flow + self.flow_head(net)
        return 8 * F.interpolate(flow, scale_factor=8, mode="bilinear", align_corners=True)


@register_test_model("zoo")
def detr_like() -> tuple[nn.Module, torch.Tensor]:
    """`DETRLike` (an encoder layer subclass calling its attention with value=) on ``[1, 3, 64, 64]``."""
    return DETRLike(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def levit_like() -> tuple[nn.Module, torch.Tensor]:
    """`LeViTLike` (an attention-bias cache filled in eval mode, BatchNorm on linear layers) on ``[2, 3, 64, 64]``."""
    return LeViTLike(), torch.randn(2, 3, 64, 64)


@register_test_model("zoo")
def ws_conv_like() -> tuple[nn.Module, torch.Tensor]:
    """`WSConvNet` (a conv subclass with a per-output-channel gain of its own) on ``[1, 3, 64, 64]``."""
    return WSConvNet(), torch.randn(1, 3, 64, 64)


@register_test_model("zoo")
def raft_like() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """`RAFTLike` (a correlation volume, grid_sample lookups, a ConvGRU) on two ``[1, 3, 64, 64]`` frames."""
    return RAFTLike(), (torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
