"""What a model costs, measured once per `prune` call: parameters and MACs, per layer and in all.

MACs come from torch-pruning's op counter. Parameter-free layers (activations, pooling, upsampling) shrink with the
channels of the layer that produced their input, so their MACs are charged to a per-channel parameter of that layer
(a BatchNorm's weight, a conv's bias); the exact cost model prices that parameter accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

from .._runtime import preserved_modes
from ..tasks import call_model, flatten_outputs

__all__ = ["ModelProfile", "activation_macs", "count_macs", "count_params", "layer_macs", "module_macs",
           "profile_model"]


@dataclass(frozen=True)
class ModelProfile:
    """A model's costs on its example inputs, measured once and handed to every stage that needs them.

    Attributes:
        params: parameter elements.
        macs: MACs of one forward.
        shapes: parameter name -> shape.
        layer_macs: module name -> MACs, for modules with parameters of their own.
        own_params: module name -> parameter elements of its own.
        activation_macs: parameter name -> MACs of the parameter-free layers charged to it.
    """

    params: int
    macs: int
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    layer_macs: dict[str, float] = field(default_factory=dict)
    own_params: dict[str, int] = field(default_factory=dict)
    activation_macs: dict[str, float] = field(default_factory=dict)

    def macs_rates(self) -> dict[str, float]:
        """Parameter name -> MACs per element: its layer's MACs spread over the layer's own parameters, plus the
        parameter-free MACs charged to it (what the exact cost model of target="macs" multiplies sizes by)."""
        rates = {}
        for param, shape in self.shapes.items():
            layer = param.rpartition(".")[0]
            rates[param] = self.layer_macs.get(layer, 0.0) / max(self.own_params.get(layer, 1), 1)
            extra = self.activation_macs.get(param)
            if extra:
                rates[param] += extra / max(_numel(shape), 1)
        return rates


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for side in shape:
        total *= side
    return total


def profile_model(model: nn.Module, example_inputs: Any) -> ModelProfile:
    """Count `model`'s costs on `example_inputs`: one run of torch-pruning's op counter and one hooked forward."""
    total, per_module = _count(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    own = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in model.named_modules()}
    return ModelProfile(
        params=count_params(model), macs=total,
        shapes={name: tuple(p.shape) for name, p in model.named_parameters()},
        layer_macs={names[m]: v for m, v in per_module.items() if m in names and own.get(names[m])},
        own_params={n: c for n, c in own.items() if c},
        activation_macs=_activation_macs(model, example_inputs, per_module))


def count_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """MACs of one forward on `example_inputs`, counted by torch-pruning's op counter."""
    with torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(model, example_inputs)
    return int(macs)


def count_macs_and_params(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """(MACs, parameter elements) of `model` on `example_inputs`."""
    return count_macs(model, example_inputs), count_params(model)


def module_macs(model: nn.Module, example_inputs: Any) -> dict[nn.Module, float]:
    """MACs of every module on one forward, by torch-pruning's op counter (see `layer_macs`)."""
    return _count(model, example_inputs)[1]


def _count(model: nn.Module, example_inputs: Any) -> tuple[int, dict[nn.Module, float]]:
    """(MACs of the forward, MACs per module), both per sample, from one run of torch-pruning's op counter (its
    total is divided by the batch size, its per-module counts are not: with a batch of two, the layers summed to
    twice the model and the MACs cost model mixed the two)."""
    with torch.no_grad():
        total, _, per_layer, _ = tp.utils.count_ops_and_params(model, example_inputs, layer_wise=True)
    leaves = flatten_outputs(example_inputs)
    batch = max(1, int(leaves[0].shape[0])) if leaves and leaves[0].dim() else 1
    return int(total), {m: float(v) / batch for m, v in per_layer.items() if v}


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
    return _activation_macs(model, example_inputs, module_macs(model, example_inputs))


def _activation_macs(model: nn.Module, example_inputs: Any, per_layer: dict[nn.Module, float]) -> dict[str, float]:
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

    leaves = {m for m in model.modules() if not any(True for _ in m.children())}

    def record_leaf(module: nn.Module, inputs: Any, output: Any) -> None:
        if module in leaves:
            record(module, inputs, output)

    hooks = [register_module_forward_hook(record_leaf)]  # one process-wide hook, not one per layer
    try:
        # eval mode: counting must not move a BatchNorm's running statistics (the caller's mode comes back)
        with torch.no_grad(), preserved_modes(model, eval=True):
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
