"""Plain data about channel groups: which parameter slices each channel owns, and which tasks it serves.

No torch-pruning here: `graph.py` reads its groups into these, and everything else works on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["ChannelGroup", "ParamSlice", "channel_parameters", "param_slices"]


@dataclass(frozen=True)
class ParamSlice:
    """The part of one parameter that a group's channels own: `param[..., local[i], ...]` (along `dim`) belongs
    to the group's channel `root[i]`."""

    param: str
    dim: int
    local: torch.Tensor
    root: torch.Tensor


@dataclass
class ChannelGroup:
    """Channels that must be removed together (one root layer's outputs and everything coupled to them)."""

    index: int
    root: str
    channels: int
    out_layers: tuple[str, ...]
    in_layers: tuple[str, ...]
    slices: tuple[ParamSlice, ...]
    tasks: frozenset[str] = field(default_factory=frozenset)
    kept_whole: str = ""  # why the group may not be pruned; empty when it may

    @property
    def prunable(self) -> bool:
        """Whether the planner may remove channels of this group (nothing keeps it whole)."""
        return not self.kept_whole


def channel_parameters(module: nn.Module) -> list[str]:
    """A convolution's or linear layer's own parameters besides weight and bias that run along its output
    channels (leading dimension = output channels): a weight-standardised conv's gain [out, 1, 1, 1]. They are
    sliced with the channels."""
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        channels = module.out_channels
    elif isinstance(module, nn.Linear):
        channels = module.out_features
    else:
        return []
    return [name for name, param in module.named_parameters(recurse=False)
            if name not in ("weight", "bias") and param.dim() >= 1 and param.shape[0] == channels]


def param_slices(name: str, module: Any, is_out: bool, local: torch.Tensor, root: torch.Tensor,
                 dim: int | None = None) -> list[ParamSlice]:
    """The parameters a channel of `module` owns, and along which dimension.

    `module` may be a bare `nn.Parameter` outside any layer (a class token, a position embedding, a layer scale):
    then `name` is the parameter's own name and `dim` the dimension its channels run along; without a `dim` it
    owns nothing (torch-pruning leaves parameters with no dimension longer than one alone).
    """
    if isinstance(module, nn.Parameter):
        if dim is None:
            return []
        dim = dim % module.dim()
        keep = local < module.shape[dim]
        return [ParamSlice(name, dim, local[keep], root[keep])]
    dims: list[tuple[str, int]] = []
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups == module.out_channels and module.groups > 1
        transposed = bool(module.transposed)
        if is_out or depthwise:
            dims = [("weight", 1 if transposed and not depthwise else 0), ("bias", 0)]
            dims += [(own, 0) for own in channel_parameters(module)]
        elif module.groups == 1:
            dims = [("weight", 0 if transposed else 1)]
    elif isinstance(module, nn.Linear):
        dims = [("weight", 0), ("bias", 0), *((own, 0) for own in channel_parameters(module))] if is_out \
            else [("weight", 1)]
    elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)):
        dims = [("weight", 0), ("bias", 0)]
    elif isinstance(module, nn.LayerNorm):
        dims = [("weight", -1), ("bias", -1)]
    elif isinstance(module, nn.PReLU) and module.num_parameters > 1:
        dims = [("weight", 0)]
    elif isinstance(module, nn.Embedding):
        dims = [("weight", 1)]
    slices = []
    for attr, dim in dims:
        param = getattr(module, attr, None)
        if isinstance(param, nn.Parameter):
            dim = dim % param.dim()
            keep = local < param.shape[dim]
            slices.append(ParamSlice(f"{name}.{attr}", dim, local[keep], root[keep]))
    return slices
