"""The parameter slices a channel owns, read from a layer's kind."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..groups import ParamSlice
from .registry import kind_of

__all__ = ["channel_parameters", "param_slices"]


def channel_parameters(module: nn.Module) -> list[str]:
    """A layer's own parameters besides weight and bias that run along its output channels (leading dimension =
    output channels): a weight-standardised conv's gain [out, 1, 1, 1]. They are sliced with the channels."""
    kind = kind_of(module)
    return kind.own_params(module) if kind is not None and kind.own_params is not None else []


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
    kind = kind_of(module)
    slices = []
    for attr, param_dim in (kind.param_dims(module, is_out) if kind is not None else ()):
        param = getattr(module, attr, None)
        if isinstance(param, nn.Parameter):
            param_dim = param_dim % param.dim()
            keep = local < param.shape[param_dim]
            slices.append(ParamSlice(f"{name}.{attr}", param_dim, local[keep], root[keep]))
    return slices
