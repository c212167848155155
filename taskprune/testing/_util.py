"""Helpers shared by the test-model factories: seeding, BatchNorm randomisation, a conv-BN-activation block."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["conv_bn_act", "randomize_norms", "seeded_factory"]

Factory = TypeVar("Factory", bound=Callable[..., tuple[nn.Module, Any]])


def randomize_norms(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial affine weights and running statistics, in place; also perturb the
    affine weights of LayerNorm and GroupNorm.

    Freshly built norm layers have gamma=1, beta=0 (and BatchNorm mean=0, var=1), so every channel looks alike to
    a magnitude criterion; a slight spread gives the criteria something to rank. Uses the current RNG.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
                module.weight.uniform_(0.8, 1.2)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.05)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.weight is not None and module.bias is not None:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.1)
                if module.running_mean is not None and module.running_var is not None:
                    module.running_mean.normal_(0.0, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
    return model


def seeded_factory(factory: Factory) -> Factory:
    """Decorate a ``() -> (model, example_inputs)`` factory so it is deterministic and side-effect free.

    The factory runs under ``torch.manual_seed(0)`` inside a forked RNG, so calling it does not disturb the
    caller's random stream; the model's norms are randomised and it is returned in eval mode.
    """

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> tuple[nn.Module, Any]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, example_inputs = factory(*args, **kwargs)
            randomize_norms(model)
        return model.eval(), example_inputs

    return build  # type: ignore[return-value]


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm + optional activation, as an ``nn.Sequential``."""
    padding = dilation * (kernel_size - 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class CachedBiasAttention(nn.Module):
    """Base of LeViT-style attention (LeViT, EfficientViT): a learned bias per relative offset on a
    `resolution` x `resolution` grid, gathered into a [heads, N, N] table that eval mode computes once and
    caches per device (timm's ``attention_bias_cache``); training mode gathers it afresh."""

    attention_bias_idxs: torch.Tensor

    def init_position_biases(self, heads: int, resolution: int) -> None:
        """Create the biases and their index table; call it where the subclass's own layers are built, so the
        seeded parameters come out in the order they always have."""
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = [offsets.setdefault((abs(p[0] - q[0]), abs(p[1] - q[1])), len(offsets))
                for p in points for q in points]
        self.attention_biases = nn.Parameter(0.02 * torch.randn(heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs).view(len(points), len(points)),
                             persistent=False)
        self.attention_bias_cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> CachedBiasAttention:
        super().train(mode)
        if mode:
            self.attention_bias_cache = {}
        return self

    def position_biases(self, device: torch.device) -> torch.Tensor:
        """The [heads, N, N] bias table, cached in eval mode."""
        if self.training:
            return self.attention_biases[:, self.attention_bias_idxs]
        key = str(device)
        if key not in self.attention_bias_cache:
            self.attention_bias_cache[key] = self.attention_biases[:, self.attention_bias_idxs]
        return self.attention_bias_cache[key]
