"""Where the MACs of a model sit: per layer, and for parameter-free layers, the parameter they shrink with."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .graph import module_macs
from .tasks import call_model

__all__ = ["activation_macs", "layer_macs"]


def layer_macs(model: nn.Module, example_inputs: Any) -> dict[str, float]:
    """MACs of every module with parameters of its own, by qualified name."""
    per_layer = module_macs(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: v for m, v in per_layer.items()
            if m in names and any(True for _ in m.parameters(recurse=False))}


def activation_macs(model: nn.Module, example_inputs: Any) -> dict[str, float]:
    """MACs of parameter-free layers (activations, pooling, upsampling), charged to a per-channel parameter of the
    layer that produced their input (a BatchNorm's weight, a conv's bias), since they shrink with its channels.

    Returns parameter name -> MACs; layers whose input no parameterised module produced are left out.
    """
    per_layer = module_macs(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    producers: dict[int, str] = {}
    charged: dict[str, float] = {}

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        per_channel = _per_channel_parameter(module)
        if per_channel is not None and isinstance(output, torch.Tensor):
            producers[id(output)] = f"{names[module]}.{per_channel}"
        elif not any(True for _ in module.parameters(recurse=False)) and inputs and per_layer.get(module):
            source = producers.get(id(inputs[0]))
            if source is not None:
                charged[source] = charged.get(source, 0.0) + float(per_layer[module])
                if isinstance(output, torch.Tensor):
                    producers[id(output)] = source  # an activation keeps the channels it was given

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            call_model(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return charged


def _per_channel_parameter(module: nn.Module) -> str | None:
    """The name of a parameter of `module` with one element per output channel, if it has one."""
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and module.weight is not None:
        return "weight"
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and module.bias is not None:
        return "bias"
    return None
